"""Reading quotas as a frame: every quota whose period lies inside a date range."""

from __future__ import annotations

from datetime import date
from typing import Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables

QUOTA_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_id": pl.Int64(),
    "team_id": pl.Int64(),
    "period": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "amount": pl.Float64(),
    "currency": pl.String(),
}


def load_quotas_within(connection: Connection, *, start: date, last_day: date) -> pl.DataFrame:
    """Quotas with `start <= period_start` and `period_end <= last_day` (both inclusive), any scope."""
    q = tables.quotas
    query = sa.select(
        q.c.user_id, q.c.team_id, q.c.period, q.c.period_start, q.c.period_end, q.c.amount, q.c.currency
    ).where(q.c.period_start >= start, q.c.period_end <= last_day)
    rows = [tuple(row) for row in connection.execute(query)]
    return pl.DataFrame(rows, schema=QUOTA_SCHEMA, orient="row")
