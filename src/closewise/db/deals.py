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
    deal_score_history,
    deal_scores,
    exit_criteria,
    opportunities,
    opportunity_changes,
    stages,
    users,
)
from closewise.domain.scope import Scope

o, sc, u, acc, st = opportunities, deal_scores, users, accounts, stages
SORTS: Final = {
    "amount": o.c.amount, "close_date": o.c.close_date, "name": o.c.name, "created_at": o.c.created_at,
    "win_probability": sc.c.p_win, "stage": st.c.order, "id": o.c.id, "owner": u.c.name, "account": acc.c.name,
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
        o.c.account_id, acc.c.name.label("account_name"), o.c.pipeline, o.c.stage,
        st.c.name.label("stage_name"), o.c.status, o.c.amount, o.c.currency,
        o.c.close_date, o.c.created_at, o.c.closed_at, o.c.forecast_category, o.c.probability, o.c.next_step,
        o.c.type, o.c.lead_source, sc.c.p_win.label("win_probability"), sc.c.p_close_in_period,
        sc.c.as_of.label("scored_at"), sc.c.reasons,
    ]


def _joined() -> Any:
    return (o.outerjoin(u, u.c.id == o.c.owner_id).outerjoin(acc, acc.c.id == o.c.account_id)
            .outerjoin(sc, sc.c.opportunity_id == o.c.id)
            .outerjoin(st, sa.and_(st.c.pipeline == o.c.pipeline, st.c.key == o.c.stage)))


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


def _sorting_from(filters: DealFilter) -> Any:
    """Only the joins the filters and the sort key need (a page of ids is picked before the display joins)."""
    joined: Any = o
    if filters.search or filters.sort == "account":
        joined = joined.outerjoin(acc, acc.c.id == o.c.account_id)
    if filters.sort == "win_probability":
        joined = joined.outerjoin(sc, sc.c.opportunity_id == o.c.id)
    if filters.sort == "owner":
        joined = joined.outerjoin(u, u.c.id == o.c.owner_id)
    if filters.sort == "stage":
        joined = joined.outerjoin(st, sa.and_(st.c.pipeline == o.c.pipeline, st.c.key == o.c.stage))
    return joined


def list_deals(connection: Connection, *, scope: Scope, filters: DealFilter) -> tuple[list[dict[str, Any]], int]:
    """One page of the deals `scope` sees that pass `filters`, and how many pass in all.

    The page's ids are chosen first, joining only what filtering and sorting need; the owner, account, stage and
    score columns are then joined for those ids alone, so a large org does not join every deal to show fifty."""
    key = SORTS.get(filters.sort, o.c.close_date)
    order = key.desc().nulls_last() if filters.descending else key.asc().nulls_last()
    picked = visible(sa.select(o.c.id).select_from(_sorting_from(filters)), o.c.owner_id, scope)
    picked = _where(picked, filters).order_by(order, o.c.id).limit(filters.limit).offset(filters.offset)
    ids = list(connection.execute(picked).scalars())
    found: dict[int, dict[str, Any]] = {}
    if ids:
        rows = connection.execute(sa.select(*_columns()).select_from(_joined()).where(o.c.id.in_(ids))).mappings()
        found = {row["id"]: dict(row) for row in rows}
    items = [found[deal_id] for deal_id in ids if deal_id in found]
    counted = visible(sa.select(sa.func.count()).select_from(o), o.c.owner_id, scope)
    if filters.search:
        counted = counted.select_from(o.outerjoin(acc, acc.c.id == o.c.account_id))
    total = int(connection.execute(_where(counted, filters)).scalar_one())
    return items, total


