"""The deal timing model: P(a deal that will be won is won within `h` days of the as-of date).

Slip is its own outcome: a deal can be real and still land next quarter. The model learns the distribution
of the time to win, conditional on winning, as a cumulative distribution: every won training example at
date `t` is repeated once per horizon stratum `HORIZONS` (up to 7 days, then 7-14, 14-21, 21-28, 28-31,
31-45, 45-60, 60-90, 90-92, 92-180 and 180-365) with the label "won within `h` days" and two extra features,
`horizon_days` (`h`) and `close_gap_days` (days from `t + h` to the deal's expected close date). LightGBM fits
it with monotone constraints (increasing in `h`, decreasing in the gap), so the predicted F(h) never decreases
as the horizon grows, and the probability of winning inside a period `[S, E]` is F(E - t) - F(S - t) >= 0. This is the
"person-period" construction of discrete-time survival analysis (Singer & Willett 1993) fitted by a flexible
classifier instead of a logit; a pair `(t, h)` is used only if `t + h` is on or before the training cutoff,
so every label is known then.

Each example's horizon is drawn inside its stratum (`horizon_draws`: uniform, from a hash of the deal and the
date, so the same example gets the same horizons in every fit), not set at the stratum's end. With the seven
fixed horizons a tree can only split between them (LightGBM puts its bin edges at the midpoints of a
feature's distinct values), so F was a step function: F(28) = F(30) = F(31), February and the 31-day months
forecast as if they had 30 days, and F(20) = F(14) for a forecast made with 20 days of the month left
(on the 100,000-deal demo org, deals expected to win inside 20 days came out at 974 against 950 inside 14 and
2,405 inside 25). Drawn horizons let F rise day by day. The strata are narrow where forecasts read F most: 28-31
days (a month, from its first day) and 90-92 (a quarter); drawn inside the seven old strata (as many rows as
the fixed grid) the month-length data was too thin and the backtests got worse. `ml.scorer` fits one model at
drawn horizons and one at the `FIXED_HORIZONS` and averages them (docs/forecasting.md, "Month length").

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

HORIZONS: Final[tuple[int, ...]] = (7, 14, 21, 28, 31, 45, 60, 90, 92, 180, 365)  # the strata's upper ends (days)
FIXED_HORIZONS: Final[tuple[int, ...]] = (7, 14, 30, 60, 90, 180, 365)  # the fixed grid (`ml.scorer`)
HORIZON: Final = "horizon_days"
CLOSE_GAP: Final = "close_gap_days"
QUARTER_DAYS: Final = "days_to_quarter_end"
QUARTER_END: Final = "quarter_end_in_horizon"


def horizon_draws(keys: pl.DataFrame, stratum: int) -> pl.Series:
    """Per row of `keys` (a deal id and an as-of date), a horizon drawn uniformly in the `stratum`-th stratum
    `(HORIZONS[stratum - 1], HORIZONS[stratum]]` (the first starts at 0): a fixed hash of the row and the
    stratum, so an example's horizons are the same in every fit and every run."""
    low = float(HORIZONS[stratum - 1]) if stratum else 0.0
    high = float(HORIZONS[stratum])
    unit = keys.select(pl.struct(pl.all()).hash(seed=stratum).cast(pl.Float64) / 2.0**64).to_series()
    return (high - (high - low) * unit).alias(HORIZON)  # in (low, high]


def with_horizon(features: pl.DataFrame, horizon_days: float | pl.Expr | pl.Series) -> pl.DataFrame:
    """`features` with the timing columns for a horizon (a number, or one per row): the horizon, the
    close gap and, when `features` has `days_to_quarter_end`, whether the horizon reaches the fiscal quarter's
    last three days."""
    h = horizon_days if isinstance(horizon_days, pl.Expr | pl.Series) else pl.lit(float(horizon_days))
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
    """Share won within each horizon stratum by (stage, close date inside the horizon), smoothed; linear in
    the horizon between the strata's mean horizons."""

    def __init__(self, *, prior_strength: float = 20.0, random_state: int | None = None) -> None:
        self.prior_strength = prior_strength
        self.random_state = random_state

    def fit(self, x: pl.DataFrame | np.ndarray, y: np.ndarray | pl.Series) -> HorizonRateModel:
        frame = as_frame(x)
        target = binary_target(y, frame.height)
        if HORIZON not in frame.columns:
            raise InvalidInput(f"column {HORIZON!r} is missing", where="timing features")
        keyed = self._keys(frame).with_columns(pl.Series("y", target, dtype=pl.Float64))
        # Horizons drawn inside a stratum are pooled at the stratum's mean horizon (its midpoint when drawn
        # uniformly): the share won within them estimates F there. Fixed horizons keep their own value.
        stratum = np.searchsorted(np.asarray(HORIZONS, dtype=np.float64), keyed["h"].to_numpy(), side="left")
        keyed = keyed.with_columns(pl.Series("stratum", stratum)).with_columns(pl.col("h").mean().over("stratum"))
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
