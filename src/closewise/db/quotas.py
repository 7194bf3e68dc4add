"""Quotas: read as a frame for targets (every quota whose period lies inside a date range), and listed, added,
changed and removed one by one from the settings page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables
from closewise.db.scope import visible
from closewise.domain.scope import Scope

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


@dataclass(frozen=True)
class QuotaRow:
    id: int
    user_id: int | None
    user_name: str | None
    team_id: int | None
    team_name: str | None
    period: str
    period_start: date
    period_end: date
    amount: float
    currency: str


def _quota_query() -> sa.Select[Any]:
    q, u, t = tables.quotas, tables.users, tables.teams
    return (
        sa.select(q, u.c.name.label("user_name"), t.c.name.label("team_name"))
        .select_from(q.outerjoin(u, u.c.id == q.c.user_id).outerjoin(t, t.c.id == q.c.team_id))
    )


def _quota(row: sa.RowMapping) -> QuotaRow:
    return QuotaRow(
        id=int(row["id"]), user_id=row["user_id"], user_name=row["user_name"], team_id=row["team_id"],
        team_name=row["team_name"], period=row["period"], period_start=row["period_start"],
        period_end=row["period_end"], amount=float(row["amount"]), currency=row["currency"],
    )


def list_quotas(connection: Connection, *, scope: Scope, period: str | None = None,
                user_id: int | None = None) -> list[QuotaRow]:
    """The quotas `scope` sees (a team's quota has no owner: only those who see everything see it), newest
    period first."""
    q = tables.quotas
    query = visible(_quota_query(), q.c.user_id, scope)
    if period is not None:
        query = query.where(q.c.period == period)
    if user_id is not None:
        query = query.where(q.c.user_id == user_id)
    query = query.order_by(q.c.period_start.desc(), q.c.period_end, tables.teams.c.name, tables.users.c.name, q.c.id)
    return [_quota(row) for row in connection.execute(query).mappings()]


def quota_periods(connection: Connection, *, scope: Scope) -> list[str]:
    """The periods that have a quota visible to `scope`, newest first."""
    q = tables.quotas
    start = sa.func.max(q.c.period_start).label("start")
    query = visible(sa.select(q.c.period, start), q.c.user_id, scope)
    rows = connection.execute(query.group_by(q.c.period).order_by(start.desc(), q.c.period)).all()
    return [row.period for row in rows]


def get_quota(connection: Connection, *, quota_id: int, scope: Scope) -> QuotaRow | None:
    q = tables.quotas
    row = connection.execute(visible(_quota_query(), q.c.user_id, scope).where(q.c.id == quota_id)).mappings().first()
    return _quota(row) if row else None


def find_quota(connection: Connection, *, user_id: int | None, team_id: int | None, period: str) -> int | None:
    """The id of the quota of this user or team for `period`, if there is one."""
    q = tables.quotas
    owner = q.c.user_id.is_(None) if user_id is None else q.c.user_id == user_id
    team = q.c.team_id.is_(None) if team_id is None else q.c.team_id == team_id
    found = connection.execute(sa.select(q.c.id).where(owner, team, q.c.period == period)).scalar()
    return None if found is None else int(found)


def insert_quota(connection: Connection, *, values: dict[str, Any]) -> int:
    result = connection.execute(tables.quotas.insert().values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def update_quota(connection: Connection, *, quota_id: int, values: dict[str, Any]) -> None:
    q = tables.quotas
    connection.execute(q.update().where(q.c.id == quota_id).values(**values))


def delete_quota(connection: Connection, *, quota_id: int) -> None:
    q = tables.quotas
    connection.execute(q.delete().where(q.c.id == quota_id))


def team_exists(connection: Connection, *, team_id: int) -> bool:
    t = tables.teams
    return connection.execute(sa.select(t.c.id).where(t.c.id == team_id)).first() is not None
