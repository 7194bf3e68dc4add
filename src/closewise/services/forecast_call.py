"""The forecast call (`closewise call …`, the Forecast call page): submissions, adjustments, the roll-up through
the hierarchy with the model's range for the same scope beside it, the deals behind the gap between the call
and the model, categories, and the accuracy of every past call.

Kept apart from deal coaching on purpose: nothing here asks how to win a deal, only what the number is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.calls.accuracy import call_accuracy, final_calls, track_record
from closewise.calls.rollup import Call, latest_calls, rollup
from closewise.db import audit
from closewise.db.submissions import call_notes, insert_call, load_submissions
from closewise.domain.periods import Period
from closewise.domain.scope import Action, Scope, subtree
from closewise.domain.timeutil import as_utc, midnight, naive_utc, utcnow
from closewise.errors import Forbidden, InvalidInput, NotFound
from closewise.ml.forecaster import PeriodForecast, restrict, won_in_period
from closewise.ml.rep_bias import corrected, rep_bias
from closewise.services.org_data import OrgData, load_org

CATEGORIES = ("closed", "commit", "best_case", "pipeline")


@dataclass(frozen=True)
class CallReceipt:
    id: int
    user_id: int
    period: str
    commit: float
    best_case: float
    kind: str
    subject_id: int | None


def _amount(value: float, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{value!r} is not an amount (a number of at least 0)", where=where)
    return round(value, 2)


def _period(org: OrgData, text: str) -> Period:
    try:
        return org.calendar.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, where="period") from None


def submit(engine: Engine, *, scope: Scope, period: str, commit: float, best_case: float, notes: str | None = None,
           now: datetime | None = None) -> CallReceipt:
    """Record the caller's own call for `period` (every call is kept; the latest counts)."""
    if not scope.may(Action.SUBMIT_FORECAST):
        raise Forbidden(f"a {scope.role.value} cannot submit a forecast")
    org = load_org(engine, activities=False)
    span = _period(org, period)
    commit, best_case = _amount(commit, "commit"), _amount(best_case, "best_case")
    if best_case < commit:
        raise InvalidInput(f"the best case ({best_case:,.0f}) is below the commit ({commit:,.0f})", where="best_case")
    moment = as_utc(now) if now is not None else utcnow()
    text = (notes or "").strip() or None
    with engine.begin() as connection:
        key = insert_call(connection, user_id=scope.user_id, period=span.label, at=moment, commit=commit,
                          best_case=best_case, notes=text)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="forecast.submit", entity="forecast",
                     entity_id=key, detail={"period": span.label, "commit": commit, "best_case": best_case})
    return CallReceipt(key, scope.user_id, span.label, commit, best_case, "submission", None)


def adjust(engine: Engine, *, scope: Scope, subject_id: int, period: str, commit: float, best_case: float, note: str,
           now: datetime | None = None) -> CallReceipt:
    """A manager replaces a report's number in their own roll-up, with a note saying why."""
    if not scope.may(Action.SUBMIT_FORECAST) or scope.role.value == "rep":
        raise Forbidden(f"a {scope.role.value} cannot adjust someone else's forecast")
    org = load_org(engine, activities=False)
    managers = dict(zip(org.users["id"].to_list(), org.users["manager_id"].to_list(), strict=True))
    if subject_id == scope.user_id or subject_id not in subtree(scope.user_id, managers) or not scope.sees_owner(
            subject_id):
        raise NotFound(f"no one with id {subject_id} reports to you")
    span = _period(org, period)
    commit, best_case = _amount(commit, "commit"), _amount(best_case, "best_case")
    if best_case < commit:
        raise InvalidInput(f"the best case ({best_case:,.0f}) is below the commit ({commit:,.0f})", where="best_case")
    if not note.strip():
        raise InvalidInput("say why the number is adjusted", where="note")
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        key = insert_call(connection, user_id=scope.user_id, period=span.label, at=moment, commit=commit,
                          best_case=best_case, notes=note.strip(), kind="adjustment", subject_id=subject_id)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="forecast.adjust", entity="forecast",
                     entity_id=key, detail={"period": span.label, "subject_id": subject_id, "commit": commit,
                                            "best_case": best_case, "note": note.strip()})
    return CallReceipt(key, scope.user_id, span.label, commit, best_case, "adjustment", subject_id)


