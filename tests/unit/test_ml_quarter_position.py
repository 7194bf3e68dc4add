"""The deal models and the fiscal quarter (docs/forecasting.md, "Position in the fiscal quarter").

Planted, as the demo generator does it: deals due just after a quarter ends are pulled into its last days when
they win, so on a quarter's first days the late-stage deals still open win less often than the same deals
later in the quarter. The win model sees `days_to_quarter_end` and must recover the planted rates; the months'
first days are training dates of their own (`ml.training_set.month_starts`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from closewise.ml.features import FEATURES
from closewise.ml.training_set import START_OVERSAMPLE, month_starts
from closewise.ml.win_model import WinModel

BASE_RATE = 0.55  # late-stage deals, most of the quarter
DEPLETED = 0.43  # the same on a quarter's first days: 40% of the ~50% due in its first 15 days were pulled
EARLY_RATE = 0.25  # early-stage deals, whatever the date


def _examples(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = rng.uniform(0.0, 92.0, n)  # days to the quarter's end: 85+ is the quarter's first week
    late = rng.random(n) < 0.5
    rate = np.where(late, np.where(days >= 85.0, DEPLETED, BASE_RATE), EARLY_RATE)
    y = (rng.random(n) < rate).astype(int)
    frame = pl.DataFrame({"stage_order": np.where(late, 6.0, 2.0), "days_to_quarter_end": days,
                          "activities": rng.poisson(3, n).astype(float)})
    return frame, y


def test_the_quarter_position_is_a_deal_feature() -> None:
    assert "days_to_quarter_end" in FEATURES


def test_the_win_model_recovers_a_planted_quarter_start_depletion() -> None:
    x, y = _examples(40_000, 1)
    model = WinModel(random_state=0).fit(x, y)
    blind = WinModel(random_state=0).fit(x.drop("days_to_quarter_end"), y)
    test, _ = _examples(20_000, 2)
    p = model.predict_proba(test)[:, 1]
    p_blind = blind.predict_proba(test.drop("days_to_quarter_end"))[:, 1]
    late = (test["stage_order"] == 6.0).to_numpy()
    start = (test["days_to_quarter_end"] >= 85.0).to_numpy()
    # With the feature: each planted rate within 0.03 (the Monte Carlo and fit noise of ~3,000-15,000 rows).
    assert abs(p[late & start].mean() - DEPLETED) < 0.03
    assert abs(p[late & ~start].mean() - BASE_RATE) < 0.03
    assert abs(p[~late].mean() - EARLY_RATE) < 0.03
    # Without it the model can only say the late-stage average (7 of 92 days depleted), over-forecasting the
    # quarter's first days by about the planted gap.
    average = BASE_RATE - (BASE_RATE - DEPLETED) * 7 / 92
    assert abs(p_blind[late & start].mean() - average) < 0.03
    assert p_blind[late & start].mean() - DEPLETED > 0.08


def test_month_starts_are_the_first_instants_of_the_months_in_the_span() -> None:
    assert month_starts(datetime(2025, 11, 15), datetime(2026, 2, 1)) == [
        datetime(2025, 12, 1), datetime(2026, 1, 1), datetime(2026, 2, 1)]
    assert month_starts(datetime(2026, 1, 1), datetime(2026, 1, 31)) == [datetime(2026, 1, 1)]
    assert month_starts(datetime(2026, 1, 1, 0, 1), datetime(2026, 1, 31)) == []
    # A power of 2, so a higher rate's deterministic sample holds every lower rate's (`features.sampled`).
    assert START_OVERSAMPLE & (START_OVERSAMPLE - 1) == 0
