"""Deals as a signed-in user sees them: the list, one deal with its history, and edits.

Reads go through `db.deals`, which applies the caller's scope; a deal outside it is `NotFound`, worded as for
a deal that does not exist. Edits need `Action.EDIT_DEAL` on top of visibility and write one change-log row
per changed field (source `app`, the editor, and the reason given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from closewise.db import audit
from closewise.db import deals as queries
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField, ChangeSource, ForecastCategory, OpportunityStatus
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound

DealFilter = queries.DealFilter
MAX_PAGE = 500


@dataclass(frozen=True)
class DealEdit:
    """The fields a user may change; None leaves a field as it is (`next_step=""` clears it)."""

    stage: str | None = None
    amount: float | None = None
    close_date: date | None = None
    next_step: str | None = None
    forecast_category: str | None = None
    override_reason: str | None = None


def list_deals(engine: Engine, *, scope: Scope, filters: DealFilter) -> tuple[list[dict[str, Any]], int]:
    if not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", where="limit")
    if filters.offset < 0:
        raise InvalidInput("offset cannot be negative", where="offset")
    if filters.status is not None and filters.status not in {s.value for s in OpportunityStatus}:
        raise InvalidInput(f"unknown status {filters.status!r}; one of "
                           f"{', '.join(s.value for s in OpportunityStatus)}", where="status")
    if filters.sort not in queries.SORTS:
        raise InvalidInput(f"cannot sort by {filters.sort!r}; one of {', '.join(queries.SORTS)}", where="sort")
    with engine.connect() as connection:
        items, total = queries.list_deals(connection, scope=scope, filters=filters)
    return [_public(item) for item in items], total


def get_deal(engine: Engine, *, scope: Scope, deal_id: int) -> dict[str, Any]:
    """One deal with the exit criteria of its stage."""
    with engine.connect() as connection:
        row = queries.get_deal(connection, scope=scope, deal_id=deal_id)
        if row is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        pipeline = queries.deal_pipeline(connection, deal_id=deal_id)
        criteria = queries.stage_criteria(connection, deal_id=deal_id, pipeline=pipeline, stage=row["stage"])
    deal = _public(row)
    deal["pipeline"] = pipeline
    deal["exit_criteria"] = criteria
    return deal


def deal_changes(engine: Engine, *, scope: Scope, deal_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        if queries.get_deal(connection, scope=scope, deal_id=deal_id) is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        return [{**row, "changed_at": as_utc(row["changed_at"]).isoformat()}
                for row in queries.deal_changes(connection, deal_id=deal_id)]


def deal_activities(engine: Engine, *, scope: Scope, deal_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        if queries.get_deal(connection, scope=scope, deal_id=deal_id) is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        return [{**row, "occurred_at": as_utc(row["occurred_at"]).isoformat()}
                for row in queries.deal_activities(connection, deal_id=deal_id)]


def edit_deal(engine: Engine, *, scope: Scope, deal_id: int, edit: DealEdit, now: datetime | None = None) -> dict[
        str, Any]:
    """Apply `edit` to an open deal the caller sees and may edit; returns the deal as it now is."""
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        row = queries.get_deal(connection, scope=scope, deal_id=deal_id)
        if row is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        if not scope.may(Action.EDIT_DEAL):
            raise Forbidden(f"a {scope.role.value} cannot change deals")
        if row["status"] != OpportunityStatus.OPEN.value:
            raise Conflict(f"opportunity {deal_id} is closed ({row['status']}); closed deals are not edited")
        pipeline = queries.deal_pipeline(connection, deal_id=deal_id)
        values = _validated(edit, queries.stage_keys(connection, pipeline=pipeline))
        changes = [
            {"opportunity_id": deal_id, "field": field.value, "old_value": encode(field, row[column]),
             "new_value": encode(field, value), "changed_at": moment, "changed_by": scope.user_id,
             "source": ChangeSource.APP.value, "reason": (edit.override_reason or "").strip() or None}
            for column, field, value in _fields(values)
            if encode(field, row[column]) != encode(field, value)
        ]
        if changes:
            queries.update_deal(connection, deal_id=deal_id, values=values, changes=changes, at=moment)
            audit.record(connection, at=moment, actor_id=scope.user_id, action="opportunity.edit",
                         entity="opportunity", entity_id=deal_id,
                         detail={"fields": [c["field"] for c in changes], "reason": changes[0]["reason"]})
    return get_deal(engine, scope=scope, deal_id=deal_id)


_COLUMN_FIELDS = {
    "stage": ChangeField.STAGE, "amount": ChangeField.AMOUNT, "close_date": ChangeField.CLOSE_DATE,
    "next_step": ChangeField.NEXT_STEP, "forecast_category": ChangeField.FORECAST_CATEGORY,
}


def _fields(values: dict[str, Any]) -> list[tuple[str, ChangeField, Any]]:
    return [(column, _COLUMN_FIELDS[column], value) for column, value in values.items()]


def _validated(edit: DealEdit, stage_keys: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if edit.stage is not None:
        if edit.stage not in stage_keys:
            raise InvalidInput(f"unknown stage {edit.stage!r}; one of {', '.join(stage_keys)}", where="stage")
        values["stage"] = edit.stage
    if edit.amount is not None:
        if not math.isfinite(edit.amount) or edit.amount < 0:
            raise InvalidInput(f"{edit.amount!r} is not an amount (a number of at least 0)", where="amount")
        values["amount"] = round(edit.amount, 2)
    if edit.close_date is not None:
        values["close_date"] = edit.close_date
    if edit.next_step is not None:
        if len(edit.next_step) > 2000:
            raise InvalidInput("the next step is longer than 2,000 characters", where="next_step")
        values["next_step"] = edit.next_step.strip() or None
    if edit.forecast_category is not None:
        allowed = [c.value for c in ForecastCategory if c is not ForecastCategory.CLOSED]
        if edit.forecast_category not in allowed:
            raise InvalidInput(f"unknown forecast category {edit.forecast_category!r}; one of {', '.join(allowed)}",
                               where="forecast_category")
        values["forecast_category"] = edit.forecast_category
    if not values:
        raise InvalidInput("nothing to change: give stage, amount, close_date, next_step or forecast_category")
    return values


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A deal as the API and pages show it (JSON-ready)."""
    out = dict(row)
    for key in ("created_at", "closed_at", "scored_at"):
        value = out.get(key)
        out[key] = as_utc(value).isoformat() if isinstance(value, datetime) else None
    for key in ("close_date",):
        value = out.get(key)
        out[key] = value.isoformat() if isinstance(value, date) else None
    out["win_probability_source"] = "model" if out.get("win_probability") is not None else None
    out["reasons"] = list(out.get("reasons") or [])
    return out
