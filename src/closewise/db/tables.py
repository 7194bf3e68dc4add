"""The canonical data model (DESIGN.md), as SQLAlchemy Core tables.

Every change to the schema goes through an Alembic migration in `db/migrations/versions`; a test checks
that these tables and the migrated database agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys that are still SQLite rowids (INTEGER PRIMARY KEY) there.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = sa.Numeric(18, 2, asdecimal=False)
Timestamp = sa.DateTime(timezone=True)


def _pk() -> sa.Column[int]:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, nullable: bool = True, ondelete: str | None = None) -> sa.Column[int]:
    return sa.Column(name, Id, ForeignKey(target, ondelete=ondelete), nullable=nullable)


org_settings = sa.Table(
    "org_settings",
    metadata,
    sa.Column("key", String(64), primary_key=True),
    sa.Column("value", Text, nullable=False),
)

teams = sa.Table(
    "teams",
    metadata,
    _pk(),
    sa.Column("name", String(200), nullable=False, unique=True),
)

users = sa.Table(
    "users",
    metadata,
    _pk(),
    sa.Column("email", String(320), unique=True),
    sa.Column("name", String(200), nullable=False),
    sa.Column("role", String(16), nullable=False),
    _fk("manager_id", "users.id", ondelete="SET NULL"),
    _fk("team_id", "teams.id", ondelete="SET NULL"),
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
    _fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
)

quotas = sa.Table(
    "quotas",
    metadata,
    _pk(),
    _fk("user_id", "users.id", ondelete="CASCADE"),
    _fk("team_id", "teams.id", ondelete="CASCADE"),
    sa.Column("period", String(16), nullable=False),
    sa.Column("period_start", Date, nullable=False),
    sa.Column("period_end", Date, nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", String(3), nullable=False),
    sa.UniqueConstraint("user_id", "team_id", "period", name="uq_quotas_scope_period"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    _pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255), nullable=False),
    sa.Column("industry", String(120)),
    sa.Column("employees", Integer),
    sa.Column("annual_revenue", Money),
    sa.Column("country", String(80)),
    sa.Column("segment", String(40)),
    _fk("owner_id", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp),
    sa.Column("custom", JSON),
    sa.UniqueConstraint("source", "external_id", name="uq_accounts_source_external_id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    _pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    _fk("account_id", "accounts.id", ondelete="CASCADE"),
    sa.Column("name", String(255), nullable=False),
    sa.Column("email", String(320)),
    sa.Column("title", String(200)),
    # The buying role this person plays: economic_buyer, champion, decision_maker, user, ...
    sa.Column("buying_role", String(40)),
    sa.UniqueConstraint("source", "external_id", name="uq_contacts_source_external_id"),
)

leads = sa.Table(
    "leads",
    metadata,
    _pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255)),
    sa.Column("email", String(320)),
    sa.Column("company", String(255)),
    sa.Column("lead_source", String(120)),
    sa.Column("campaign", String(200)),
    sa.Column("country", String(80)),
    sa.Column("timezone", String(64)),
    _fk("owner_id", "users.id", ondelete="SET NULL"),
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

opportunities = sa.Table(
    "opportunities",
    metadata,
    _pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("name", String(255), nullable=False),
    _fk("account_id", "accounts.id", ondelete="SET NULL"),
    _fk("owner_id", "users.id", ondelete="SET NULL"),
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
    _fk("lead_id", "leads.id", ondelete="SET NULL"),
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
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("field", String(32), nullable=False),
    # Values are written as text: ISO dates, decimal amounts, ids; `None` means "empty".
    sa.Column("old_value", Text),
    sa.Column("new_value", Text),
    sa.Column("changed_at", Timestamp, nullable=False),
    _fk("changed_by", "users.id", ondelete="SET NULL"),
    sa.Column("source", String(16), nullable=False),
    sa.Column("reason", Text),
    _fk("import_run_id", "import_runs.id", ondelete="SET NULL"),
    Index("ix_opportunity_changes_opportunity_id", "opportunity_id", "changed_at"),
    Index("ix_opportunity_changes_changed_at", "changed_at"),
)

activities = sa.Table(
    "activities",
    metadata,
    _pk(),
    sa.Column("source", String(64), nullable=False),
    sa.Column("external_id", String(255), nullable=False),
    sa.Column("type", String(16), nullable=False),
    sa.Column("subject", String(255)),
    _fk("owner_id", "users.id", ondelete="SET NULL"),
    _fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    _fk("account_id", "accounts.id", ondelete="SET NULL"),
    _fk("lead_id", "leads.id", ondelete="CASCADE"),
    _fk("contact_id", "contacts.id", ondelete="SET NULL"),
    sa.Column("occurred_at", Timestamp, nullable=False),
    sa.Column("completed", Boolean, nullable=False, default=True),
    sa.UniqueConstraint("source", "external_id", name="uq_activities_source_external_id"),
    Index("ix_activities_opportunity_id", "opportunity_id"),
    Index("ix_activities_owner_id", "owner_id"),
    Index("ix_activities_lead_id", "lead_id"),
)

stages = sa.Table(
    "stages",
    metadata,
    _pk(),
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
    _pk(),
    _fk("stage_id", "stages.id", nullable=False, ondelete="CASCADE"),
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
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("criterion_key", String(64), nullable=False),
    sa.Column("done", Boolean, nullable=False),
    sa.Column("checked_at", Timestamp, nullable=False),
    _fk("checked_by", "users.id", ondelete="SET NULL"),
    Index("ix_criteria_checks_opportunity_id", "opportunity_id"),
)

qualification_frameworks = sa.Table(
    "qualification_frameworks",
    metadata,
    _pk(),
    sa.Column("key", String(64), nullable=False, unique=True),
    sa.Column("name", String(120), nullable=False),
    sa.Column("questions", JSON, nullable=False),
)

qualification_answers = sa.Table(
    "qualification_answers",
    metadata,
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("framework", String(64), nullable=False),
    sa.Column("question", String(64), nullable=False),
    # yes | partial | no | unknown, with free text evidence.
    sa.Column("answer", String(16), nullable=False),
    sa.Column("evidence", Text),
    sa.Column("answered_at", Timestamp, nullable=False),
    _fk("answered_by", "users.id", ondelete="SET NULL"),
    Index("ix_qualification_answers_opportunity_id", "opportunity_id"),
)

forecast_submissions = sa.Table(
    "forecast_submissions",
    metadata,
    _pk(),
    _fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("period", String(16), nullable=False),
    sa.Column("submitted_at", Timestamp, nullable=False),
    sa.Column("commit", Money, nullable=False),
    sa.Column("best_case", Money, nullable=False),
    sa.Column("pipeline", Money),
    # A manager's adjustment of a report's number is a row with kind=adjustment about `subject_id`.
    sa.Column("kind", String(16), nullable=False, default="submission"),
    _fk("subject_id", "users.id", ondelete="CASCADE"),
    sa.Column("notes", Text),
    Index("ix_forecast_submissions_user_period", "user_id", "period"),
)

coaching_notes = sa.Table(
    "coaching_notes",
    metadata,
    _pk(),
    _fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    _fk("author_id", "users.id", ondelete="SET NULL"),
    _fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    # review (opportunity review) | one_on_one | plan
    sa.Column("kind", String(16), nullable=False),
    sa.Column("body", Text, nullable=False),
    sa.Column("skill", String(64)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("due_at", Date),
    sa.Column("done_at", Timestamp),
)

proposals = sa.Table(
    "proposals",
    metadata,
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    _fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("format", String(8), nullable=False),
    sa.Column("path", Text),
    sa.Column("executive_summary", Text, nullable=False),
    sa.Column("checks", JSON),
    # The document as generated (migration 0009; null for proposals recorded before it).
    sa.Column("content", sa.LargeBinary),
    sa.Column("filename", String(255)),
)

currency_rates = sa.Table(
    "currency_rates",
    metadata,
    _pk(),
    sa.Column("currency", String(3), nullable=False),
    # Units of `currency` per one unit of the corporate currency (Salesforce's ConversionRate).
    sa.Column("rate", Float, nullable=False),
    # Null start_date: the static rate (CurrencyType); otherwise a dated rate (DatedConversionRate).
    sa.Column("start_date", Date),
    sa.UniqueConstraint("currency", "start_date", name="uq_currency_rates_currency_start"),
)

import_runs = sa.Table(
    "import_runs",
    metadata,
    _pk(),
    sa.Column("kind", String(32), nullable=False),
    sa.Column("path", Text, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
    # running | done | failed
    sa.Column("status", String(16), nullable=False),
    sa.Column("counts", JSON),
    sa.Column("errors_file", Text),
    _fk("user_id", "users.id", ondelete="SET NULL"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    _pk(),
    sa.Column("at", Timestamp, nullable=False),
    _fk("actor_id", "users.id", ondelete="SET NULL"),
    sa.Column("action", String(64), nullable=False),
    sa.Column("entity", String(64), nullable=False),
    sa.Column("entity_id", String(64)),
    sa.Column("detail", JSON),
)

# A hygiene finding (opportunity + code) hidden until `until` (it shows again that day); the latest snooze
# of a finding is the one that counts.
hygiene_snoozes = sa.Table(
    "hygiene_snoozes",
    metadata,
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("code", String(32), nullable=False),
    sa.Column("reason", Text, nullable=False),
    sa.Column("until", Date, nullable=False),
    _fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
    Index("ix_hygiene_snoozes_opportunity_id", "opportunity_id", "code"),
)

# A signed-in browser session. Only a hash of the cookie's token is stored, so a copy of the database does not
# let anyone sign in; `csrf_token` is the per-session secret every form and htmx request must echo.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    _pk(),
    sa.Column("token_hash", String(64), nullable=False, unique=True),
    _fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("csrf_token", String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# An API bearer token (`POST /api/auth/token`), stored as a hash like sessions, with its own expiry.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _pk(),
    sa.Column("token_hash", String(64), nullable=False, unique=True),
    _fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# The deal models' latest answer for each open deal (`services.scoring`): what the deal list, the deal page
# and the API show without refitting a model per request. `as_of` is the moment the models were trained for.
deal_scores = sa.Table(
    "deal_scores",
    metadata,
    sa.Column("opportunity_id", Id, ForeignKey("opportunities.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("as_of", Timestamp, nullable=False),
    sa.Column("period_start", Date, nullable=False),
    sa.Column("period_end", Date, nullable=False),
    sa.Column("p_win", Float, nullable=False),
    sa.Column("p_close_in_period", Float, nullable=False),
    sa.Column("expected_amount", Money),
    sa.Column("model", String(64), nullable=False),
    sa.Column("reasons", JSON),
)

# Every scoring run's answer, kept: a deal's win probability over time, each point from models fitted only on
# what was known at that point's `as_of`.
deal_score_history = sa.Table(
    "deal_score_history",
    metadata,
    _pk(),
    _fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("as_of", Timestamp, nullable=False),
    sa.Column("p_win", Float, nullable=False),
    sa.Column("p_close_in_period", Float, nullable=False),
    Index("ix_deal_score_history_opportunity_id", "opportunity_id", "as_of"),
)

# What happened to a lead in the app (issue 10): routed (assigned), accepted, rejected, recycled to nurture,
# returned from nurture. Events that the lead's own fields and activities show (created, first touch,
# converted, imported decisions) are derived from them (`closewise.leads.events`), so they are not copied here.
lead_events = sa.Table(
    "lead_events",
    metadata,
    _pk(),
    _fk("lead_id", "leads.id", nullable=False, ondelete="CASCADE"),
    sa.Column("kind", String(16), nullable=False),
    sa.Column("occurred_at", Timestamp, nullable=False),
    _fk("user_id", "users.id", ondelete="SET NULL"),  # who did it (None: a routing run from the CLI)
    _fk("owner_id", "users.id", ondelete="SET NULL"),  # the lead's owner after the event
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
    _pk(),
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

# Coaching (issue 9). A 1:1 coaching plan for a rep: the skills it develops (from the gap analysis: metric key,
# label, target), the rep's figures on those metrics when it started (`baseline`), and its review date.
coaching_plans = sa.Table(
    "coaching_plans",
    metadata,
    _pk(),
    _fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    _fk("author_id", "users.id", ondelete="SET NULL"),
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
    _pk(),
    _fk("plan_id", "coaching_plans.id", ondelete="CASCADE"),
    _fk("rep_id", "users.id", nullable=False, ondelete="CASCADE"),
    _fk("opportunity_id", "opportunities.id", ondelete="CASCADE"),
    _fk("author_id", "users.id", ondelete="SET NULL"),
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
    _pk(),
    sa.Column("item_key", String(64), nullable=False),
    sa.Column("stage", String(64), nullable=False),
    sa.Column("criterion_key", String(64), nullable=False),
    sa.Column("label", String(255), nullable=False),
    sa.Column("metric", String(64), nullable=False),
    sa.Column("threshold", Float),
    sa.Column("evidence", JSON),
    sa.Column("adopted_at", Timestamp, nullable=False),
    _fk("adopted_by", "users.id", ondelete="SET NULL"),
)

# Proposals (issue 11). The org's own talking points against a competitor (or "*" for any), per buyer persona;
# they replace the built-in point for the same competitor and persona (`proposals.differentiation`).
talking_points = sa.Table(
    "talking_points",
    metadata,
    _pk(),
    sa.Column("competitor", String(120), nullable=False),
    sa.Column("persona", String(40), nullable=False),
    sa.Column("headline", String(255), nullable=False),
    sa.Column("detail", Text, nullable=False),
    sa.Column("proof", Text),
    _fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
)

# Prospecting cadences of the org: steps over weeks ([{"week", "day", "kind", "label"}]) and how many accounts
# each rep works through it at a time (the weekly activity goals follow from both).
prospecting_cadences = sa.Table(
    "prospecting_cadences",
    metadata,
    _pk(),
    sa.Column("name", String(200), nullable=False, unique=True),
    sa.Column("steps", JSON, nullable=False),
    sa.Column("accounts_per_rep", Integer, nullable=False),
    sa.Column("weeks", Integer, nullable=False),
    _fk("created_by", "users.id", ondelete="SET NULL"),
    sa.Column("created_at", Timestamp, nullable=False),
)
