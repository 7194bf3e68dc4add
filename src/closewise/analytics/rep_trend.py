"""Each rep's record quarter by quarter, for the scorecards' trend: the last few fiscal quarters up to the one
holding `as_of` (that one to date, `partial`), from what was known at `as_of`.

Per rep and quarter, from the deals as they stood at `as_of` (owner then, amounts in the corporate currency at
each deal's close-date rate, as in the scorecard): `won` and `won_count` (won inside the quarter), `closed_count`
(won, lost or no decision inside it) and `win_rate` = won_count ÷ closed_count, `average_won` = won ÷
won_count, `created` and `created_count` (deals opened inside it: the pipeline the rep created, at its amount
then), `quota` (the rep's quota for the quarter) and `attainment` = won ÷ quota; and for a quarter that had
ended, the rep's forecast call for it (`call`: their final commit, `analytics.rep_accuracy`), what they won as
known at its end (`call_actual`) and `call_error` = (call − call_actual) ÷ call_actual.

A group's trend (`group_trend`) adds the parts before dividing, like the scorecards' totals; its call is the
sum of its reps' calls against the sum of those reps' actuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.timeutil import midnight, naive_utc

USER_ID: Final = "user_id"
AMOUNT: Final = "_amount"  # the corporate amount column of the scorecards' deal frame
TREND_COLUMNS: Final = (
    USER_ID, "quarter", "quarter_start", "quarter_end", "partial", "quota", "won", "won_count", "attainment",
    "closed_count", "win_rate", "average_won", "created", "created_count", "call", "call_actual", "call_error",
)
QUARTER_QUOTA_SCHEMA: Final = {USER_ID: pl.Int64(), "period_start": pl.Date(), "quota": pl.Float64()}
_SUMMED: Final = ("won", "won_count", "closed_count", "created", "created_count")
_WON: Final = OpportunityStatus.WON.value
_OPEN: Final = OpportunityStatus.OPEN.value


def trend_quarters(calendar: FiscalCalendar, as_of: datetime, count: int) -> list[Period]:
    """The `count` fiscal quarters ending with the one holding `as_of`, oldest first."""
    current = calendar.period_containing(naive_utc(as_of).date(), PeriodKind.QUARTER)
    quarters = [current]
    while len(quarters) < count:
        quarters.insert(0, calendar.previous(quarters[0]))
    return quarters


def rep_trend(
    deals: pl.DataFrame,
    quotas: pl.DataFrame,
    calls: pl.DataFrame,
    *,
    reps: pl.Series,
    quarters: Sequence[Period],
    as_of: datetime,
) -> pl.DataFrame:
    """`TREND_COLUMNS`, one row per rep in `reps` (in that order) and quarter (oldest first). `deals`: the
    scorecards' deals at `as_of` (`owner_id`, `status`, `created_at`, `closed_at`, `_amount`); `quotas`:
    `user_id`, `period_start`, `quota` (corporate); `calls`: `analytics.rep_accuracy.scored_calls`'s."""
    grid = _grid(reps, quarters)
    parts = _parts(deals, quarters, as_of)
    table = grid.join(parts, on=[USER_ID, "quarter"], how="left", maintain_order="left")
    table = table.join(_quotas(quotas), on=[USER_ID, "quarter_start"], how="left", maintain_order="left")
    table = table.join(_calls(calls), on=[USER_ID, "quarter"], how="left", maintain_order="left")
    return _ratios(table)


def group_trend(trend: pl.DataFrame) -> pl.DataFrame:
    """The trend of the reps in `trend` taken together, per quarter (`user_id` null; see the module header)."""
    called = pl.col("call").is_not_null()
    summed = trend.group_by("quarter", "quarter_start", "quarter_end", "partial", maintain_order=True).agg(
        *(pl.col(name).sum() for name in _SUMMED),
        pl.when(pl.col("quota").is_not_null().any()).then(pl.col("quota").sum()).alias("quota"),
        pl.when(called.any()).then(pl.col("call").sum()).alias("call"),
        pl.when(called.any()).then(pl.col("call_actual").filter(called).sum()).alias("call_actual"),
    )
    return _ratios(summed.with_columns(pl.lit(None, dtype=pl.Int64).alias(USER_ID)))


