"""The period forecast: closed won so far, P10/P50/P90, expected, and the probability of reaching a target.

For a period P and a moment `as_of`, with only what was known at `as_of`:

1. closed won so far: deals won inside P by `as_of` (corporate currency, at their close date);
2. every deal open at `as_of` scored by the deal models (`ml.scorer.DealScorer`), trained on history before
   `as_of`: the probability of being won inside P, the probability of being won at all, and reasons. A
   deal's value is one number, its amount in the corporate currency at `as_of` (`amount`, the amount if
   won that the simulation draws);
3. new business from deals not yet created (`ml.newbusiness`);
4. the outcome simulated with a period-level latent effect shared by all deals (`ml.simulation`, a
   random-effects / one-factor Gaussian copula model), whose shift and scale are calibrated on the org's own
   backtests: the same forecast made at the same lead time in each of the last `calibration_periods`
   periods that ended by `as_of` (a forecast made 10 days before P starts is calibrated on forecasts made
   10 days before each past period started; one made 20 days into P on forecasts made 20 days into
   theirs), each with models trained only on what was known at its own moment. Moments less than
   `min_history_days` into the org's history are skipped (models of a newborn org say little about today's).

A period that has ended (`as_of` at or after its end) is known: its forecast is its closed-won total, with
P10 = P50 = P90.

The forecast's `expected` is exact, not a Monte Carlo mean: closed won + the deals' calibrated expectations
(`ml.simulation.calibrated_probability` x amount, the `expected` column of `PeriodForecast.deals`) + the
new-business mean. Breakdowns by owner and team carry closed won, open deals, pipeline, the expected total
(their deals' calibrated expectations; new business is not attributed), P10/P50/P90 from their own deals
drawn with the org's period effect (`ml.simulation.simulate_groups`), and the probability of reaching their
target when one is given. `restrict` re-simulates the forecast for a subset of owners with the same
calibration (a manager's or a rep's view), in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Final, Protocol, cast

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.ml.frames import OrgFrames, OrgLike
from closewise.ml.newbusiness import NewBusinessEstimate, NewBusinessModel
from closewise.ml.scorer import SCORE_COLUMNS, DealScorer, empty_scores
from closewise.ml.simulation import (
    Calibration,
    FloatArray,
    IntArray,
    Outcome,
    PreparedOutcome,
    calibrate,
    calibrated_probability,
    prepare,
    simulate,
    simulate_groups,
)

_WON: Final = OpportunityStatus.WON.value
# Cap on deals x draws of the per-owner simulation (a 100,000-deal org gets 500 draws per owner, not 4,000).
_BREAKDOWN_CELLS: Final = 50_000_000


class ForecastFrames(OrgLike, Protocol):
    """What the forecaster reads: an org's frames (`services.org_data.OrgData` has them)."""

    @property
    def calendar(self) -> FiscalCalendar: ...

    @property
    def timeline(self) -> pl.DataFrame: ...


class Scorer(Protocol):
    """The deal models' interface (`ml.scorer.DealScorer`): `fit` on history before `as_of`; `score` the deals
    open at `as_of` for the period `[period_start, period_end)` with `SCORE_COLUMNS`."""

    def fit(self, frames: Any, *, as_of: datetime) -> Any: ...

    def score(self, frames: Any, *, as_of: datetime, period_start: Any, period_end: Any,
              reasons: bool = True) -> pl.DataFrame: ...


@dataclass(frozen=True)
class PeriodInputs:
    """What a forecast of `period` at `as_of` is simulated from."""

    period: Period
    as_of: datetime  # naive UTC
    closed_won: float
    deals: pl.DataFrame  # open deals: SCORE_COLUMNS less amount_corporate, plus amount and amount_if_won
    new_business: NewBusinessEstimate
    scorer: str
    won: pl.DataFrame  # deals won inside the period by as_of (`won_in_period`)

    @property
    def ended(self) -> bool:
        return self.as_of >= midnight(self.period.end)

    def outcome(self) -> Outcome:
        if self.ended:
            empty = np.zeros(0)
            return Outcome(self.closed_won, empty, empty, 0.0, 0.0)
        return Outcome(self.closed_won, _column(self.deals, "p_close_in_period"), _column(self.deals, "amount_if_won"),
                       self.new_business.mean, self.new_business.sd)

    @cached_property
    def calibration_outcome(self) -> PreparedOutcome:
        """The outcome prepared once for calibration (its grid sums reused by every later forecast)."""
        return prepare(self.outcome(), exact_deals=300)


