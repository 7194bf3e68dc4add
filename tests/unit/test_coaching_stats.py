"""The gap analysis' statistics: the within-strata difference equals the regression coefficient, the cluster
permutation test finds a real rep-level effect and not a null one, Benjamini–Hochberg as published."""

from __future__ import annotations

import numpy as np

from closewise.coaching.stats import adjusted_difference, benjamini_hochberg, cluster_permutation_test


def test_adjusted_difference_is_the_regression_coefficient() -> None:
    rng = np.random.default_rng(1)
    n = 400
    strata = rng.integers(0, 5, n)
    group = (rng.random(n) < 0.3).astype(float)
    y = 2.0 * group + strata * 1.5 + rng.normal(size=n)
    design = np.column_stack([group, np.eye(5)[strata]])
    coefficient = np.linalg.lstsq(design, y, rcond=None)[0][0]
    assert abs(adjusted_difference(y, group, strata) - coefficient) < 1e-9


def test_a_confounded_difference_disappears_within_strata() -> None:
    # Top reps sell in the stratum with high values; within strata there is no difference.
    rng = np.random.default_rng(2)
    rep_of = np.repeat(np.arange(12), 40)
    top = np.arange(12) < 4
    strata = np.where(top[rep_of], 1, 0)
    strata[::5] = 1 - strata[::5]
    y = 5.0 * strata + rng.normal(size=rep_of.size)
    raw = y[top[rep_of]].mean() - y[~top[rep_of]].mean()
    assert raw > 2
    assert abs(adjusted_difference(y, top[rep_of].astype(float), strata)) < 0.5


def test_permutation_test_separates_real_and_null_effects() -> None:
    rng = np.random.default_rng(3)
    reps = 20
    rep_of = np.repeat(np.arange(reps), 30)
    top = np.arange(reps) < 5
    blocks = np.arange(reps) % 2
    strata = rng.integers(0, 3, rep_of.size)
    rep_effect = rng.normal(scale=0.3, size=reps)
    real = 1.0 * top[rep_of] + rep_effect[rep_of] + rng.normal(size=rep_of.size)
    null = rep_effect[rep_of] + rng.normal(size=rep_of.size)
    found = cluster_permutation_test(real, rep_of, top, blocks, strata, permutations=1000)
    assert found.p_value < 0.01 and found.difference > 0.5 and found.effect_size > 0.5
    assert cluster_permutation_test(null, rep_of, top, blocks, strata, permutations=1000).p_value > 0.05


def test_benjamini_hochberg() -> None:
    q = benjamini_hochberg([0.01, 0.04, 0.03, None, 0.5])
    assert q[3] is None
    assert q[0] == 0.01 * 4 / 1
    assert q[1] == q[2] == 0.04 * 4 / 3
    assert q[4] == 0.5
