"""The CRM records the app imports and works on: accounts, contacts, opportunities with their change log, and
activities."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, String, Text

from closewise.db.tables.schema import Money, Timestamp, fk, metadata, pk

accounts = sa.Table(
    "accounts",
    metadata,
    pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255), nullable=False),
    sa.Column("industry", String(120)),
    sa.Column("employees", Integer),
    sa.Column("annual_revenue", Money),
    sa.Column("country", String(80)),
    sa.Column("segment", String(40)),
    fk("owner_id", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp),
    sa.Column("custom", JSON),
    sa.UniqueConstraint("source", "external_id", name="uq_accounts_source_external_id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    fk("account_id", "accounts.id", ondelete="CASCADE"),
    sa.Column("name", String(255), nullable=False),
    sa.Column("email", String(320)),
    sa.Column("title", String(200)),
    # The buying role this person plays: economic_buyer, champion, decision_maker, user, ...
    sa.Column("buying_role", String(40)),
    sa.UniqueConstraint("source", "external_id", name="uq_contacts_source_external_id"),
)

opportunities = sa.Table(
    "opportunities",
    metadata,
    pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255), nullable=False),
    fk("account_id", "accounts.id", ondelete="SET NULL"),
    fk("owner_id", "users.id", ondelete="SET NULL"),
    sa.Column("pipeline", String(64), nullable=False, default="default"),
    sa.Column("stage", String(64), nullable=False),
    sa.Column("status", String(16), nullable=False),
    sa.Column("amount", Money),
    sa.Column("currency", String(3), nullable=False),
    sa.Column("close_date", Date),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("closed_at", Timestamp),
    sa.Column("forecast_category", String(16)),
    sa.Column("probability", Float),
    sa.Column("next_step", Text),
    sa.Column("lead_source", String(120)),
    sa.Column("type", String(64)),
    sa.Column("competitor", String(120)),
    fk("lead_id", "leads.id", ondelete="SET NULL"),
    sa.Column("updated_at", Timestamp),
    sa.Column("custom", JSON),
    sa.UniqueConstraint("source", "external_id", name="uq_opportunities_source_external_id"),
    Index("ix_opportunities_owner_id", "owner_id"),
    Index("ix_opportunities_status", "status"),
    Index("ix_opportunities_account_id", "account_id"),
    # The deal list filters and sorts by these (0006).
    Index("ix_opportunities_close_date", "close_date"),
    Index("ix_opportunities_status_close_date", "status", "close_date"),
    Index("ix_opportunities_amount", "amount"),
    # A manager's or rep's list: owner_id IN (their hierarchy), a status, by close date; the list sorted by
    # name; filtered and counted by stage (0008).
    Index("ix_opportunities_owner_status_close_date", "owner_id", "status", "close_date"),
    Index("ix_opportunities_name", "name"),
    Index("ix_opportunities_stage_status", "stage", "status"),
)

opportunity_changes = sa.Table(
    "opportunity_changes",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("field", String(32), nullable=False),
    # Values are written as text: ISO dates, decimal amounts, ids; `None` means "empty".
    sa.Column("old_value", Text),
    sa.Column("new_value", Text),
    sa.Column("changed_at", Timestamp, nullable=False),
    fk("changed_by", "users.id", ondelete="SET NULL"),
    sa.Column("source", String(16), nullable=False),
    sa.Column("reason", Text),
    fk("import_run_id", "import_runs.id", ondelete="SET NULL"),
    Index("ix_opportunity_changes_opportunity_id", "opportunity_id", "changed_at"),
    Index("ix_opportunity_changes_changed_at", "changed_at"),
)

activities = sa.Table(
    "activities",
    metadata,
    pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("type", String(16), nullable=False),
    sa.Column("subject", String(255)),
    fk("owner_id", "users.id", ondelete="SET NULL"),
    fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    fk("account_id", "accounts.id", ondelete="SET NULL"),
    fk("lead_id", "leads.id", ondelete="CASCADE"),
    fk("contact_id", "contacts.id", ondelete="SET NULL"),
    sa.Column("occurred_at", Timestamp, nullable=False),
    sa.Column("completed", Boolean, nullable=False, default=True),
    sa.UniqueConstraint("source", "external_id", name="uq_activities_source_external_id"),
    Index("ix_activities_opportunity_id", "opportunity_id"),
    Index("ix_activities_owner_id", "owner_id"),
    Index("ix_activities_lead_id", "lead_id"),
)