@dataclass(frozen=True)
class PeriodForecast:
    inputs: PeriodInputs
    calibration: Calibration
    samples: FloatArray
    target: float | None
    calibration_actuals: tuple[tuple[str, float], ...] = field(default=())
    random_state: int = 0
    owner_targets: Mapping[int, float] = field(default_factory=dict)
    team_targets: Mapping[int, float] = field(default_factory=dict)

    def quantile(self, q: float) -> float:
        return self.inputs.closed_won if self.inputs.ended else float(np.quantile(self.samples, q))

    @cached_property
    def deals(self) -> pl.DataFrame:
        """The open deals with `p_close_calibrated` (the period effect averaged out) and `expected` (that x the
        amount): what they add, in expectation, to this forecast."""
        return _with_calibrated(self.inputs.deals, self.calibration)

    @property
    def by_owner(self) -> pl.DataFrame:
        """Per owner: `owner_id, team_id, closed_won, open_deals, pipeline, expected, p10, p50, p90, target,
        probability_of_target` (module header)."""
        return self._breakdowns[0]

    @property
    def by_team(self) -> pl.DataFrame:
        """Per team: the owners' rows added up, with the team's own range and target."""
        return self._breakdowns[1]

    @cached_property
    def _breakdowns(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        # Computed when first asked for: a backtest never needs them.
        return _breakdowns(self.inputs, self.calibration, n_sims=self.samples.size, random_state=self.random_state,
                           owner_targets=self.owner_targets, team_targets=self.team_targets)

    @property
    def expected(self) -> float:
        if self.inputs.ended:
            return self.inputs.closed_won
        return self.inputs.closed_won + float(self.deals["expected"].sum()) + self.inputs.new_business.mean

    @property
    def probability_of_target(self) -> float | None:
        return None if self.target is None else float((self.samples >= self.target).mean())


def won_in_period(frames: ForecastFrames, period: Period, known_at: datetime) -> pl.DataFrame:
    """Deals won inside `period` as known at `known_at`: `id`, `owner_id`, `team_id`, `won` (corporate
    currency, at each close date)."""
    at = naive_utc(known_at)
    won = snapshot(frames.timeline.filter(pl.col(s.STATUS) == _WON), at).filter(
        pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) >= midnight(period.start),
        pl.col(s.CLOSED_AT) < midnight(period.end))
    won = to_corporate(won, frames.rates, corporate=frames.corporate_currency, into="won")
    team = pl.col("team_id") if "team_id" in won.columns else pl.lit(None, pl.Int64).alias("team_id")
    return won.select(s.ID, s.OWNER_ID, team, pl.col("won").fill_null(0.0))


def actual_of(frames: ForecastFrames, period: Period) -> float:
    """What the period booked, as known at its end."""
    return float(won_in_period(frames, period, midnight(period.end) - timedelta(microseconds=1))["won"].sum())


