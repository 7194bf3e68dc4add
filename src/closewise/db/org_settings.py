"""Organisation-wide settings stored in the database (corporate currency, fiscal calendar) and the currency
rates that convert record amounts to the corporate currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import currency_rates, org_settings

DEFAULTS = {"corporate_currency": "USD", "fiscal_year_start_month": "1", "fiscal_year_name_by_end": "0"}


def read_settings(connection: Connection) -> dict[str, str]:
    stored = {key: value for key, value in connection.execute(sa.select(org_settings.c.key, org_settings.c.value))}
    return {**DEFAULTS, **stored}


def write_setting(connection: Connection, *, key: str, value: str) -> None:
    updated = connection.execute(org_settings.update().where(org_settings.c.key == key).values(value=value))
    if updated.rowcount == 0:
        connection.execute(org_settings.insert().values(key=key, value=value))


@dataclass(frozen=True)
class RateRow:
    id: int
    currency: str
    rate: float  # units of `currency` per one unit of the corporate currency
    start_date: date | None  # None: the static rate


def list_rates(connection: Connection) -> list[RateRow]:
    """Every rate, by currency, the static rate first and then the dated ones, newest last."""
    r = currency_rates
    query = sa.select(r).order_by(r.c.currency, r.c.start_date.is_not(None), r.c.start_date)
    return [RateRow(int(row.id), str(row.currency).upper(), float(row.rate), row.start_date)
            for row in connection.execute(query)]


def set_rate(connection: Connection, *, currency: str, rate: float, start_date: date | None) -> tuple[int, bool]:
    """Store the rate of `currency` from `start_date` (None: its static rate), replacing the one already there;
    returns its id and whether it is new."""
    r = currency_rates
    same_day = r.c.start_date.is_(None) if start_date is None else r.c.start_date == start_date
    found = connection.execute(sa.select(r.c.id).where(sa.func.upper(r.c.currency) == currency, same_day)).scalar()
    if found is not None:
        connection.execute(r.update().where(r.c.id == found).values(rate=rate))
        return int(found), False
    result = connection.execute(r.insert().values(currency=currency, rate=rate, start_date=start_date))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0]), True


def replace_rates(connection: Connection, *, rows: list[tuple[str, float, date | None]]) -> None:
    """Swap every stored rate for `rows` (currency, rate, start date): a change of corporate currency."""
    connection.execute(currency_rates.delete())
    if rows:
        connection.execute(currency_rates.insert(),
                           [{"currency": c, "rate": rate, "start_date": start} for c, rate, start in rows])
