"""The organisation's calendar and currency, read from its settings."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from closewise.db.org_settings import read_settings
from closewise.domain.periods import FiscalCalendar


def fiscal_calendar(connection: Connection) -> FiscalCalendar:
    stored = read_settings(connection)
    return FiscalCalendar(
        start_month=int(stored["fiscal_year_start_month"]),
        name_by_end=stored["fiscal_year_name_by_end"] == "1",
    )


def corporate_currency(connection: Connection) -> str:
    return read_settings(connection)["corporate_currency"]
