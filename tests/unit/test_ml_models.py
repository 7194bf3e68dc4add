"""The estimator contract, run over every deal-level estimator (scikit-learn's `check_estimator` habit):
hyper-parameters stored as given, `fit` returns the estimator, learned state ends in `_`, one
`random_state` gives one model, probabilities stay in [0, 1] (Hypothesis), and thin history falls back to
smoothed rates. Plus the leakage detector on small synthetic tables and the reason texts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.errors import InvalidInput
from closewise.ml.explain import describe, reasons
from closewise.ml.leakage import leakage_report, leaky_columns
from closewise.ml.rates import StageRateModel
from closewise.ml.timing_model import CLOSE_GAP, HORIZON, HorizonRateModel, TimingModel
from closewise.ml.win_model import WinModel


def _table(n: int, seed: int, *, timing: bool = False) -> tuple[pl.DataFrame, np.ndarray]:
    """Synthetic examples whose label depends on stage, activity and owner rate through a logit."""
    rng = np.random.default_rng(seed)
    stage = rng.integers(1, 7, n).astype(float)
    activity = rng.poisson(3, n).astype(float)
    owner = rng.uniform(0.1, 0.5, n)
    segment = rng.choice(["smb", "mid_market", "enterprise"], n)
    logit = -2.5 + 0.5 * stage + 0.3 * activity + 3 * (owner - 0.3)
    frame = pl.DataFrame({"stage_order": stage, "activities": activity, "owner_win_rate": owner, "segment": segment})
    if timing:
        horizon = rng.choice([7.0, 30.0, 90.0, 180.0], n)
        gap = rng.normal(0, 40, n) - horizon
        frame = frame.with_columns(pl.Series(HORIZON, horizon), pl.Series(CLOSE_GAP, gap))
        logit = -1.0 + horizon / 60 - gap / 40
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y


ESTIMATORS: dict[str, Callable[..., Any]] = {
    "win_model": lambda **kw: WinModel(n_estimators=30, **kw),
    "timing_model": lambda **kw: TimingModel(n_estimators=30, **kw),
    "stage_rates": StageRateModel,
    "horizon_rates": HorizonRateModel,
}
TIMING = {"timing_model", "horizon_rates"}


@pytest.fixture(params=sorted(ESTIMATORS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_fit_returns_self_and_learned_state_ends_in_underscore(name: str) -> None:
    x, y = _table(600, 1, timing=name in TIMING)
    estimator = ESTIMATORS[name](random_state=3)
    before = dict(vars(estimator))
    assert all(not key.endswith("_") for key in before)  # __init__ only stores hyper-parameters
    assert estimator.fit(x, y) is estimator
    learned = {key for key in vars(estimator) if key not in before}
    assert learned and all(key.endswith("_") for key in learned)
    assert {key: vars(estimator)[key] for key in before} == before  # fit does not touch hyper-parameters


def test_same_random_state_gives_the_same_model(name: str) -> None:
    x, y = _table(600, 2, timing=name in TIMING)
    first = ESTIMATORS[name](random_state=11).fit(x, y).predict_proba(x)
    second = ESTIMATORS[name](random_state=11).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(first, second)


def test_unfitted_or_bad_labels_are_refused() -> None:
    x, y = _table(100, 3)
    with pytest.raises(InvalidInput):
        WinModel().predict_proba(x)
    with pytest.raises(InvalidInput):
        WinModel().fit(x, y[:-1])
    with pytest.raises(InvalidInput):
        StageRateModel().fit(x, y * 2)


@functools.cache
def _fitted(name: str) -> tuple[Any, pl.DataFrame]:
    x, y = _table(500, 6, timing=name in TIMING)
    return ESTIMATORS[name](random_state=0).fit(x, y), x


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 80),
    scale=st.floats(0.0, 1e6, allow_nan=False),
)
def test_probabilities_stay_in_the_unit_interval(seed: int, n: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    for name in ESTIMATORS:
        model, x = _fitted(name)
        probe = x.sample(n, with_replacement=True, seed=seed)
        numeric = [c for c in probe.columns if c != "segment"]
        # Far outside the training range, with missing values, and unseen categories.
        probe = probe.with_columns(
            *(pl.col(c) * float(rng.normal(0, scale + 1.0)) for c in numeric),
            pl.lit("unheard_of").alias("segment"),
        ).with_columns(
            pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("activities")).alias("activities"),
        )
        p = model.predict_proba(probe)
        assert p.shape == (n, 2)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("make", [WinModel, TimingModel])
def test_thin_history_falls_back_to_smoothed_rates(make: Callable[..., Any]) -> None:
    x, y = _table(2_000, 4, timing=make is TimingModel)
    groups = np.arange(len(y)) % 30  # thirty deals: fewer than 40 won and 40 lost
    model = make(random_state=0).fit(x, y, groups=groups)
    assert model.uses_fallback_ and model.booster_ is None
    np.testing.assert_allclose(model.predict_proba(x), model.fallback_.predict_proba(x))
    rich = make(random_state=0, n_estimators=30).fit(x, y, groups=np.arange(len(y)))
    assert not rich.uses_fallback_ and rich.booster_ is not None


def test_stage_rates_are_shrunk_toward_the_overall_rate() -> None:
    # Stage 1: 2 examples, both won; stage 2: 98 examples, 10 won. With m = 20 pseudo-examples at the
    # overall rate r = (12 + 0.5) / 101, stage 1's rate is (2 + 20 r) / 22: pulled most of the way to r.
    x = pl.DataFrame({"stage_order": [1.0] * 2 + [2.0] * 98})
    y = np.array([1, 1] + [1] * 10 + [0] * 88)
    model = StageRateModel(prior_strength=20).fit(x, y)
    r = 12.5 / 101
    assert model.rates_[1.0] == pytest.approx((2 + 20 * r) / 22)
    assert model.rates_[2.0] == pytest.approx((10 + 20 * r) / 118)
    p = model.predict_proba(x)[:, 1]
    assert p[0] == pytest.approx(model.rates_[1.0]) and p[0] < 0.5


def test_timing_cdf_never_decreases_with_the_horizon() -> None:
    x, y = _table(3_000, 5, timing=True)
    model = TimingModel(random_state=0, n_estimators=60).fit(x, y)
    probe = x.head(50)
    previous = np.zeros(probe.height)
    for horizon in (1.0, 7.0, 20.0, 45.0, 90.0, 200.0, 400.0):
        # The gap moves with the horizon as in `with_horizon`: days to close minus the horizon.
        days_to_close = probe[CLOSE_GAP] + probe[HORIZON]
        rows = probe.with_columns(pl.lit(horizon).alias(HORIZON), (days_to_close - horizon).alias(CLOSE_GAP))
        p = model.predict_proba(rows)[:, 1]
        assert (p >= previous - 1e-12).all()
        previous = p


def test_reasons_read_as_sentences_with_signed_contributions() -> None:
    features = pl.DataFrame({"pushes": [3.0], "days_to_close": [-12.0], "segment": ["mid_market"]})
    got = reasons(features, np.array([[-0.84, 0.0, 0.2]]), ["pushes", "days_to_close", "segment"], n=3)
    items = got[0].to_list()
    assert [item["feature"] for item in items] == ["pushes", "segment"]  # zero contributions say nothing
    assert items[0]["text"] == "close date pushed 3 times (−0.8)"
    assert items[1]["text"] == "mid market segment (+0.2)"
    assert describe("days_to_close", -12.0) == "expected close date passed 12 days ago"


def test_leakage_flags_close_time_columns_and_near_perfect_predictors() -> None:
    rng = np.random.default_rng(0)
    n = 400
    won = rng.integers(0, 2, n)
    frame = pl.DataFrame(
        {
            "won": won,
            "amount": rng.lognormal(10, 1, n),
            "TotalDaysToClose": rng.integers(10, 200, n),
            "stage_change_count": rng.integers(1, 8, n),
            "days_in_prospecting_share": (a := rng.uniform(0, 1, n)),
            "days_in_other_share": 1 - a,
            "final_flag": won * 10 + rng.normal(0, 0.1, n),  # an innocent name, a perfect separator
            "region": rng.choice(["east", "west"], n),
        }
    )
    report = leakage_report(frame, "won")
    assert set(report.columns) == {"column", "flagged", "single_auc", "reasons"}
    flagged = set(leaky_columns(frame, "won"))
    assert flagged == {
        "TotalDaysToClose",
        "stage_change_count",
        "days_in_prospecting_share",
        "days_in_other_share",
        "final_flag",
    }
    with pytest.raises(InvalidInput):
        leakage_report(frame, "missing")
