"""Scoring forecasts against what happened: period forecasts (P10/P50/P90) and deal probabilities.

Period forecasts, over `n` periods with actual `y_i` and forecast quantiles:

- **MAPE** of the P50, `mean_i |p50_i − y_i| / |y_i|` (Hyndman & Koehler 2006, "Another look at measures of
  forecast accuracy", IJF 22(4)). Undefined for `y_i = 0`: those periods are left out and counted in
  `zero_actuals`; with none left the MAPE is None.
- **Bias** of the P50, the signed mean percentage error `mean_i (p50_i − y_i) / |y_i|` over the same periods:
  positive means over-forecasting (happy ears), negative under-forecasting (sandbagging).
- **Interval coverage**, the share of periods with `p10_i ≤ y_i ≤ p90_i`. A calibrated 80% interval covers
  about 0.8 (Gneiting, Balabdaoui & Raftery 2007, "Probabilistic forecasts, calibration and sharpness").
- **CRPS**, the continuous ranked probability score `∫ (F(x) − 1{y ≤ x})² dx` (Gneiting & Raftery 2007,
  "Strictly proper scoring rules, prediction, and estimation", JASA 102(477)), in currency units, lower is
  better, 0 only for a point forecast equal to the actual. Two estimators:
  - from samples `x_1..x_m` of the forecast distribution, the energy form `E|X − y| − ½ E|X − X'|`
    (Gneiting & Raftery 2007, eq. 21), computed exactly over the empirical distribution in O(m log m) with
    the sorted samples: `½ E|X − X'| = Σ_j (2j − m − 1) x_(j) / m² = Σ_k k (m − k) (x_(k+1) − x_(k)) / m²`
    (the "NRG" estimator of Zamo & Naveau 2018, "Estimation of the CRPS for ensemble forecasts", Math.
    Geosci. 50);
  - from quantiles at levels `τ_1..τ_K`, twice the average pinball (quantile) loss
    `ρ_τ(y − q) = (1{y < q} − τ)(q − y)`, the discretisation of `CRPS = 2 ∫₀¹ ρ_τ(y − F⁻¹(τ)) dτ`
    (Laio & Tamea 2007, HESS 11; Gneiting & Ranjan 2011). With only P10/P50/P90 it is a coarse but proper
    score of those three quantiles.

Deal probabilities, with predictions `p_i ∈ [0, 1]` and outcomes `o_i ∈ {0, 1}`:

- **Brier score** `mean_i (p_i − o_i)²` (Brier 1950), in [0, 1], lower is better.
- **ROC AUC**, the probability that a random positive is ranked above a random negative, ties counting
  half: the Mann-Whitney statistic `(R₊ − n₊(n₊ + 1)/2) / (n₊ n₋)` with `R₊` the sum of the positives'
  average ranks (Hanley & McNeil 1982, Radiology 143). None when only one class occurs.
- **Calibration table** (reliability diagram, Murphy & Winkler 1977): the predictions split into ten bins,
  equal-width `[0, 0.1), ..., [0.9, 1.0]` (`uniform`) or equal-count deciles (`quantile`); per bin the count,
  the mean prediction and the observed rate. Empty bins are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from closewise.errors import InvalidInput

Values = Sequence[float] | npt.NDArray[np.float64] | pl.Series
Outcomes = (
    Sequence[bool] | Sequence[int] | npt.NDArray[np.bool_] | npt.NDArray[np.int64] | npt.NDArray[np.float64] | pl.Series
)
FloatArray = npt.NDArray[np.float64]

CALIBRATION_BINS: Final = 10
CALIBRATION_SCHEMA: Final[dict[str, pl.DataType]] = {
    "bin": pl.Int64(),
    "lower": pl.Float64(),
    "upper": pl.Float64(),
    "count": pl.Int64(),
    "mean_predicted": pl.Float64(),
    "observed_rate": pl.Float64(),
}


@dataclass(frozen=True)
class ForecastScore:
    """Scores of period forecasts over `periods` periods (module header for the definitions)."""

    periods: int
    mape: float | None  # fraction: 0.25 is 25%
    bias: float | None  # signed fraction: > 0 over-forecasts
    coverage: float | None  # share of actuals inside [P10, P90]
    crps: float | None  # mean CRPS from the three quantiles, currency units
    zero_actuals: int  # periods left out of MAPE and bias


@dataclass(frozen=True)
class ProbabilityScore:
    """Scores of deal probabilities against outcomes (module header for the definitions)."""

    deals: int
    positives: int
    brier: float | None
    auc: float | None
    calibration: pl.DataFrame  # CALIBRATION_SCHEMA


# --- period forecasts ------------------------------------------------------------------------------------


def mape(actual: Values, forecast: Values) -> float | None:
    """Mean absolute percentage error of `forecast` (fraction), over the non-zero actuals; None if none."""
    y, f = _pair(actual, forecast, "forecast")
    keep = y != 0
    if not keep.any():
        return None
    return float(np.mean(np.abs(f[keep] - y[keep]) / np.abs(y[keep])))


def bias(actual: Values, forecast: Values) -> float | None:
    """Signed mean percentage error of `forecast` (fraction; > 0 over-forecasts), over non-zero actuals."""
    y, f = _pair(actual, forecast, "forecast")
    keep = y != 0
    if not keep.any():
        return None
    return float(np.mean((f[keep] - y[keep]) / np.abs(y[keep])))


def interval_coverage(actual: Values, lower: Values, upper: Values) -> float | None:
    """Share of actuals inside `[lower, upper]` (both inclusive); None for no periods."""
    y, lo = _pair(actual, lower, "lower")
    _, hi = _pair(actual, upper, "upper")
    if np.any(lo > hi):
        raise InvalidInput("a lower bound is above its upper bound", where="interval")
    if y.size == 0:
        return None
    return float(np.mean((lo <= y) & (y <= hi)))


def pinball_loss(actual: float, quantile: float, level: float) -> float:
    """`ρ_τ(y − q)`: the quantile loss of predicting `quantile` at level `level` when `actual` happened."""
    _check_level(level)
    return ((1.0 if actual < quantile else 0.0) - level) * (quantile - actual)


def crps_quantiles(actual: float, quantiles: Mapping[float, float]) -> float:
    """CRPS from quantiles `{level: value}`: twice the mean pinball loss over the levels (module header)."""
    if not quantiles:
        raise InvalidInput("no quantiles to score", where="crps")
    losses = [pinball_loss(actual, value, level) for level, value in quantiles.items()]
    return 2.0 * math.fsum(losses) / len(losses)


def crps_samples(actual: float, samples: Values) -> float:
    """CRPS of the empirical distribution of `samples`: `E|X − y| − ½ E|X − X'|` (module header)."""
    x = np.sort(_array(samples, "samples"))
    m = x.size
    if m == 0:
        raise InvalidInput("no samples to score", where="crps")
    # Σ_j (2j − m − 1) x_(j) summed by gaps: Σ_k k (m − k) (x_(k+1) − x_(k)), exactly 0 for equal samples.
    k = np.arange(1, m, dtype=np.float64)
    spread = float(np.dot(k * (m - k), np.diff(x))) / (m * m)
    # Both terms are exact for the empirical distribution; rounding can leave a hair below zero.
    return max(float(np.mean(np.abs(x - actual))) - spread, 0.0)


def score_forecasts(actual: Values, p10: Values, p50: Values, p90: Values) -> ForecastScore:
    """MAPE and bias of the P50, P10-P90 coverage and mean quantile CRPS over aligned periods."""
    y, q10 = _pair(actual, p10, "p10")
    _, q50 = _pair(actual, p50, "p50")
    _, q90 = _pair(actual, p90, "p90")
    if np.any(q10 > q50) or np.any(q50 > q90):
        raise InvalidInput("quantiles must satisfy P10 <= P50 <= P90", where="forecast")
    each = [crps_quantiles(a, {0.1: lo, 0.5: mid, 0.9: hi}) for a, lo, mid, hi in zip(y, q10, q50, q90, strict=True)]
    crps = float(np.mean(each)) if each else None
    return ForecastScore(
        periods=int(y.size),
        mape=mape(y, q50),
        bias=bias(y, q50),
        coverage=interval_coverage(y, q10, q90),
        crps=crps,
        zero_actuals=int(np.sum(y == 0)),
    )


# --- deal probabilities ----------------------------------------------------------------------------------


def brier_score(predicted: Values, outcome: Outcomes) -> float | None:
    """Mean squared difference between probabilities and 0/1 outcomes; None for no deals."""
    p, o = _probabilities(predicted, outcome)
    if p.size == 0:
        return None
    return float(np.mean((p - o) ** 2))


def average_ranks(values: Values) -> FloatArray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks ("average" ranking)."""
    x = _array(values, "values")
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Tie groups are runs of equal sorted values: each gets the mean of the positions it spans.
    starts = np.flatnonzero(np.concatenate(([True], sorted_x[1:] != sorted_x[:-1])))
    ends = np.concatenate((starts[1:], [x.size]))
    group_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(predicted: Values, outcome: Outcomes) -> float | None:
    """ROC AUC by the Mann-Whitney rank statistic, ties counting half; None unless both classes occur."""
    p, o = _probabilities(predicted, outcome)
    positives = int(o.sum())
    negatives = int(o.size - positives)
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(average_ranks(p)[o == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def calibration_table(
    predicted: Values, outcome: Outcomes, *, strategy: Literal["uniform", "quantile"] = "uniform"
) -> pl.DataFrame:
    """Ten bins of the predictions (module header), one row per non-empty bin: CALIBRATION_SCHEMA."""
    p, o = _probabilities(predicted, outcome)
    if p.size == 0:
        return pl.DataFrame(schema=CALIBRATION_SCHEMA)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, CALIBRATION_BINS + 1))
    else:
        raise InvalidInput(f"unknown calibration strategy {strategy!r}; uniform or quantile", where="calibration")
    # The last bin is closed on the right so that p = 1 (or the maximum) has a bin.
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, CALIBRATION_BINS - 1)
    rows = []
    for b in range(CALIBRATION_BINS):
        mine = index == b
        count = int(mine.sum())
        if count:
            rows.append((b, float(edges[b]), float(edges[b + 1]), count, float(p[mine].mean()),
                         float(o[mine].mean())))  # fmt: skip
    return pl.DataFrame(rows, schema=CALIBRATION_SCHEMA, orient="row")


