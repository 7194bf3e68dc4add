"""The period forecast on hand-made inputs: a subset of owners (`restrict`), breakdown ranges, calibrated deal
expectations, and the lead time of the calibration backtests (`PeriodForecaster.calibration_moments`).

Expected values are derived: with no period effect a deal's calibrated probability is its model probability;
a subset's expected total is its closed won plus its deals' probability x amount; the owners' totals add up to
the org's (less new business, which belongs to no owner).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.domain.periods import FiscalCalendar
from closewise.ml.explain import REASON_DTYPE
from closewise.ml.forecaster import PeriodForecast, PeriodForecaster, PeriodInputs, restrict, simulated
from closewise.ml.newbusiness import NewBusinessEstimate
from closewise.ml.simulation import Calibration, calibrated_probability

CALENDAR = FiscalCalendar(start_month=1)
NOVEMBER = CALENDAR.parse("2026-11")
OWNERS = (1, 2, 3, 4, 5)
TEAM = {1: 10, 2: 10, 3: 20, 4: 20, 5: 30}


def _inputs(n: int = 120, seed: int = 3, *, ended: bool = False) -> PeriodInputs:
    rng = np.random.default_rng(seed)
    owner = rng.choice(OWNERS[:4], n)  # owner 5 has closed won only
    amount = rng.lognormal(10.5, 0.9, n)
    p = rng.uniform(0.0, 0.7, n)
    deals = pl.DataFrame({
        "id": np.arange(1, n + 1), "owner_id": owner, "team_id": [TEAM[o] for o in owner],
        "stage": ["proposal"] * n, "close_date": [date(2026, 11, 20)] * n, "forecast_category": ["commit"] * n,
        "probability": [50.0] * n, "p_win": np.minimum(p * 1.3, 1.0), "p_close_in_period": p,
        "expected_amount": p * amount, "reasons": pl.Series([[]] * n, dtype=REASON_DTYPE), "amount": amount,
        "amount_if_won": amount,
    })
    won = pl.DataFrame({"id": [1001, 1002, 1003], "owner_id": [1, 5, 5], "team_id": [10, 30, 30],
                        "won": [40_000.0, 25_000.0, 10_000.0]})
    as_of = datetime(2026, 12, 2) if ended else datetime(2026, 11, 8)
    return PeriodInputs(NOVEMBER, as_of, float(won["won"].sum()), deals, NewBusinessEstimate(60_000.0, 30_000.0, 12),
                        "test", won)


def _forecast(inputs: PeriodInputs | None = None, calibration: Calibration = Calibration(0.2, 0.5, 12),
              target: float | None = 1_500_000.0) -> PeriodForecast:
    return simulated(inputs or _inputs(), calibration, target=target, n_sims=4000, random_state=5,
                     owner_targets={1: 300_000.0, 3: 200_000.0}, team_targets={10: 600_000.0})


def test_restricting_to_everyone_is_the_org_forecast() -> None:
    forecast = _forecast()
    everyone = restrict(forecast, None, target=forecast.target, include_new_business=True)
    for q in (0.1, 0.5, 0.9):
        assert everyone.quantile(q) == forecast.quantile(q)
    assert everyone.expected == forecast.expected
    assert everyone.probability_of_target == forecast.probability_of_target
    assert everyone.by_owner.equals(forecast.by_owner)


def test_a_subset_expects_its_closed_won_plus_its_deals() -> None:
    forecast = _forecast()
    subset = restrict(forecast, [1, 3], target=None, include_new_business=False)
    deals = forecast.deals.filter(pl.col("owner_id").is_in([1, 3]))
    assert subset.expected == pytest.approx(40_000.0 + float(deals["expected"].sum()), rel=1e-12)
    assert subset.inputs.closed_won == 40_000.0
    assert set(subset.by_owner["owner_id"].to_list()) == {1, 3}
    # The Monte Carlo mean agrees with the exact expectation (4 standard errors).
    error = subset.samples.std() / np.sqrt(subset.samples.size)
    assert abs(subset.samples.mean() - subset.expected) < 4 * error


def test_owners_add_up_to_the_org_less_new_business() -> None:
    forecast = _forecast()
    parts = [restrict(forecast, [o], target=None, include_new_business=False).expected for o in OWNERS]
    assert sum(parts) + forecast.inputs.new_business.mean == pytest.approx(forecast.expected, rel=1e-12)
    assert float(forecast.by_owner["expected"].sum()) == pytest.approx(sum(parts), rel=1e-12)
    assert float(forecast.by_team["expected"].sum()) == pytest.approx(sum(parts), rel=1e-12)


def test_an_owner_with_no_open_deals_is_their_closed_won() -> None:
    only = restrict(_forecast(), [5], target=30_000.0, include_new_business=False)
    assert only.quantile(0.1) == only.quantile(0.9) == only.expected == 35_000.0
    assert only.probability_of_target == 1.0
    row = only.by_owner.row(0, named=True)
    assert row["p10"] == row["p50"] == row["p90"] == 35_000.0


def test_breakdowns_carry_ranges_and_target_probabilities() -> None:
    forecast = _forecast()
    for frame, key, targets in ((forecast.by_owner, "owner_id", {1: 300_000.0, 3: 200_000.0}),
                                (forecast.by_team, "team_id", {10: 600_000.0})):
        for row in frame.iter_rows(named=True):
            assert row["closed_won"] <= row["p10"] <= row["p50"] <= row["p90"]
            assert row["target"] == targets.get(row[key])
            if row["target"] is None:
                assert row["probability_of_target"] is None
            else:
                assert 0.0 <= row["probability_of_target"] <= 1.0
    # A team's range holds its owners' totals: its P50 lies between the sum of their P10s and of their P90s.
    ten = forecast.by_team.filter(pl.col("team_id") == 10).row(0, named=True)
    members = forecast.by_owner.filter(pl.col("team_id") == 10)
    assert float(members["p10"].sum()) <= ten["p50"] <= float(members["p90"].sum())


FORECAST = _forecast()


@settings(max_examples=25, deadline=None)
@given(st.sets(st.sampled_from(OWNERS)), st.booleans(), st.floats(0.0, 3_000_000.0))
def test_any_subset_has_ordered_quantiles_and_a_probability(owners: set[int], new_business: bool,
                                                             target: float) -> None:
    subset = restrict(FORECAST, owners, target=target, include_new_business=new_business)
    assert subset.quantile(0.1) <= subset.quantile(0.5) <= subset.quantile(0.9)
    assert subset.probability_of_target is not None and 0.0 <= subset.probability_of_target <= 1.0
    assert subset.inputs.closed_won <= subset.quantile(0.1)


def test_an_ended_period_restricts_to_its_closed_won() -> None:
    forecast = _forecast(_inputs(ended=True), Calibration(0.0, 0.0, 0))
    subset = restrict(forecast, [5], target=None, include_new_business=True)
    assert subset.quantile(0.1) == subset.quantile(0.9) == subset.expected == 35_000.0


def test_calibrated_probability_averages_the_period_effect() -> None:
    p = np.array([0.0, 0.05, 0.3, 0.5, 0.9])
    assert np.allclose(calibrated_probability(p, Calibration(0.0, 0.0)), p)
    # A symmetric effect pulls probabilities toward 1/2 and leaves 1/2 alone; a shift moves them all up.
    wide = calibrated_probability(p, Calibration(0.0, 1.0))
    assert wide[0] == 0.0 and wide[3] == pytest.approx(0.5) and wide[1] > p[1] and wide[4] < p[4]
    assert np.all(calibrated_probability(p[1:], Calibration(0.5, 0.0)) > p[1:])
    # Against a brute-force average over the effect's distribution.
    u = np.random.default_rng(0).normal(0.3, 0.8, 400_000)
    brute = (1 / (1 + np.exp(-(np.log(0.3 / 0.7) + u)))).mean()
    assert calibrated_probability(np.array([0.3]), Calibration(0.3, 0.8))[0] == pytest.approx(brute, abs=2e-3)


@dataclass(frozen=True)
class _Org:
    """What `calibration_moments` reads: the calendar and the first deal's creation."""

    timeline: pl.DataFrame
    calendar: FiscalCalendar = CALENDAR


