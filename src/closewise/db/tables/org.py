"""The org: its settings, teams, people (and their ids in the source systems), quotas and currency rates."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Boolean, Date, Float, Index, String, Text

from closewise.db.tables.schema import Money, Timestamp, fk, metadata, pk

org_settings = sa.Table(
    "org_settings",
    metadata,
    sa.Column("key", String(64), primary_key=True),
    sa.Column("value", Text, nullable=False),
)

teams = sa.Table(
    "teams",
    metadata,
    pk(),
    sa.Column("name", String(200), nullable=False, unique=True),
)

users = sa.Table(
    "users",
    metadata,
    pk(),
    sa.Column("email", String(320), unique=True),
    sa.Column("name", String(200), nullable=False),
    sa.Column("role", String(16), nullable=False),
    fk("manager_id", "users.id", ondelete="SET NULL"),
    fk("team_id", "teams.id", ondelete="SET NULL"),
    sa.Column("title", String(200)),
    sa.Column("hire_date", Date),
    sa.Column("active", Boolean, nullable=False, default=True),
    sa.Column("password_hash", String(255)),
    sa.Column("created_at", Timestamp, nullable=False),
    Index("ix_users_manager_id", "manager_id"),
)

user_external_ids = sa.Table(
    "user_external_ids",
    metadata,
    sa.Column("source", String(64), primary_key=True),
    sa.Column("external_id", String(255), primary_key=True),
    fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
)

quotas = sa.Table(
    "quotas",
    metadata,
    pk(),
    fk("user_id", "users.id", ondelete="CASCADE"),
    fk("team_id", "teams.id", ondelete="CASCADE"),
    sa.Column("period", String(16), nullable=False),
    sa.Column("period_start", Date, nullable=False),
    sa.Column("period_end", Date, nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", String(3), nullable=False),
    sa.UniqueConstraint("user_id", "team_id", "period", name="uq_quotas_scope_period"),
)

currency_rates = sa.Table(
    "currency_rates",
    metadata,
    pk(),
    sa.Column("currency", String(3), nullable=False),
    # Units of `currency` per one unit of the corporate currency (Salesforce's ConversionRate).
    sa.Column("rate", Float, nullable=False),
    # Null start_date: the static rate (CurrencyType); otherwise a dated rate (DatedConversionRate).
    sa.Column("start_date", Date),
    sa.UniqueConstraint("currency", "start_date", name="uq_currency_rates_currency_start"),
)