def score_probabilities(
    predicted: Values, outcome: Outcomes, *, strategy: Literal["uniform", "quantile"] = "uniform"
) -> ProbabilityScore:
    """Brier score, ROC AUC and the calibration table of deal probabilities."""
    p, o = _probabilities(predicted, outcome)
    return ProbabilityScore(
        deals=int(p.size),
        positives=int(o.sum()),
        brier=brier_score(p, o),
        auc=roc_auc(p, o),
        calibration=calibration_table(p, o, strategy=strategy),
    )


# --- internals -------------------------------------------------------------------------------------------


def _array(values: Values | Outcomes, what: str) -> FloatArray:
    array = values.to_numpy() if isinstance(values, pl.Series) else np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(f"expected one value per row, got shape {array.shape}", where=what)
    result = array.astype(np.float64)
    if not np.all(np.isfinite(result)):
        raise InvalidInput("values must be finite numbers (no null, NaN or infinity)", where=what)
    return result


def _pair(actual: Values, other: Values, what: str) -> tuple[FloatArray, FloatArray]:
    y, f = _array(actual, "actual"), _array(other, what)
    if y.size != f.size:
        raise InvalidInput(f"{y.size} actuals but {f.size} values", where=what)
    return y, f


def _probabilities(predicted: Values, outcome: Outcomes) -> tuple[FloatArray, FloatArray]:
    p, o = _array(predicted, "probabilities"), _array(outcome, "outcomes")
    if p.size != o.size:
        raise InvalidInput(f"{p.size} probabilities but {o.size} outcomes", where="probabilities")
    if np.any((p < 0) | (p > 1)):
        raise InvalidInput("probabilities must lie in [0, 1]", where="probabilities")
    if np.any((o != 0) & (o != 1)):
        raise InvalidInput("outcomes must be 0 or 1", where="outcomes")
    return p, o


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"quantile level must lie strictly between 0 and 1, got {level}", where="crps")
