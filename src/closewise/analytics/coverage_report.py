"""What `closewise coverage` answers, as data: the report, its status, its JSON and its plain-language verdict.

The numbers are computed by `analytics.coverage`; this module only holds and words them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class CoverageStatus(StrEnum):
    REACHED = "reached"  # closed-won already meets the target
    ON_TRACK = "on_track"  # expected bookings from the open pipeline cover the gap
    SHORT = "short"  # they do not, and new pipeline created now can still close in time
    LATE = "late"  # they do not, and new pipeline would need a faster cycle than 3 in 4 wins had
    UNKNOWN = "unknown"  # history never won pipeline from this position: no conversion to go by


@dataclass(frozen=True)
class StageCoverage:
    stage: str
    open_deals: int
    open_pipeline: float
    conversion: float | None  # p_k, smoothed
    observed_conversion: float | None  # r_k before smoothing (None: stage never seen with this many days left)
    history_deals: int  # n_k
    expected: float
    pipeline_needed: float | None  # remaining gap / p_k


@dataclass(frozen=True)
class SegmentCycle:
    segment: str  # "all" for the org
    won_deals: int
    median_days: float
    p25_days: float
    create_by: date  # P's last day - median cycle
    create_by_latest: date  # P's last day - p25 cycle


@dataclass(frozen=True)
class CoverageReport:
    period: str
    period_start: date
    period_end: date  # the last day, inclusive
    as_of: datetime  # naive UTC
    days_left: float
    currency: str
    target: float
    closed_won: float
    gap: float
    open_deals: int
    open_pipeline: float
    overall_conversion: float | None  # r
    expected_from_pipeline: float
    expected_from_pipeline_sd: float
    remaining_gap: float
    coverage_ratio: float | None  # None when there is no gap
    required_coverage_ratio: float | None  # 1 / r
    required_coverage_for_mix: float | None  # A / E
    pipeline_needed: float | None  # remaining gap / r
    typical_other_bookings: float  # past periods' mean bookings from here on by deals outside their pipeline
    by_stage: list[StageCoverage]
    create_by: date | None
    create_by_latest: date | None
    cycles: list[SegmentCycle]
    history_periods: list[str]
    history_deals: int
    status: CoverageStatus
    verdict: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `closewise coverage --json` (money rounded to cents, ratios to 4 places)."""
        return {
            "period": self.period,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "days_left": round(self.days_left, 2),
            "currency": self.currency,
            "target": _money(self.target),
            "closed_won": _money(self.closed_won),
            "gap": _money(self.gap),
            "open_deals": self.open_deals,
            "open_pipeline": _money(self.open_pipeline),
            "overall_conversion": _ratio(self.overall_conversion),
            "expected_from_pipeline": _money(self.expected_from_pipeline),
            "expected_from_pipeline_sd": _money(self.expected_from_pipeline_sd),
            "remaining_gap": _money(self.remaining_gap),
            "coverage_ratio": _ratio(self.coverage_ratio),
            "required_coverage_ratio": _ratio(self.required_coverage_ratio),
            "required_coverage_for_mix": _ratio(self.required_coverage_for_mix),
            "pipeline_needed": _money(self.pipeline_needed),
            "typical_other_bookings": _money(self.typical_other_bookings),
            "by_stage": [
                {
                    "stage": row.stage,
                    "open_deals": row.open_deals,
                    "open_pipeline": _money(row.open_pipeline),
                    "conversion": _ratio(row.conversion),
                    "observed_conversion": _ratio(row.observed_conversion),
                    "history_deals": row.history_deals,
                    "expected": _money(row.expected),
                    "pipeline_needed": _money(row.pipeline_needed),
                }
                for row in self.by_stage
            ],
            "create_by": self.create_by.isoformat() if self.create_by else None,
            "create_by_latest": self.create_by_latest.isoformat() if self.create_by_latest else None,
            "cycles": [
                {
                    "segment": c.segment,
                    "won_deals": c.won_deals,
                    "median_days": round(c.median_days, 1),
                    "p25_days": round(c.p25_days, 1),
                    "create_by": c.create_by.isoformat(),
                    "create_by_latest": c.create_by_latest.isoformat(),
                }
                for c in self.cycles
            ],
            "history_periods": self.history_periods,
            "history_deals": self.history_deals,
            "status": self.status.value,
            "verdict": self.verdict,
            "notes": self.notes,
        }


def status_of(report: CoverageReport) -> CoverageStatus:
    if report.gap <= 0:
        return CoverageStatus.REACHED
    if report.expected_from_pipeline >= report.gap:
        return CoverageStatus.ON_TRACK
    if not report.overall_conversion:
        return CoverageStatus.UNKNOWN
    if report.create_by_latest is not None and report.create_by_latest < report.as_of.date():
        return CoverageStatus.LATE
    return CoverageStatus.SHORT


def with_verdict(report: CoverageReport, status: CoverageStatus, stage_order: Sequence[str]) -> CoverageReport:
    cur = report.currency

    def money(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} {cur}"

    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}x"

    sentence = (
        f"{money(report.closed_won)} won so far against a {money(report.target)} target; the open pipeline of "
        f"{money(report.open_pipeline)} is expected to bring {money(report.expected_from_pipeline)}"
    )
    if status is CoverageStatus.REACHED:
        verdict = f"Target reached: {money(report.closed_won)} won against a {money(report.target)} target."
    elif status is CoverageStatus.ON_TRACK:
        verdict = (
            f"On track: {sentence}, enough for the {money(report.gap)} gap (coverage "
            f"{ratio(report.coverage_ratio)}; history says {ratio(report.required_coverage_ratio)} is needed "
            f"with {report.days_left:.0f} days left)."
        )
    elif status is CoverageStatus.UNKNOWN:
        verdict = (
            f"Cannot tell: {sentence}; in past periods no pipeline was won from this position, so there is "
            f"no conversion to size the {money(report.gap)} gap with."
        )
    else:
        first = next((row for row in report.by_stage if row.stage in stage_order[:1] and row.pipeline_needed), None)
        as_first = f", or {money(first.pipeline_needed)} if it enters as {first.stage}" if first else ""
        verdict = (
            f"Short: {sentence}, {money(report.remaining_gap)} less than the {money(report.gap)} gap "
            f"(coverage {ratio(report.coverage_ratio)}; history says {ratio(report.required_coverage_ratio)} "
            f"is needed). Closing it takes about {money(report.pipeline_needed)} of new pipeline at the "
            f"usual conversion{as_first}"
        )
        if status is CoverageStatus.LATE:
            verdict += (
                f"; but a won deal usually takes longer than the {report.days_left:.0f} days left (the "
                f"fastest quarter of wins needed pipeline created by {report.create_by_latest}), so the gap "
                f"has to come from existing deals: pull in next period's, raise late-stage conversion."
            )
        elif report.create_by is not None and report.create_by >= report.as_of.date():
            verdict += f", created by {report.create_by} (half of won deals take longer)."
        else:
            verdict += (
                f", created by {report.create_by_latest} at the latest: only the fastest quarter of won "
                f"deals would still close in time."
            )
        if report.typical_other_bookings > 0:
            verdict += (
                f" In past periods, deals outside the pipeline at this point (created later or pulled in) "
                f"added {money(report.typical_other_bookings)} on average."
            )
    notes = []
    if report.history_deals < 30:
        notes.append(
            f"conversion learned from only {report.history_deals} deals in {len(report.history_periods)} "
            f"past period(s); treat it as rough"
        )
    return replace(report, status=status, verdict=verdict, notes=notes)


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
