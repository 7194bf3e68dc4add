"""What reps send and run: proposals, the org's talking points against competitors, prospecting cadences."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Integer, String, Text

from closewise.db.tables.schema import Timestamp, fk, metadata, pk

proposals = sa.Table(
    "proposals",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("format", String(8), nullable=False),
    sa.Column("path", Text),
    sa.Column("executive_summary", Text, nullable=False),
    sa.Column("checks", JSON),
    # The document as generated (migration 0009; null for proposals recorded before it).
    sa.Column("content", sa.LargeBinary),
    sa.Column("filename", String(255)),
)

# Proposals (issue 11). The org's own talking points against a competitor (or "*" for any), per buyer persona;
# they replace the built-in point for the same competitor and persona (`proposals.differentiation`).
talking_points = sa.Table(
    "talking_points",
    metadata,
    pk(),
    sa.Column("competitor", String(120), nullable=False),
    sa.Column("persona", String(40), nullable=False),
    sa.Column("headline", String(255), nullable=False),
    sa.Column("detail", Text, nullable=False),
    sa.Column("proof", Text),
    fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
)

# Prospecting cadences of the org: steps over weeks ([{"week", "day", "kind", "label"}]) and how many accounts
# each rep works through it at a time (the weekly activity goals follow from both).
prospecting_cadences = sa.Table(
    "prospecting_cadences",
    metadata,
    pk(),
    sa.Column("name", String(200), nullable=False, unique=True),
    sa.Column("steps", JSON, nullable=False),
    sa.Column("accounts_per_rep", Integer, nullable=False),
    sa.Column("weeks", Integer, nullable=False),
    fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
)
