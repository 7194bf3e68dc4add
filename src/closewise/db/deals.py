"""Scoped reads and edits of opportunities for the deal list, the deal page and the REST API.

Every function takes the caller's `Scope`, and filters with `db.scope.visible`: a deal outside the scope is
answered exactly like a missing one (None), so callers cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.scope import visible
from closewise.db.tables import (
    accounts,
    activities,
    criteria_checks,
    deal_scores,
    exit_criteria,
    opportunities,
    opportunity_changes,
    stages,
    users,
)
from closewise.domain.scope import Scope

o, sc, u, acc = opportunities, deal_scores, users, accounts
SORTS: Final = {
    "amount": o.c.amount, "close_date": o.c.close_date, "name": o.c.name, "created_at": o.c.created_at,
    "win_probability": sc.c.p_win, "stage": o.c.stage, "id": o.c.id,
}


@dataclass(frozen=True)
class DealFilter:
    status: str | None = None
    owner_id: int | None = None
    stage: str | None = None
    search: str | None = None  # in the deal's or its account's name
    close_from: date | None = None
    close_to: date | None = None  # inclusive
    min_amount: float | None = None
    sort: str = "close_date"
    descending: bool = False
    limit: int = 50
    offset: int = 0


def _columns() -> list[sa.ColumnElement[Any]]:
    return [
        o.c.id, o.c.external_id, o.c.source, o.c.name, o.c.owner_id, u.c.name.label("owner_name"),
        o.c.account_id, acc.c.name.label("account_name"), o.c.stage, o.c.status, o.c.amount, o.c.currency,
        o.c.close_date, o.c.created_at, o.c.closed_at, o.c.forecast_category, o.c.probability, o.c.next_step,
        o.c.type, o.c.lead_source, sc.c.p_win.label("win_probability"), sc.c.p_close_in_period,
        sc.c.as_of.label("scored_at"), sc.c.reasons,
    ]


def _joined() -> Any:
    return (o.outerjoin(u, u.c.id == o.c.owner_id).outerjoin(acc, acc.c.id == o.c.account_id)
            .outerjoin(sc, sc.c.opportunity_id == o.c.id))


def _where(statement: sa.Select[Any], filters: DealFilter) -> sa.Select[Any]:
    if filters.status:
        statement = statement.where(o.c.status == filters.status)
    if filters.owner_id is not None:
        statement = statement.where(o.c.owner_id == filters.owner_id)
    if filters.stage:
        statement = statement.where(o.c.stage == filters.stage)
    if filters.search:
        pattern = "%" + filters.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            sa.or_(o.c.name.ilike(pattern, escape="\\"), acc.c.name.ilike(pattern, escape="\\")))
    if filters.close_from is not None:
        statement = statement.where(o.c.close_date >= filters.close_from)
    if filters.close_to is not None:
        statement = statement.where(o.c.close_date <= filters.close_to)
    if filters.min_amount is not None:
        statement = statement.where(o.c.amount >= filters.min_amount)
    return statement


def list_deals(connection: Connection, *, scope: Scope, filters: DealFilter) -> tuple[list[dict[str, Any]], int]:
    """One page of the deals `scope` sees that pass `filters`, and how many pass in all."""
    base = visible(sa.select(*_columns()).select_from(_joined()), o.c.owner_id, scope)
    base = _where(base, filters)
    key = SORTS.get(filters.sort, o.c.close_date)
    order = key.desc().nulls_last() if filters.descending else key.asc().nulls_last()
    rows = connection.execute(base.order_by(order, o.c.id).limit(filters.limit).offset(filters.offset)).mappings()
    items = [dict(row) for row in rows]
    counted = visible(sa.select(sa.func.count()).select_from(o), o.c.owner_id, scope)
    if filters.search:
        counted = counted.select_from(o.outerjoin(acc, acc.c.id == o.c.account_id))
    total = int(connection.execute(_where(counted, filters)).scalar_one())
    return items, total


def get_deal(connection: Connection, *, scope: Scope, deal_id: int) -> dict[str, Any] | None:
    statement = visible(sa.select(*_columns()).select_from(_joined()).where(o.c.id == deal_id), o.c.owner_id, scope)
    row = connection.execute(statement).mappings().first()
    return dict(row) if row else None


def deal_changes(connection: Connection, *, deal_id: int) -> list[dict[str, Any]]:
    """The change log of one deal, oldest first (call only for a deal `get_deal` returned)."""
    c = opportunity_changes
    rows = connection.execute(
        sa.select(c.c.id, c.c.field, c.c.old_value, c.c.new_value, c.c.changed_at, c.c.changed_by,
                  u.c.name.label("changed_by_name"), c.c.source, c.c.reason)
        .select_from(c.outerjoin(u, u.c.id == c.c.changed_by))
        .where(c.c.opportunity_id == deal_id).order_by(c.c.changed_at, c.c.id)).mappings()
    return [dict(row) for row in rows]


def deal_activities(connection: Connection, *, deal_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The deal's activities, newest first (call only for a deal `get_deal` returned)."""
    a = activities
    rows = connection.execute(
        sa.select(a.c.id, a.c.type, a.c.subject, a.c.occurred_at, a.c.completed, a.c.owner_id,
                  u.c.name.label("owner_name"))
        .select_from(a.outerjoin(u, u.c.id == a.c.owner_id))
        .where(a.c.opportunity_id == deal_id).order_by(a.c.occurred_at.desc(), a.c.id.desc()).limit(limit)).mappings()
    return [dict(row) for row in rows]


def stage_criteria(connection: Connection, *, deal_id: int, pipeline: str, stage: str) -> list[dict[str, Any]]:
    """The exit criteria of `stage` with whether the deal's latest check of each says done."""
    rows = connection.execute(
        sa.select(exit_criteria.c.key, exit_criteria.c.label, exit_criteria.c.kind)
        .select_from(exit_criteria.join(stages, stages.c.id == exit_criteria.c.stage_id))
        .where(stages.c.pipeline == pipeline, stages.c.key == stage).order_by(exit_criteria.c.order)).all()
    checks = connection.execute(
        sa.select(criteria_checks.c.criterion_key, criteria_checks.c.done)
        .where(criteria_checks.c.opportunity_id == deal_id).order_by(criteria_checks.c.checked_at,
                                                                    criteria_checks.c.id)).all()
    done = {check.criterion_key: bool(check.done) for check in checks}
    return [{"key": row.key, "label": row.label, "kind": row.kind, "done": done.get(row.key, False)} for row in rows]


def deal_pipeline(connection: Connection, *, deal_id: int) -> str:
    return str(connection.execute(sa.select(o.c.pipeline).where(o.c.id == deal_id)).scalar_one())


def stage_keys(connection: Connection, *, pipeline: str) -> list[str]:
    return list(connection.execute(
        sa.select(stages.c.key).where(stages.c.pipeline == pipeline).order_by(stages.c.order)).scalars())


def update_deal(connection: Connection, *, deal_id: int, values: dict[str, Any], changes: Sequence[dict[str, Any]],
                at: datetime) -> None:
    """Write new field values and their change-log rows in the caller's transaction."""
    connection.execute(o.update().where(o.c.id == deal_id).values(**values, updated_at=at))
    if changes:
        connection.execute(opportunity_changes.insert(), list(changes))
