"""The canonical data model (DESIGN.md), as SQLAlchemy Core tables, one module per domain area on the one
`metadata` (`schema`): the org and its people (`org`), the CRM records (`crm`), leads (`lead_flow`), the sales
process (`playbook`), forecasting (`forecasting`), coaching (`coaching`), proposals and cadences (`outreach`),
sessions and tokens (`access`), import runs and the audit log (`audit`). Every table is importable from here.

Every change to the schema goes through an Alembic migration in `db/migrations/versions`; a test checks
that these tables and the migrated database agree.
"""

from __future__ import annotations

from closewise.db.tables.access import api_tokens, web_sessions
from closewise.db.tables.audit import audit_log, import_runs
from closewise.db.tables.coaching import coaching_adoptions, coaching_commitments, coaching_notes, coaching_plans
from closewise.db.tables.crm import accounts, activities, contacts, opportunities, opportunity_changes
from closewise.db.tables.forecasting import deal_score_history, deal_scores, forecast_submissions
from closewise.db.tables.lead_flow import lead_events, lead_routing_rules, leads
from closewise.db.tables.org import currency_rates, org_settings, quotas, teams, user_external_ids, users
from closewise.db.tables.outreach import proposals, prospecting_cadences, talking_points
from closewise.db.tables.playbook import (
    criteria_checks,
    exit_criteria,
    hygiene_snoozes,
    qualification_answers,
    qualification_frameworks,
    stages,
)
from closewise.db.tables.schema import metadata

__all__ = [
    "accounts",
    "activities",
    "api_tokens",
    "audit_log",
    "coaching_adoptions",
    "coaching_commitments",
    "coaching_notes",
    "coaching_plans",
    "contacts",
    "criteria_checks",
    "currency_rates",
    "deal_score_history",
    "deal_scores",
    "exit_criteria",
    "forecast_submissions",
    "hygiene_snoozes",
    "import_runs",
    "lead_events",
    "lead_routing_rules",
    "leads",
    "metadata",
    "opportunities",
    "opportunity_changes",
    "org_settings",
    "proposals",
    "prospecting_cadences",
    "qualification_answers",
    "qualification_frameworks",
    "quotas",
    "stages",
    "talking_points",
    "teams",
    "user_external_ids",
    "users",
    "web_sessions",
]
