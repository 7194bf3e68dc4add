"""What the org's history says about closing pipeline in time: stage conversion at a number of days left,
and the created-to-won cycle. The two inputs of the coverage answer (`analytics.coverage`).

**Stage conversion with d days left** (`learn_stage_conversion`). For a period P and a moment `as_of` with
`d = P.end - as_of` left, the estimate for stage k is the share of pipeline amount that was won in time, in
the same situation in past periods:

1. Past periods Q of P's kind that ended at or before `as_of` (the last `lookback` of them), so every
   outcome used was known at `as_of`.
2. In each Q, the comparable moments `Q.end - d + o` for a few offsets `o` in `{-w, 0, +w}` (w is a
   thirteenth of the period: a week for quarters, two days for months), keeping those still inside the
   look-back and before `Q.end`. At each, the pipeline of Q: deals open then with a close date in Q, in
   their stage and amount of that moment (the as-of engine, `analytics.snapshots`).
3. Outcome: the deal's amount as won, if it was won within Q (`Q.start <= closed_at < Q.end`), else 0.
   Amounts are in the corporate currency (at the close date of each state).
4. Observed conversion `r_k = sum(won amount) / sum(pipeline amount)` over the stage's observations (an
   amount-weighted win rate that also carries discounts and re-scoping); the overall rate `r` the same over
   all stages. A stage with few deals is shrunk toward the overall rate, in deals:
   `p_k = (n_k r_k + m r) / (n_k + m)`, `n_k` the distinct (deal, period) pairs seen in stage k and `m`
   the prior strength (20 deals by default). This is the additive smoothing of target encoding
   (Micci-Barreca, "A preprocessing scheme for high-cardinality categorical attributes", SIGKDD
   Explorations 3(1), 2001), the empirical-Bayes shrinkage of a rate toward its group mean.

It is the "historical analogue" or cohort method of pipeline conversion: what became of pipeline that
stood where ours stands now, with as many days left. It needs no model, and it is honest by construction:
moments and outcomes are all at or before `as_of`.

Beside it, `other_bookings`: what past periods booked from the central moment to their end from deals that
were *not* in their pipeline then (created later, or pulled in from a later close date), per period on
average. Coverage does not count on it, but a leader should know how much of a period usually comes late.

**Won cycle** (`learn_won_cycles`): days from creation to winning, for deals won at or before `as_of` (and
not before the look-back began); the median and the 25th percentile, overall and per segment when the
segment has at least `min_segment_wins` wins. Pipeline created later than `P.end - median` closes inside P
less than half the time a won deal would need; after `P.end - p25`, only the fastest quarter of wins would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot, snapshots_lazy
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.timeutil import midnight

SEGMENT: Final = "segment"
ALL_SEGMENTS: Final = "all"
DEFAULT_LOOKBACK: Final = {PeriodKind.MONTH: 12, PeriodKind.QUARTER: 8, PeriodKind.YEAR: 3}
_OPEN: Final = OpportunityStatus.OPEN.value
_WON: Final = OpportunityStatus.WON.value


@dataclass(frozen=True)
class StageConversion:
    """Learned conversion at `days_left`: one row per stage seen in history in `by_stage` (columns `stage`,
    `history_deals` (n_k), `history_pipeline`, `history_won`, `observed` (r_k)), and the overall rate."""

    days_left: float
    periods: tuple[str, ...]
    overall: float | None  # None: no pipeline in any comparable moment
    history_deals: int
    by_stage: pl.DataFrame
    prior_deals: float
    other_bookings: float = 0.0  # mean per past period: won after the moment by deals outside its pipeline

    def rate(self, stage: str) -> float | None:
        """The smoothed conversion p_k of a stage (the overall rate for a stage never seen)."""
        if self.overall is None:
            return None
        row = self.by_stage.filter(pl.col(s.STAGE) == stage)
        if row.height == 0:
            return self.overall
        n, observed = int(row["history_deals"][0]), row["observed"][0]
        r_k = self.overall if observed is None else float(observed)
        return (n * r_k + self.prior_deals * self.overall) / (n + self.prior_deals)


@dataclass(frozen=True)
class WonCycle:
    segment: str  # ALL_SEGMENTS for the whole org
    won_deals: int
    median_days: float
    p25_days: float


def past_periods(calendar: FiscalCalendar, period: Period, as_of: datetime, lookback: int) -> list[Period]:
    """The last `lookback` periods of `period`'s kind that ended at or before `as_of`, oldest first."""
    current = calendar.period_containing(min(period.start, as_of.date()), period.kind)
    found: list[Period] = []
    while len(found) < lookback:
        current = calendar.previous(current)
        if midnight(current.end) <= as_of:
            found.append(current)
    return found[::-1]


