"""Organisation-wide settings stored in the database (corporate currency, fiscal calendar)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import org_settings

DEFAULTS = {"corporate_currency": "USD", "fiscal_year_start_month": "1", "fiscal_year_name_by_end": "0"}


def read_settings(connection: Connection) -> dict[str, str]:
    stored = {key: value for key, value in connection.execute(sa.select(org_settings.c.key, org_settings.c.value))}
    return {**DEFAULTS, **stored}


def write_setting(connection: Connection, *, key: str, value: str) -> None:
    updated = connection.execute(org_settings.update().where(org_settings.c.key == key).values(value=value))
    if updated.rowcount == 0:
        connection.execute(org_settings.insert().values(key=key, value=value))
