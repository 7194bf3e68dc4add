"""Counts of what the database holds."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables

COUNTED = {
    "opportunities": tables.opportunities,
    "opportunity_changes": tables.opportunity_changes,
    "users": tables.users,
    "accounts": tables.accounts,
    "activities": tables.activities,
    "leads": tables.leads,
    "contacts": tables.contacts,
    "quotas": tables.quotas,
    "forecast_submissions": tables.forecast_submissions,
    "import_runs": tables.import_runs,
}


def table_counts(connection: Connection) -> dict[str, int]:
    return {
        name: int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for name, table in COUNTED.items()
    }


def opportunity_status_counts(connection: Connection) -> dict[str, int]:
    table = tables.opportunities
    rows = connection.execute(sa.select(table.c.status, sa.func.count()).group_by(table.c.status))
    return {status: int(count) for status, count in rows}
