"""A lead's history as events: created, assigned, first touch, accepted, rejected, recycled, returned, converted.

Most of it is in the lead's own fields (as imported from Salesforce, HubSpot or a CSV, or written by the
demo): `assigned_at`, `first_touch_at`, `accepted_at`, `rejected_at` with its `recycle_reason`, the status
`recycled` with its `re_engage_at`, `converted_at`. Activities on the lead say when it was first touched when
the field does not (the earliest completed activity at or after the lead's creation). What the app did itself
(routing, accepting, rejecting, returning from nurture) is in `lead_events`, with who did it; an app event and
the field it wrote are one event, kept once with its author.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl

from closewise.domain.enums import LeadStatus
from closewise.leads.schema import EVENTS, TS


class LeadEvent(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    FIRST_TOUCH = "first_touch"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RECYCLED = "recycled"
    RETURNED = "returned"
    CONVERTED = "converted"


ORDER = {kind.value: position for position, kind in enumerate(LeadEvent)}
COLUMNS = ("lead_id", "kind", "occurred_at", "owner_id", "user_id", "reason", "re_engage_at", "origin")


def with_first_touch(leads: pl.DataFrame, activities: pl.DataFrame) -> pl.DataFrame:
    """`leads` with `first_touch_at` filled from activities where the field is empty or later than the earliest
    completed activity on the lead at or after its creation, and `touch_origin` (`record`, `activity` or null)."""
    done = activities.filter(pl.col("completed").fill_null(True) & pl.col("lead_id").is_not_null())
    earliest = (
        done.join(leads.select(pl.col("id").alias("lead_id"), "created_at"), on="lead_id", how="inner")
        .filter(pl.col("occurred_at") >= pl.col("created_at"))
        .group_by("lead_id").agg(pl.col("occurred_at").min().alias("_activity_touch"))
    )
    joined = leads.join(earliest, left_on="id", right_on="lead_id", how="left")
    from_activity = pl.col("_activity_touch").is_not_null() & (
        pl.col("first_touch_at").is_null() | (pl.col("_activity_touch") < pl.col("first_touch_at")))
    return joined.with_columns(
        pl.when(from_activity).then(pl.lit("activity"))
        .when(pl.col("first_touch_at").is_not_null()).then(pl.lit("record"))
        .otherwise(pl.lit(None, dtype=pl.String)).alias("touch_origin"),
        pl.when(from_activity).then(pl.col("_activity_touch")).otherwise(pl.col("first_touch_at"))
        .alias("first_touch_at"),
    ).drop("_activity_touch")


def _record(leads: pl.DataFrame, kind: LeadEvent, column: str, *, when: pl.Expr | None = None,
            reason: pl.Expr | None = None, re_engage: pl.Expr | None = None) -> pl.DataFrame:
    rows = leads.filter(pl.col(column).is_not_null() & (when if when is not None else pl.lit(True)))
    return rows.select(
        pl.col("id").alias("lead_id"),
        pl.lit(kind.value).alias("kind"),
        pl.col(column).cast(TS).alias("occurred_at"),
        pl.col("owner_id"),
        pl.lit(None, dtype=pl.Int64).alias("user_id"),
        (reason if reason is not None else pl.lit(None, dtype=pl.String)).alias("reason"),
        (re_engage if re_engage is not None else pl.lit(None, dtype=pl.Date)).alias("re_engage_at"),
        pl.lit("record").alias("origin"),
    )


def lead_events(leads: pl.DataFrame, app_events: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every known event of `leads` (first touch already resolved by `with_first_touch`), by lead and time.

    Columns: lead_id, kind, occurred_at, owner_id, user_id (who did it, for app events), reason,
    re_engage_at, origin (`record`, `activity` or `app`)."""
    recycled = pl.col("status") == LeadStatus.RECYCLED.value
    touch_origin = pl.col("touch_origin") if "touch_origin" in leads.columns else pl.lit("record")
    parts = [
        _record(leads, LeadEvent.CREATED, "created_at"),
        _record(leads, LeadEvent.ASSIGNED, "assigned_at", when=pl.col("owner_id").is_not_null()),
        _record(leads, LeadEvent.FIRST_TOUCH, "first_touch_at").with_columns(
            leads.filter(pl.col("first_touch_at").is_not_null()).select(touch_origin.alias("origin")).to_series()),
        _record(leads, LeadEvent.ACCEPTED, "accepted_at"),
        _record(leads, LeadEvent.REJECTED, "rejected_at", reason=pl.col("recycle_reason")),
        _record(leads, LeadEvent.RECYCLED, "rejected_at", when=recycled, reason=pl.col("recycle_reason"),
                re_engage=pl.col("re_engage_at")),
        _record(leads, LeadEvent.CONVERTED, "converted_at"),
    ]
    derived = pl.concat(parts, how="vertical")
    if app_events is not None and app_events.height:
        app = app_events.cast({name: dtype for name, dtype in EVENTS.items() if name in app_events.columns}).select(
            "lead_id", "kind", "occurred_at", "owner_id", "user_id", "reason", "re_engage_at",
            pl.lit("app").alias("origin"))
        # A field the app wrote is the app's event, told once with its author.
        derived = derived.join(app.select("lead_id", "kind", "occurred_at"), on=["lead_id", "kind", "occurred_at"],
                               how="anti")
        derived = pl.concat([derived, app], how="vertical")
    return (derived.with_columns(pl.col("kind").replace_strict(ORDER, default=99).alias("_order"))
            .sort(["lead_id", "occurred_at", "_order"]).drop("_order"))
