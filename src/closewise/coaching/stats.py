"""The statistics behind the gap analysis, in numpy (no scipy or statsmodels needed: the test is a permutation
test, which needs nothing but shuffling, and the adjustment is a fixed-effects regression solved in closed form).

**Adjusted difference.** For a measure `y` per deal, a 0/1 group per deal (the deal's rep is a top performer)
and a stratum per deal (segment × deal-size band), the difference between the groups *within* strata is the
group coefficient of the regression `y ~ group + stratum dummies`. By the Frisch–Waugh–Lovell theorem it is
`Σ r_g r_y / Σ r_g²`, where `r_y` and `r_g` are `y` and the group with their stratum means taken off: a mix of
segments or deal sizes that differs between the groups cannot create the difference.

**Permutation test.** Behaviours are measured per deal but the group is a property of the rep, so deals of one
rep are not independent draws. The test therefore shuffles the *reps'* labels (a cluster permutation), and only
among reps of the same block (their segment), keeping the number of top performers per block: under the null
hypothesis that being a top performer has nothing to do with the behaviour, every such relabelling is as likely
as the observed one. The p-value is two-sided, `(1 + #{|β*| ≥ |β|}) / (1 + permutations)`. With many measures
tested at once, Benjamini–Hochberg q-values bound the share of false discoveries among those called significant.

**Effect size.** The adjusted difference divided by the standard deviation of `y` within strata (a
standardised mean difference, like Cohen's d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TestResult:
    difference: float  # adjusted (within-strata) difference, top minus rest, in the measure's (transformed) unit
    effect_size: float  # difference ÷ within-strata standard deviation
    p_value: float
    permutations: int


def _demean(values: FloatArray, strata: IntArray, counts: FloatArray) -> FloatArray:
    means = np.bincount(strata, weights=values, minlength=counts.size) / counts
    return values - means[strata]


def adjusted_difference(y: FloatArray, group: FloatArray, strata: IntArray) -> float:
    counts = np.bincount(strata).astype(np.float64)
    counts[counts == 0] = 1.0
    ry, rg = _demean(y, strata, counts), _demean(group, strata, counts)
    denominator = float(rg @ rg)
    return float(rg @ ry) / denominator if denominator > 1e-12 else float("nan")


def cluster_permutation_test(
    y: FloatArray,
    rep_of: IntArray,
    top: npt.NDArray[np.bool_],
    block_of_rep: IntArray,
    strata: IntArray,
    *,
    permutations: int = 2000,
    seed: int = 20240601,
) -> TestResult:
    """`y`, `rep_of` (index into the reps) and `strata` per observation; `top` and `block_of_rep` per rep."""
    counts = np.bincount(strata).astype(np.float64)
    counts[counts == 0] = 1.0
    ry = _demean(y, strata, counts)
    group = top[rep_of].astype(np.float64)
    observed = adjusted_difference(y, group, strata)
    spread = float(np.sqrt(ry @ ry / max(y.size - int((np.bincount(strata) > 0).sum()), 1)))
    effect = observed / spread if spread > 1e-12 else float("nan")
    if not np.isfinite(observed):
        return TestResult(observed, effect, float("nan"), 0)
    rng = np.random.default_rng(seed)
    reps = top.size
    # Labels are constant per rep, so both sums of the coefficient reduce to per-rep totals (r_y sums to zero in
    # every stratum): numerator = L·A, denominator = L·c − Σ_k (L·C_k)² / n_k, with A = Σ r_y per rep, c = deals
    # per rep and C = deals per rep and stratum.
    per_rep_ry = np.bincount(rep_of, weights=ry, minlength=reps)
    per_rep_n = np.bincount(rep_of, minlength=reps).astype(np.float64)
    per_rep_stratum = np.zeros((reps, counts.size))
    np.add.at(per_rep_stratum, (rep_of, strata), 1.0)
    labels = top.astype(np.float64)
    shuffled = np.tile(labels, (permutations, 1))
    for block in np.unique(block_of_rep):
        members = np.flatnonzero(block_of_rep == block)
        if members.size > 1:
            shuffled[:, members] = rng.permuted(shuffled[:, members], axis=1)
    numerator = shuffled @ per_rep_ry
    denominator = shuffled @ per_rep_n - (((shuffled @ per_rep_stratum) ** 2) / counts).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        betas = np.where(denominator > 1e-12, numerator / np.where(denominator > 1e-12, denominator, 1.0), 0.0)
    exceed = int(np.sum(np.abs(betas) >= abs(observed) - 1e-12))
    return TestResult(observed, effect, (1 + exceed) / (1 + permutations), permutations)


def benjamini_hochberg(p_values: list[float | None]) -> list[float | None]:
    """q-values for the p-values given (None stays None)."""
    present = [(i, p) for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    result: list[float | None] = [None] * len(p_values)
    if not present:
        return result
    order = sorted(present, key=lambda item: item[1])
    m = len(order)
    running = 1.0
    for rank in range(m, 0, -1):
        index, p = order[rank - 1]
        running = min(running, p * m / rank)
        result[index] = min(running, 1.0)
    return result
