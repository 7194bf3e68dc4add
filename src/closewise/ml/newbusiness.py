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

**Position in the fiscal calendar** (`seasonal_factors`): a month's new business depends on where it sits in
its fiscal quarter (first, second or third month: deals created in a quarter's last month and due just after
it are pulled into it, and a quarter's first weeks are quiet), and a quarter's on where it sits in its fiscal
year. So a past value is read as a level times a factor per position. For every parent period (the fiscal
quarter of a month, the fiscal year of a quarter) lying wholly inside the lookback with bookings, each
child's value over the parent's mean (a ratio-to-moving-average seasonal index, as in the classical
decomposition) is averaged per position, and that average is shrunk toward 1 by empirical Bayes (Morris,
"Parametric empirical Bayes inference", JASA 78(381), 1983): the weight kept is `tau2 / (tau2 + v)`, where
`v` is the noise variance of the position's average and `tau2` the between-position variance left once
the noise is taken out (method of moments, floored at 0). The noise is the larger of the ratios' scatter
within positions (pooled) and the compound-Poisson variance of a sum of a few deals (the parent's sum of
squared amounts per position over its mean squared, averaged over the parents: what any position would show
were there no effect): a month booked by two deals says almost nothing about its position, however alike
two quarters look. With fewer than three such parents (two leave the scatter 3 degrees of freedom), or for
years (no parent), every factor is 1 and the estimate is the plain decayed mean; so quarters, whose default
lookback of 8 holds at most two whole fiscal years, keep the plain mean unless given a longer lookback.
Otherwise the level is the decayed-weight ratio estimate `sum w v / sum w f` (each past value against its
own position's factor `f`), the mean is the level times P's factor and the spread `sqrt(f)` times the
residuals' (variance proportional to the mean, as for a sum of deals); with every factor 1 these are the plain
decayed mean and spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
# The period a period's position is read in, and how many of it the parent holds.
PARENT: Final = {PeriodKind.MONTH: (PeriodKind.QUARTER, 3), PeriodKind.QUARTER: (PeriodKind.YEAR, 4)}
# Whole parents needed to claim an effect: two leave the scatter within positions 3 degrees of freedom.
MIN_PARENTS: Final = 3


@dataclass(frozen=True)
class NewBusinessEstimate:
    mean: float
    sd: float
    periods: int  # past periods it was learned from

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "sd": self.sd, "periods": self.periods}


def position_of(calendar: FiscalCalendar, period: Period) -> tuple[int, str] | None:
    """The period's position (0-based) in its parent (a month in its fiscal quarter, a quarter in its fiscal
    year) and the parent's label; None for a year."""
    if period.kind not in PARENT:
        return None
    parent = calendar.period_containing(period.start, PARENT[period.kind][0])
    position = 0
    current = period
    while current.start > parent.start:
        current = calendar.previous(current)
        position += 1
    return position, parent.label


def seasonal_factors(values: Sequence[float] | np.ndarray, squares: Sequence[float] | np.ndarray,
                     positions: Sequence[int], parents: Sequence[str], n_positions: int) -> np.ndarray:
    """One factor per position from the past `values` (each with the sum of its deals' squared amounts in
    `squares`), their `positions` and `parents`: see the module header. All ones with fewer than `MIN_PARENTS`
    whole parents that booked anything."""
    ones = np.ones(n_positions)
    by_parent: dict[str, dict[int, tuple[float, float]]] = {}
    for value, square, position, parent in zip(np.asarray(values, dtype=np.float64),
                                               np.asarray(squares, dtype=np.float64), positions, parents,
                                               strict=True):
        by_parent.setdefault(parent, {})[position] = (float(value), float(square))
    ratios, noise = [], []
    for children in by_parent.values():
        if len(children) < n_positions:
            continue
        row = np.array([children[p][0] for p in range(n_positions)])
        if row.sum() <= 0:
            continue
        mean = row.mean()
        ratios.append(row / mean)
        # Under no effect every position of the parent has the same noise: its squares' mean (a position that
        # booked nothing has no squares of its own, yet is as uncertain as the others).
        noise.append(np.mean([children[p][1] for p in range(n_positions)]) / mean**2)
    if len(ratios) < MIN_PARENTS:
        return ones
    table, poisson = np.array(ratios), np.array(noise)  # parents x positions; parents
    n = table.shape[0]
    means = table.mean(axis=0)
    scatter = float(((table - means) ** 2).sum()) / (n_positions * (n - 1))
    variance = max(scatter, float(poisson.mean())) / n  # of each position's average
    tau2 = max(float(((means - 1.0) ** 2).sum()) / (n_positions - 1) - variance, 0.0)
    if tau2 <= 0.0:
        return ones
    out: np.ndarray = 1.0 + tau2 / (tau2 + variance) * (means - 1.0)
    return out


class NewBusinessModel:
    """Bookings from deals not yet created, by week of period and position in the fiscal calendar (see the
    module header)."""

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
        squares = np.zeros((len(periods), weeks))  # the same, of the squared amounts (the sums' noise)
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
                .group_by("_q", "_w").agg(pl.col("_v").sum(), (pl.col("_v") ** 2).sum().alias("_v2"))
            )
            for q, w, v, v2 in inside.iter_rows():
                table[int(q), min(int(w), weeks - 1)] += float(v or 0.0)
                squares[int(q), min(int(w), weeks - 1)] += float(v2 or 0.0)
            # Column w: created in week w or later, so a reversed running sum over the weeks.
            table = np.cumsum(table[:, ::-1], axis=1)[:, ::-1]
            squares = np.cumsum(squares[:, ::-1], axis=1)[:, ::-1]
        self.calendar_ = calendar
        self.periods_ = tuple(p.label for p in periods)
        places = [position_of(calendar, p) for p in periods]
        self.positions_ = tuple(place[0] for place in places if place is not None)
        self.parents_ = tuple(place[1] for place in places if place is not None)
        self.n_positions_ = PARENT[kind][1] if kind in PARENT else 1
        self.by_week_ = table
        self.squares_by_week_ = squares
        self.as_of_ = at
        return self

    def estimate(self, period: Period, as_of: datetime) -> NewBusinessEstimate:
        at = naive_utc(as_of)
        if at >= midnight(period.end) or not self.periods_:
            return NewBusinessEstimate(0.0, 0.0, len(self.periods_))
        days = max((at - midnight(period.start)) / timedelta(days=1), 0.0)
        week, fraction = int(days // 7), (days % 7) / 7
        last = self.by_week_.shape[1] - 1

        def read(table: np.ndarray) -> np.ndarray:
            out: np.ndarray = (1 - fraction) * table[:, min(week, last)] + fraction * table[:, min(week + 1, last)]
            return out

        values = read(self.by_week_)
        n = len(values)
        factors, factor = np.ones(n), 1.0
        place = position_of(self.calendar_, period)
        if place is not None and len(self.positions_) == n:
            by_position = seasonal_factors(values, read(self.squares_by_week_), self.positions_, self.parents_,
                                           self.n_positions_)
            factors, factor = by_position[list(self.positions_)], float(by_position[place[0]])
        weights = 0.5 ** (np.arange(n)[::-1] / self.half_life)
        weights /= weights.sum()
        level = float(weights @ values) / float(weights @ factors)
        if n < 2:
            return NewBusinessEstimate(factor * level, factor * level, n)
        residuals = values - level * factors
        variance = float(weights @ residuals**2) / float(weights @ factors) / (1 - float(weights @ weights))
        return NewBusinessEstimate(factor * level, math.sqrt(factor * max(variance, 0.0)), n)

    def by_week(self) -> list[dict[str, float | int]]:
        """Mean and spread per week of period (what the model card shows)."""
        rows: list[dict[str, float | int]] = []
        for week in range(self.by_week_.shape[1]):
            column = self.by_week_[:, week]
            rows.append({"week": week, "mean": float(column.mean()) if column.size else 0.0,
                         "sd": float(column.std(ddof=1)) if column.size > 1 else 0.0})
        return rows
