"""The three naive forecasts every Closewise forecast and backtest is shown beside.

Each answers "what will period P book?" as of a moment `as_of`, from the state every opportunity had then
(`analytics.snapshots.snapshot`: changes after `as_of` are invisible), in the corporate currency (each deal
converted at the rate of its close date as known then, `analytics.currency.to_corporate`). All three start
from the same fact, **closed-won so far**: deals won at `as_of` whose `closed_at` lies in
`[P.start, min(as_of, P.end))` (zero when `as_of` is before P).

- `run_rate_3`, the 3-month run rate: `M` = the average monthly closed-won of the three full calendar months
  before `as_of` (the months ending at or before the first instant of `as_of`'s month: as of 2026-11-01 or
  2026-11-22 alike, August to October). Months that ended before the org's first known deal was created are
  left out of the average (a young org is not diluted by months it did not exist), and with none left the
  rate is 0. The forecast is `closed-won so far + M × months(P) × remaining(P)`, where `months(P)` is P's
  length in months (1, 3 or 12) and `remaining(P)` the fraction of P's time still ahead at `as_of` (1 before
  P starts, 0 after it ends, in proportion to elapsed time in between). This is the "run rate" / naive
  seasonal-free benchmark of forecasting practice (Hyndman & Athanasopoulos, *Forecasting: Principles and
  Practice*, 3rd ed., §5.2, the average method over a moving window).
- `crm_weighted`, the CRM's probability-weighted pipeline: `closed-won so far + Σ amount × probability / 100`
  over the deals open at `as_of` whose close date then lay in P (overdue ones inside P included, as the CRM
  counts them). A deal without a probability takes its stage's default from the playbook when `stages` is
  given, else 0 (`analytics.pipeline.open_deals` rules).
- `commit`, the commit call: `closed-won so far + Σ amount` over the deals open at `as_of` with close date in
  P and forecast category `commit` (the "closed + commit" number a sales leader calls).

Once P has ended at `as_of` nothing is left to come: all three equal the period's closed-won total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.pipeline import in_pipeline
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import ForecastCategory, OpportunityStatus
from closewise.domain.periods import Period
from closewise.domain.timeutil import midnight, naive_utc

RUN_RATE_MONTHS: Final = 3
BASELINE_NAMES: Final = ("run_rate_3", "crm_weighted", "commit")

_VALUE: Final = "baseline_value"  # to_corporate drops columns starting with "_"
_WON: Final = OpportunityStatus.WON.value
_COMMIT: Final = ForecastCategory.COMMIT.value


@dataclass(frozen=True)
class Baselines:
    """The three baselines for `period` as of `as_of` (naive UTC), all in the corporate currency."""

    as_of: datetime
    period: Period
    closed_won: float  # won in the period by as_of
    run_rate_3: float
    crm_weighted: float
    commit: float

    def as_dict(self) -> dict[str, float]:
        """`{"run_rate_3", "crm_weighted", "commit"}`, the backtest JSON's `baselines` object."""
        return {"run_rate_3": self.run_rate_3, "crm_weighted": self.crm_weighted, "commit": self.commit}


def baselines(
    timeline: pl.DataFrame,
    *,
    period: Period,
    as_of: datetime,
    rates: pl.DataFrame,
    corporate: str,
    stages: pl.DataFrame | None = None,
) -> Baselines:
    """All three baselines from one snapshot of `timeline` (`analytics.snapshots.build_timeline`) at `as_of`.

    `stages` (playbook: `key`, `default_probability`) fills in missing CRM probabilities.
    """
    at = naive_utc(as_of)
    state, first_created = _relevant(timeline, at, since=min(midnight(period.start), _window(at)[0]), period=period)
    state = _valued(state, rates, corporate)
    won = _closed_won(state, period, at)
    return Baselines(
        as_of=at,
        period=period,
        closed_won=won,
        run_rate_3=won + _run_rate_rest(state, period, at, first_created),
        crm_weighted=won + _weighted_rest(state, period, at, stages),
        commit=won + _commit_rest(state, period, at),
    )


def run_rate_3(
    timeline: pl.DataFrame, *, period: Period, as_of: datetime, rates: pl.DataFrame, corporate: str
) -> float:
    """Closed-won so far + the 3-month run rate over the rest of `period` (module header)."""
    return baselines(timeline, period=period, as_of=as_of, rates=rates, corporate=corporate).run_rate_3


def crm_weighted(
    timeline: pl.DataFrame,
    *,
    period: Period,
    as_of: datetime,
    rates: pl.DataFrame,
    corporate: str,
    stages: pl.DataFrame | None = None,
) -> float:
    """Closed-won so far + the CRM probability-weighted open pipeline closing in `period` (module header)."""
    return baselines(timeline, period=period, as_of=as_of, rates=rates, corporate=corporate, stages=stages).crm_weighted


def commit(timeline: pl.DataFrame, *, period: Period, as_of: datetime, rates: pl.DataFrame, corporate: str) -> float:
    """Closed-won so far + open deals in forecast category commit closing in `period` (module header)."""
    return baselines(timeline, period=period, as_of=as_of, rates=rates, corporate=corporate).commit