def summarise(connection: Connection, *, scope: Scope, filters: DealFilter) -> list[dict[str, Any]]:
    """The deals `scope` sees that pass `filters` (paging aside), summed per status, currency and close date (the
    date a deal's amount is converted at): `deals`, `amount`, and `weighted` (amount × the model's win
    probability, over the deals with a score)."""
    scored = sa.case((sc.c.p_win.is_(None), None), else_=o.c.amount * sc.c.p_win)
    statement = visible(
        sa.select(o.c.status, o.c.currency, o.c.close_date, sa.func.count().label("deals"),
                  sa.func.sum(o.c.amount).label("amount"), sa.func.sum(scored).label("weighted"),
                  sa.func.count(sc.c.p_win).label("scored"), sa.func.sum(sc.c.p_win).label("p_win_sum"))
        .select_from(o.outerjoin(acc, acc.c.id == o.c.account_id).outerjoin(sc, sc.c.opportunity_id == o.c.id)),
        o.c.owner_id, scope)
    statement = _where(statement, filters).group_by(o.c.status, o.c.currency, o.c.close_date)
    return [dict(row) for row in connection.execute(statement).mappings()]


def visible_owners(connection: Connection, *, scope: Scope) -> list[dict[str, Any]]:
    """The users `scope` sees who own at least one deal (and the caller), by name: the choices of an owner
    filter."""
    owns = sa.exists().where(o.c.owner_id == u.c.id)
    statement = visible(sa.select(u.c.id, u.c.name, u.c.active).where(sa.or_(owns, u.c.id == scope.user_id)),
                        u.c.id, scope)
    return [dict(row) for row in connection.execute(statement.order_by(u.c.name, u.c.id)).mappings()]


def score_history(connection: Connection, *, deal_id: int) -> list[dict[str, Any]]:
    """The deal's stored scores over time, oldest first (call only for a deal `get_deal` returned)."""
    h = deal_score_history
    rows = connection.execute(
        sa.select(h.c.as_of, h.c.p_win, h.c.p_close_in_period).where(h.c.opportunity_id == deal_id)
        .order_by(h.c.as_of, h.c.id)).mappings()
    return [dict(row) for row in rows]


def playbook_stages(connection: Connection, *, pipeline: str) -> list[dict[str, Any]]:
    """The stages of `pipeline` in order, each with its exit criteria (in order)."""
    rows = connection.execute(
        sa.select(stages.c.id, stages.c.key, stages.c.name, stages.c.order, stages.c.default_probability,
                  stages.c.forecast_category, stages.c.days_to_rot, stages.c.requalify_days, stages.c.guidance,
                  stages.c.required_fields, stages.c.requires_passing_proposal)
        .where(stages.c.pipeline == pipeline).order_by(stages.c.order, stages.c.id)).mappings().all()
    criteria: dict[int, list[dict[str, Any]]] = {}
    if rows:
        found = connection.execute(
            sa.select(exit_criteria.c.stage_id, exit_criteria.c.key, exit_criteria.c.label, exit_criteria.c.kind)
            .where(exit_criteria.c.stage_id.in_([row["id"] for row in rows]))
            .order_by(exit_criteria.c.order, exit_criteria.c.id))
        for c in found:
            criteria.setdefault(c.stage_id, []).append({"key": c.key, "label": c.label, "kind": c.kind})
    return [{**{k: v for k, v in row.items() if k != "id"}, "exit_criteria": criteria.get(row["id"], [])}
            for row in rows]


def pipelines(connection: Connection) -> list[str]:
    """The pipelines that have stages, by name."""
    return list(connection.execute(sa.select(stages.c.pipeline).distinct().order_by(stages.c.pipeline)).scalars())


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


def stage_keys(connection: Connection, *, pipeline: str) -> list[str]:
    return list(connection.execute(
        sa.select(stages.c.key).where(stages.c.pipeline == pipeline).order_by(stages.c.order)).scalars())


def update_deal(connection: Connection, *, deal_id: int, values: dict[str, Any], changes: Sequence[dict[str, Any]],
                at: datetime) -> None:
    """Write new field values and their change-log rows in the caller's transaction."""
    connection.execute(o.update().where(o.c.id == deal_id).values(**values, updated_at=at))
    if changes:
        connection.execute(opportunity_changes.insert(), list(changes))


def all_stage_keys(connection: Connection) -> list[str]:
    """Every stage key of every pipeline, each once."""
    return list(connection.execute(sa.select(stages.c.key).distinct().order_by(stages.c.key)).scalars())
