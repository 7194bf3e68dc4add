"""The deal timing model: P(a deal that will be won is won within `h` days of the as-of date).

Slip is its own outcome: a deal can be real and still land next quarter. The model learns the distribution
of the time to win, conditional on winning, as a discrete-time cumulative distribution: every won training
example at date `t` is repeated at the horizons `HORIZONS` (7 days to a year) with the label "won within
`h` days" and two extra features, `horizon_days` (`h`) and `close_gap_days` (days from `t + h` to the
deal's expected close date). LightGBM fits it with monotone constraints (increasing in `h`, decreasing in
the gap), so the predicted F(h) never decreases as the horizon grows, and the probability of winning inside
a period `[S, E]` is F(E - t) - F(S - t) >= 0. This is the "person-period" construction of discrete-time
survival analysis (Singer & Willett 1993) fitted by a flexible classifier instead of a logit; a pair
`(t, h)` is used only if `t + h` is on or before the training cutoff, so every label is known then.

Wins bunch at fiscal quarter ends (reps hold deals for the quarter's last days, managers pull next quarter's
in): the model also sees `days_to_quarter_end` (from `t`) and `quarter_end_in_horizon` (whether `t + h`
reaches the quarter's last three days, monotone increasing in `h` like the horizon itself), so a month that
ends a quarter gets the wins the calendar pushes into it.

Fallback (fewer than 40 won deals, or 40 never won within a horizon): per horizon, the share of won
examples won within it, by stage and by whether the expected close date falls inside the horizon, shrunk
toward the horizon's overall share (empirical Bayes, as `ml.rates`); between the training horizons the
estimate is interpolated linearly in `h`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from closewise.errors import InvalidInput
from closewise.ml.boosting import CalibratedBoosting, Fallback
from closewise.ml.design import as_frame, binary_target

HORIZONS: Final[tuple[int, ...]] = (7, 14, 30, 60, 90, 180, 365)
HORIZON: Final = "horizon_days"
CLOSE_GAP: Final = "close_gap_days"
QUARTER_DAYS: Final = "days_to_quarter_end"
QUARTER_END: Final = "quarter_end_in_horizon"


def with_horizon(features: pl.DataFrame, horizon_days: float | pl.Expr) -> pl.DataFrame:
    """`features` with the timing columns for a horizon (a number, or an expression per row): the horizon, the
    close gap and, when `features` has `days_to_quarter_end`, whether the horizon reaches the fiscal quarter's
    last three days."""
    h = horizon_days if isinstance(horizon_days, pl.Expr) else pl.lit(float(horizon_days))
    out = features.with_columns(h.cast(pl.Float64).alias(HORIZON)).with_columns(
        (pl.col("days_to_close") - pl.col(HORIZON)).alias(CLOSE_GAP)
    )
    if QUARTER_DAYS in out.columns:
        out = out.with_columns((pl.col(HORIZON) >= pl.col(QUARTER_DAYS) - 3).cast(pl.Float64).alias(QUARTER_END))
    return out


class TimingModel(CalibratedBoosting):
    """P(won within `horizon_days` | won). `x` must hold `horizon_days` and `close_gap_days`."""

    def _make_fallback(self) -> Fallback:
        return HorizonRateModel(prior_strength=self.prior_strength)

    def _monotone(self, columns: list[str]) -> list[int]:
        return [1 if name in (HORIZON, QUARTER_END) else -1 if name == CLOSE_GAP else 0 for name in columns]


class HorizonRateModel:
    """Share won within each training horizon by (stage, close date inside the horizon), smoothed."""

    def __init__(self, *, prior_strength: float = 20.0, random_state: int | None = None) -> None:
        self.prior_strength = prior_strength
        self.random_state = random_state

    def fit(self, x: pl.DataFrame | np.ndarray, y: np.ndarray | pl.Series) -> HorizonRateModel:
        frame = as_frame(x)
        target = binary_target(y, frame.height)
        if HORIZON not in frame.columns:
            raise InvalidInput(f"column {HORIZON!r} is missing", where="timing features")
        keyed = self._keys(frame).with_columns(pl.Series("y", target, dtype=pl.Float64))
        overall = keyed.group_by("h").agg(((pl.col("y").sum() + 0.5) / (pl.len() + 1.0)).alias("r"))
        self.horizons_ = np.sort(overall["h"].to_numpy())
        self.overall_: dict[float, float] = dict(zip(overall["h"].to_list(), overall["r"].to_list(), strict=True))
        cells = keyed.group_by("h", "stage", "inside").agg(pl.col("y").sum().alias("w"), pl.len().alias("n"))
        m = self.prior_strength
        self.cells_: dict[tuple[float, float, bool], float] = {
            (h, stage, inside): (w + m * self.overall_[h]) / (n + m)
            for h, stage, inside, w, n in cells.select("h", "stage", "inside", "w", "n").iter_rows()
        }
        self.n_features_in_ = frame.width
        return self

    def predict_proba(self, x: pl.DataFrame | np.ndarray) -> np.ndarray:
        frame = as_frame(x)
        keyed = self._keys(frame)
        p = np.array(
            [self._rate(h, stage, inside) for h, stage, inside in keyed.select("h", "stage", "inside").iter_rows()],
            dtype=np.float64,
        )
        return np.column_stack([1.0 - p, p])

    def contributions(self, x: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        frame = as_frame(x)
        return np.zeros((frame.height, 1)), np.zeros(frame.height), [HORIZON]

    def _keys(self, frame: pl.DataFrame) -> pl.DataFrame:
        stage = pl.col("stage_order") if "stage_order" in frame.columns else pl.lit(0.0)
        gap = pl.col(CLOSE_GAP) if CLOSE_GAP in frame.columns else pl.lit(0.0)
        return frame.select(
            pl.col(HORIZON).cast(pl.Float64).alias("h"),
            stage.cast(pl.Float64).fill_null(-1.0).alias("stage"),
            (gap.cast(pl.Float64) <= 0).fill_null(value=False).alias("inside"),
        )

    def _rate(self, h: float, stage: float, inside: bool) -> float:
        if h <= 0:
            return 0.0
        grid = self.horizons_
        if grid.size == 0:
            return 0.5

        def at(k: float) -> float:
            return float(self.cells_.get((k, stage, inside), self.overall_[k]))

        if h <= grid[0]:
            return at(float(grid[0])) * h / float(grid[0])
        if h >= grid[-1]:
            return at(float(grid[-1]))
        upper = int(np.searchsorted(grid, h))
        lo, hi = float(grid[upper - 1]), float(grid[upper])
        weight = (h - lo) / (hi - lo)
        return (1 - weight) * at(lo) + weight * at(hi)
