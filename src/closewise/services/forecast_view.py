"""The forecast as a signed-in user sees it: the org's forecast computed once in the background, then cut down
to what the user's `Scope` shows.

- The org forecast is `services.forecast`'s: `ml.forecaster.PeriodForecaster` on the whole org (training data is
  shown to no one), 10-15 s on the demo org. It runs as a background job (`services.jobs`) keyed by (period,
  as-of moment, data stamp) and stays in memory: everyone asking for the same forecast shares one computation,
  and a new import or a deal edit (a new change row, deal or activity) makes the next request compute afresh.
- A user's view is `ml.forecaster.restrict` of it to the owners their scope sees (same calibration and period
  effect, re-simulated in milliseconds), against their target: the org's quota for a leader or an admin, the
  quotas of their part of the hierarchy for a manager (their own quota row, which carries their reports', or
  else their reports' quotas added once, `analytics.targets`), a rep's own quota. New business (deals not
  created yet) belongs to no owner, so only an everything-scope counts it. The baselines beside the model
  (run rate, CRM-weighted, commit: `ml.baselines`) are computed on the scoped org.
- The track record: the forecasts of the last `track_months` ended months made on each month's first day with
  only what was known then, as `ml.backtest.run_backtest` makes them (one job, cached per month and data), kept
  whole so each user's track record is restricted like their forecast: their months' actuals, P10-P90 and P50,
  and the MAPE and interval coverage of the model and of each baseline (`ml.backtest.summarise`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.targets import target_from_quotas
from closewise.db.opportunity_labels import opportunity_labels
from closewise.db.quotas import load_quotas_within
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.scope import Scope
from closewise.domain.timeutil import midnight, naive_utc, parse_as_of, utcnow
from closewise.errors import CloseWiseError, InvalidInput
from closewise.ml.backtest import BacktestRow, baselines_at, summarise
from closewise.ml.forecaster import PeriodForecast, PeriodForecaster, PeriodInputs, actual_of, restrict, won_in_period
from closewise.ml.metrics import crps_samples
from closewise.services.jobs import Job, JobRunner, Progress
from closewise.services.org_cache import OrgCache as OrgCache  # re-exported: callers imported it from here
from closewise.services.org_cache import data_stamp as data_stamp
from closewise.services.org_data import OrgData

TRACK_MONTHS: Final = 12
TOP_DEALS: Final = 25
_EPOCH: Final = datetime(1970, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
_TICK: Final = timedelta(microseconds=1)


class ForecastFailed(CloseWiseError):
    """The background forecast ended with an error (the message says which)."""


@dataclass(frozen=True)
class Pending:
    """A forecast still being computed: what it is doing and how far it is (0-1, None: unknown)."""

    kind: str
    message: str
    fraction: float | None


@dataclass(frozen=True)
class OrgForecast:
    period: Period
    as_of: datetime  # aware UTC: the moment forecast
    org: OrgData
    forecast: PeriodForecast


@dataclass(frozen=True)
class TrackRun:
    org: OrgData
    months: tuple[PeriodForecast, ...]  # oldest first, each made on its month's first day


# --- periods, moments and targets --------------------------------------------------------------------------


def parse_period(calendar: FiscalCalendar, text: str) -> Period:
    """`2026-11`, `2026-Q4` or `2026` in the org's calendar; InvalidInput naming `period` otherwise (and for years
    before 1970 or after 2099, which no data reaches)."""
    try:
        span = calendar.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, where="period") from None
    except (ValueError, OverflowError):
        raise InvalidInput(f"period {text!r} is outside the calendar", where="period") from None
    if not 1970 <= span.start.year <= 2099:
        raise InvalidInput(f"period {span.label} is outside 1970-2099", where="period")
    return span


def parse_moment(text: str | None, *, now: datetime) -> datetime | None:
    """The instant of `as_of` (a date: the end of that day), None for now or any later moment. Moments before
    1970 are read as its first day (nothing is known then either)."""
    if text is None or not text.strip():
        return None
    try:
        at = parse_as_of(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message.replace("--as-of", "as_of"), where="as_of") from None
    return None if at >= now else max(at, _EPOCH)


def period_choices(calendar: FiscalCalendar, today: date) -> list[tuple[str, str]]:
    """The periods a picker offers first: (label, what it is)."""
    month = calendar.period_containing(today, PeriodKind.MONTH)
    quarter = calendar.period_containing(today, PeriodKind.QUARTER)
    return [(month.label, "This month"), (calendar.next(month).label, "Next month"),
            (quarter.label, "This quarter"), (calendar.next(quarter).label, "Next quarter"),
            (calendar.period_containing(today, PeriodKind.YEAR).label, "This year")]


def load_quotas(engine: Engine, period: Period) -> pl.DataFrame:
    """Every quota lying inside `period` (`db.quotas`)."""
    with engine.connect() as connection:
        return load_quotas_within(connection, start=period.start, last_day=period.last_day)


def owner_quotas(quotas: pl.DataFrame, org: OrgData, period: Period) -> dict[int, float]:
    """Each user's own quota for `period` (`analytics.targets` on their rows alone), corporate currency."""
    users: dict[int, float] = {}
    for user_id in quotas["user_id"].drop_nulls().unique().to_list():
        own = target_from_quotas(quotas.filter(pl.col("user_id") == user_id), org.users, period, org.rates,
                                 corporate=org.corporate_currency)
        if own is not None:
            users[int(user_id)] = own.amount
    return users


