"""Turning state snapshots into change-log rows.

Salesforce's OpportunityHistory holds the full state (stage, amount, close date, probability, forecast
category) valid from each row's CreatedDate; HubSpot's `Date entered "<stage>"` columns give the time each
stage was entered. Both become a frame of snapshots: one row per (opportunity, time) with the fields the
source knows. Consecutive snapshots of one opportunity that differ in a field give one change row
(old = the earlier value, new = the later one); the first snapshot is the opportunity's initial state.

Idempotency: the derived rows are compared with the change rows already stored (same opportunity, field,
time and new value) and only the missing ones are written, so re-importing an export changes nothing and a
newer export adds exactly its new history.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import polars as pl

from closewise.domain.enums import ChangeField

SNAPSHOT_FIELDS: dict[str, pl.DataType] = {
    ChangeField.STAGE.value: pl.String(),
    ChangeField.STATUS.value: pl.String(),
    ChangeField.AMOUNT.value: pl.Float64(),
    ChangeField.CLOSE_DATE.value: pl.Date(),
    ChangeField.PROBABILITY.value: pl.Float64(),
    ChangeField.FORECAST_CATEGORY.value: pl.String(),
}


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    expr = pl.col(column)
    if dtype == pl.Float64():
        return expr.cast(pl.String)
    if dtype == pl.Date():
        return expr.dt.strftime("%Y-%m-%d")
    return expr


def derive_changes(snapshots: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Change rows from snapshots.

    `snapshots` has `opportunity_id` (Int64), `changed_at` (naive UTC Datetime) and one column per field in
    `fields`. Several snapshots at the same time keep the last one given. Returns `opportunity_id`, `field`,
    `changed_at`, `old_value`, `new_value` (text as in domain/changes.py).
    """
    ordered = (
        snapshots.with_row_index("_order")
        .sort(["opportunity_id", "changed_at", "_order"])
        .unique(subset=["opportunity_id", "changed_at"], keep="last", maintain_order=True)
    )
    parts: list[pl.DataFrame] = []
    for name in fields:
        dtype = SNAPSHOT_FIELDS[name]
        text = ordered.select(
            "opportunity_id", "changed_at", _as_text(name, dtype).alias("new_value")
        ).with_columns(pl.col("new_value").shift(1).over("opportunity_id").alias("old_value"),
                       pl.int_range(pl.len()).over("opportunity_id").alias("_n"))
        changed = text.filter((pl.col("_n") > 0) & pl.col("new_value").ne_missing(pl.col("old_value")))
        parts.append(changed.select(
            "opportunity_id", pl.lit(name).alias("field"), "changed_at", "old_value", "new_value"
        ))
    if not parts:
        return pl.DataFrame(schema={"opportunity_id": pl.Int64, "field": pl.String, "changed_at": pl.Datetime("us"),
                                    "old_value": pl.String, "new_value": pl.String})
    return pl.concat(parts).sort(["opportunity_id", "changed_at", "field"])


def missing_changes(derived: pl.DataFrame, stored: list[dict[str, Any]]) -> pl.DataFrame:
    """The derived change rows not already stored (matched on opportunity, field, time and new value)."""
    if not stored:
        return derived
    existing = pl.DataFrame(
        {
            "opportunity_id": [int(row["opportunity_id"]) for row in stored],
            "field": [row["field"] for row in stored],
            "changed_at": [
                row["changed_at"].astimezone(UTC).replace(tzinfo=None) if row["changed_at"].tzinfo
                else row["changed_at"] for row in stored
            ],
            "new_value": [row["new_value"] for row in stored],
        },
        schema={"opportunity_id": pl.Int64, "field": pl.String, "changed_at": pl.Datetime("us"),
                "new_value": pl.String},
    )
    return derived.join(existing, on=["opportunity_id", "field", "changed_at", "new_value"], how="anti",
                        nulls_equal=True)


def last_states(snapshots: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Each opportunity's newest snapshot (what the current row should hold for these fields)."""
    return (
        snapshots.with_row_index("_order")
        .sort(["opportunity_id", "changed_at", "_order"])
        .group_by("opportunity_id", maintain_order=True)
        .last()
        .select("opportunity_id", "changed_at", *fields)
    )
