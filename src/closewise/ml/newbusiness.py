"""New business: what deals not yet created at `as_of` will bring, created and won within the period.

What it estimates: the amount (corporate currency) won inside a period P by deals created after `as_of`,
when `as_of` lies `d` days into P (d = 0 before P starts), as a mean and a spread for the simulation.

From what: the org's past periods of P's kind that ended by `as_of` (the last `lookback` of them). In each
past period Q, the amount won in Q by deals created on or after `Q.start + 7w`, for every week w of the
period: a table periods x weeks (`by_week`). Wins are those known at `as_of` (the as-of engine), converted
at their close date. For `d` days in, the value of each past period is read between its weeks `floor(d/7)`
and the next (linear in the days between), and the estimate is their mean and standard deviation with
exponentially decaying weights (half-life `half_life` periods), so a growing org is tracked without
chasing one period. It is the historical-analogue method used by `analytics.coverage_learning` for the
pipeline, applied to the bookings that no pipeline held yet. Deals created between `as_of` and the start of
a future period that close inside it are counted from the period's start only (a small omission).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Self

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.coverage_learning import past_periods
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.timeutil import midnight, naive_utc

DEFAULT_LOOKBACK: Final = {PeriodKind.MONTH: 12, PeriodKind.QUARTER: 8, PeriodKind.YEAR: 3}


@dataclass(frozen=True)
class NewBusinessEstimate:
    mean: float
    sd: float
    periods: int  # past periods it was learned from

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "sd": self.sd, "periods": self.periods}


class NewBusinessModel:
    """Bookings from deals not yet created, by week of period (see the module header)."""

    def __init__(self, *, lookback: int | None = None, half_life: float = 4.0) -> None:
        self.lookback = lookback
        self.half_life = half_life

    def fit(self, timeline: pl.DataFrame, rates: pl.DataFrame, *, corporate: str, calendar: FiscalCalendar,
            kind: PeriodKind, as_of: datetime) -> Self:
        at = naive_utc(as_of)
        periods = [p for p in past_periods(calendar, calendar.period_containing(at.date(), kind), at,
                                           self.lookback or DEFAULT_LOOKBACK[kind])]
        weeks = max((p.days + 6) // 7 for p in periods) + 1 if periods else 1
        table = np.zeros((len(periods), weeks))
        if periods:
            won = snapshot(timeline.filter(pl.col(s.STATUS) == OpportunityStatus.WON.value), at).filter(
                pl.col(s.CLOSED_AT).is_not_null())
            won = to_corporate(won, rates, corporate=corporate, into="_v")
            bounds = pl.DataFrame({"_q": range(len(periods)), "_start": [midnight(p.start) for p in periods],
                                   "_end": [midnight(p.end) for p in periods]},
                                  schema={"_q": pl.Int64, "_start": s.TIMESTAMP, "_end": s.TIMESTAMP})
            inside = (
                won.select(s.CREATED_AT, s.CLOSED_AT, "_v").join(bounds, how="cross")
                .filter(pl.col(s.CLOSED_AT) >= pl.col("_start"), pl.col(s.CLOSED_AT) < pl.col("_end"),
                        pl.col(s.CREATED_AT) >= pl.col("_start"))
                .select("_q", ((pl.col(s.CREATED_AT) - pl.col("_start")).dt.total_days() // 7).alias("_w"), "_v")
                .group_by("_q", "_w").agg(pl.col("_v").sum())
            )
            for q, w, v in inside.iter_rows():
                table[int(q), min(int(w), weeks - 1)] += float(v or 0.0)
            # Column w: created in week w or later, so a reversed running sum over the weeks.
            table = np.cumsum(table[:, ::-1], axis=1)[:, ::-1]
        self.periods_ = tuple(p.label for p in periods)
        self.by_week_ = table
        self.as_of_ = at
        return self

    def estimate(self, period: Period, as_of: datetime) -> NewBusinessEstimate:
        at = naive_utc(as_of)
        if at >= midnight(period.end) or not self.periods_:
            return NewBusinessEstimate(0.0, 0.0, len(self.periods_))
        days = max((at - midnight(period.start)) / timedelta(days=1), 0.0)
        week, fraction = int(days // 7), (days % 7) / 7
        table = self.by_week_
        last = table.shape[1] - 1
        values = (1 - fraction) * table[:, min(week, last)] + fraction * table[:, min(week + 1, last)]
        n = len(values)
        weights = 0.5 ** (np.arange(n)[::-1] / self.half_life)
        weights /= weights.sum()
        mean = float(weights @ values)
        if n < 2:
            return NewBusinessEstimate(mean, mean, n)
        variance = float(weights @ (values - mean) ** 2) / (1 - float(weights @ weights))
        return NewBusinessEstimate(mean, math.sqrt(max(variance, 0.0)), n)

    def by_week(self) -> list[dict[str, float | int]]:
        """Mean and spread per week of period (what the model card shows)."""
        rows: list[dict[str, float | int]] = []
        for week in range(self.by_week_.shape[1]):
            column = self.by_week_[:, week]
            rows.append({"week": week, "mean": float(column.mean()) if column.size else 0.0,
                         "sd": float(column.std(ddof=1)) if column.size > 1 else 0.0})
        return rows
