"""The simulation and calibration of the period forecast (`ml.simulation`), on hand-made inputs.

Expected values are derived: a Bernoulli sum's mean is `sum p a`, a period with no open deals is its closed-won
total, and a wider period effect can only widen the P10-P90 range of a symmetric portfolio.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.ml.simulation import Calibration, Outcome, calibrate, implied_shift, simulate


def _outcome(n: int = 200, seed: int = 1, closed: float = 1_000.0) -> Outcome:
    rng = np.random.default_rng(seed)
    return Outcome(closed, rng.uniform(0.05, 0.9, n), rng.lognormal(10, 0.8, n), 5_000.0, 2_000.0)


def test_no_open_deals_and_no_new_business_is_exact() -> None:
    outcome = Outcome(123_456.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
    samples = simulate(outcome, Calibration(0.0, 1.0), n_sims=500)
    assert np.all(samples == 123_456.0)


def test_independent_mean_is_the_sum_of_expectations() -> None:
    """With no period effect the mean is closed + sum p a + new business; the Monte Carlo error of 20,000
    draws is sd / sqrt(20,000), so four of those is a safe tolerance."""
    outcome = _outcome()
    samples = simulate(outcome, Calibration(0.0, 0.0), n_sims=20_000, random_state=3)
    expected = outcome.closed_won + outcome.expected_deals + outcome.new_business_mean
    assert abs(samples.mean() - expected) < 4 * samples.std() / np.sqrt(samples.size)


def test_normal_approximation_of_the_small_deals_keeps_mean_and_spread() -> None:
    """Drawing only the 50 largest deals exactly (the rest by their conditional normal) changes neither the
    mean nor the sd beyond Monte Carlo error (a few percent at 20,000 draws)."""
    outcome = _outcome(n=2_000)
    exact = simulate(outcome, Calibration(0.0, 0.5), n_sims=20_000, random_state=5, exact_deals=2_000)
    mixed = simulate(outcome, Calibration(0.0, 0.5), n_sims=20_000, random_state=5, exact_deals=50)
    assert mixed.mean() == pytest.approx(exact.mean(), rel=0.01)
    assert mixed.std() == pytest.approx(exact.std(), rel=0.05)


def test_a_wider_period_effect_widens_the_range() -> None:
    outcome = _outcome()
    widths = []
    for scale in (0.0, 0.5, 1.0):
        samples = simulate(outcome, Calibration(0.0, scale), n_sims=4_000, random_state=7)
        widths.append(np.quantile(samples, 0.9) - np.quantile(samples, 0.1))
    assert widths[0] < widths[1] < widths[2]


def test_fixed_random_state_repeats() -> None:
    outcome = _outcome()
    first = simulate(outcome, Calibration(0.2, 0.4), random_state=11)
    assert np.array_equal(first, simulate(outcome, Calibration(0.2, 0.4), random_state=11))


def test_implied_shift_reproduces_the_actual() -> None:
    outcome = _outcome()
    for u in (-1.0, 0.0, 0.7):
        logit = np.log(outcome.p / (1 - outcome.p)) + u
        actual = outcome.closed_won + outcome.new_business_mean + float(outcome.amount @ (1 / (1 + np.exp(-logit))))
        assert implied_shift(outcome, actual) == pytest.approx(u, abs=1e-6)


def test_calibration_finds_a_planted_period_effect() -> None:
    """Twelve periods whose deals share a planted effect u ~ N(0, 0.8^2): the CRPS-best scale is clearly
    above zero (the independent model is too narrow) and P10-P90 then holds most actuals."""
    rng = np.random.default_rng(42)
    points = []
    for k in range(12):
        outcome = _outcome(seed=100 + k)
        u = rng.normal(0.0, 0.8)
        p = 1 / (1 + np.exp(-(np.log(outcome.p / (1 - outcome.p)) + u)))
        actual = outcome.closed_won + outcome.new_business_mean + float(outcome.amount @ (rng.random(p.size) < p))
        points.append((outcome, actual))
    calibration = calibrate(points)
    assert 0.4 <= calibration.scale <= 1.4
    inside = [np.quantile(s, 0.1) <= a <= np.quantile(s, 0.9)
              for s, a in ((simulate(o, calibration, random_state=1), a) for o, a in points)]
    assert sum(inside) >= 7


def test_too_few_backtests_keep_the_default() -> None:
    assert calibrate([(_outcome(), 50_000.0)]) == Calibration()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.floats(0.0, 2.0), st.floats(-2.0, 2.0))
def test_samples_lie_between_closed_won_and_everything_won(probabilities: list[float], scale: float,
                                                            shift: float) -> None:
    p = np.array(probabilities)
    amount = np.linspace(1_000.0, 50_000.0, p.size)
    samples = simulate(Outcome(10.0, p, amount, 0.0, 0.0), Calibration(shift, scale), n_sims=200)
    assert samples.min() >= 10.0 - 1e-6
    assert samples.max() <= 10.0 + amount[p > 0].sum() + 1e-6
