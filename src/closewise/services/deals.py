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

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.analytics.currency import to_corporate
from closewise.db import audit
from closewise.db import deals as queries
from closewise.db.org_frames import load_rates
from closewise.db.org_settings import read_settings
from closewise.domain.changes import decode, encode
from closewise.domain.enums import ChangeField, ChangeSource, ForecastCategory, OpportunityStatus
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
from closewise.services import playbook

DealFilter = queries.DealFilter
MAX_PAGE = 500
SORTS: tuple[str, ...] = tuple(queries.SORTS)
MAX_AMOUNT = 1e15  # what the amount column holds (18 digits, 2 decimals), with room to spare


@dataclass(frozen=True)
class DealEdit:
    """The fields a user may change; None leaves a field as it is (`next_step=""` clears it)."""

    stage: str | None = None
    amount: float | None = None
    close_date: date | None = None
    next_step: str | None = None
    forecast_category: str | None = None
    override_reason: str | None = None


def parse_sort(text: str | None) -> tuple[str, bool]:
    """`"-amount"` → (`"amount"`, descending); None or empty → the default (close date, soonest first)."""
    key = (text or "").strip() or "close_date"
    descending = key.startswith("-")
    key = key.lstrip("-")
    if key not in queries.SORTS:
        raise InvalidInput(f"cannot sort by {key!r}; one of {', '.join(queries.SORTS)} (prefix - to reverse)",
                           where="sort")
    return key, descending


def _checked(filters: DealFilter, *, paged: bool = True) -> None:
    if paged and not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", where="limit")
    if paged and filters.offset < 0:
        raise InvalidInput("offset cannot be negative", where="offset")
    if filters.status is not None and filters.status not in {s.value for s in OpportunityStatus}:
        raise InvalidInput(f"unknown status {filters.status!r}; one of "
                           f"{', '.join(s.value for s in OpportunityStatus)}", where="status")
    if filters.sort not in queries.SORTS:
        raise InvalidInput(f"cannot sort by {filters.sort!r}; one of {', '.join(queries.SORTS)}", where="sort")
    if filters.min_amount is not None and not (math.isfinite(filters.min_amount) and filters.min_amount >= 0):
        raise InvalidInput(f"{filters.min_amount!r} is not a minimum amount (a number of at least 0)",
                           where="min_amount")
    if filters.close_from is not None and filters.close_to is not None and filters.close_from > filters.close_to:
        raise InvalidInput(f"the close date range ends ({filters.close_to}) before it starts ({filters.close_from})",
                           where="close_to")
    if filters.search is not None and len(filters.search) > 200:
        raise InvalidInput("the search is longer than 200 characters", where="q")
    if filters.search is not None and "\x00" in filters.search:
        raise InvalidInput("the search holds a NUL character", where="q")


def list_deals(engine: Engine, *, scope: Scope, filters: DealFilter) -> tuple[list[dict[str, Any]], int]:
    """One page of the deals the caller sees that pass `filters`, and how many pass in all."""
    _checked(filters)
    with engine.connect() as connection:
        if filters.stage is not None and filters.stage not in queries.all_stage_keys(connection):
            raise InvalidInput(f"unknown stage {filters.stage!r}; one of "
                               f"{', '.join(queries.all_stage_keys(connection))}", where="stage")
        items, total = queries.list_deals(connection, scope=scope, filters=filters)
    return [_public(item) for item in items], total


@dataclass(frozen=True)
class DealSummary:
    """The filtered set in figures, amounts in the corporate currency (converted at each deal's close date)."""

    deals: int
    amount: float
    open_deals: int
    open_amount: float
    weighted: float  # the open deals' amount × the model's win probability (scored deals only)
    average_win_probability: float | None  # over the scored open deals
    currency: str
    by_status: dict[str, int]