def learn_stage_conversion(
    timeline: pl.DataFrame,
    rates: pl.DataFrame,
    *,
    corporate: str,
    periods: Sequence[Period],
    remaining: timedelta,
    as_of: datetime,
    prior_deals: float = 20.0,
) -> StageConversion:
    """Conversion of pipeline with `remaining` left in the period, from `periods` (all ended by `as_of`)."""
    empty = pl.DataFrame(
        schema={
            s.STAGE: pl.String,
            "history_deals": pl.Int64,
            "history_pipeline": pl.Float64,
            "history_won": pl.Float64,
            "observed": pl.Float64,
        }
    )
    days_left = remaining.total_seconds() / 86400
    points = _comparable_moments(periods, remaining, as_of)
    if points.height == 0:
        return StageConversion(days_left, tuple(p.label for p in periods), None, 0, empty, prior_deals)

    pipeline = (
        snapshots_lazy(_narrow(timeline).filter(pl.col(s.STATUS) == _OPEN), points[s.AS_OF].to_list())
        .join(points.lazy(), on=s.AS_OF)
        .filter(pl.col(s.CLOSE_DATE) >= pl.col("q_start"), pl.col(s.CLOSE_DATE) < pl.col("q_end"))
        .select(s.ID, "q", "central", s.STAGE, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE)
        .collect()
    )
    pipeline = to_corporate(pipeline, rates, corporate=corporate, into="pipeline").drop(s.AMOUNT, s.CURRENCY)
    ends = pl.DataFrame(
        {
            s.AS_OF: [midnight(p.end) for p in periods],
            "q": [p.label for p in periods],
            "q_start": [p.start for p in periods],
            "q_end": [p.end for p in periods],
        },
        schema={s.AS_OF: s.TIMESTAMP, "q": pl.String, "q_start": pl.Date, "q_end": pl.Date},
    )
    won = (
        snapshots_lazy(_narrow(timeline).filter(pl.col(s.STATUS) == _WON), ends[s.AS_OF].to_list())
        .join(ends.lazy(), on=s.AS_OF)
        .filter(pl.col(s.CLOSED_AT).dt.date() >= pl.col("q_start"), pl.col(s.CLOSED_AT).dt.date() < pl.col("q_end"))
        .select(s.ID, "q", s.AMOUNT, s.CURRENCY, s.CLOSE_DATE, s.CLOSED_AT)
        .collect()
    )
    won = to_corporate(won, rates, corporate=corporate, into="won").select(s.ID, "q", "won", s.CLOSED_AT)
    other = _other_bookings(points, pipeline, won, len(periods))
    observed = pipeline.join(won.drop(s.CLOSED_AT), on=[s.ID, "q"], how="left").with_columns(
        pl.col("won").fill_null(0.0)
    )
    total_pipeline = float(observed["pipeline"].sum())
    if total_pipeline <= 0:
        return StageConversion(days_left, tuple(p.label for p in periods), None, 0, empty, prior_deals)
    by_stage = (
        observed.group_by(s.STAGE)
        .agg(
            pl.struct(s.ID, "q").n_unique().cast(pl.Int64).alias("history_deals"),
            pl.col("pipeline").sum().alias("history_pipeline"),
            pl.col("won").sum().alias("history_won"),
        )
        .with_columns(
            pl.when(pl.col("history_pipeline") > 0)
            .then(pl.col("history_won") / pl.col("history_pipeline"))
            .alias("observed")
        )
        .sort(s.STAGE)
    )
    deals = observed.select(pl.struct(s.ID, "q").n_unique()).item()
    return StageConversion(
        days_left,
        tuple(p.label for p in periods),
        float(observed["won"].sum()) / total_pipeline,
        int(deals),
        by_stage,
        prior_deals,
        other,
    )