def scope_target(quotas: pl.DataFrame, org: OrgData, period: Period, scope: Scope) -> float | None:
    """The target of what `scope` sees: the org's for everything (`analytics.targets`), else the quotas of the
    visible users counted once at the top of their part of the hierarchy (a manager's own row carries their
    reports'; without one, their reports' rows add up). `quotas`: those inside `period` (`load_quotas`)."""
    if scope.owner_ids is not None:
        quotas = quotas.filter(pl.col("user_id").is_in(sorted(scope.owner_ids)))
    found = target_from_quotas(quotas, org.users, period, org.rates, corporate=org.corporate_currency)
    return found.amount if found is not None else None


# --- the jobs and the cache --------------------------------------------------------------------------------


class ForecastViews:
    """The app's forecasts: org forecasts and track records computed as jobs and kept (the last `keep` of each),
    and the users' views of them. One per app (`app.state`)."""

    def __init__(self, jobs: JobRunner, *, forecaster_factory: Callable[[], PeriodForecaster] = PeriodForecaster,
                 track_months: int = TRACK_MONTHS, keep: int = 6) -> None:
        self.jobs = jobs
        self.orgs = OrgCache()
        self.forecaster_factory = forecaster_factory
        self.track_months = track_months
        self._keep = keep
        self._lock = threading.Lock()
        self._results: OrderedDict[str, Any] = OrderedDict()
        self._views: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    # -- the user's documents --------------------------------------------------------------------------------
    def forecast(self, engine: Engine, scope: Scope, *, period: str, as_of: str | None = None,
                 target: float | None = None) -> dict[str, Any] | Pending:
        """The forecast document (DESIGN.md's JSON) of `period` for `scope`, or Pending while it is computed."""
        if target is not None and not (np.isfinite(target) and target > 0):
            raise InvalidInput("target must be a positive amount", where="target")
        stamp, key, result = self._org_result(engine, scope, period, as_of)
        if isinstance(result, Pending):
            return result
        quotas = load_quotas(engine, result.period)  # read each time: a quota edit shows at once
        view_key = (key, scope.owner_ids, target, hash(tuple(quotas.iter_rows())))
        return self._view(view_key, lambda: self._forecast_document(engine, stamp, result, scope, quotas, target))

    def org_forecast(self, engine: Engine, scope: Scope, *, period: str) -> OrgForecast | Pending:
        """The whole org's forecast of `period` as of now (the Forecast page's job and cache), for callers that
        restrict it themselves (the forecast call). Never shown as is: callers must restrict it to `scope` before
        anything reaches the user."""
        return self._org_result(engine, scope, period, None)[2]

    def _org_result(self, engine: Engine, scope: Scope, period: str, as_of: str | None) -> tuple[
            str, str, OrgForecast | Pending]:
        """(data stamp, cache key, the org forecast or its progress) of `period` as of `as_of` (None: now)."""
        now = utcnow()
        stamp, org = self.orgs.org(engine)
        span = parse_period(org.calendar, period)
        moment = parse_moment(as_of, now=now)
        key = f"forecast:{span.label}:{moment.isoformat() if moment else now.date().isoformat()}:{stamp}"
        result: OrgForecast | Pending = self._result(
            key, "forecast", scope.user_id, lambda progress: self._org_forecast(org, span, moment, progress))
        return stamp, key, result

    def track_record(self, engine: Engine, scope: Scope) -> dict[str, Any] | Pending:
        """The user's track record: the last `track_months` ended months, or Pending while backtests run."""
        now = utcnow()
        stamp, org = self.orgs.org(engine)
        last = org.calendar.previous(org.calendar.period_containing(now.date(), PeriodKind.MONTH))
        key = f"track:{last.label}:{self.track_months}:{stamp}"
        result = self._result(key, "track record", scope.user_id,
                              lambda progress: self._track_run(org, last, progress))
        if isinstance(result, Pending):
            return result
        return self._view((key, scope.owner_ids), lambda: _track_document(result, self.orgs.scoped(stamp, org, scope),
                                                                          scope))

    # -- computing ------------------------------------------------------------------------------------------
    def _result(self, key: str, kind: str, user_id: int, work: Callable[[Progress], Any]) -> Any:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        job = self.jobs.by_key(key)
        if job is not None and job.done and job.error is None:
            self.jobs.forget(key)  # done, but its result has left the cache: compute again
            job = None
        if job is not None and job.done:
            self.jobs.forget(key)
            raise ForecastFailed(f"the {kind} could not be computed: {job.error}")
        if job is None:
            job = self.jobs.submit(kind, user_id, lambda progress: self._store(key, work(progress)), key=key)
        return _pending(kind, job)

    def _store(self, key: str, value: Any) -> None:
        stamp = key.rsplit(":", 1)[-1]
        with self._lock:
            # Results of older data are never asked for again (keys end with the stamp): let their orgs go.
            for stale in [k for k in self._results if not k.endswith(f":{stamp}")]:
                del self._results[stale]
            self._results[key] = value
            while len(self._results) > 2 * self._keep:
                self._results.popitem(last=False)

    def _view(self, key: Hashable, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        document = build()
        with self._lock:
            self._views[key] = document
            while len(self._views) > 64:
                self._views.popitem(last=False)
        return document

    def _org_forecast(self, org: OrgData, period: Period, moment: datetime | None, progress: Progress) -> OrgForecast:
        """`PeriodForecaster.forecast` of the whole org, its calibration backtests prepared one by one here only
        to report progress (the history `forecast` would build itself)."""
        at = moment or utcnow()
        forecaster = self.forecaster_factory()
        progress(f"scoring the open deals of {period.label}", 0.02)
        inputs = forecaster.prepare(org, period, at)
        history: list[tuple[PeriodInputs, float]] = []
        if not inputs.ended:
            moments = forecaster.calibration_moments(org, period, at)
            for done, (past, when) in enumerate(moments, start=1):
                share = 0.05 + 0.9 * done / (len(moments) + 1)
                progress(f"calibrating on {past.label} ({done} of {len(moments)})", share)
                history.append((forecaster.prepare(org, past, when, reasons=False), actual_of(org, past)))
        progress("simulating outcomes", 0.97)
        result = forecaster.forecast(org, period, at, history=history, inputs=inputs)
        return OrgForecast(period, at.astimezone(UTC), org, result)

    def _track_run(self, org: OrgData, last: Period, progress: Progress) -> TrackRun:
        """`ml.backtest.run_backtest`'s loop over the months ending with `last`, keeping each month's forecast."""
        forecaster = self.forecaster_factory()
        targets = [last]
        while len(targets) < self.track_months:
            targets.insert(0, org.calendar.previous(targets[0]))
        warmup = [targets[0]]
        for _ in range(forecaster.calibration_periods):
            warmup.insert(0, org.calendar.previous(warmup[0]))
        every = [*warmup[:-1], *targets]
        ledger: list[tuple[PeriodInputs, float]] = []
        months: list[PeriodForecast] = []
        for done, period in enumerate(every, start=1):
            progress(f"backtesting {period.label} ({done} of {len(every)})", done / (len(every) + 1))
            as_of = midnight(period.start)
            inputs = forecaster.prepare(org, period, as_of, reasons=False)
            if period in targets:
                history = [(i, a) for i, a in ledger if midnight(i.period.end) <= as_of]
                months.append(forecaster.forecast(org, period, as_of, inputs=inputs,
                                                  history=history[-forecaster.calibration_periods:]))
            ledger.append((inputs, actual_of(org, period)))
        return TrackRun(org, tuple(months))

    # -- the user's forecast -------------------------------------------------------------------------------
    def _forecast_document(self, engine: Engine, stamp: str, computed: OrgForecast, scope: Scope,
                           quotas: pl.DataFrame, target: float | None) -> dict[str, Any]:
        org, span = computed.org, computed.period
        source: str | None = "given"
        if target is None:
            target = scope_target(quotas, org, span, scope)
            source = "quota" if target is not None else None
        with_quotas = replace(computed.forecast, owner_targets=owner_quotas(quotas, org, span))
        mine = restrict(with_quotas, None if scope.everything else scope.owner_ids, target=target,
                        include_new_business=scope.everything)
        return forecast_document(engine, mine, self.orgs.scoped(stamp, org, scope), computed.as_of, target=target,
                                 target_source=source, new_business=scope.everything)


def forecast_document(engine: Engine, forecast: PeriodForecast, view: OrgData, as_of: datetime, *,
                      target: float | None, target_source: str | None, new_business: bool) -> dict[str, Any]:
    """DESIGN.md's forecast JSON of `forecast` (already restricted to `view`'s owners), with the baselines, the
    gap to the target, the outcome distribution's percentiles and the top deals by expected amount."""
    inputs, span = forecast.inputs, forecast.inputs.period
    users = dict(zip(view.users["id"].to_list(), view.users["name"].to_list(), strict=True))
    teams = dict(zip(view.teams["id"].to_list(), view.teams["name"].to_list(), strict=True))
    deals = forecast.deals.sort("expected", "id", descending=[True, False])
    top = deals.head(TOP_DEALS)
    with engine.connect() as connection:
        labels = opportunity_labels(connection, ids=top["id"].to_list())
    p50 = forecast.quantile(0.5)
    return {
        "period": span.label,
        "period_start": span.start.isoformat(),
        "period_end": span.last_day.isoformat(),
        "as_of": as_of.isoformat(),
        "ended": inputs.ended,
        "currency": view.corporate_currency,
        "closed_won": inputs.closed_won,
        "p10": forecast.quantile(0.1),
        "p50": p50,
        "p90": forecast.quantile(0.9),
        "expected": forecast.expected,
        "target": target,
        "target_source": target_source,
        "probability_of_target": forecast.probability_of_target,
        "gap_to_target": None if target is None else max(target - inputs.closed_won, 0.0),
        "open_deals": deals.height,
        "pipeline": float(deals["amount"].sum()),
        "new_business": inputs.new_business.to_dict() if new_business else None,
        "calibration": forecast.calibration.to_dict(),
        "percentiles": [float(v) for v in _percentiles(forecast)],
        "baselines": baselines_at(view, span, naive_utc(as_of)),
        "by_owner": [
            {"owner_id": row["owner_id"], "name": users.get(row["owner_id"]), "team_id": row["team_id"],
             "team": teams.get(row["team_id"]), "closed_won": row["closed_won"], "open_deals": row["open_deals"],
             "pipeline": row["pipeline"], "expected": row["expected"], "p10": row["p10"], "p50": row["p50"],
             "p90": row["p90"], "target": row["target"], "probability_of_target": row["probability_of_target"]}
            for row in forecast.by_owner.iter_rows(named=True)
        ],
        "by_team": [
            {"team_id": row["team_id"], "team": teams.get(row["team_id"]), "closed_won": row["closed_won"],
             "open_deals": row["open_deals"], "pipeline": row["pipeline"], "expected": row["expected"],
             "p10": row["p10"], "p50": row["p50"], "p90": row["p90"]}
            for row in forecast.by_team.iter_rows(named=True)
        ],
        "deals": [
            {"id": row["id"], "external_id": labels.get(row["id"], ("", ""))[0],
             "name": labels.get(row["id"], ("", ""))[1], "owner_id": row["owner_id"],
             "owner": users.get(row["owner_id"]), "stage": row["stage"], "close_date": _iso(row["close_date"]),
             "forecast_category": row["forecast_category"], "amount": row["amount"], "p_win": row["p_win"],
             "p_close_in_period": row["p_close_calibrated"], "expected": row["expected"],
             "reasons": [_reason(r) for r in (row.get("reasons") or [])]}
            for row in top.iter_rows(named=True)
        ],
    }


def _percentiles(forecast: PeriodForecast) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The 1st to 99th percentiles of the outcome (all the closed won of an ended period)."""
    if forecast.inputs.ended:
        return np.full(99, forecast.inputs.closed_won)
    return np.asarray(np.quantile(forecast.samples, np.arange(1, 100) / 100), dtype=np.float64)


def _reason(reason: object) -> str:
    """A deal's reason as words (the scorer gives {feature, contribution, text})."""
    return str(reason.get("text", "")) if isinstance(reason, dict) else str(reason)


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


# --- the user's track record -------------------------------------------------------------------------------


def _track_document(run: TrackRun, view: OrgData, scope: Scope) -> dict[str, Any]:
    """Each month of `run` restricted to `scope`: actual (won by the visible owners), P10/P50/P90, the baselines
    on the visible deals, and their summary."""
    owners = None if scope.everything else scope.owner_ids
    rows: list[BacktestRow] = []
    for forecast in run.months:
        period, as_of = forecast.inputs.period, forecast.inputs.as_of
        mine = restrict(forecast, owners, target=None, include_new_business=scope.everything)
        won = won_in_period(run.org, period, midnight(period.end) - _TICK)
        if owners is not None:
            won = won.filter(pl.col("owner_id").is_in(sorted(owners)))
        won_ids = set(won["id"].to_list())
        actual = float(won["won"].sum())
        deals = mine.inputs.deals
        rows.append(BacktestRow(
            period, as_of, actual, mine.quantile(0.1), mine.quantile(0.5), mine.quantile(0.9), mine.expected,
            crps_samples(actual, mine.samples), baselines_at(view, period, as_of),
            tuple(float(p) for p in deals["p_close_in_period"].fill_null(0.0).to_list()),
            tuple(i in won_ids for i in deals["id"].to_list())))
    summary = summarise(rows)
    return {
        "currency": view.corporate_currency,
        "rows": [row.to_dict() | {"period_start": row.period.start.isoformat(),
                                  "period_end": row.period.last_day.isoformat()} for row in rows],
        "summary": {key: summary[key] for key in ("periods", "p50_mape", "p50_bias", "coverage_p10_p90", "crps",
                                                  "crps_relative", "baselines", "best_baseline",
                                                  "p50_mape_vs_best_baseline")},
    }


def _pending(kind: str, job: Job) -> Pending:
    return Pending(kind, job.message, job.fraction)