class PeriodForecaster:
    """Scores, simulates and calibrates (see the module header). `scorer_factory` builds one deal scorer per
    moment (default: `ml.scorer.DealScorer`). `criteria_checks` and `exit_criteria` (`ml.frames.OrgFrames`)
    give the deal models the playbook's exit criteria met, when the org's frames do not carry them."""

    def __init__(self, *, scorer_factory: Callable[[], Scorer] | None = None, n_sims: int = 4000,
                 calibration_periods: int = 12, min_history_days: int = 180, random_state: int = 0,
                 criteria_checks: pl.DataFrame | None = None, exit_criteria: pl.DataFrame | None = None) -> None:
        self.scorer_factory = scorer_factory or DealScorer
        self.min_history_days = min_history_days
        self.n_sims = n_sims
        self.calibration_periods = calibration_periods
        self.random_state = random_state
        self.criteria_checks = criteria_checks
        self.exit_criteria = exit_criteria
        self._frames: tuple[object, OrgFrames] | None = None

    def deal_frames(self, frames: ForecastFrames) -> OrgFrames:
        """The frames the deal models read, built once per org and reused (with their feature cache) by every
        scoring of this forecaster."""
        if isinstance(frames, OrgFrames):
            return frames
        if self._frames is None or self._frames[0] is not frames:
            self._frames = (frames, OrgFrames.of(frames, criteria_checks=self.criteria_checks,
                                                 exit_criteria=self.exit_criteria))
        return self._frames[1]

    def prepare(self, frames: ForecastFrames, period: Period, as_of: datetime, *,
                reasons: bool = True) -> PeriodInputs:
        """Closed won, scored open deals and new business for `period` as known at `as_of` (`reasons`: the
        deals' top reasons, which backtests and calibration do not need)."""
        at = naive_utc(as_of)
        won = won_in_period(frames, period, at)
        closed = float(won["won"].sum())
        scorer = self.scorer_factory()
        name = type(scorer).__name__
        if at >= midnight(period.end):
            return PeriodInputs(period, at, closed, _deals(empty_scores()), NewBusinessEstimate(0.0, 0.0, 0), name,
                                won)
        deal_frames = self.deal_frames(frames)
        scorer.fit(deal_frames, as_of=at)
        scores = scorer.score(deal_frames, as_of=at, period_start=period.start, period_end=period.end,
                              reasons=reasons)
        model = NewBusinessModel().fit(frames.timeline, frames.rates, corporate=frames.corporate_currency,
                                       calendar=frames.calendar, kind=period.kind, as_of=at)
        return PeriodInputs(period, at, closed, _deals(scores), model.estimate(period, at), name, won)

    def grown(self, frames: ForecastFrames) -> datetime | None:
        """The first moment with `min_history_days` of the org's history behind it (None: no history)."""
        first = frames.timeline[s.CREATED_AT].min()
        return first + timedelta(days=self.min_history_days) if isinstance(first, datetime) else None

    def calibration_moments(self, frames: ForecastFrames, period: Period, as_of: datetime) -> list[
            tuple[Period, datetime]]:
        """The past periods (ended by `as_of`) and the moment at the same lead time in each: `as_of` minus
        the start of `period`, negative for a period not begun yet (see the module header)."""
        at = naive_utc(as_of)
        grown = self.grown(frames)
        if grown is None:
            return []
        offset = at - midnight(period.start)
        moments: list[tuple[Period, datetime]] = []
        current = frames.calendar.period_containing(min(period.start, at.date()), period.kind)
        while len(moments) < self.calibration_periods:
            current = frames.calendar.previous(current)
            moment = midnight(current.start) + min(offset, timedelta(days=current.days))
            if moment < grown:
                break
            if midnight(current.end) <= at:
                moments.append((current, moment))
        return moments[::-1]

    def calibrate(self, frames: ForecastFrames, history: Sequence[tuple[PeriodInputs, float]]) -> Calibration:
        """Shift and scale of the period effect from past forecasts made with at least `min_history_days` of
        the org's history behind them."""
        grown = self.grown(frames)
        if grown is None:
            return Calibration()
        points = [(inputs.calibration_outcome, actual) for inputs, actual in history if inputs.as_of >= grown]
        return calibrate(points, random_state=self.random_state)

    def forecast(self, frames: ForecastFrames, period: Period, as_of: datetime, *, target: float | None = None,
                 owner_targets: Mapping[int, float] | None = None, team_targets: Mapping[int, float] | None = None,
                 history: Sequence[tuple[PeriodInputs, float]] | None = None,
                 inputs: PeriodInputs | None = None) -> PeriodForecast:
        """The forecast; `history` (past inputs with their actuals) defaults to the calibration backtests;
        `owner_targets` / `team_targets` (by id, corporate currency) give the breakdowns their probability of
        reaching the target."""
        inputs = inputs or self.prepare(frames, period, as_of)
        actuals: tuple[tuple[str, float], ...] = ()
        if inputs.ended:
            calibration = Calibration(0.0, 0.0, 0)
        else:
            if history is None:
                history = [(self.prepare(frames, past, moment, reasons=False), actual_of(frames, past))
                           for past, moment in self.calibration_moments(frames, period, as_of)]
            calibration = self.calibrate(frames, history)
            actuals = tuple((h.period.label, a) for h, a in history)
        return simulated(inputs, calibration, target=target, n_sims=self.n_sims, random_state=self.random_state,
                         owner_targets=owner_targets or {}, team_targets=team_targets or {},
                         calibration_actuals=actuals)


