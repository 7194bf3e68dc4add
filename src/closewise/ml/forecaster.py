"""The period forecast: closed won so far, P10/P50/P90, expected, and the probability of reaching a target.

For a period P and a moment `as_of`, with only what was known at `as_of`:

1. closed won so far: deals won inside P by `as_of` (corporate currency, at their close date);
2. every deal open at `as_of` scored by the deal models (`DealScorer`: `closewise.ml.scorer` when it is
   installed, else the interim `ml.stage_scorer`), trained on history before `as_of`: the probability of
   being won inside P, the probability of being won at all, the expected amount, and reasons;
3. new business from deals not yet created (`ml.newbusiness`);
4. the outcome simulated with a period-level latent effect shared by all deals (`ml.simulation`, a
   random-effects / one-factor Gaussian copula model), whose shift and scale are calibrated on the org's own
   backtests: the same forecast made at the same point of each of the last `calibration_periods` periods
   that ended by `as_of` (and began at least `min_history_days` into the org's history), each with models
   trained only on what was known at its own moment.

A period that has ended (`as_of` at or after its end) is known: its forecast is its closed-won total, with
P10 = P50 = P90. Breakdowns by owner and team carry closed won and the expected amount from their open
deals (new business is not attributed).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.ml.explain import REASON_DTYPE
from closewise.ml.newbusiness import NewBusinessEstimate, NewBusinessModel
from closewise.ml.simulation import Calibration, FloatArray, Outcome, calibrate, simulate
from closewise.ml.stage_scorer import SCORE_COLUMNS, OrgFrames, StageRateScorer, midnight, naive_utc

_OPEN = OpportunityStatus.OPEN.value
_WON = OpportunityStatus.WON.value
_DEAL_ATTRIBUTES = (s.ID, s.OWNER_ID, "team_id", s.STAGE, s.CLOSE_DATE, s.FORECAST_CATEGORY, s.PROBABILITY)


class ForecastFrames(OrgFrames, Protocol):
    @property
    def calendar(self) -> FiscalCalendar: ...


class DealScorer(Protocol):
    """The deal models' interface: `fit` on history before `as_of`; `score` the deals open at `as_of` for the
    period `[period_start, period_end)` as `id, p_win, p_close_in_period, expected_amount, reasons`."""

    def fit(self, frames: Any, *, as_of: datetime) -> Any: ...

    def score(self, frames: Any, *, as_of: datetime, period_start: Any, period_end: Any) -> pl.DataFrame: ...


def default_scorer() -> DealScorer:
    """The deal models (`closewise.ml.scorer.DealScorer`) when they exist, else the interim stage-rate scorer."""
    if importlib.util.find_spec("closewise.ml.scorer") is not None:
        module = importlib.import_module("closewise.ml.scorer")
        if hasattr(module, "DealScorer"):
            return cast(DealScorer, module.DealScorer())
    return StageRateScorer()


@dataclass(frozen=True)
class PeriodInputs:
    """What a forecast of `period` at `as_of` is simulated from."""

    period: Period
    as_of: datetime  # naive UTC
    closed_won: float
    deals: pl.DataFrame  # open deals: attributes, p_win, p_close_in_period, expected_amount, reasons
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
        p = cast(FloatArray, self.deals["p_close_in_period"].cast(pl.Float64).fill_null(0.0).to_numpy())
        amount = cast(FloatArray, self.deals["amount_if_won"].cast(pl.Float64).fill_null(0.0).to_numpy())
        return Outcome(self.closed_won, p, amount, self.new_business.mean, self.new_business.sd)


@dataclass(frozen=True)
class PeriodForecast:
    inputs: PeriodInputs
    calibration: Calibration
    samples: FloatArray
    target: float | None
    by_owner: pl.DataFrame
    by_team: pl.DataFrame
    calibration_actuals: tuple[tuple[str, float], ...] = field(default=())

    def quantile(self, q: float) -> float:
        return self.inputs.closed_won if self.inputs.ended else float(np.quantile(self.samples, q))

    @property
    def expected(self) -> float:
        return self.inputs.closed_won if self.inputs.ended else float(self.samples.mean())

    @property
    def probability_of_target(self) -> float | None:
        return None if self.target is None else float((self.samples >= self.target).mean())


def won_in_period(frames: OrgFrames, period: Period, known_at: datetime) -> pl.DataFrame:
    """Deals won inside `period` as known at `known_at`: `id`, `owner_id`, `team_id`, `won` (corporate
    currency, at each close date)."""
    at = naive_utc(known_at)
    won = snapshot(frames.timeline.filter(pl.col(s.STATUS) == _WON), at).filter(
        pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) >= midnight(period.start),
        pl.col(s.CLOSED_AT) < midnight(period.end))
    won = to_corporate(won, frames.rates, corporate=frames.corporate_currency, into="won")
    team = pl.col("team_id") if "team_id" in won.columns else pl.lit(None, pl.Int64).alias("team_id")
    return won.select(s.ID, s.OWNER_ID, team, pl.col("won").fill_null(0.0))


def actual_of(frames: OrgFrames, period: Period) -> float:
    """What the period booked, as known at its end."""
    return float(won_in_period(frames, period, midnight(period.end) - timedelta(microseconds=1))["won"].sum())


class PeriodForecaster:
    """Scores, simulates and calibrates (see the module header). `scorer_factory` builds one deal scorer per
    moment (default: `default_scorer`)."""

    def __init__(self, *, scorer_factory: Callable[[], DealScorer] | None = None, n_sims: int = 4000,
                 calibration_periods: int = 12, min_history_days: int = 180, random_state: int = 0) -> None:
        self.scorer_factory = scorer_factory or default_scorer
        self.min_history_days = min_history_days
        self.n_sims = n_sims
        self.calibration_periods = calibration_periods
        self.random_state = random_state

    def prepare(self, frames: ForecastFrames, period: Period, as_of: datetime) -> PeriodInputs:
        """Closed won, scored open deals and new business for `period` as known at `as_of`."""
        at = naive_utc(as_of)
        won = won_in_period(frames, period, at)
        closed = float(won["won"].sum())
        scorer = self.scorer_factory()
        name = type(scorer).__name__
        attributes = [c for c in _DEAL_ATTRIBUTES if c in frames.timeline.columns]
        if at >= midnight(period.end):
            deals = pl.DataFrame(schema={**{c: frames.timeline.schema[c] for c in attributes},
                                         **dict.fromkeys(("amount", "p_win", "p_close_in_period", "expected_amount",
                                                          "amount_if_won"),
                                                         pl.Float64()),
                                         "reasons": REASON_DTYPE})
            return PeriodInputs(period, at, closed, deals, NewBusinessEstimate(0.0, 0.0, 0), name, won)
        scorer.fit(frames, as_of=at)
        scores = scorer.score(frames, as_of=at, period_start=period.start, period_end=period.end)
        current = snapshot(frames.timeline.filter(pl.col(s.STATUS) == _OPEN), at).filter(pl.col(s.STATUS) == _OPEN)
        current = to_corporate(current, frames.rates, corporate=frames.corporate_currency, into="amount")
        # expected_amount is p_close_in_period x amount; the simulation draws the amount if won.
        deals = current.select(*attributes, "amount").join(
            scores.select(*SCORE_COLUMNS), on=s.ID, how="inner").with_columns(
            pl.when(pl.col("p_close_in_period") > 0)
            .then(pl.col("expected_amount") / pl.col("p_close_in_period"))
            .otherwise(pl.col("amount")).fill_null(0.0).alias("amount_if_won"))
        model = NewBusinessModel().fit(frames.timeline, frames.rates, corporate=frames.corporate_currency,
                                       calendar=frames.calendar, kind=period.kind, as_of=at)
        return PeriodInputs(period, at, closed, deals, model.estimate(period, at), name, won)

    def calibration_moments(self, frames: ForecastFrames, period: Period, as_of: datetime) -> list[
            tuple[Period, datetime]]:
        """The past periods (ended by `as_of`) and the moment at the same point of each."""
        at = naive_utc(as_of)
        offset = max(at - midnight(period.start), timedelta(0))
        moments: list[tuple[Period, datetime]] = []
        current = frames.calendar.period_containing(min(period.start, at.date()), period.kind)
        while len(moments) < self.calibration_periods:
            current = frames.calendar.previous(current)
            moment = midnight(current.start) + min(offset, timedelta(days=current.days))
            if midnight(current.end) <= at:
                moments.append((current, moment))
            if current.end.year < at.year - 50:
                break
        return moments[::-1]

    def calibrate(self, frames: ForecastFrames, history: Sequence[tuple[PeriodInputs, float]]) -> Calibration:
        """Shift and scale of the period effect from past forecasts made with at least `min_history_days` of
        the org's history behind them (models of a newborn org say little about today's)."""
        first = frames.timeline[s.CREATED_AT].min()
        if not isinstance(first, datetime):
            return Calibration()
        grown = first + timedelta(days=self.min_history_days)
        points = [(inputs.outcome(), actual) for inputs, actual in history if inputs.as_of >= grown]
        return calibrate(points, random_state=self.random_state)

    def forecast(self, frames: ForecastFrames, period: Period, as_of: datetime, *, target: float | None = None,
                 history: Sequence[tuple[PeriodInputs, float]] | None = None,
                 inputs: PeriodInputs | None = None) -> PeriodForecast:
        """The forecast; `history` (past inputs with their actuals) defaults to the calibration backtests."""
        inputs = inputs or self.prepare(frames, period, as_of)
        if inputs.ended:
            samples = np.full(self.n_sims, inputs.closed_won)
            return PeriodForecast(inputs, Calibration(0.0, 0.0, 0), samples, target, *_breakdowns(inputs))
        if history is None:
            history = [(self.prepare(frames, past, moment), actual_of(frames, past))
                       for past, moment in self.calibration_moments(frames, period, as_of)]
        calibration = self.calibrate(frames, history)
        samples = simulate(inputs.outcome(), calibration, n_sims=self.n_sims, random_state=self.random_state)
        actuals = tuple((h.period.label, a) for h, a in history)
        return PeriodForecast(inputs, calibration, samples, target, *_breakdowns(inputs), actuals)


def _breakdowns(inputs: PeriodInputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per owner and per team: closed won so far, open deals, their pipeline and the expected total."""
    deals = inputs.deals.with_columns(pl.col("expected_amount").alias("_e"))
    if "team_id" not in deals.columns:
        deals = deals.with_columns(pl.lit(None, pl.Int64).alias("team_id"))
    pipeline = deals.group_by(s.OWNER_ID).agg(
        pl.col("team_id").first().alias("_team"), pl.len().alias("open_deals"),
        pl.col("amount").sum().alias("pipeline"), pl.col("_e").sum().alias("_e"))
    closed = inputs.won.group_by(s.OWNER_ID).agg(pl.col("team_id").first().alias("_team_w"),
                                                 pl.col("won").sum().alias("closed_won"))
    owners = (
        pipeline.join(closed, on=s.OWNER_ID, how="full", coalesce=True)
        .select(
            s.OWNER_ID,
            pl.coalesce("_team", "_team_w").alias("team_id"),
            pl.col("closed_won").fill_null(0.0),
            pl.col("open_deals").fill_null(0).cast(pl.Int64),
            pl.col("pipeline").fill_null(0.0),
            (pl.col("closed_won").fill_null(0.0) + pl.col("_e").fill_null(0.0)).alias("expected"),
        )
        .sort("expected", s.OWNER_ID, descending=[True, False])
    )
    teams = owners.group_by("team_id").agg(
        pl.col("closed_won").sum(), pl.col("open_deals").sum(), pl.col("pipeline").sum(), pl.col("expected").sum()
    ).sort("expected", descending=True)
    return owners, teams
