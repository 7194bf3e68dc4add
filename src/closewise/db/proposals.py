"""SQL for proposals (issue 11): the facts of one deal (account, buying group, answers, criteria, activities),
proposal candidates, stored proposals, competitor records, accounts for the prospecting plan, the org's talking
points and cadences. Every read of deals or accounts a user asks for goes through `db.scope.visible`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.scope import visible
from closewise.db.tables import (
    accounts,
    activities,
    contacts,
    criteria_checks,
    exit_criteria,
    opportunities,
    proposals,
    prospecting_cadences,
    qualification_answers,
    stages,
    talking_points,
    users,
)
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, naive_utc

o, acc, u = opportunities, accounts, users


def _deal_columns() -> list[sa.ColumnElement[Any]]:
    return [o.c.id, o.c.name, o.c.account_id, acc.c.name.label("account_name"), acc.c.industry, acc.c.employees,
            acc.c.country, acc.c.segment, o.c.owner_id, u.c.name.label("owner_name"), o.c.pipeline, o.c.stage,
            stages.c.name.label("stage_name"), o.c.status, o.c.amount, o.c.currency, o.c.close_date,
            o.c.created_at, o.c.type, o.c.competitor, o.c.next_step]


def _deal_from() -> Any:
    return (o.outerjoin(acc, acc.c.id == o.c.account_id).outerjoin(u, u.c.id == o.c.owner_id)
            .outerjoin(stages, sa.and_(stages.c.pipeline == o.c.pipeline, stages.c.key == o.c.stage)))


def get_deal(connection: Connection, *, scope: Scope, deal_id: int) -> dict[str, Any] | None:
    statement = visible(sa.select(*_deal_columns()).select_from(_deal_from()).where(o.c.id == deal_id),
                        o.c.owner_id, scope)
    row = connection.execute(statement).mappings().first()
    return dict(row) if row else None


def candidates(connection: Connection, *, scope: Scope, stage_keys: Sequence[str], limit: int = 500) -> list[
        dict[str, Any]]:
    """Open deals the caller sees in `stage_keys`, soonest close date first."""
    statement = (sa.select(*_deal_columns()).select_from(_deal_from())
                 .where(o.c.status == "open", o.c.stage.in_(list(stage_keys)))
                 .order_by(o.c.close_date.is_(None), o.c.close_date, o.c.id).limit(limit))
    return [dict(r) for r in connection.execute(visible(statement, o.c.owner_id, scope)).mappings()]


def stage_rows(connection: Connection, *, pipeline: str) -> list[dict[str, Any]]:
    statement = sa.select(stages.c.id, stages.c.key, stages.c.name, stages.c.order).where(
        stages.c.pipeline == pipeline).order_by(stages.c.order)
    return [dict(r) for r in connection.execute(statement).mappings()]


def deal_contacts(connection: Connection, *, deal_id: int, account_id: int | None) -> list[dict[str, Any]]:
    """The account's contacts, key buying roles first, with `engaged`: on a completed activity of this deal."""
    if account_id is None:
        return []
    engaged = set(connection.execute(
        sa.select(activities.c.contact_id).where(activities.c.opportunity_id == deal_id,
                                                 activities.c.contact_id.is_not(None),
                                                 activities.c.completed.is_(True)).distinct()).scalars())
    rows = connection.execute(sa.select(contacts.c.id, contacts.c.name, contacts.c.title, contacts.c.buying_role)
                              .where(contacts.c.account_id == account_id).order_by(contacts.c.id)).mappings()
    return [{**dict(r), "engaged": r["id"] in engaged} for r in rows]


def latest_answers(connection: Connection, *, deal_id: int) -> list[dict[str, Any]]:
    """The latest answer to each qualification question of the deal, in the order first answered."""
    rows = connection.execute(
        sa.select(qualification_answers.c.framework, qualification_answers.c.question, qualification_answers.c.answer,
                  qualification_answers.c.evidence, qualification_answers.c.answered_at)
        .where(qualification_answers.c.opportunity_id == deal_id)
        .order_by(qualification_answers.c.answered_at, qualification_answers.c.id)).mappings()
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        latest[(row["framework"], row["question"])] = dict(row)
    return list(latest.values())