def rollup_report(engine: Engine, *, scope: Scope, period: str, manager_id: int | None = None,
                  as_of: datetime | None = None, forecast: PeriodForecast | None = None,
                  org: OrgData | None = None) -> dict[str, Any]:
    """The call of `manager_id`'s team (default: the caller) for `period`, as known at `as_of`. With
    `forecast` (the org forecast of the period), the model's P10/P50/P90 for the same scope and per report,
    and the deals behind the gap."""
    org = org or load_org(engine, activities=False)
    span = _period(org, period)
    at = naive_utc(as_of or utcnow())
    managers = _callers(org)
    top = scope.user_id if manager_id is None else manager_id
    if scope.everything and top not in managers:
        top = next((user for user, boss in managers.items() if boss is None), top)  # an admin sees the org's top
    if top not in managers or not (scope.everything or top in (scope.owner_ids or ())):
        raise NotFound(f"no user with id {top} in your organisation")
    with engine.connect() as connection:
        submissions = load_submissions(connection)
        notes = call_notes(connection, period=span.label)
    submissions = submissions.with_columns(pl.col("id").replace_strict(notes, default=None, return_dtype=pl.String)
                                           .alias("notes"))
    calls, adjustments = latest_calls(submissions, period=span.label, as_of=at)
    result = rollup(top, managers, calls, {k: v for k, v in adjustments.items() if k[0] == top})
    names = dict(zip(org.users["id"].to_list(), org.users["name"].to_list(), strict=True))
    roles = dict(zip(org.users["id"].to_list(), org.users["role"].to_list(), strict=True))
    bias = _bias(org, submissions, at)
    model = _model(forecast, managers, top, [row.user_id for row in result.rows])
    by_user = []
    for row in result.rows:
        ratio, periods, label = bias.get(row.user_id, (1.0, 0, None))
        own = row.own
        by_user.append({
            "user_id": row.user_id, "name": names.get(row.user_id), "role": roles.get(row.user_id),
            "manages": row.manages, "submitted": _call(own), "adjustment": _call(row.adjustment),
            "team_rollup": None if row.team_commit is None else {"commit": row.team_commit,
                                                                 "best_case": row.team_best_case},
            "commit": row.commit, "best_case": row.best_case, "source": row.source,
            "missing": own is None,
            "bias": {"label": label, "periods": periods, "median_ratio": ratio,
                     "corrected_commit": corrected(row.commit, ratio, periods) if own is not None else None},
            "model": model.get(row.user_id),
        })
    team = subtree(top, managers)
    return {
        "period": span.label, "period_start": span.start.isoformat(), "period_end": span.last_day.isoformat(),
        "as_of": at.isoformat(), "currency": org.corporate_currency, "manager_id": top, "manager": names.get(top),
        "team_commit": result.commit, "team_best_case": result.best_case,
        "manager_call": _call(calls.get(top)),
        "by_user": by_user,
        "not_submitted": [{"user_id": u, "name": names.get(u)} for u in result.missing],
        "model": model.get(top),
        "categories": categories(org, span, at, team),
        "gap_deals": _gap_deals(forecast, team) if forecast is not None else None,
    }


def _callers(org: OrgData) -> dict[int, int | None]:
    """`user -> manager` of the people who carry a number: admins and viewers neither call nor count as missing
    (their reports, if any, roll up to the admin's or viewer's manager)."""
    users = org.users.select("id", "manager_id", "role")
    role = dict(zip(users["id"].to_list(), users["role"].to_list(), strict=True))
    manager = dict(zip(users["id"].to_list(), users["manager_id"].to_list(), strict=True))

    def carrier(user: int | None) -> int | None:
        seen: set[int] = set()
        while user is not None and role.get(user) in ("admin", "viewer") and user not in seen:
            seen.add(user)
            user = manager.get(user)
        return user

    return {user: carrier(boss) for user, boss in manager.items() if role.get(user) not in ("admin", "viewer")}


