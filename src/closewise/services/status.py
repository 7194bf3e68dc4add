"""What the database holds: counts, the current fiscal period, the data's date range."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from closewise.db.status import opportunity_status_counts, table_counts
from closewise.domain.periods import PeriodKind
from closewise.domain.timeutil import utcnow
from closewise.services.org import corporate_currency, fiscal_calendar


def database_status(engine: Engine, *, today: date | None = None) -> dict[str, Any]:
    day = today or utcnow().date()
    with engine.connect() as connection:
        counts = table_counts(connection)
        calendar = fiscal_calendar(connection)
        by_status = opportunity_status_counts(connection)
        currency = corporate_currency(connection)
    quarter = calendar.period_containing(day, PeriodKind.QUARTER)
    return {
        **counts,
        "opportunities_by_status": by_status,
        "current_quarter": quarter.label,
        "current_quarter_start": quarter.start.isoformat(),
        "current_quarter_end": quarter.last_day.isoformat(),
        "corporate_currency": currency,
        "database": engine.url.render_as_string(hide_password=True),
    }
