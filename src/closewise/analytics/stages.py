"""Stage analytics from history: how deals move through the playbook's stages, and how long they stay.

All of it is estimated from the change log's stage and status changes as known at `as_of` (the stage visits
and outcomes of `analytics.history`; nothing later leaks in, deals not closed by then count as open).

`stage_conversion` — per playbook stage k, over the deals that ever entered k (created in it, moved or
jumped into it) by `as_of`:

- `entered`: how many; `advanced`: of them, those that later reached a stage after k or were won;
  `pending`: still open and not past k, so undecided for this stage;
- `conversion_rate = advanced / (entered − pending)`: the share that moved on, among the decided;
- `won`, `lost`, `no_decision`, `open`: their status at `as_of` (a deal that moved on and then lost counts
  as lost here);
- `win_rate_from_stage = won / (won + lost + no_decision)`: the stage-to-close win rate, i.e. of the deals
  in stage k, the share eventually won, among those closed. It is what coverage multiplies pipeline in
  stage k by. Computed on closed deals only, it leans towards outcomes that come fast (recent losses are in,
  their cohort's slower wins not yet); pass `window_days` to the service to look at a recent cohort;
- `median_days_to_close_won`: median days from first entering k to being won, among the won: how early a
  deal must be in stage k to close by a date.

`time_in_stage` — per stage, the days deals spent in it before moving on: for each deal whose last visit of
the stage ended by advancing or by being won, the total time over its visits of the stage; median, p75 and
p90 (linear interpolation between order statistics, as numpy's default). Visits that ended in a loss or a
sweep to no decision are left out: they measure how long dead deals linger, not the pace of live ones
(`analytics.history` keeps them if wanted). `in_stage_now` counts the open deals in the stage at `as_of`.

This is the classic stage-funnel and stage-duration analysis of sales operations (e.g. Salesforce's
"Opportunity Stage Duration" and "Stage conversion" reports), computed from the history log rather than
from current stage fields, so it can be taken at any past date.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s

STAGE_CONVERSION_COLUMNS = (
    s.STAGE,
    h.ORDER,
    "entered",
    "advanced",
    "pending",
    "conversion_rate",
    "won",
    "lost",
    "no_decision",
    "open",
    "win_rate_from_stage",
    "median_days_to_close_won",
)
TIME_IN_STAGE_COLUMNS = (s.STAGE, h.ORDER, "deals", "median_days", "p75_days", "p90_days", "in_stage_now")


def _playbook(stages: pl.DataFrame) -> pl.DataFrame:
    h.check_stages(stages)
    return stages.select(pl.col("key").alias(s.STAGE), pl.col(h.ORDER).cast(pl.Int64)).sort(h.ORDER)


# Stage orders are small integers; a deal's rows get keys apart by more than any order range.
_ORDER_SPAN = 1 << 20


def _deal_stage_key() -> pl.Expr:
    return pl.col(s.ID) * _ORDER_SPAN + pl.col(h.ORDER)


def _later_max() -> pl.Expr:
    """Per visit, the highest stage order among the same deal's later visits (null for its last visit).

    Visits are sorted by deal, then time. A running maximum from the end, over `order − id × span`, never
    takes a later deal's value (its key is lower by at least `span`), so it is the deal's own suffix maximum
    without a window per deal.
    """
    key = pl.col(h.ORDER).fill_null(-1) - pl.col(s.ID) * _ORDER_SPAN
    suffix = key.cum_max(reverse=True).shift(-1) + pl.col(s.ID) * _ORDER_SPAN
    return pl.when(pl.col(s.ID) == pl.col(s.ID).shift(-1)).then(suffix)


def _ratio(numerator: str, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(pl.col(numerator) / denominator)


def stage_conversion(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    stages: pl.DataFrame,
    *,
    as_of: datetime,
    visits: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per playbook stage, in playbook order (see the module header for each column).

    Columns: `stage`, `order`, `entered`, `advanced`, `pending`, `conversion_rate`, `won`, `lost`,
    `no_decision`, `open`, `win_rate_from_stage`, `median_days_to_close_won`. Rates and the median are null
    when nothing backs them. Counts are deals; `visits` is `history.stage_visits(...)` for the same `as_of`,
    when the caller has it already.
    """
    playbook = _playbook(stages)
    if visits is None:
        visits = h.stage_visits(opportunities, changes, stages, as_of=as_of)
    first_entries = (
        visits.lazy()
        .with_columns(_later_max().alias("_later_max"))
        .filter(pl.col(h.ORDER).is_not_null())
        .filter(_deal_stage_key().is_first_distinct())
        .with_columns(
            ((pl.col("_later_max").fill_null(-1) > pl.col(h.ORDER)) | (pl.col(s.STATUS) == h.WON)).alias("_advanced")
        )
    )
    counts = first_entries.group_by(s.STAGE).agg(
        pl.len().alias("entered"),
        pl.col("_advanced").sum().alias("advanced"),
        ((pl.col(s.STATUS) == h.OPEN) & ~pl.col("_advanced")).sum().alias("pending"),
        *((pl.col(s.STATUS) == status).sum().alias(status) for status in (h.WON, h.LOST, h.NO_DECISION, h.OPEN)),
        h.days_between(h.ENTERED_AT, s.CLOSED_AT)
        .filter(pl.col(s.STATUS) == h.WON)
        .median()
        .alias("median_days_to_close_won"),
    )
    closed = pl.col(h.WON) + pl.col(h.LOST) + pl.col(h.NO_DECISION)
    counted = ("entered", "advanced", "pending", h.WON, h.LOST, h.NO_DECISION, h.OPEN)
    return (
        playbook.lazy()
        .join(counts, on=s.STAGE, how="left", maintain_order="left")
        .with_columns(pl.col(counted).fill_null(0).cast(pl.Int64))
        .with_columns(
            _ratio("advanced", pl.col("entered") - pl.col("pending")).alias("conversion_rate"),
            _ratio(h.WON, closed).alias("win_rate_from_stage"),
        )
        .select(STAGE_CONVERSION_COLUMNS)
        .collect()
    )