def _call(call: Call | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {"commit": call.commit, "best_case": call.best_case, "at": call.at.isoformat(), "notes": call.notes}


def _bias(org: OrgData, submissions: pl.DataFrame, at: datetime) -> dict[int, tuple[float, int, str]]:
    table = rep_bias(submissions, org.opportunities, org.changes, as_of=at, calendar=org.calendar, rates=org.rates,
                     corporate=org.corporate_currency)
    return {row["user_id"]: (row["median_ratio"], row["periods"], row["label"]) for row in table.iter_rows(named=True)}


def _model(forecast: PeriodForecast | None, managers: dict[int, int | None], top: int,
           reports: list[int]) -> dict[int, dict[str, float | None]]:
    if forecast is None:
        return {}
    out: dict[int, dict[str, float | None]] = {}
    for user in [top, *reports]:
        team = subtree(user, managers)
        view = restrict(forecast, sorted(team), target=None, include_new_business=False)
        out[user] = {"p10": view.quantile(0.1), "p50": view.quantile(0.5), "p90": view.quantile(0.9),
                     "expected": view.expected}
    return out


def categories(org: OrgData, span: Period, at: datetime, owners: frozenset[int]) -> dict[str, Any]:
    """Amounts by forecast category for `owners`' deals in `span` as known at `at`: won so far (closed), and
    the open deals expected to close in the period by their category; single and cumulative."""
    won = won_in_period(org, span, at).filter(pl.col("owner_id").is_in(sorted(owners)))
    state = snapshot(org.timeline.filter(pl.col("owner_id").is_in(sorted(owners))), at)
    open_in = state.filter(pl.col("status") == "open", pl.col("close_date") >= span.start,
                           pl.col("close_date") < span.end)
    open_in = to_corporate(open_in, org.rates, corporate=org.corporate_currency)
    sums = {row["forecast_category"]: float(row["amount"] or 0.0) for row in open_in.group_by("forecast_category").agg(
        pl.col("amount_corporate").sum().alias("amount")).iter_rows(named=True)}
    single = {"closed": float(won["won"].sum()), "commit": sums.get("commit", 0.0),
              "best_case": sums.get("best_case", 0.0), "pipeline": sums.get("pipeline", 0.0)}
    running, cumulative = 0.0, {}
    for key in CATEGORIES:
        running += single[key]
        cumulative[key] = running
    return {"single": single, "cumulative": cumulative}


def _gap_deals(forecast: PeriodForecast, owners: frozenset[int], *, doubt_below: float = 0.5,
               like_above: float = 0.6, limit: int = 15) -> dict[str, list[dict[str, Any]]]:
    """Commit deals the model doubts, and deals it likes that are not in commit."""
    deals = forecast.inputs.deals.filter(pl.col("owner_id").is_in(sorted(owners)))
    keep = ["id", "owner_id", "stage", "amount", "close_date", "forecast_category", "p_close_in_period"]
    doubted = deals.filter(pl.col("forecast_category") == "commit", pl.col("p_close_in_period") < doubt_below)
    liked = deals.filter(pl.col("forecast_category").is_in(["pipeline", "best_case"]),
                         pl.col("p_close_in_period") >= like_above)
    return {"commit_doubted": doubted.sort("amount", descending=True).head(limit).select(keep).to_dicts(),
            "liked_not_in_commit": liked.sort("amount", descending=True).head(limit).select(keep).to_dicts()}


def accuracy_report(engine: Engine, *, scope: Scope, as_of: datetime | None = None) -> dict[str, Any]:
    """Every call of a period that has ended, against what the caller's team won; a track record per person
    the caller sees."""
    at = naive_utc(as_of or utcnow())
    org = load_org(engine, activities=False)
    with engine.connect() as connection:
        submissions = load_submissions(connection)
    labels = submissions["period"].unique().to_list()
    ends: dict[str, datetime] = {}
    spans: dict[str, Period] = {}
    for label in labels:
        try:
            span = org.calendar.parse(label)
        except InvalidInput:
            continue
        if midnight(span.end) <= at:
            ends[label], spans[label] = midnight(span.end), span
    calls = final_calls(submissions.filter(pl.col("submitted_at") <= at), ends)
    visible = calls if scope.everything else calls.filter(pl.col("user_id").is_in(sorted(scope.owner_ids or ())))
    won_rows: list[tuple[int, str, float]] = []
    for label, span in spans.items():
        won = won_in_period(org, span, midnight(span.end) - timedelta(microseconds=1))
        won_rows.extend((row["owner_id"], label, row["won"]) for row in won.group_by("owner_id").agg(
            pl.col("won").sum()).iter_rows(named=True))
    won_by_owner = pl.DataFrame(won_rows, schema={"owner_id": pl.Int64(), "period": pl.String(), "won": pl.Float64()},
                                orient="row")
    managers = dict(zip(org.users["id"].to_list(), org.users["manager_id"].to_list(), strict=True))
    accuracy = call_accuracy(visible, won_by_owner, managers)
    record = track_record(accuracy)
    names = dict(zip(org.users["id"].to_list(), org.users["name"].to_list(), strict=True))
    return {
        "as_of": at.isoformat(), "currency": org.corporate_currency,
        "calls": [{**row, "name": names.get(row["user_id"])} for row in accuracy.iter_rows(named=True)],
        "track_record": [{**row, "name": names.get(row["user_id"])} for row in record.iter_rows(named=True)],
    }
