"""Do I have enough pipeline? Coverage of a period's target from the org's own conversion and cycle times.

For a period P, a target (corporate currency) and a moment `as_of` inside or before P, the answer is built
from what was known at `as_of` only:

- closed-won so far: deals won in P by `as_of`, and the gap `max(target - closed_won, 0)`;
- the open pipeline expected to close in P (open at `as_of`, close date in P), by stage;
- each stage's conversion within the days left, `p_k`, learned by `analytics.coverage_learning` from the
  same position in past periods (historical analogues, shrunk toward the overall rate `r` by additive
  smoothing; see that module's header for the estimator and its reference);
- expected bookings from that pipeline `E = sum_k p_k A_k` (A_k: stage k's open amount), with a spread
  `sd = sqrt(sum_k p_k (1 - p_k) sum_i a_i^2)` that treats each deal as an independent win of its whole
  amount with its stage's probability (the variance of a sum of Bernoulli-weighted amounts; it leaves out
  the error of the rates themselves, so it is a floor);
- the pipeline still needed: the remaining gap `max(gap - E, 0)` divided by the conversion, in total
  (`/ r`) and as pipeline of each stage (`/ p_k`: e.g. how much first-stage pipeline would do);
- coverage ratio `open pipeline / gap` beside the ratio history says is needed, `1 / r` (the classic
  "3x coverage" rule, learned instead of assumed), and the ratio needed for today's stage mix, `A / E`
  (coverage at or above it is the same statement as `E >= gap`);
- by when new pipeline must be created: P's last day minus the median created-to-won cycle (half of wins
  take longer), and minus its 25th percentile (only the fastest quarter of wins would make it), per
  segment when the segment has enough wins;
- what past periods booked from this point on from deals outside their pipeline (not counted on, shown);
- a status and a plain-language verdict (`analytics.coverage_report`, which holds the report and its JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.coverage_learning import (
    ALL_SEGMENTS,
    DEFAULT_LOOKBACK,
    StageConversion,
    WonCycle,
    learn_stage_conversion,
    learn_won_cycles,
    past_periods,
)
from closewise.analytics.coverage_report import (
    CoverageReport,
    CoverageStatus,
    SegmentCycle,
    StageCoverage,
    status_of,
    with_verdict,
)
from closewise.analytics.currency import to_corporate
from closewise.analytics.pipeline import VALUE, open_deals
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput

__all__ = ["CoverageReport", "CoverageSettings", "CoverageStatus", "SegmentCycle", "StageCoverage", "coverage"]

_WON: Final = OpportunityStatus.WON.value
_WON_COLUMNS: Final = (s.ID, s.VALID_FROM, s.VALID_TO, s.STATUS, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE, s.CLOSED_AT)


@dataclass(frozen=True)
class CoverageSettings:
    lookback_periods: int | None = None  # past periods learned from; None: 12 months, 8 quarters or 3 years
    prior_deals: float = 20.0  # m: how many deals' weight the overall rate has in a stage's rate
    min_segment_wins: int = 30  # wins a segment needs for its own cycle


def coverage(
    timeline: pl.DataFrame,
    *,
    period: Period,
    as_of: datetime,
    target: float,
    calendar: FiscalCalendar,
    rates: pl.DataFrame,
    corporate: str,
    stage_order: Sequence[str] = (),
    settings: CoverageSettings | None = None,
) -> CoverageReport:
    """Coverage of `target` in `period` as known at `as_of`, from a timeline (`analytics.snapshots`).

    A `segment` column on the timeline gives per-segment cycles. Raises `InvalidInput` for a target that is
    not a positive amount, a period already over at `as_of`, or an org with no comparable history.
    """
    settings = settings or CoverageSettings()
    if not math.isfinite(target) or target <= 0:
        raise InvalidInput(f"target must be a positive amount, got {target:g}", where="--target")
    at = naive_utc(as_of)
    start, end = midnight(period.start), midnight(period.end)
    if at >= end:
        raise InvalidInput(
            f"period {period.label} ended on {period.last_day}; coverage looks ahead, so --as-of "
            f"must be before its end",
            where="--as-of",
        )
    remaining = end - at

    # Only won states can make a won deal at `at`: the snapshot of those alone is the same, for less.
    won_now = snapshot(timeline.select(_WON_COLUMNS).filter(pl.col(s.STATUS) == _WON), at).filter(
        pl.col(s.CLOSED_AT) >= start, pl.col(s.CLOSED_AT) < end
    )
    closed_won = _total(to_corporate(won_now, rates, corporate=corporate, into="_v"))
    # The open deals closing in P, valued as the pipeline values them (shared with it at the same instant).
    open_now = open_deals(timeline, at, rates=rates, corporate=corporate, period=period).rename({VALUE: "_v"})

    periods = _periods_with_data(timeline, calendar, period, at, settings)
    learned = learn_stage_conversion(
        timeline,
        rates,
        corporate=corporate,
        periods=periods,
        remaining=remaining,
        as_of=at,
        prior_deals=settings.prior_deals,
    )
    if learned.overall is None:
        raise InvalidInput(
            f"not enough history to learn conversion: no past {period.kind.value} before {at.date()} had pipeline "
            f"{remaining.days} days before its end"
        )
    stages = _stage_rows(open_now, learned, stage_order)
    expected = sum(row.expected for row in stages[0])
    sd = math.sqrt(stages[1])
    gap = max(target - closed_won, 0.0)
    remaining_gap = max(gap - expected, 0.0)
    overall = learned.overall
    by_stage = [
        StageCoverage(
            r.stage,
            r.open_deals,
            r.open_pipeline,
            r.conversion,
            r.observed_conversion,
            r.history_deals,
            r.expected,
            remaining_gap / r.conversion if r.conversion else None,
        )
        for r in stages[0]
    ]
    open_pipeline = _total(open_now)
    cycles = [
        _segment_cycle(c, period)
        for c in learn_won_cycles(
            timeline, as_of=at, since=midnight(periods[0].start), min_segment_wins=settings.min_segment_wins
        )
    ]
    org_cycle = next((c for c in cycles if c.segment == ALL_SEGMENTS), None)
    report = CoverageReport(
        period=period.label,
        period_start=period.start,
        period_end=period.last_day,
        as_of=at,
        days_left=remaining.total_seconds() / 86400,
        currency=corporate,
        target=target,
        closed_won=closed_won,
        gap=gap,
        open_deals=open_now.height,
        open_pipeline=open_pipeline,
        overall_conversion=overall,
        expected_from_pipeline=expected,
        expected_from_pipeline_sd=sd,
        remaining_gap=remaining_gap,
        coverage_ratio=open_pipeline / gap if gap > 0 else None,
        required_coverage_ratio=1 / overall if overall > 0 else None,
        required_coverage_for_mix=open_pipeline / expected if expected > 0 else None,
        pipeline_needed=remaining_gap / overall if overall > 0 else None,
        typical_other_bookings=learned.other_bookings,
        by_stage=by_stage,
        create_by=org_cycle.create_by if org_cycle else None,
        create_by_latest=org_cycle.create_by_latest if org_cycle else None,
        cycles=cycles,
        history_periods=list(learned.periods),
        history_deals=learned.history_deals,
        status=CoverageStatus.UNKNOWN,
        verdict="",
    )
    return with_verdict(report, status_of(report), stage_order)


# --- internals -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StageRow:
    stage: str
    open_deals: int
    open_pipeline: float
    conversion: float | None
    observed_conversion: float | None
    history_deals: int
    expected: float


def _stage_rows(
    open_now: pl.DataFrame, learned: StageConversion, stage_order: Sequence[str]
) -> tuple[list[_StageRow], float]:
    """One row per stage (playbook order, then any other stage seen), and the variance of E."""
    current = {
        str(row[s.STAGE]): row
        for row in open_now.group_by(s.STAGE)
        .agg(pl.len().alias("n"), pl.col("_v").sum().alias("a"), (pl.col("_v") ** 2).sum().alias("a2"))
        .iter_rows(named=True)
    }
    history = {str(row[s.STAGE]): row for row in learned.by_stage.iter_rows(named=True)}
    extra = sorted((set(current) | set(history)) - set(stage_order))
    rows: list[_StageRow] = []
    variance = 0.0
    for stage in [*stage_order, *extra]:
        now, past = current.get(stage), history.get(stage)
        rate = learned.rate(stage)
        amount = float(now["a"]) if now else 0.0
        if now and rate is not None:
            p = min(max(rate, 0.0), 1.0)
            variance += p * (1 - p) * float(now["a2"])
        rows.append(
            _StageRow(
                stage,
                int(now["n"]) if now else 0,
                amount,
                rate,
                float(past["observed"]) if past and past["observed"] is not None else None,
                int(past["history_deals"]) if past else 0,
                amount * rate if rate is not None else 0.0,
            )
        )
    return rows, variance


def _periods_with_data(
    timeline: pl.DataFrame, calendar: FiscalCalendar, period: Period, at: datetime, settings: CoverageSettings
) -> list[Period]:
    lookback = settings.lookback_periods or DEFAULT_LOOKBACK[period.kind]
    if lookback < 1:
        raise InvalidInput(f"look-back must be at least one period, got {lookback}")
    first = timeline[s.CREATED_AT].min() if timeline.height else None
    periods = past_periods(calendar, period, at, lookback)
    if isinstance(first, datetime):
        periods = [p for p in periods if midnight(p.end) > first]
    if not periods:
        raise InvalidInput(
            f"not enough history to learn conversion: no complete {period.kind.value} with deals before {at.date()}"
        )
    return periods


def _segment_cycle(cycle: WonCycle, period: Period) -> SegmentCycle:
    return SegmentCycle(
        cycle.segment,
        cycle.won_deals,
        cycle.median_days,
        cycle.p25_days,
        period.last_day - timedelta(days=math.ceil(cycle.median_days)),
        period.last_day - timedelta(days=math.ceil(cycle.p25_days)),
    )


def _total(frame: pl.DataFrame) -> float:
    return float(frame["_v"].sum()) if frame.height else 0.0

