"""Coaching: notes, 1:1 plans, commitments, and the gap analysis' items adopted into the playbook."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Date, Float, Index, String, Text

from closewise.db.tables.schema import Timestamp, fk, metadata, pk

coaching_notes = sa.Table(
    "coaching_notes",
    metadata,
    pk(),
    fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    fk("author_id", "users.id", ondelete="SET NULL"),
    fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    # review (opportunity review) | one_on_one | plan
    sa.Column("kind", String(16), nullable=False),
    sa.Column("body", Text, nullable=False),
    sa.Column("skill", String(64)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("due_at", Date),
    sa.Column("done_at", Timestamp),
)

# Coaching (issue 9). A 1:1 coaching plan for a rep: the skills it develops (from the gap analysis: metric key,
# label, target), the rep's figures on those metrics when it started (`baseline`), and its review date.
coaching_plans = sa.Table(
    "coaching_plans",
    metadata,
    pk(),
    fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    fk("author_id", "users.id", ondelete="SET NULL"),
    sa.Column("title", String(200), nullable=False),
    sa.Column("skills", JSON, nullable=False),
    sa.Column("baseline", JSON),
    sa.Column("starts_on", Date, nullable=False),
    sa.Column("review_on", Date),
    sa.Column("status", String(16), nullable=False),  # active | closed
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("closed_at", Timestamp),
    sa.Column("outcome", Text),
    Index("ix_coaching_plans_rep_id", "rep_id"),
)

# What a rep agreed to do, with a due date and its follow-up: in a 1:1 plan (kind plan) or as the agreed next
# step on a deal in an opportunity review (kind review, with the deal).
coaching_commitments = sa.Table(
    "coaching_commitments",
    metadata,
    pk(),
    fk("plan_id", "coaching_plans.id", ondelete="CASCADE"),
    fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    fk("author_id", "users.id", ondelete="SET NULL"),
    sa.Column("kind", String(16), nullable=False),
    sa.Column("text", Text, nullable=False),
    sa.Column("skill", String(64)),
    sa.Column("due_on", Date),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("done_at", Timestamp),
    sa.Column("follow_up", Text),
    Index("ix_coaching_commitments_rep_id", "rep_id"),
)

# A checklist item from the gap analysis adopted into the playbook: the exit criterion it became, the evidence
# it was adopted on, and when, so its effect can be tracked.
coaching_adoptions = sa.Table(
    "coaching_adoptions",
    metadata,
    pk(),
    sa.Column("item_key", String(64), nullable=False),
    sa.Column("stage", String(64), nullable=False),
    sa.Column("criterion_key", String(64), nullable=False),
    sa.Column("label", String(255), nullable=False),
    sa.Column("metric", String(64), nullable=False),
    sa.Column("threshold", Float),
    sa.Column("evidence", JSON),
    sa.Column("adopted_at", Timestamp, nullable=False),
    fk("adopted_by", "users.id", ondelete="SET NULL"),
)
