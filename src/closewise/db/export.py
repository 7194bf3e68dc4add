"""The SQL behind `closewise export`: opportunities with their owner and account, streamed in batches.

Rows come through a server-side cursor (PostgreSQL) or SQLite's incremental fetch, `batch` at a time, as
plain tuples in `OPPORTUNITY_COLUMNS` order, so a million-deal export never holds more than one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables

OPPORTUNITY_COLUMNS = (
    "source", "external_id", "name", "account", "owner", "stage", "status", "amount", "currency", "close_date",
    "created_at", "closed_at", "forecast_category", "probability", "next_step", "lead_source", "type", "competitor",
)


def _query() -> sa.Select[Any]:
    o, a, u = tables.opportunities, tables.accounts, tables.users
    return (
        sa.select(
            o.c.source, o.c.external_id, o.c.name, a.c.name.label("account"),
            sa.func.coalesce(u.c.email, u.c.name).label("owner"), o.c.stage, o.c.status, o.c.amount, o.c.currency,
            o.c.close_date, o.c.created_at, o.c.closed_at, o.c.forecast_category, o.c.probability, o.c.next_step,
            o.c.lead_source, o.c.type, o.c.competitor,
        )
        .select_from(o.outerjoin(a, a.c.id == o.c.account_id).outerjoin(u, u.c.id == o.c.owner_id))
        .order_by(o.c.id)
    )


def stream_opportunities(connection: Connection, *, batch: int = 5_000) -> Iterator[list[tuple[Any, ...]]]:
    """Every opportunity as a tuple in `OPPORTUNITY_COLUMNS` order, in batches of at most `batch` rows."""
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(_query())
    for partition in result.partitions(batch):
        yield [tuple(row) for row in partition]


def count_opportunities(connection: Connection) -> int:
    return int(connection.execute(sa.select(sa.func.count()).select_from(tables.opportunities)).scalar_one())


def opportunity_sources(connection: Connection) -> list[str]:
    """The sources of the stored opportunities, the most common first."""
    o = tables.opportunities
    query = sa.select(o.c.source).group_by(o.c.source).order_by(sa.func.count().desc(), o.c.source)
    return [str(source) for (source,) in connection.execute(query)]