def _other_bookings(points: pl.DataFrame, pipeline: pl.DataFrame, won: pl.DataFrame, n_periods: int) -> float:
    """Mean bookings per past period, from the central moment to the period's end, of deals that were not in
    the period's pipeline then (created later, or pulled in from a later close date)."""
    central = points.filter("central").select("q", pl.col(s.AS_OF).alias("_t"))
    in_pipeline = pipeline.filter("central").select(s.ID, "q")
    late = (
        won.join(central, on="q")
        .filter(pl.col(s.CLOSED_AT) >= pl.col("_t"))
        .join(in_pipeline, on=[s.ID, "q"], how="anti")
    )
    return float(late["won"].sum()) / n_periods if n_periods else 0.0


def learn_won_cycles(
    timeline: pl.DataFrame, *, as_of: datetime, since: datetime, min_segment_wins: int = 30
) -> list[WonCycle]:
    """Created-to-won days of deals won in [since, as_of]: the org first, then each segment with enough wins."""
    known = snapshot(_narrow(timeline, s.CREATED_AT, SEGMENT).filter(pl.col(s.STATUS) == _WON), as_of)
    won = known.filter(pl.col(s.CLOSED_AT).is_not_null(), pl.col(s.CLOSED_AT) >= since).with_columns(
        ((pl.col(s.CLOSED_AT) - pl.col(s.CREATED_AT)).dt.total_seconds() / 86400).clip(0).alias("_days")
    )
    if won.height == 0:
        return []
    cycles = [_cycle(ALL_SEGMENTS, won["_days"])]
    if SEGMENT in won.columns:
        for segment, group in sorted(won.group_by(SEGMENT), key=lambda item: str(item[0][0])):
            if group.height >= min_segment_wins and segment[0] is not None:
                cycles.append(_cycle(str(segment[0]), group["_days"]))
    return cycles


def _cycle(segment: str, days: pl.Series) -> WonCycle:
    median, p25 = days.median(), days.quantile(0.25, interpolation="linear")
    return WonCycle(segment, days.len(), float(median or 0.0), float(p25 or 0.0))  # type: ignore[arg-type]


def _comparable_moments(periods: Sequence[Period], remaining: timedelta, as_of: datetime) -> pl.DataFrame:
    """One row per (past period, offset): the moment with about `remaining` left, and the period's bounds."""
    rows: list[tuple[datetime, str, date, date, bool]] = []
    for period in periods:
        width = timedelta(days=max(1, round(period.days / 13)))
        end = midnight(period.end)
        for offset in (-width, timedelta(0), width):
            moment = end - remaining + offset
            if moment < end and moment <= as_of:
                rows.append((moment, period.label, period.start, period.end, not offset))
    return pl.DataFrame(
        rows,
        schema={s.AS_OF: s.TIMESTAMP, "q": pl.String, "q_start": pl.Date, "q_end": pl.Date, "central": pl.Boolean},
        orient="row",
    )


def _narrow(timeline: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """The timeline columns read here (and those of `extra` it has): filtering copies only them."""
    wanted = (s.ID, s.VALID_FROM, s.VALID_TO, s.CLOSED_AT, s.STATUS, s.STAGE, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE,
              *extra)
    return timeline.select(name for name in wanted if name in timeline.columns)