def monthly_run_rate(timeline: pl.DataFrame, *, as_of: datetime, rates: pl.DataFrame, corporate: str) -> float:
    """`M`: the average monthly closed-won of the three full months before `as_of` (module header)."""
    at = naive_utc(as_of)
    state, first_created = _relevant(timeline, at, since=_window(at)[0], period=None)
    return _monthly_rate(_valued(state, rates, corporate), at, first_created)


def period_months(period: Period) -> int:
    """How many calendar months `period` spans (periods start on a month's first day)."""
    return _month_index(period.end) - _month_index(period.start)


def remaining_fraction(period: Period, as_of: datetime) -> float:
    """The share of `period`'s time still ahead at `as_of`: 1 before it starts, 0 once it has ended."""
    at = naive_utc(as_of)
    start, end = midnight(period.start), midnight(period.end)
    if at <= start:
        return 1.0
    if at >= end:
        return 0.0
    return (end - at) / (end - start)


# --- internals -------------------------------------------------------------------------------------------


def _relevant(timeline: pl.DataFrame, at: datetime, *, since: datetime,
              period: Period | None) -> tuple[pl.DataFrame, datetime | None]:
    """The snapshot at `at` of the deals a baseline reads (won with `closed_at` from `since` on; open closing in
    `period`), and the first creation among all deals then (null: none yet). Only those are valued: a whole
    1M-deal snapshot in the corporate currency cost ~0.7 s a period."""
    state = snapshot(timeline, at)
    first = state[s.CREATED_AT].min() if state.height else None
    won = (pl.col(s.STATUS) == _WON) & (pl.col(s.CLOSED_AT) >= since)
    keep = (won | in_pipeline(period)).fill_null(value=False) if period is not None else won.fill_null(value=False)
    return state.filter(keep), first if isinstance(first, datetime) else None


def _valued(state: pl.DataFrame, rates: pl.DataFrame, corporate: str) -> pl.DataFrame:
    """The snapshot with each deal's amount (missing: 0) in the corporate currency, as `_VALUE`."""
    return to_corporate(
        state.with_columns(pl.col(s.AMOUNT).fill_null(0.0).alias("baseline_amount")),
        rates,
        corporate=corporate,
        amount="baseline_amount",
        into=_VALUE,
    ).drop("baseline_amount")


def _closed_won(state: pl.DataFrame, period: Period, at: datetime) -> float:
    stop = min(at, midnight(period.end))
    won = state.filter(
        pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) >= midnight(period.start), pl.col(s.CLOSED_AT) < stop
    )
    return _total(won)


def _run_rate_rest(state: pl.DataFrame, period: Period, at: datetime, first_created: datetime | None) -> float:
    remaining = remaining_fraction(period, at)
    if remaining == 0.0:
        return 0.0
    return _monthly_rate(state, at, first_created) * period_months(period) * remaining


def _window(at: datetime) -> tuple[datetime, datetime]:
    """The run rate's months: from the start of the third full month before `at`'s to the start of `at`'s."""
    window_end = datetime(at.year, at.month, 1)
    return _shift_months(window_end, -RUN_RATE_MONTHS), window_end


def _monthly_rate(state: pl.DataFrame, at: datetime, first_created: datetime | None) -> float:
    window_start, window_end = _window(at)
    month_ends = [_shift_months(window_end, -k) for k in range(RUN_RATE_MONTHS)]
    if first_created is None:
        return 0.0
    observed = sum(1 for end in month_ends if end > first_created)
    if observed == 0:
        return 0.0
    start = max(window_start, _shift_months(window_end, -observed))
    won = state.filter(pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) >= start, pl.col(s.CLOSED_AT) < window_end)
    return _total(won) / observed


def _weighted_rest(state: pl.DataFrame, period: Period, at: datetime, stages: pl.DataFrame | None) -> float:
    if at >= midnight(period.end):
        return 0.0
    deals = state.filter(in_pipeline(period))
    probability = pl.col(s.PROBABILITY)
    if stages is not None and stages.height:
        defaults = stages.select(pl.col("key").alias(s.STAGE), pl.col("default_probability").alias("_default"))
        deals = deals.join(defaults, on=s.STAGE, how="left")
        probability = pl.coalesce(probability, pl.col("_default"))
    weighted = deals.select((pl.col(_VALUE) * probability.cast(pl.Float64).fill_null(0.0) / 100.0).sum()).item()
    return float(weighted or 0.0)


def _commit_rest(state: pl.DataFrame, period: Period, at: datetime) -> float:
    if at >= midnight(period.end):
        return 0.0
    return _total(state.filter(in_pipeline(period), pl.col(s.FORECAST_CATEGORY) == _COMMIT))


def _total(frame: pl.DataFrame) -> float:
    value = frame[_VALUE].sum() if frame.height else 0.0
    return float(value or 0.0)



def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _shift_months(moment: datetime, months: int) -> datetime:
    index = _month_index(moment.date()) + months
    return datetime(index // 12, index % 12 + 1, 1)
