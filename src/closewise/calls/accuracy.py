"""How right was every call? For each person and each period that has ended, their last call before the
period's end against what their team (or they, for a rep) actually won in it.

`error = commit − actual` (positive: called high), `pct_error = error / actual` (undefined when nothing was
won). A person's track record over the periods: the mean absolute percentage error and the median signed
percentage error (the bias), labelled by `ml.rep_bias.label_for` on the median commit/actual ratio, the
rule the rest of Closewise uses (sandbagger, happy ears, accurate).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl

from closewise.domain.scope import subtree
from closewise.ml.rep_bias import label_for


def final_calls(submissions: pl.DataFrame, period_ends: Mapping[str, datetime]) -> pl.DataFrame:
    """The last own call (`kind` submission) of each user in each ended period before its end: `user_id`,
    `period`, `commit`, `best_case`, `submitted_at`."""
    ends = pl.DataFrame({"period": list(period_ends), "_end": list(period_ends.values())},
                        schema={"period": pl.String(), "_end": pl.Datetime("us")})
    return (submissions.filter(pl.col("kind") == "submission").join(ends, on="period", how="inner")
            .filter(pl.col("submitted_at") < pl.col("_end")).sort("submitted_at", "id")
            .group_by("user_id", "period", maintain_order=True).last()
            .select("user_id", "period", "commit", "best_case", "submitted_at"))


def call_accuracy(calls: pl.DataFrame, won_by_owner: pl.DataFrame, managers: Mapping[int, int | None]) -> pl.DataFrame:
    """`calls` from `final_calls`; `won_by_owner`: `owner_id`, `period`, `won` (what each owner won in each
    ended period). Per call: `actual` (the caller's whole subtree's won), `error`, `pct_error`."""
    won = {(row["owner_id"], row["period"]): float(row["won"]) for row in won_by_owner.iter_rows(named=True)}
    rows = []
    for row in calls.iter_rows(named=True):
        team = subtree(row["user_id"], managers)
        actual = sum(won.get((member, row["period"]), 0.0) for member in team)
        error = float(row["commit"]) - actual
        rows.append((row["user_id"], row["period"], float(row["commit"]), float(row["best_case"]), actual, error,
                     error / actual if actual > 0 else None))
    return pl.DataFrame(rows, schema={"user_id": pl.Int64(), "period": pl.String(), "commit": pl.Float64(),
                                      "best_case": pl.Float64(), "actual": pl.Float64(), "error": pl.Float64(),
                                      "pct_error": pl.Float64()}, orient="row").sort("user_id", "period")


def track_record(accuracy: pl.DataFrame) -> pl.DataFrame:
    """Per person: `periods`, `mape`, `bias` (median signed percentage error), `label`."""
    summary = (accuracy.filter(pl.col("pct_error").is_not_null()).group_by("user_id")
               .agg(pl.len().alias("periods"), pl.col("pct_error").abs().mean().alias("mape"),
                    pl.col("pct_error").median().alias("bias")).sort("user_id"))
    return summary.with_columns(pl.col("bias").map_elements(lambda b: label_for(1.0 + b).value, return_dtype=pl.String)
                                .alias("label"))