# --- internals -------------------------------------------------------------------------------------------


def _grid(reps: pl.Series, quarters: Sequence[Period]) -> pl.DataFrame:
    spans = pl.DataFrame({"quarter": [q.label for q in quarters], "quarter_start": [q.start for q in quarters],
                          "quarter_end": [q.last_day for q in quarters],
                          "partial": [index == len(quarters) - 1 for index in range(len(quarters))]},
                         schema={"quarter": pl.String(), "quarter_start": pl.Date(), "quarter_end": pl.Date(),
                                 "partial": pl.Boolean()})
    ids = pl.DataFrame({USER_ID: reps.cast(pl.Int64)}).with_row_index("_rep")
    return ids.join(spans.with_row_index("_q"), how="cross").sort("_rep", "_q").drop("_rep", "_q")


def _parts(deals: pl.DataFrame, quarters: Sequence[Period], as_of: datetime) -> pl.DataFrame:
    """Per owner and quarter: the summed parts, from each deal's closing quarter and opening quarter."""
    at = naive_utc(as_of)
    bounds = pl.DataFrame({"quarter": [q.label for q in quarters], "_from": [midnight(q.start) for q in quarters],
                           "_to": [midnight(q.end) for q in quarters]},
                          schema={"quarter": pl.String(), "_from": s.TIMESTAMP, "_to": s.TIMESTAMP})
    owned = deals.filter(pl.col(s.OWNER_ID).is_not_null()).with_columns(pl.col(s.OWNER_ID).cast(pl.Int64))

    def inside(column: str) -> pl.DataFrame:
        return owned.join_where(bounds, pl.col(column) >= pl.col("_from"), pl.col(column) < pl.col("_to"),
                                pl.col(column) <= at)

    closed = inside(s.CLOSED_AT).filter(pl.col(s.STATUS) != _OPEN).group_by(s.OWNER_ID, "quarter").agg(
        pl.col(AMOUNT).filter(pl.col(s.STATUS) == _WON).sum().alias("won"),
        (pl.col(s.STATUS) == _WON).sum().alias("won_count"),
        pl.len().alias("closed_count"),
    )
    created = inside(s.CREATED_AT).group_by(s.OWNER_ID, "quarter").agg(
        pl.col(AMOUNT).sum().alias("created"), pl.len().alias("created_count"))
    return (closed.join(created, on=[s.OWNER_ID, "quarter"], how="full", coalesce=True)
            .rename({s.OWNER_ID: USER_ID}))


def _quotas(quotas: pl.DataFrame) -> pl.DataFrame:
    return quotas.select(pl.col(USER_ID).cast(pl.Int64), pl.col("period_start").alias("quarter_start"),
                         pl.col("quota").cast(pl.Float64))


def _calls(calls: pl.DataFrame) -> pl.DataFrame:
    return calls.select(pl.col(USER_ID).cast(pl.Int64), pl.col("period").alias("quarter"),
                        pl.col("commit").alias("call"), pl.col("actual").alias("call_actual"))


def _ratios(table: pl.DataFrame) -> pl.DataFrame:
    filled = table.with_columns(
        pl.col("won", "created").fill_null(0.0).cast(pl.Float64).round(2),
        pl.col("won_count", "closed_count", "created_count").fill_null(0).cast(pl.Int64),
        pl.col("quota", "call", "call_actual").round(2),
    )
    won, count, actual = pl.col("won"), pl.col("won_count"), pl.col("call_actual")
    return filled.with_columns(
        pl.when(pl.col("quota") > 0).then(won / pl.col("quota")).alias("attainment"),
        pl.when(pl.col("closed_count") > 0).then(count / pl.col("closed_count")).alias("win_rate"),
        pl.when(count > 0).then((won / count).round(2)).alias("average_won"),
        pl.when(actual > 0).then((pl.col("call") - actual) / actual).alias("call_error"),
    ).select(TREND_COLUMNS)