def criteria(connection: Connection, *, deal_id: int, pipeline: str) -> list[dict[str, Any]]:
    """Every exit criterion of the pipeline in stage order, with `done` from the deal's latest check."""
    checks: dict[str, bool] = {}
    for key, done in connection.execute(
            sa.select(criteria_checks.c.criterion_key, criteria_checks.c.done)
            .where(criteria_checks.c.opportunity_id == deal_id)
            .order_by(criteria_checks.c.checked_at, criteria_checks.c.id)):
        checks[key] = bool(done)
    statement = (sa.select(stages.c.key.label("stage"), exit_criteria.c.key, exit_criteria.c.label)
                 .select_from(exit_criteria.join(stages, stages.c.id == exit_criteria.c.stage_id))
                 .where(stages.c.pipeline == pipeline).order_by(stages.c.order, exit_criteria.c.order))
    return [{**dict(r), "done": checks.get(r["key"], False)} for r in connection.execute(statement).mappings()]


def activity_counts(connection: Connection, *, deal_id: int) -> dict[str, int]:
    statement = (sa.select(activities.c.type, sa.func.count()).where(activities.c.opportunity_id == deal_id,
                                                                     activities.c.completed.is_(True))
                 .group_by(activities.c.type))
    return {kind: int(n) for kind, n in connection.execute(statement)}


def insert_proposal(connection: Connection, *, deal_id: int, by: int | None, at: datetime, fmt: str,
                    path: str | None, summary: str, checks: list[dict[str, Any]], content: bytes,
                    filename: str) -> int:
    result = connection.execute(proposals.insert().values(
        opportunity_id=deal_id, created_by=by, created_at=at, format=fmt, path=path, executive_summary=summary,
        checks=checks, content=content, filename=filename))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def proposals_for(connection: Connection, *, deal_id: int, limit: int = 20) -> list[dict[str, Any]]:
    statement = (sa.select(proposals.c.id, proposals.c.opportunity_id, proposals.c.created_at, proposals.c.format,
                           proposals.c.path, proposals.c.executive_summary, proposals.c.checks,
                           proposals.c.content.is_not(None).label("stored"), u.c.name.label("created_by_name"))
                 .select_from(proposals.outerjoin(u, u.c.id == proposals.c.created_by))
                 .where(proposals.c.opportunity_id == deal_id)
                 .order_by(proposals.c.created_at.desc(), proposals.c.id.desc()).limit(limit))
    return [dict(r) for r in connection.execute(statement).mappings()]


def stored_document(connection: Connection, *, deal_id: int, proposal_id: int) -> dict[str, Any] | None:
    """The format, file name and bytes of proposal `proposal_id` of deal `deal_id` (None: no such proposal)."""
    statement = sa.select(proposals.c.format, proposals.c.filename, proposals.c.content).where(
        proposals.c.id == proposal_id, proposals.c.opportunity_id == deal_id)
    row = connection.execute(statement).mappings().first()
    return dict(row) if row else None