def time_in_stage(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    stages: pl.DataFrame,
    *,
    as_of: datetime,
    visits: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per playbook stage, in playbook order: days spent in it by deals that moved on.

    Columns: `stage`, `order`, `deals` (deals whose last visit of the stage ended by advancing or winning),
    `median_days`, `p75_days`, `p90_days` (over those deals' total days in the stage; null without any),
    `in_stage_now` (open deals in the stage at `as_of`).
    """
    playbook = _playbook(stages)
    if visits is None:
        visits = h.stage_visits(opportunities, changes, stages, as_of=as_of)
    per_deal = (
        visits.lazy()
        .filter(pl.col(h.DAYS).is_not_null())
        .group_by(s.ID, s.STAGE)
        .agg(pl.col(h.DAYS).sum(), pl.col(h.EXIT).last())
        .filter(pl.col(h.EXIT).is_in((h.ADVANCED, h.WON)))
        .group_by(s.STAGE)
        .agg(
            pl.len().alias("deals"),
            pl.col(h.DAYS).median().alias("median_days"),
            pl.col(h.DAYS).quantile(0.75, "linear").alias("p75_days"),
            pl.col(h.DAYS).quantile(0.90, "linear").alias("p90_days"),
        )
    )
    now = visits.lazy().filter(pl.col(h.EXIT).is_null()).group_by(s.STAGE).agg(pl.len().alias("in_stage_now"))
    return (
        playbook.lazy()
        .join(per_deal, on=s.STAGE, how="left", maintain_order="left")
        .join(now, on=s.STAGE, how="left", maintain_order="left")
        .with_columns(pl.col("deals", "in_stage_now").fill_null(0).cast(pl.Int64))
        .select(TIME_IN_STAGE_COLUMNS)
        .collect()
    )