def test_calibration_moments_keep_the_lead_time_of_a_future_period() -> None:
    """Forecasting December on 21 November (10 days before it starts) is calibrated on forecasts made 10 days
    before each past month started, not on the first day of those months."""
    org = _Org(pl.DataFrame({"created_at": [datetime(2024, 1, 1)]}))
    forecaster = PeriodForecaster(calibration_periods=3)
    december = CALENDAR.parse("2026-12")
    moments = forecaster.calibration_moments(org, december, datetime(2026, 11, 21))  # type: ignore[arg-type]
    assert [(p.label, m) for p, m in moments] == [
        ("2026-08", datetime(2026, 7, 22)), ("2026-09", datetime(2026, 8, 22)), ("2026-10", datetime(2026, 9, 21))]
    # Inside the period: the same number of days into each past month.
    moments = forecaster.calibration_moments(org, NOVEMBER, datetime(2026, 11, 8))  # type: ignore[arg-type]
    assert [m for _, m in moments] == [datetime(2026, 8, 8), datetime(2026, 9, 8), datetime(2026, 10, 8)]
    # A quarter two quarters ahead: two quarters' lead, and only past quarters that ended by then.
    q2 = CALENDAR.parse("2027-Q2")
    moments = forecaster.calibration_moments(org, q2, datetime(2026, 11, 21))  # type: ignore[arg-type]
    lead = datetime(2027, 4, 1) - datetime(2026, 11, 21)
    assert [(p.label, m) for p, m in moments] == [
        (label, datetime.combine(CALENDAR.parse(label).start, datetime.min.time()) - lead)
        for label in ("2026-Q1", "2026-Q2", "2026-Q3")]
    assert all(m.date() < p.start for p, m in moments)


def test_calibration_moments_skip_a_newborn_org() -> None:
    """Moments with fewer than `min_history_days` of history behind them are not backtested at all."""
    org = _Org(pl.DataFrame({"created_at": [datetime(2026, 6, 1)]}))
    moments = PeriodForecaster(min_history_days=90).calibration_moments(
        org, NOVEMBER, datetime(2026, 11, 8))  # type: ignore[arg-type]
    assert [p.label for p, _ in moments] == ["2026-09", "2026-10"]
