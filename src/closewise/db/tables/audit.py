"""What was done: import runs and the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, String, Text

from closewise.db.tables.schema import Timestamp, fk, metadata, pk

import_runs = sa.Table(
    "import_runs",
    metadata,
    pk(),
    sa.Column("kind", String(32), nullable=False),
    sa.Column("path", Text, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
    # running | done | failed
    sa.Column("status", String(16), nullable=False),
    sa.Column("counts", JSON),
    sa.Column("errors_file", Text),
    fk("user_id", "users.id", ondelete="SET NULL"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    pk(),
    sa.Column("at", Timestamp, nullable=False),
    fk("actor_id", "users.id", ondelete="SET NULL"),
    sa.Column("action", String(64), nullable=False),
    sa.Column("entity", String(64), nullable=False),
    sa.Column("entity_id", String(64)),
    sa.Column("detail", JSON),
)