def simulated(inputs: PeriodInputs, calibration: Calibration, *, target: float | None, n_sims: int,
              random_state: int, owner_targets: Mapping[int, float], team_targets: Mapping[int, float],
              calibration_actuals: tuple[tuple[str, float], ...] = ()) -> PeriodForecast:
    """The forecast of `inputs` under a calibration already learned: the total's draws and the breakdowns."""
    if inputs.ended:
        samples = np.full(n_sims, inputs.closed_won)
    else:
        samples = simulate(inputs.outcome(), calibration, n_sims=n_sims, random_state=random_state)
    return PeriodForecast(inputs, calibration, samples, target, calibration_actuals, random_state, owner_targets,
                          team_targets)


def restrict(forecast: PeriodForecast, owner_ids: Collection[int] | None, *, target: float | None,
             include_new_business: bool) -> PeriodForecast:
    """`forecast` for the deals (open and won) of `owner_ids` only (None: everyone), re-simulated with the same
    calibration, draws and period effect (no refitting); new business counts only if `include_new_business`
    (it belongs to no owner). Its quantiles, expected, probability of `target` and breakdowns are the
    subset's; `restrict(f, None, target=f.target, include_new_business=True)` is `f`."""
    inputs = forecast.inputs
    deals, won = inputs.deals, inputs.won
    if owner_ids is not None:
        ids = sorted({int(i) for i in owner_ids})
        deals = deals.filter(pl.col(s.OWNER_ID).is_in(ids))
        won = won.filter(pl.col(s.OWNER_ID).is_in(ids))
    business = inputs.new_business if include_new_business else NewBusinessEstimate(
        0.0, 0.0, inputs.new_business.periods)
    subset = replace(inputs, closed_won=float(won["won"].sum()), deals=deals, won=won, new_business=business)
    return simulated(subset, forecast.calibration, target=target, n_sims=forecast.samples.size,
                     random_state=forecast.random_state, owner_targets=forecast.owner_targets,
                     team_targets=forecast.team_targets, calibration_actuals=forecast.calibration_actuals)


def _column(frame: pl.DataFrame, name: str) -> FloatArray:
    return cast(FloatArray, frame[name].cast(pl.Float64).fill_null(0.0).to_numpy())


def _deals(scores: pl.DataFrame) -> pl.DataFrame:
    """Scores as the forecast's deals: the one valuation rule, the amount in the corporate currency at the
    scoring date, is both the pipeline `amount` and the `amount_if_won` simulated."""
    amount = pl.col("amount_corporate").cast(pl.Float64).fill_null(0.0)
    return scores.select(*(c for c in SCORE_COLUMNS if c != "amount_corporate"), amount.alias("amount"),
                         amount.alias("amount_if_won"))


def _with_calibrated(deals: pl.DataFrame, calibration: Calibration) -> pl.DataFrame:
    p = calibrated_probability(_column(deals, "p_close_in_period"), calibration)
    return deals.with_columns(pl.Series("p_close_calibrated", p, dtype=pl.Float64)).with_columns(
        (pl.col("p_close_calibrated") * pl.col("amount_if_won")).alias("expected"))


