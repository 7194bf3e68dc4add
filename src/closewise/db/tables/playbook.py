"""The sales process: pipeline stages, their exit criteria and the checks against them, qualification
frameworks and answers, and the snoozes of hygiene findings."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, String, Text

from closewise.db.tables.schema import Timestamp, fk, metadata, pk

stages = sa.Table(
    "stages",
    metadata,
    pk(),
    sa.Column("pipeline", String(64), nullable=False, default="default"),
    sa.Column("key", String(64), nullable=False),
    sa.Column("name", String(120), nullable=False),
    sa.Column("order", Integer, nullable=False),
    sa.Column("default_probability", Float, nullable=False),
    sa.Column("forecast_category", String(16), nullable=False),
    sa.Column("days_to_rot", Integer),
    sa.Column("requalify_days", Integer),
    sa.Column("guidance", Text),
    sa.Column("required_fields", JSON),
    # Leaving the stage needs the deal's latest proposal to pass its quality checks (playbook/gates.py).
    sa.Column("requires_passing_proposal", Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.UniqueConstraint("pipeline", "key", name="uq_stages_pipeline_key"),
)

exit_criteria = sa.Table(
    "exit_criteria",
    metadata,
    pk(),
    fk("stage_id", "stages.id", nullable=False, ondelete="CASCADE"),
    sa.Column("key", String(64), nullable=False),
    sa.Column("label", String(255), nullable=False),
    # checkbox | field | evidence; `spec` holds the field name or the evidence rule.
    sa.Column("kind", String(16), nullable=False),
    sa.Column("spec", JSON),
    sa.Column("order", Integer, nullable=False, default=0),
    sa.UniqueConstraint("stage_id", "key", name="uq_exit_criteria_stage_key"),
)

criteria_checks = sa.Table(
    "criteria_checks",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("criterion_key", String(64), nullable=False),
    sa.Column("done", Boolean, nullable=False),
    sa.Column("checked_at", Timestamp, nullable=False),
    fk("checked_by", "users.id", ondelete="SET NULL"),
    Index("ix_criteria_checks_opportunity_id", "opportunity_id"),
)

qualification_frameworks = sa.Table(
    "qualification_frameworks",
    metadata,
    pk(),
    sa.Column("key", String(64), nullable=False, unique=True),
    sa.Column("name", String(120), nullable=False),
    sa.Column("questions", JSON, nullable=False),
)

qualification_answers = sa.Table(
    "qualification_answers",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("framework", String(64), nullable=False),
    sa.Column("question", String(64), nullable=False),
    # yes | partial | no | unknown, with free text evidence.
    sa.Column("answer", String(16), nullable=False),
    sa.Column("evidence", Text),
    sa.Column("answered_at", Timestamp, nullable=False),
    fk("answered_by", "users.id", ondelete="SET NULL"),
    Index("ix_qualification_answers_opportunity_id", "opportunity_id"),
)

# A hygiene finding (opportunity + code) hidden until `until` (it shows again that day); the latest snooze
# of a finding is the one that counts.
hygiene_snoozes = sa.Table(
    "hygiene_snoozes",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("code", String(32), nullable=False),
    sa.Column("reason", Text, nullable=False),
    sa.Column("until", Date, nullable=False),
    fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
    Index("ix_hygiene_snoozes_opportunity_id", "opportunity_id", "code"),
)