def latest_checks(connection: Connection, *, deal_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The checks of the latest proposal of each deal in `deal_ids` that has one."""
    if not deal_ids:
        return {}
    statement = (sa.select(proposals.c.opportunity_id, proposals.c.checks)
                 .where(proposals.c.opportunity_id.in_(list(deal_ids)))
                 .order_by(proposals.c.created_at, proposals.c.id))
    return {int(deal): list(checks or []) for deal, checks in connection.execute(statement)}


def deals_frame(connection: Connection, *, scope: Scope) -> pl.DataFrame:
    """Visible deals: id, account_id, owner_id, status, competitor, amount, currency, close_date, created_at,
    closed_at (UTC)."""
    statement = visible(sa.select(o.c.id, o.c.account_id, o.c.owner_id, o.c.status, o.c.competitor, o.c.amount,
                                  o.c.currency, o.c.close_date, o.c.created_at, o.c.closed_at), o.c.owner_id, scope)
    rows = [(*r[:8], *(None if t is None else naive_utc(t) for t in r[8:])) for r in connection.execute(statement)]
    frame = pl.DataFrame(rows, orient="row", schema={
        "id": pl.Int64(), "account_id": pl.Int64(), "owner_id": pl.Int64(), "status": pl.String(),
        "competitor": pl.String(), "amount": pl.Float64(), "currency": pl.String(), "close_date": pl.Date(),
        "created_at": pl.Datetime("us"), "closed_at": pl.Datetime("us")})
    return frame.with_columns(pl.col("created_at", "closed_at").dt.replace_time_zone("UTC"))


def accounts_frame(connection: Connection, *, scope: Scope | None, as_of: datetime | None = None) -> pl.DataFrame:
    """Accounts (visible by their owner; `scope` None: all, for learning the ICP) with firmographics and the
    owner's name; with `as_of`, only those that existed then (created before it, or with no creation time)."""
    statement = (sa.select(acc.c.id, acc.c.name, acc.c.industry, acc.c.employees, acc.c.country, acc.c.segment,
                           acc.c.owner_id, u.c.name.label("owner_name"))
                 .select_from(acc.outerjoin(u, u.c.id == acc.c.owner_id)).order_by(acc.c.id))
    if as_of is not None:
        statement = statement.where(sa.or_(acc.c.created_at.is_(None), acc.c.created_at < as_utc(as_of)))
    if scope is not None:
        statement = visible(statement, acc.c.owner_id, scope)
    rows = [tuple(r) for r in connection.execute(statement)]
    return pl.DataFrame(rows, orient="row", schema={
        "id": pl.Int64(), "name": pl.String(), "industry": pl.String(), "employees": pl.Int64(),
        "country": pl.String(), "segment": pl.String(), "owner_id": pl.Int64(), "owner_name": pl.String()})


def all_deal_outcomes(connection: Connection) -> pl.DataFrame:
    """Every deal's account, status and close time (to learn the ICP from the org's wins; nothing is shown)."""
    rows = [tuple(r) for r in connection.execute(sa.select(o.c.account_id, o.c.status, o.c.closed_at))]
    return pl.DataFrame(rows, orient="row", schema={"account_id": pl.Int64(), "status": pl.String(),
                                                    "closed_at": pl.Datetime("us", "UTC")})


def reps(connection: Connection, *, scope: Scope) -> pl.DataFrame:
    statement = visible(sa.select(u.c.id, u.c.name).where(u.c.role == "rep", u.c.active.is_(True)), u.c.id, scope)
    rows = [tuple(r) for r in connection.execute(statement)]
    return pl.DataFrame(rows, orient="row", schema={"id": pl.Int64(), "name": pl.String()})


def activities_since(connection: Connection, *, scope: Scope, since: datetime, until: datetime) -> pl.DataFrame:
    statement = visible(sa.select(activities.c.owner_id, activities.c.type, activities.c.occurred_at,
                                  activities.c.completed)
                        .where(activities.c.occurred_at >= since, activities.c.occurred_at < until),
                        activities.c.owner_id, scope)
    rows = [(r[0], r[1], naive_utc(r[2]), bool(r[3])) for r in connection.execute(statement)]
    return pl.DataFrame(rows, orient="row", schema={"owner_id": pl.Int64(), "type": pl.String(),
                                                    "occurred_at": pl.Datetime("us"), "completed": pl.Boolean()})


def stored_talking_points(connection: Connection) -> list[dict[str, Any]]:
    statement = sa.select(talking_points.c.id, talking_points.c.competitor, talking_points.c.persona,
                          talking_points.c.headline, talking_points.c.detail, talking_points.c.proof
                          ).order_by(talking_points.c.id)
    return [dict(r) for r in connection.execute(statement).mappings()]


def insert_talking_point(connection: Connection, *, values: dict[str, Any]) -> int:
    key = connection.execute(talking_points.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def stored_cadences(connection: Connection) -> list[dict[str, Any]]:
    statement = sa.select(prospecting_cadences.c.id, prospecting_cadences.c.name, prospecting_cadences.c.steps,
                          prospecting_cadences.c.accounts_per_rep, prospecting_cadences.c.weeks
                          ).order_by(prospecting_cadences.c.id)
    return [dict(r) for r in connection.execute(statement).mappings()]


def cadence_named(connection: Connection, *, name: str) -> int | None:
    found = connection.execute(sa.select(prospecting_cadences.c.id).where(prospecting_cadences.c.name == name))
    value = found.scalar()
    return None if value is None else int(value)


def insert_cadence(connection: Connection, *, values: dict[str, Any]) -> int:
    key = connection.execute(prospecting_cadences.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])
