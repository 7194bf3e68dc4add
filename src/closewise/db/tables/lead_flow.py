"""Leads and what happens to them in the app: their events and the routing rules that assign them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text

from closewise.db.tables.schema import Id, Timestamp, fk, metadata, pk

leads = sa.Table(
    "leads",
    metadata,
    pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255)),
    sa.Column("email", String(320)),
    sa.Column("company", String(255)),
    sa.Column("lead_source", String(120)),
    sa.Column("campaign", String(200)),
    sa.Column("country", String(80)),
    sa.Column("timezone", String(64)),
    fk("owner_id", "users.id", ondelete="SET NULL"),
    sa.Column("status", String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("assigned_at", Timestamp),
    sa.Column("first_touch_at", Timestamp),
    sa.Column("accepted_at", Timestamp),
    sa.Column("rejected_at", Timestamp),
    sa.Column("recycle_reason", String(32)),
    sa.Column("re_engage_at", Date),
    sa.Column("recycled_count", Integer, nullable=False, default=0),
    sa.Column("converted_at", Timestamp),
    # No FK: opportunities reference leads too, and the lead may be imported before its opportunity.
    sa.Column("converted_opportunity_id", Id),
    sa.Column("custom", JSON),
    sa.UniqueConstraint("source", "external_id", name="uq_leads_source_external_id"),
    Index("ix_leads_owner_id", "owner_id"),
)

# What happened to a lead in the app (issue 10): routed (assigned), accepted, rejected, recycled to nurture,
# returned from nurture. Events that the lead's own fields and activities show (created, first touch,
# converted, imported decisions) are derived from them (`closewise.leads.events`), so they are not copied here.
lead_events = sa.Table(
    "lead_events",
    metadata,
    pk(),
    fk("lead_id", "leads.id", nullable=False, ondelete="CASCADE"),
    sa.Column("kind", String(16), nullable=False),
    sa.Column("occurred_at", Timestamp, nullable=False),
    fk("user_id", "users.id", ondelete="SET NULL"),  # who did it (None: a routing run from the CLI)
    fk("owner_id", "users.id", ondelete="SET NULL"),  # the lead's owner after the event
    sa.Column("reason", String(32)),
    sa.Column("re_engage_at", Date),
    sa.Column("note", Text),
    Index("ix_lead_events_lead_id", "lead_id", "occurred_at"),
)

# Lead routing rules, tried in `position` order on every new unassigned lead: the first rule whose countries
# and sources match (empty: any) assigns it to one of its `members` (user ids) by its method: round_robin (in
# turn, after `last_member_id`), territory (a round robin restricted to `countries`) or capacity (the member
# with the fewest open leads). `max_open` caps any member's open leads under the rule.
lead_routing_rules = sa.Table(
    "lead_routing_rules",
    metadata,
    pk(),
    sa.Column("name", String(120), nullable=False, unique=True),
    sa.Column("position", Integer, nullable=False),
    sa.Column("method", String(16), nullable=False),
    sa.Column("countries", JSON),
    sa.Column("sources", JSON),
    sa.Column("members", JSON, nullable=False),
    sa.Column("max_open", Integer),
    sa.Column("last_member_id", Id),
    sa.Column("active", Boolean, nullable=False, default=True),
)