def deal_summary(engine: Engine, *, scope: Scope, filters: DealFilter) -> DealSummary:
    _checked(filters, paged=False)
    with engine.connect() as connection:
        rows = queries.summarise(connection, scope=scope, filters=filters)
        rates = load_rates(connection)
        corporate = str(read_settings(connection)["corporate_currency"])
    schema = {"status": pl.String(), "currency": pl.String(), "close_date": pl.Date(), "deals": pl.Int64(),
              "amount": pl.Float64(), "weighted": pl.Float64(), "scored": pl.Int64(), "p_win_sum": pl.Float64()}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    frame = to_corporate(frame, rates, corporate=corporate, into="amount_corporate")
    frame = to_corporate(frame, rates, corporate=corporate, amount="weighted", into="weighted_corporate")
    opened = frame.filter(pl.col("status") == OpportunityStatus.OPEN.value)
    scored = int(opened["scored"].sum() or 0)
    by_status = {str(k): int(v) for k, v in frame.group_by("status").agg(pl.col("deals").sum()).iter_rows()}
    return DealSummary(
        deals=int(frame["deals"].sum() or 0),
        amount=float(frame["amount_corporate"].sum() or 0.0),
        open_deals=int(opened["deals"].sum() or 0),
        open_amount=float(opened["amount_corporate"].sum() or 0.0),
        weighted=float(opened["weighted_corporate"].sum() or 0.0),
        average_win_probability=float(opened["p_win_sum"].sum()) / scored if scored else None,
        currency=corporate,
        by_status=by_status,
    )


def owner_choices(engine: Engine, *, scope: Scope) -> list[dict[str, Any]]:
    """The owners the caller may filter by: only users they see."""
    with engine.connect() as connection:
        return queries.visible_owners(connection, scope=scope)


def stage_choices(engine: Engine) -> list[dict[str, Any]]:
    """Every playbook stage (`key`, `name`), in pipeline and stage order, each key once."""
    with engine.connect() as connection:
        seen: dict[str, dict[str, Any]] = {}
        for pipeline in queries.pipelines(connection):
            for stage in queries.playbook_stages(connection, pipeline=pipeline):
                seen.setdefault(stage["key"], {"key": stage["key"], "name": stage["name"]})
    return list(seen.values())


def get_deal(engine: Engine, *, scope: Scope, deal_id: int) -> dict[str, Any]:
    """One deal with the exit criteria of its stage."""
    with engine.connect() as connection:
        row = _visible(connection, scope, deal_id)
        criteria = queries.stage_criteria(connection, deal_id=deal_id, pipeline=row["pipeline"], stage=row["stage"])
    deal = _public(row)
    deal["exit_criteria"] = criteria
    return deal


def _visible(connection: Connection, scope: Scope, deal_id: int) -> dict[str, Any]:
    row = queries.get_deal(connection, scope=scope, deal_id=deal_id)
    if row is None:
        raise NotFound(f"no opportunity with id {deal_id}")
    return row


def probability_history(engine: Engine, *, scope: Scope, deal_id: int, now: datetime | None = None) -> dict[
        str, Any]:
    """A deal's win probability over time, two ways:

    - `model`: every stored score (`deal_score_history`), each from models fitted only on what was known at its
      `as_of` (`closewise score --backfill-weeks N` keeps one per week);
    - `crm`: the probability entered in the CRM as steps `{at, probability}` (0-1) rebuilt from the change log
      by its reconstruction rule (`domain.changes`): before the first change, that change's old value, from the
      deal's creation; then each new value; a last step at the close (or `now`) carries the value to the end.
    """
    moment = as_utc(now) if now is not None else utcnow()
    with engine.connect() as connection:
        row = _visible(connection, scope, deal_id)
        points = queries.score_history(connection, deal_id=deal_id)
        changes = [c for c in queries.deal_changes(connection, deal_id=deal_id)
                   if c["field"] == ChangeField.PROBABILITY.value]
    model = [{"as_of": as_utc(p["as_of"]).isoformat(), "p_win": float(p["p_win"]),
              "p_close_in_period": float(p["p_close_in_period"])} for p in points]
    first = decode(ChangeField.PROBABILITY, changes[0]["old_value"]) if changes else row["probability"]
    steps: list[dict[str, Any]] = [{"at": as_utc(row["created_at"]), "probability": first}]
    steps += [{"at": as_utc(c["changed_at"]), "probability": decode(ChangeField.PROBABILITY, c["new_value"])}
              for c in changes]
    end = as_utc(row["closed_at"]) if row["closed_at"] is not None else moment
    steps.append({"at": max(end, steps[-1]["at"]), "probability": steps[-1]["probability"]})
    crm = [{"at": step["at"].isoformat(),
            "probability": None if step["probability"] is None else float(step["probability"]) / 100.0}
           for step in steps]
    return {"model": model, "crm": crm}


