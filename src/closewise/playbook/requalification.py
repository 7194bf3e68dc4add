"""Re-qualification cadence: every open deal is looked at again every N days, N set per stage
(`requalify_days`).

A deal was last qualified when its latest qualification answer was given; never answered, its clock starts
at creation (the same rule as the hygiene finding `not_requalified`, which this module's `overdue` rows are).
It is due at that moment plus its stage's cadence: `overdue` once that moment has passed, `due` when it falls
within `warn_days` of `as_of`, else `ok`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl


def requalification(deals: pl.DataFrame, answers: pl.DataFrame, stages: pl.DataFrame, *, as_of: datetime,
                    warn_days: int = 7, default_days: int = 30) -> pl.DataFrame:
    """`deals`: the deals open at `as_of` (`id`, `owner_id`, `stage`, `created_at`); `answers`:
    `opportunity_id`, `answered_at`; `stages`: `key`, `requalify_days`. Returns per deal `last_qualified_at`
    (null: never), `cadence_days`, `due_on`, `days_overdue` (negative: days left) and `status`."""
    last = (answers.filter(pl.col("answered_at") <= as_of).group_by("opportunity_id")
            .agg(pl.col("answered_at").max().alias("last_qualified_at")))
    cadence = stages.select(pl.col("key").alias("stage"), pl.col("requalify_days").alias("cadence_days"))
    since = pl.coalesce("last_qualified_at", "created_at")
    today = as_of.date()
    table = (
        deals.select("id", "owner_id", "stage", "created_at")
        .join(last, left_on="id", right_on="opportunity_id", how="left")
        .join(cadence, on="stage", how="left")
        .with_columns(pl.col("cadence_days").fill_null(default_days).cast(pl.Int64))
        .with_columns((since + pl.duration(days=pl.col("cadence_days"))).alias("_due_at"))
        .with_columns(pl.col("_due_at").dt.date().alias("due_on"),
                      (pl.lit(as_of) - pl.col("_due_at")).dt.total_days().alias("days_overdue"))
    )
    return table.with_columns(
        pl.when(pl.lit(as_of) > pl.col("_due_at")).then(pl.lit("overdue"))
        .when(pl.col("due_on") <= today + timedelta(days=warn_days)).then(pl.lit("due"))
        .otherwise(pl.lit("ok")).alias("status")
    ).drop("_due_at").sort("due_on", "id")
