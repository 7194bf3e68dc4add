"""New business by position in the fiscal quarter (`closewise.ml.newbusiness`), on hand-made timelines.

Each past month books `deals` equal deals created on its 3rd and won on its 10th (so they are new business of
that month, created after its first day), in USD (the corporate currency). Planted: a level of 100,000 times a
factor per month of the fiscal quarter (calendar quarters here), 0.6 / 1.0 / 1.4. Expected values are derived
in each test from the module header's recipe (ratios to each quarter's mean, their noise the larger of the
scatter and the compound-Poisson variance, empirical-Bayes shrinkage toward 1), not pasted.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.analytics.currency import RATES_SCHEMA
from closewise.analytics.snapshots import build_timeline
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.ml.newbusiness import NewBusinessModel, position_of, seasonal_factors

CALENDAR = FiscalCalendar(start_month=1)
RATES = pl.DataFrame(schema=RATES_SCHEMA)
AS_OF = datetime(2026, 1, 1)
LEVEL = 100_000.0
PLANTED = (0.6, 1.0, 1.4)
HALF_LIFE = 4.0


def _timeline(bookings: dict[tuple[int, int], float], deals: int) -> pl.DataFrame:
    """`deals` equal deals per (year, month): created on the 3rd, won on the 10th, adding up to the amount."""
    rows: list[dict[str, object]] = []
    log: list[dict[str, object]] = []
    for (year, month), amount in sorted(bookings.items()):
        for _ in range(deals):
            deal = len(rows) + 1
            created, won = datetime(year, month, 3, 9), datetime(year, month, 10, 15)
            rows.append({s.ID: deal, s.OWNER_ID: 1, s.ACCOUNT_ID: None, s.STAGE: "closed_won", s.STATUS: "won",
                         s.AMOUNT: amount / deals, s.CURRENCY: "USD", s.CLOSE_DATE: won.date(),
                         s.FORECAST_CATEGORY: "closed", s.PROBABILITY: 100.0, s.NEXT_STEP: None,
                         s.CREATED_AT: created, s.CLOSED_AT: won})
            log.append({s.OPPORTUNITY_ID: deal, s.FIELD: "status", s.CHANGED_AT: won,
                        s.OLD_VALUE: encode(ChangeField("status"), "open"),
                        s.NEW_VALUE: encode(ChangeField("status"), "won")})
    opportunities = pl.DataFrame(rows, schema=dict(s.OPPORTUNITY_SCHEMA), orient="row")
    changes = pl.DataFrame(log, schema=dict(s.CHANGE_SCHEMA), orient="row")
    return build_timeline(opportunities, changes)


def _fit(bookings: dict[tuple[int, int], float], *, deals: int, lookback: int = 12) -> NewBusinessModel:
    return NewBusinessModel(lookback=lookback, half_life=HALF_LIFE).fit(
        _timeline(bookings, deals), RATES, corporate="USD", calendar=CALENDAR, kind=PeriodKind.MONTH, as_of=AS_OF)


def _planted_year() -> dict[tuple[int, int], float]:
    return {(2025, month): LEVEL * PLANTED[(month - 1) % 3] for month in range(1, 13)}


def _decayed(n: int) -> np.ndarray:
    weights = 0.5 ** (np.arange(n)[::-1] / HALF_LIFE)
    out: np.ndarray = weights / weights.sum()
    return out


def _shrunk(ratios: np.ndarray, deals: int) -> np.ndarray:
    """The factors the module header describes, for a parents x positions table of ratios whose values are
    sums of `deals` equal deals (so each ratio's compound-Poisson variance is ratio^2 / deals)."""
    n, positions = ratios.shape
    means = ratios.mean(axis=0)
    scatter = ((ratios - means) ** 2).sum() / (positions * (n - 1))
    poisson = (ratios**2 / deals).mean()  # each parent's squares averaged over its positions, then over parents
    noise = max(scatter, poisson) / n
    tau2 = max(((means - 1) ** 2).sum() / (positions - 1) - noise, 0.0)
    out: np.ndarray = 1 + tau2 / (tau2 + noise) * (means - 1)
    return out


def test_positions_are_read_in_the_fiscal_quarter() -> None:
    assert position_of(CALENDAR, CALENDAR.parse("2026-01")) == (0, "2026-Q1")
    assert position_of(CALENDAR, CALENDAR.parse("2026-06")) == (2, "2026-Q2")
    # A fiscal year starting in February: March is its first quarter's second month.
    assert position_of(FiscalCalendar(start_month=2), CALENDAR.parse("2026-03"))[0] == 1  # type: ignore[index]
    assert position_of(CALENDAR, CALENDAR.parse("2026-Q4")) == (3, "2026")
    assert position_of(CALENDAR, CALENDAR.parse("2026")) is None


def test_a_planted_quarter_position_effect_is_recovered() -> None:
    # Four whole quarters of 200 deals a month, no noise across quarters: the ratios are the planted factors
    # and only the compound-Poisson noise of 200 deals shrinks them (by under 1%).
    factors = _shrunk(np.tile(PLANTED, (4, 1)), deals=200)
    assert factors == pytest.approx(PLANTED, rel=0.01)
    values = np.array(list(_planted_year().values()))
    weights = _decayed(12)
    level = weights @ values / (weights @ np.tile(factors, 4))
    model = _fit(_planted_year(), deals=200)
    for label, position in (("2026-01", 0), ("2026-02", 1), ("2026-03", 2)):
        estimate = model.estimate(CALENDAR.parse(label), AS_OF)
        assert estimate.mean == pytest.approx(level * factors[position], rel=1e-9)
        assert estimate.mean == pytest.approx(LEVEL * PLANTED[position], rel=0.01)
        assert estimate.periods == 12
    # The position-blind decayed mean would have said about the level for all three.
    assert abs(weights @ values - LEVEL) < 0.1 * LEVEL


def test_noisy_quarters_are_shrunk_toward_no_effect() -> None:
    # Three quarters of 100 deals a month, each averaging 100k: Q2 books 50k / 110k / 140k, Q3 70k / 90k / 140k,
    # Q4 60k / 100k / 140k.
    values = np.array([50_000.0, 110_000.0, 140_000.0, 70_000.0, 90_000.0, 140_000.0, 60_000.0, 100_000.0,
                       140_000.0])
    factors = _shrunk(values.reshape(3, 3) / 100_000.0, deals=100)
    assert np.all(np.abs(factors - 1) <= np.abs(np.array(PLANTED) - 1))  # shrunk, never pushed out
    assert factors[0] < 0.7 and factors[2] > 1.3  # but the effect is kept: 100 deals a month are informative
    squares = values**2 / 100  # 100 equal deals: sum of squared amounts
    parents = ["Q2"] * 3 + ["Q3"] * 3 + ["Q4"] * 3
    assert seasonal_factors(values, squares, [0, 1, 2] * 3, parents, 3) == pytest.approx(factors)
    # Two quarters are not enough to claim an effect.
    assert seasonal_factors(values[3:], squares[3:], [0, 1, 2] * 2, parents[3:], 3) == pytest.approx(np.ones(3))
    weights = _decayed(9)
    level = weights @ values / (weights @ np.tile(factors, 3))
    model = _fit({(2025, 4 + k): v for k, v in enumerate(values)}, deals=100, lookback=9)
    for month, position in ((1, 0), (2, 1), (3, 2)):
        estimate = model.estimate(CALENDAR.parse(f"2026-{month:02d}"), AS_OF)
        assert estimate.mean == pytest.approx(level * factors[position], rel=1e-9)


def test_months_of_one_deal_claim_no_effect() -> None:
    # One deal a month: each ratio's compound-Poisson variance is its square, which swamps the differences
    # between positions, so every factor is 1 and the estimate is the plain decayed mean.
    assert _shrunk(np.tile(PLANTED, (4, 1)), deals=1) == pytest.approx(np.ones(3))
    plain = float(_decayed(12) @ np.array(list(_planted_year().values())))
    model = _fit(_planted_year(), deals=1)
    for month in (1, 2, 3):
        assert model.estimate(CALENDAR.parse(f"2026-{month:02d}"), AS_OF).mean == pytest.approx(plain)


def test_one_whole_quarter_keeps_the_plain_decayed_mean() -> None:
    # With a single whole quarter there is no scatter to measure (nor enough with two): no effect is claimed.
    bookings = {(2025, 10): 60_000.0, (2025, 11): 100_000.0, (2025, 12): 140_000.0}
    plain = float(_decayed(3) @ np.array([60_000.0, 100_000.0, 140_000.0]))
    model = _fit(bookings, deals=50, lookback=3)
    for month in (1, 2, 3):
        assert model.estimate(CALENDAR.parse(f"2026-{month:02d}"), AS_OF).mean == pytest.approx(plain)


def test_nothing_after_as_of_is_used() -> None:
    later = {**_planted_year(), (2026, 1): 9_000_000.0, (2026, 2): 9_000_000.0}
    for label in ("2026-01", "2026-02"):
        assert _fit(later, deals=5).estimate(CALENDAR.parse(label), AS_OF) == _fit(
            _planted_year(), deals=5).estimate(CALENDAR.parse(label), AS_OF)


def test_an_ended_period_has_no_new_business() -> None:
    assert _fit(_planted_year(), deals=5).estimate(CALENDAR.parse("2025-12"), AS_OF).mean == 0.0