def deal_changes(engine: Engine, *, scope: Scope, deal_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        _visible(connection, scope, deal_id)
        return [{**row, "changed_at": as_utc(row["changed_at"]).isoformat()}
                for row in queries.deal_changes(connection, deal_id=deal_id)]


def deal_activities(engine: Engine, *, scope: Scope, deal_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        _visible(connection, scope, deal_id)
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
        values = _validated(edit, queries.stage_keys(connection, pipeline=row["pipeline"]))
        reason = (edit.override_reason or "").strip() or None
        changed = {column: value for column, field, value in _fields(values)
                   if encode(field, row[column]) != encode(field, value)}
        if not changed:
            raise InvalidInput("nothing changed: the values given are the deal's current ones")
        stage_reason = reason
        if "stage" in changed:
            # The playbook's gate: a forward move needs the exit criteria of every stage left (GateRefused,
            # a 409 naming what is missing, unless an override reason is given and logged).
            stage_reason = playbook.enforce_gate(connection, deal_id=deal_id, pipeline=row["pipeline"],
                                                 from_stage=row["stage"], to_stage=changed["stage"],
                                                 override_reason=edit.override_reason, fields=changed)
            defaults = playbook.stage_defaults(connection, pipeline=row["pipeline"], stage=changed["stage"])
            if defaults is not None:
                # Entering a stage sets its default probability and, unless the owner chose one, its category.
                changed["probability"] = defaults[0]
                if edit.forecast_category is None:
                    changed["forecast_category"] = defaults[1]
                changed = {column: value for column, field, value in _fields(changed)
                           if encode(field, row[column]) != encode(field, value)}
        changes = [
            {"opportunity_id": deal_id, "field": field.value, "old_value": encode(field, row[column]),
             "new_value": encode(field, value), "changed_at": moment, "changed_by": scope.user_id,
             "source": ChangeSource.APP.value, "reason": stage_reason if column == "stage" else reason}
            for column, field, value in _fields(changed)
        ]
        queries.update_deal(connection, deal_id=deal_id, values=changed, changes=changes, at=moment)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="opportunity.edit",
                     entity="opportunity", entity_id=deal_id,
                     detail={"fields": [c["field"] for c in changes], "reason": reason})
    return get_deal(engine, scope=scope, deal_id=deal_id)


_COLUMN_FIELDS = {
    "stage": ChangeField.STAGE, "amount": ChangeField.AMOUNT, "close_date": ChangeField.CLOSE_DATE,
    "next_step": ChangeField.NEXT_STEP, "forecast_category": ChangeField.FORECAST_CATEGORY,
    "probability": ChangeField.PROBABILITY,
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
        if not math.isfinite(edit.amount) or not 0 <= edit.amount < MAX_AMOUNT:
            raise InvalidInput(f"{edit.amount!r} is not an amount (a number of at least 0)", where="amount")
        values["amount"] = round(edit.amount, 2)
    if edit.close_date is not None:
        values["close_date"] = edit.close_date
    if edit.next_step is not None:
        if len(edit.next_step) > 2000:
            raise InvalidInput("the next step is longer than 2,000 characters", where="next_step")
        if "\x00" in edit.next_step:
            raise InvalidInput("the next step holds a NUL character", where="next_step")
        values["next_step"] = edit.next_step.strip() or None
    if edit.forecast_category is not None:
        allowed = [c.value for c in ForecastCategory if c is not ForecastCategory.CLOSED]
        if edit.forecast_category not in allowed:
            raise InvalidInput(f"unknown forecast category {edit.forecast_category!r}; one of {', '.join(allowed)}",
                               where="forecast_category")
        values["forecast_category"] = edit.forecast_category
    if not values:
        raise InvalidInput("nothing to change: give stage, amount, close_date, next_step or forecast_category")
    if edit.override_reason is not None and len(edit.override_reason) > 2000:
        raise InvalidInput("the reason is longer than 2,000 characters", where="override_reason")
    if edit.override_reason is not None and "\x00" in edit.override_reason:
        raise InvalidInput("the reason holds a NUL character", where="override_reason")
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