def _breakdowns(inputs: PeriodInputs, calibration: Calibration, *, n_sims: int, random_state: int,
                owner_targets: Mapping[int, float], team_targets: Mapping[int, float]) -> tuple[
                    pl.DataFrame, pl.DataFrame]:
    """Per owner and per team: closed won so far, open deals, pipeline, expected total, P10/P50/P90 and the
    probability of reaching the target (null without one)."""
    deals = _with_calibrated(inputs.deals, calibration)
    pipeline = deals.group_by(s.OWNER_ID).agg(
        pl.col("team_id").first().alias("_team"), pl.len().alias("open_deals"),
        pl.col("amount").sum().alias("pipeline"), pl.col("expected").sum().alias("_e"))
    closed = inputs.won.group_by(s.OWNER_ID).agg(pl.col("team_id").first().alias("_team_w"),
                                                 pl.col("won").sum().alias("closed_won"))
    owners = (
        pipeline.join(closed, on=s.OWNER_ID, how="full", coalesce=True, nulls_equal=True)
        .select(
            s.OWNER_ID,
            pl.coalesce("_team", "_team_w").alias("team_id"),
            pl.col("closed_won").fill_null(0.0),
            pl.col("open_deals").fill_null(0).cast(pl.Int64),
            pl.col("pipeline").fill_null(0.0),
            (pl.col("closed_won").fill_null(0.0) + pl.col("_e").fill_null(0.0)).alias("expected"),
        )
        .sort("expected", s.OWNER_ID, descending=[True, False], nulls_last=True)
    )
    owner_draws = _owner_draws(inputs, deals, owners, calibration, n_sims=n_sims, random_state=random_state)
    teams = owners.group_by("team_id").agg(
        pl.col("closed_won").sum(), pl.col("open_deals").sum(), pl.col("pipeline").sum(), pl.col("expected").sum()
    ).sort("expected", "team_id", descending=[True, False], nulls_last=True)
    team_of = {team: k for k, team in enumerate(teams["team_id"].to_list())}
    membership = np.zeros((teams.height, owners.height))
    membership[[team_of[t] for t in owners["team_id"].to_list()], np.arange(owners.height)] = 1.0
    team_draws = membership @ owner_draws
    return (_with_range(owners, owner_draws, s.OWNER_ID, owner_targets),
            _with_range(teams, team_draws, "team_id", team_targets))


def _owner_draws(inputs: PeriodInputs, deals: pl.DataFrame, owners: pl.DataFrame, calibration: Calibration, *,
                 n_sims: int, random_state: int) -> FloatArray:
    """`(owners, draws)`: each owner's closed won plus their open deals drawn with the org's period effect."""
    closed = owners["closed_won"].cast(pl.Float64).to_numpy()[:, None]
    if inputs.ended or deals.height == 0:
        return cast(FloatArray, closed)  # one draw: nothing left to chance
    draws = max(min(n_sims, _BREAKDOWN_CELLS // deals.height), 500)
    index = {owner: k for k, owner in enumerate(owners[s.OWNER_ID].to_list())}
    groups = cast(IntArray, np.array([index[o] for o in deals[s.OWNER_ID].to_list()], dtype=np.int64))
    totals = simulate_groups(_column(deals, "p_close_in_period"), _column(deals, "amount_if_won"), groups,
                             owners.height, calibration, n_sims=min(draws, n_sims), random_state=random_state)
    return cast(FloatArray, closed + totals)


def _with_range(rows: pl.DataFrame, draws: FloatArray, key: str, targets: Mapping[int, float]) -> pl.DataFrame:
    """`rows` plus p10, p50, p90 of `draws` (one row of draws per row), target and probability_of_target."""
    if rows.height == 0:
        empty = pl.lit(None, pl.Float64)
        return rows.with_columns(empty.alias("p10"), empty.alias("p50"), empty.alias("p90"), empty.alias("target"),
                                 empty.alias("probability_of_target"))
    p10, p50, p90 = np.quantile(draws, [0.1, 0.5, 0.9], axis=1)
    target = [targets.get(k) if k is not None else None for k in rows[key].to_list()]
    probability = [None if t is None else float((draws[i] >= t).mean()) for i, t in enumerate(target)]
    return rows.with_columns(
        pl.Series("p10", p10, dtype=pl.Float64), pl.Series("p50", p50, dtype=pl.Float64),
        pl.Series("p90", p90, dtype=pl.Float64), pl.Series("target", target, dtype=pl.Float64),
        pl.Series("probability_of_target", probability, dtype=pl.Float64))
