"""The timing model's horizons: drawn inside their strata, so F(h) rises day by day between the strata's ends.

Synthetic won examples whose time to win is uniform on 0-60 days, whatever their features: the true
F(h) = P(won within h days | won) is h / 60 up to 60 days. A model trained at the seven fixed horizons can only
split between them (LightGBM's bin edges sit at the midpoints of a feature's distinct values), so it answers
F(20) with F(14) or F(30) and F(28) with F(30): a 28-day February was forecast as a 30-day month. Trained on
drawn horizons it follows h / 60. (The scorer averages one model of each kind, `ml.scorer`.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.ml.scorer import timing_examples
from closewise.ml.timing_model import (
    CLOSE_GAP,
    FIXED_HORIZONS,
    HORIZON,
    HORIZONS,
    HorizonRateModel,
    TimingModel,
    horizon_draws,
)

COLUMNS = [HORIZON, CLOSE_GAP]
START = datetime(2024, 1, 1)
CUTOFF = datetime(2026, 1, 1)


def _resolved(n: int, seed: int) -> pl.DataFrame:
    """Won examples dated through 2024 (so every horizon up to a year ends by the cutoff), time to win
    uniform on 0-60 days, expected close 0-90 days out independently of it."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        s.ID: np.arange(n),
        s.AS_OF: [START + timedelta(days=int(d)) for d in rng.integers(0, 360, n)],
        "won": np.ones(n, dtype=np.int64),
        "days_to_outcome": rng.uniform(0, 60, n),
        "days_to_close": rng.uniform(0, 90, n),
    })


def _cdf(model: TimingModel | HorizonRateModel, horizon: float) -> float:
    probe = pl.DataFrame({"days_to_close": np.linspace(0, 90, 91)})
    rows = probe.with_columns(pl.lit(horizon).alias(HORIZON), (pl.col("days_to_close") - horizon).alias(CLOSE_GAP))
    return float(model.predict_proba(rows.select(COLUMNS))[:, 1].mean())


def test_draws_fall_inside_their_stratum_and_repeat_for_the_same_example() -> None:
    keys = _resolved(4_000, 1).select(s.ID, s.AS_OF)
    for stratum, high in enumerate(HORIZONS):
        low = HORIZONS[stratum - 1] if stratum else 0
        drawn = horizon_draws(keys, stratum).to_numpy()
        assert drawn.min() > low and drawn.max() <= high
        # Uniform: the mean within 3% of the stratum's width of its midpoint (sd of the mean ~0.5%).
        assert abs(drawn.mean() - (low + high) / 2) < 0.03 * (high - low)
        assert np.array_equal(drawn, horizon_draws(keys, stratum).to_numpy())  # the same example, the same draw
        assert np.unique(drawn).size > 0.99 * drawn.size  # and different examples, different draws
    # A stratum's draws do not repeat another's: the hash is seeded by the stratum.
    unit = [(horizon_draws(keys, k).to_numpy() - HORIZONS[k - 1]) / (HORIZONS[k] - HORIZONS[k - 1]) for k in (1, 2)]
    assert abs(np.corrcoef(unit[0], unit[1])[0, 1]) < 0.1


def test_examples_are_labelled_at_their_drawn_horizon_and_end_by_the_cutoff() -> None:
    resolved = _resolved(500, 2)
    late = resolved.with_columns(pl.lit(CUTOFF - timedelta(days=20)).alias(s.AS_OF))
    examples = timing_examples(pl.concat([resolved, late.with_columns(pl.col(s.ID) + 500)]), cutoff=CUTOFF)
    within = (examples["days_to_outcome"] <= examples[HORIZON]).cast(pl.Int8)
    assert examples["won_within"].to_list() == within.to_list()
    assert (examples[CLOSE_GAP] == examples["days_to_close"] - examples[HORIZON]).all()
    ends = examples.select(pl.col(s.AS_OF) + pl.duration(days=1) * pl.col(HORIZON))
    assert ends.to_series().max() <= CUTOFF
    # The examples dated 20 days before the cutoff keep only horizons of at most 20 days.
    recent = examples.filter(pl.col(s.ID) >= 500)
    assert recent.height > 0 and recent[HORIZON].max() <= 20
    assert examples.filter(pl.col(s.ID) < 500).height == 500 * len(HORIZONS)


@pytest.mark.parametrize("model", [TimingModel(random_state=0, n_estimators=80), HorizonRateModel()])
def test_the_cdf_follows_the_true_one_between_the_strata_ends(model: TimingModel | HorizonRateModel) -> None:
    examples = timing_examples(_resolved(6_000, 3), cutoff=CUTOFF)
    model.fit(examples.select(COLUMNS), examples["won_within"].to_numpy())
    for horizon in (10.0, 20.0, 25.0, 28.0, 31.0, 45.0):
        assert _cdf(model, horizon) == pytest.approx(horizon / 60, abs=0.05)
    # February against a 31-day month: 3 days of a 60-day spread, 0.05 in truth.
    assert _cdf(model, 31.0) - _cdf(model, 28.0) > 0.025


def test_fixed_horizons_cannot_tell_a_28_day_month_from_a_31_day_one() -> None:
    """Why one of the scorer's two timing models learns at drawn horizons: at the fixed ones (the other), the
    same data gives a step function."""
    fixed = timing_examples(_resolved(6_000, 3), cutoff=CUTOFF, drawn=False)
    assert sorted(set(fixed[HORIZON].to_list())) == [float(h) for h in FIXED_HORIZONS]
    model = TimingModel(random_state=0, n_estimators=80).fit(fixed.select(COLUMNS), fixed["won_within"].to_numpy())
    assert abs(_cdf(model, 31.0) - _cdf(model, 28.0)) < 0.01
    assert abs(_cdf(model, 20.0) - 20 / 60) > 0.07
    # Exact at its own horizons all the same.
    assert _cdf(model, 30.0) == pytest.approx(0.5, abs=0.03)
