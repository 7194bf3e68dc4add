"""Forecast and probability scores (closewise.ml.metrics): hand-worked values and Hypothesis invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.errors import InvalidInput
from closewise.ml import metrics as m

# Money in cents: amounts below a cent (where percentage errors overflow) are not bookings.
amounts = st.integers(min_value=-(10**9), max_value=10**9).map(lambda cents: cents / 100)
probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


# --- hand-worked values ----------------------------------------------------------------------------------


def test_mape_and_bias_by_hand() -> None:
    # Errors +10% and -30%: MAPE (10 + 30) / 2 = 20%, bias (10 - 30) / 2 = -10%.
    assert m.mape([100.0, 200.0], [110.0, 140.0]) == pytest.approx(0.20)
    assert m.bias([100.0, 200.0], [110.0, 140.0]) == pytest.approx(-0.10)


def test_zero_actuals_are_left_out_of_percentage_errors() -> None:
    # The zero period has no percentage error; the other is 50% over.
    assert m.mape([0.0, 100.0], [5.0, 150.0]) == pytest.approx(0.5)
    assert m.mape([0.0], [5.0]) is None
    score = m.score_forecasts([0.0, 100.0], [0.0, 90.0], [5.0, 150.0], [10.0, 200.0])
    assert score.zero_actuals == 1 and score.periods == 2


def test_coverage_by_hand() -> None:
    # 100 in [90, 110]; 200 below [210, 250]; 300 on the upper bound counts (inclusive): 2 of 3.
    assert m.interval_coverage([100.0, 200.0, 300.0], [90.0, 210.0, 250.0], [110.0, 250.0, 300.0]) == pytest.approx(
        2 / 3
    )


def test_crps_of_a_point_forecast_is_the_absolute_error() -> None:
    # A point forecast's CDF is a step at q: the integral of (F - 1{y <= x})^2 is |q - y|. The quantile form
    # gives 2 * mean over τ of (1 - τ)(q - y) = 2 * (0.9 + 0.5 + 0.1) / 3 * 10 = 10 for q = y + 10.
    assert m.crps_quantiles(100.0, {0.1: 110.0, 0.5: 110.0, 0.9: 110.0}) == pytest.approx(10.0)
    assert m.crps_samples(100.0, [110.0] * 5) == pytest.approx(10.0)


def test_crps_samples_by_hand() -> None:
    # Samples {0, 2}, y = 1: E|X - y| = 1, E|X - X'| over the 4 ordered pairs = (0 + 2 + 2 + 0) / 4 = 1,
    # so CRPS = 1 - 0.5 = 0.5. Directly: F = 0.5 on [0, 2), ∫ (0.5)^2 over [0, 2) = 0.5.
    assert m.crps_samples(1.0, [0.0, 2.0]) == pytest.approx(0.5)


def test_crps_samples_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(50.0, 10.0, 200)
    y = 47.0
    direct = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :]))
    assert m.crps_samples(y, x) == pytest.approx(direct)


def test_pinball_loss_by_hand() -> None:
    # Under-forecast by 10 at τ = 0.9 costs 0.9 * 10; over-forecast by 10 costs 0.1 * 10.
    assert m.pinball_loss(100.0, 90.0, 0.9) == pytest.approx(9.0)
    assert m.pinball_loss(100.0, 110.0, 0.9) == pytest.approx(1.0)


def test_brier_and_auc_by_hand() -> None:
    # Brier: ((0.8 - 1)^2 + (0.4 - 0)^2 + (0.6 - 1)^2 + (0.1 - 0)^2) / 4 = (0.04 + 0.16 + 0.16 + 0.01) / 4.
    p, o = [0.8, 0.4, 0.6, 0.1], [1, 0, 1, 0]
    assert m.brier_score(p, o) == pytest.approx(0.37 / 4)
    # Every positive (0.8, 0.6) above every negative (0.4, 0.1): AUC 1.
    assert m.roc_auc(p, o) == pytest.approx(1.0)
    # Positives 0.8 and 0.3 against negatives 0.5, 0.1: pairs won 0.8>0.5, 0.8>0.1, 0.3>0.1; lost 0.3<0.5.
    assert m.roc_auc([0.8, 0.5, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(3 / 4)


def test_average_ranks_share_ties() -> None:
    # Sorted 1, 2, 2, 3: the two 2s hold ranks 2 and 3, so each gets 2.5.
    assert m.average_ranks([2.0, 1.0, 3.0, 2.0]).tolist() == [2.5, 1.0, 4.0, 2.5]


def test_auc_undefined_with_one_class() -> None:
    assert m.roc_auc([0.2, 0.7], [1, 1]) is None
    assert m.roc_auc([], []) is None


def test_calibration_table_by_hand() -> None:
    # 0.05 and 0.08 share bin 0 (mean 0.065, one of two won); 0.95 and 1.0 share bin 9 (the last bin is closed).
    table = m.calibration_table([0.05, 0.08, 0.95, 1.0], [0, 1, 1, 1])
    assert table["bin"].to_list() == [0, 9]
    assert table["count"].to_list() == [2, 2]
    assert table["mean_predicted"].to_list() == pytest.approx([0.065, 0.975])
    assert table["observed_rate"].to_list() == pytest.approx([0.5, 1.0])


def test_quantile_calibration_bins_hold_equal_counts() -> None:
    p = np.linspace(0.0, 1.0, 100, endpoint=False)
    table = m.calibration_table(p, (p > 0.5).astype(np.int64), strategy="quantile")
    assert table["count"].to_list() == [10] * 10


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        m.brier_score([1.2], [1])
    with pytest.raises(InvalidInput):
        m.roc_auc([0.5], [2])
    with pytest.raises(InvalidInput):
        m.mape([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInput):
        m.score_forecasts([1.0], [3.0], [2.0], [4.0])
    with pytest.raises(InvalidInput):
        m.mape([math.nan], [1.0])


# --- invariants ------------------------------------------------------------------------------------------


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(st.lists(amounts, min_size=1, max_size=30))
def test_a_perfect_forecast_scores_perfectly(actual: list[float]) -> None:
    score = m.score_forecasts(actual, actual, actual, actual)
    assert score.coverage == 1.0
    assert score.crps == 0.0
    if any(a != 0 for a in actual):
        assert score.mape == 0.0 and score.bias == 0.0


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(st.lists(st.tuples(amounts, amounts, amounts, amounts), min_size=1, max_size=30))
def test_coverage_lies_in_the_unit_interval(rows: list[tuple[float, float, float, float]]) -> None:
    actual = [r[0] for r in rows]
    ordered = [sorted(r[1:]) for r in rows]
    score = m.score_forecasts(actual, [q[0] for q in ordered], [q[1] for q in ordered], [q[2] for q in ordered])
    assert score.coverage is not None and 0.0 <= score.coverage <= 1.0
    assert score.crps is not None and score.crps >= 0.0
    if score.mape is not None:
        assert score.mape >= 0.0 and abs(score.bias or 0.0) <= score.mape + 1e-12


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(amounts, st.lists(amounts, min_size=1, max_size=50))
def test_crps_from_samples_is_non_negative(actual: float, samples: list[float]) -> None:
    assert m.crps_samples(actual, samples) >= 0.0


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(amounts, st.dictionaries(st.floats(min_value=0.01, max_value=0.99), amounts, min_size=1, max_size=9))
def test_crps_from_quantiles_is_non_negative(actual: float, quantiles: dict[float, float]) -> None:
    assert m.crps_quantiles(actual, quantiles) >= 0.0


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(amounts, st.integers(min_value=1, max_value=20))
def test_crps_of_a_point_forecast_equal_to_the_actual_is_zero(actual: float, copies: int) -> None:
    assert m.crps_samples(actual, [actual] * copies) == 0.0
    assert m.crps_quantiles(actual, {0.1: actual, 0.5: actual, 0.9: actual}) == 0.0


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(st.lists(st.tuples(probabilities, st.booleans()), min_size=1, max_size=60))
def test_brier_lies_in_the_unit_interval(rows: list[tuple[float, bool]]) -> None:
    brier = m.brier_score([p for p, _ in rows], [o for _, o in rows])
    assert brier is not None and 0.0 <= brier <= 1.0


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=60, unique=True), st.data())
def test_auc_of_perfect_and_reversed_rankings(scores: list[float], data: st.DataObject) -> None:
    ordered = sorted(scores)
    cut = data.draw(st.integers(min_value=1, max_value=len(ordered) - 1))
    # The top len - cut scores are the positives: a perfect ranking; flipping the labels reverses it.
    outcome = [0] * cut + [1] * (len(ordered) - cut)
    assert m.roc_auc(ordered, outcome) == pytest.approx(1.0)
    assert m.roc_auc(ordered, [1 - o for o in outcome]) == pytest.approx(0.0)


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(probabilities, st.lists(st.booleans(), min_size=2, max_size=60))
def test_auc_of_all_tied_scores_is_one_half(score: float, outcome: list[bool]) -> None:
    auc = m.roc_auc([score] * len(outcome), outcome)
    if all(outcome) or not any(outcome):
        assert auc is None
    else:
        assert auc == pytest.approx(0.5)


@settings(deadline=None)  # timing varies on a shared machine; the invariants do not
@given(st.lists(st.tuples(probabilities, st.booleans()), min_size=1, max_size=60))
def test_calibration_counts_add_up(rows: list[tuple[float, bool]]) -> None:
    score = m.score_probabilities([p for p, _ in rows], [o for _, o in rows])
    table = score.calibration
    assert table["count"].sum() == len(rows)
    assert all(0.0 <= v <= 1.0 for v in table["observed_rate"].to_list())
    assert all(lo <= v <= hi + 1e-12 for lo, v, hi in table.select("lower", "mean_predicted", "upper").iter_rows())
    if score.auc is not None:
        assert 0.0 <= score.auc <= 1.0
