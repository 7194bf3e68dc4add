"""Deal scoring for the forecast: per open deal, P(won), P(won inside the period), the expected amount, and
the reasons. The one entry point the forecaster needs.

    scorer = DealScorer(random_state=7).fit(frames, as_of=cutoff)
    scored = scorer.score(frames, as_of=cutoff, period_start=date(2026, 10, 1), period_end=date(2027, 1, 1))

`fit` builds training examples at as-of dates every `every_days` before the cutoff from what was known at
the cutoff (`ml.training_set.training_examples`; deals still open then are censored, i.e. left out) and fits.
The dates lie on one fixed weekly grid (`GRID_ANCHOR`), whatever the cutoff, so the fits of a backtest or of
a forecast's calibration share their feature rows (`OrgFrames` caches them per date; only the labels, read
at each cutoff, differ):

- `win_model_` (`ml.win_model.WinModel`): P(won) on the resolved examples;
- `timing_models_` (two `ml.timing_model.TimingModel`): P(won within h days | won) on the won examples
  expanded over horizons ending by the cutoff, one at horizons drawn inside strata (`horizon_draws`), one at
  the seven `FIXED_HORIZONS`; the forecast reads their average. Each alone is a fair estimate of the same
  cumulative distribution with its own error (the fixed one is exact at its horizons and a step function
  between them, the drawn one continuous and noisier), and the two errors are far from the same: over the
  twelve to twenty-four monthly backtests of seven demo orgs the monthly P50 errors of forecasts made with
  either correlated 0.3-0.9, and the average's P50 was the best of the three on four of the seven orgs and
  never the worst (docs/forecasting.md, "Month length").

`score` computes the features of the deals open at `as_of` (never before the training cutoff: a model
must not score a date whose outcomes it learned from) and returns one row per deal:

- `p_win`: P(won, ever);
- `p_close_in_period`: `p_win × P(won inside [period_start, period_end) | won)` (the end is exclusive, as
  `domain.periods.Period.end`), where the second factor is
  `F(end) − F(start)` from the timing model's cumulative distribution (0 for a period already over);
- `expected_amount`: `p_close_in_period ×` the deal's amount in the corporate currency at `as_of`;
- `reasons`: the strongest signed contributions to `p_win` (`ml.explain`), a list of
  `{feature, contribution, text}` (empty lists with `reasons=False`, which skips the TreeSHAP pass).

A large org learns from a deterministic sample of its deals (`max_training_deals`, `sample_rate`): every
date of a sampled deal is kept, so examples stay whole deal histories, and the owners' records and stage
norms in the features still read every deal.

`frames` is an `ml.frames.OrgFrames`, or anything shaped like `services.org_data.OrgData` (`OrgLike`, taken
without exit-criteria checks). Both models fall back to smoothed rates when history is thin
(`uses_fallback`), so a young org still gets scores from day one.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput
from closewise.ml import features as f
from closewise.ml.explain import REASON_DTYPE
from closewise.ml.explain import reasons as explain
from closewise.ml.frames import OrgFrames, OrgLike
from closewise.ml.timing_model import (
    FIXED_HORIZONS,
    HORIZON,
    HORIZONS,
    QUARTER_END,
    TimingModel,
    horizon_draws,
    with_horizon,
)
from closewise.ml.training_set import training_examples
from closewise.ml.win_model import WinModel

SCORE_COLUMNS: Final = (
    s.ID,
    s.OWNER_ID,
    "team_id",
    s.STAGE,
    s.CLOSE_DATE,
    s.FORECAST_CATEGORY,
    "probability",
    "amount_corporate",
    "p_win",
    "p_close_in_period",
    "expected_amount",
    "reasons",
)
# `days_to_quarter_end` (QUARTER_DAYS) is one of the deal features, read by both models.
TIMING_FEATURES: Final = (*f.FEATURES, HORIZON, "close_gap_days", QUARTER_END)
GRID_ANCHOR: Final = datetime(2000, 1, 3)  # a Monday: training dates are this plus whole weeks


class DealScorer:
    """Fit on an org's history up to a cutoff; score its open deals for a period. See the module header.

    `random_state` defaults to a fixed seed (not None, unlike the estimators): a forecast asked twice of the
    same data must give the same answer."""

    def __init__(
        self,
        *,
        every_days: int = 7,
        min_lag_days: int = 14,
        history_days: int | None = None,
        n_reasons: int = 3,
        min_class_count: int = 40,
        max_training_deals: int | None = 20_000,
        random_state: int | None = 0,
    ) -> None:
        self.every_days = every_days
        self.min_lag_days = min_lag_days
        self.history_days = history_days
        self.n_reasons = n_reasons
        self.min_class_count = min_class_count
        self.max_training_deals = max_training_deals
        self.random_state = random_state

    def fit(self, frames: OrgFrames | OrgLike, *, as_of: datetime) -> DealScorer:
        frames = _frames(frames)
        cutoff = naive_utc(as_of)
        examples = training_examples(
            frames,
            cutoff=cutoff,
            every_days=self.every_days,
            min_lag_days=self.min_lag_days,
            history_days=self.history_days,
            anchor=GRID_ANCHOR,
            sample_rate=self.sample_rate(frames, cutoff),
        )
        resolved = examples.filter(pl.col("resolved"))
        win = WinModel(min_class_count=self.min_class_count, random_state=self.random_state)
        # The two models are independent, each trained single-threaded with its own seed: the win model trains in
        # a thread while the timing model's examples are built here (Polars releases the GIL). The LightGBM calls
        # themselves take turns (boosting._NATIVE: its native code is not safe from two threads at once).
        with ThreadPoolExecutor(max_workers=1) as pool:
            fitted = pool.submit(win.fit, resolved.select(f.FEATURES), resolved["won"].to_numpy(),
                                 groups=resolved[s.ID].to_numpy(), time=resolved[s.AS_OF].to_numpy())
            sets = [timing_examples(resolved, cutoff=cutoff, drawn=drawn) for drawn in (True, False)]
            self.timing_models_ = tuple(self._fit_timing(timing) for timing in sets)
            self.win_model_ = fitted.result()
        self.cutoff_ = cutoff
        self.n_examples_ = resolved.height
        self.n_timing_examples_ = sum(timing.height for timing in sets)
        return self

    def _fit_timing(self, timing: pl.DataFrame) -> TimingModel:
        model = TimingModel(min_class_count=self.min_class_count, random_state=self.random_state)
        model.fit(
            timing.select(TIMING_FEATURES),
            timing["won_within"].to_numpy(),
            groups=timing[s.ID].to_numpy(),
            time=timing[s.AS_OF].to_numpy(),
        )
        return model

    def sample_rate(self, frames: OrgFrames, cutoff: datetime) -> float:
        """The share of deals to learn from: all of them up to `max_training_deals` created by the cutoff, else
        the largest power of 1/2 that keeps about that many (a power of 1/2, so the fits of one backtest mostly
        share a rate and so their feature rows)."""
        if self.max_training_deals is None:
            return 1.0
        created = frames.opportunities.filter(pl.col(s.CREATED_AT) <= cutoff).height
        if created <= self.max_training_deals:
            return 1.0
        return float(0.5 ** math.ceil(math.log2(created / self.max_training_deals)))

    @property
    def uses_fallback(self) -> bool:
        return bool(self.win_model_.uses_fallback_ or any(m.uses_fallback_ for m in self.timing_models_))

    def score(
        self, frames: OrgFrames | OrgLike, *, as_of: datetime, period_start: date, period_end: date,
        reasons: bool = True,
    ) -> pl.DataFrame:
        frames = _frames(frames)
        if not hasattr(self, "cutoff_"):
            raise InvalidInput("DealScorer is not fitted yet; call fit() first")
        at = naive_utc(as_of)
        if at < self.cutoff_:
            raise InvalidInput(f"cannot score as of {at:%Y-%m-%d}, before the training cutoff {self.cutoff_:%Y-%m-%d}")
        if period_end <= period_start:
            raise InvalidInput(f"the period ends ({period_end}, exclusive) before it starts ({period_start})")
        return self.score_features(
            f.deal_features(frames, at), as_of=at, period_start=period_start, period_end=period_end, reasons=reasons
        )

    def score_features(
        self, features: pl.DataFrame, *, as_of: datetime, period_start: date, period_end: date, reasons: bool = True
    ) -> pl.DataFrame:
        """`score` on rows of `features_at` computed already (one as-of date)."""
        at = naive_utc(as_of)
        if features.height == 0:
            return empty_scores()
        p_win = self.win_model_.predict_proba(features.select(f.FEATURES))[:, 1]
        p_inside = self.p_won_between(features, at, period_start, period_end)
        p_close = p_win * p_inside
        if reasons:
            contributions, _, names = self.win_model_.contributions(features.select(f.FEATURES))
            why = explain(features, contributions, names, n=self.n_reasons)
        else:
            # One empty list repeated: building it from a Python list of lists costs ~0.2 ms a row.
            why = pl.Series("reasons", [[]], dtype=REASON_DTYPE).new_from_index(0, features.height)
        return features.with_columns(
            pl.Series("p_win", p_win),
            pl.Series("p_close_in_period", p_close),
            pl.Series("expected_amount", p_close * features["amount_corporate"].fill_null(0.0).to_numpy()),
            why,
        ).select(SCORE_COLUMNS)

    def p_won_between(self, features: pl.DataFrame, as_of: datetime, start: date, end: date) -> np.ndarray:
        """P(won inside [start, end) | won) per row: F(days to the end) − F(days to the start)."""
        begin = midnight(start)
        finish = midnight(end)
        to_end = (finish - as_of) / timedelta(days=1)
        to_start = (begin - as_of) / timedelta(days=1)
        if to_end <= 0:
            return np.zeros(features.height)
        f_end = self._cdf(features, to_end)
        f_start = self._cdf(features, to_start) if to_start > 0 else np.zeros(features.height)
        return np.asarray(np.clip(f_end - f_start, 0.0, 1.0), dtype=np.float64)

    def _cdf(self, features: pl.DataFrame, horizon: float) -> np.ndarray:
        rows = with_horizon(features.select(f.FEATURES), horizon)
        x = rows.select(TIMING_FEATURES)
        return np.asarray(np.mean([m.predict_proba(x)[:, 1] for m in self.timing_models_], axis=0), dtype=np.float64)


def timing_examples(resolved: pl.DataFrame, *, cutoff: datetime, drawn: bool = True) -> pl.DataFrame:
    """Won examples repeated once per horizon stratum (`timing_model.horizon_draws`; with `drawn` false, once
    per `FIXED_HORIZONS`), each horizon ending by `cutoff`, labelled `won_within` (0/1)."""
    won = resolved.filter(pl.col("won") == 1)
    at = naive_utc(cutoff)
    keys = won.select(s.ID, s.AS_OF)
    horizons: list[float | pl.Series] = ([horizon_draws(keys, stratum) for stratum in range(len(HORIZONS))] if drawn
                                         else [float(h) for h in FIXED_HORIZONS])
    pieces = [
        with_horizon(won, horizon)
        .filter(pl.col(s.AS_OF) + pl.duration(microseconds=(pl.col(HORIZON) * 86_400e6).cast(pl.Int64)) <= at)
        .with_columns((pl.col("days_to_outcome") <= pl.col(HORIZON)).cast(pl.Int8).alias("won_within"))
        for horizon in horizons
    ]
    return pl.concat(pieces).sort(s.AS_OF, s.ID, HORIZON)


def _frames(frames: OrgFrames | OrgLike) -> OrgFrames:
    return frames if isinstance(frames, OrgFrames) else OrgFrames.of(frames)


def empty_scores() -> pl.DataFrame:
    """No scores, typed as `score` returns them."""
    return pl.DataFrame(
        schema={
            s.ID: pl.Int64(),
            s.OWNER_ID: pl.Int64(),
            "team_id": pl.Int64(),
            s.STAGE: pl.String(),
            s.CLOSE_DATE: pl.Date(),
            s.FORECAST_CATEGORY: pl.String(),
            "probability": pl.Float64(),
            "amount_corporate": pl.Float64(),
            "p_win": pl.Float64(),
            "p_close_in_period": pl.Float64(),
            "expected_amount": pl.Float64(),
            "reasons": REASON_DTYPE,
        }
    )
