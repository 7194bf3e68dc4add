"""Speed to lead: the time from a lead's arrival to its first touch, against an SLA counted in business hours.

Each lead's clock starts when it is created and runs only in business hours, in the lead's own time zone
(`clock="lead"`, the default: a lead in Sydney is answered in Sydney's working day) or the org's
(`clock="org"`). A lead is

- `met`: touched within the SLA's working minutes;
- `late`: touched after them;
- `overdue`: not touched and past its deadline (`open` when the lead is still new or working: the breaches
  someone can still fix, escalated to the owner's manager);
- `pending`: not touched, deadline still ahead.

`late` and `overdue` are breaches. Calendar minutes to first touch are kept beside the working minutes: the
response-time effect on conversion (`response_effect`) is measured on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput
from closewise.leads.hours import BusinessHours, add_working_minutes, working_minutes, zone
from closewise.leads.schema import OPEN_STATUSES, TS

MET, LATE, OVERDUE, PENDING = "met", "late", "overdue", "pending"
STATES: Final = (MET, LATE, OVERDUE, PENDING)
CLOCKS: Final = ("lead", "org")


@dataclass(frozen=True)
class SlaPolicy:
    minutes: int = 60  # working minutes from creation to first touch
    hours: BusinessHours = field(default_factory=BusinessHours)
    timezone: str = "UTC"  # the org's: for leads without a time zone, and every lead when clock == "org"
    clock: str = "lead"

    def __post_init__(self) -> None:
        if not 1 <= self.minutes <= 60 * 24 * 30:
            raise InvalidInput(f"an SLA of {self.minutes} minutes is out of range (1 minute to 30 days)",
                               where="sla minutes")
        if self.clock not in CLOCKS:
            raise InvalidInput(f"unknown clock {self.clock!r} (expected lead or org)", where="sla clock")

    def describe(self) -> str:
        span = f"{self.minutes} working minutes" if self.minutes % 60 else \
            f"{self.minutes // 60} working hour{'s' if self.minutes != 60 else ''}"
        where = "the lead's time zone" if self.clock == "lead" else self.timezone
        return f"first touch within {span}, {self.hours.describe()} in {where}"


def speed_to_lead(leads: pl.DataFrame, policy: SlaPolicy, as_of: datetime) -> pl.DataFrame:
    """One row per lead created by `as_of` (first touch resolved, see `events.with_first_touch`): its clock,
    deadline, state and how far past the SLA it is.

    Adds: zone, touched_at (first touch known by `as_of`), response_minutes (calendar, null if untouched),
    business_minutes (working minutes to the touch, or to `as_of` while untouched), due_at, state, breached,
    open (an untouched lead still new or working), minutes_over (working minutes past the SLA)."""
    moment = naive_utc(as_of)
    rows = leads.filter(pl.col("created_at") <= moment).with_columns(
        pl.when(pl.col("first_touch_at") <= moment).then(pl.col("first_touch_at")).otherwise(None)
        .alias("touched_at"))
    created = rows.get_column("created_at").to_list()
    touched = rows.get_column("touched_at").to_list()
    zones = rows.get_column("timezone").to_list() if policy.clock == "lead" else [None] * rows.height
    names: list[str] = []
    business: list[float] = []
    due: list[datetime] = []
    for start, touch, name in zip(created, touched, zones, strict=True):
        tz = zone(name, policy.timezone)
        names.append(tz.key)
        business.append(working_minutes(start, touch if touch is not None else moment, tz, policy.hours))
        due.append(add_working_minutes(start, policy.minutes, tz, policy.hours))
    rows = rows.with_columns(
        pl.Series("zone", names, dtype=pl.String),
        pl.Series("business_minutes", business, dtype=pl.Float64),
        pl.Series("due_at", due, dtype=TS),
        ((pl.col("touched_at") - pl.col("created_at")).dt.total_seconds() / 60.0).alias("response_minutes"),
    )
    touched_in_time = pl.col("business_minutes") <= policy.minutes
    state = (pl.when(pl.col("touched_at").is_not_null() & touched_in_time).then(pl.lit(MET))
             .when(pl.col("touched_at").is_not_null()).then(pl.lit(LATE))
             .when(pl.col("due_at") < moment).then(pl.lit(OVERDUE))
             .otherwise(pl.lit(PENDING)))
    return rows.with_columns(state.alias("state")).with_columns(
        pl.col("state").is_in([LATE, OVERDUE]).alias("breached"),
        ((pl.col("state") == OVERDUE) & pl.col("status").is_in(list(OPEN_STATUSES))).alias("open"),
        (pl.col("business_minutes") - policy.minutes).clip(lower_bound=0.0).alias("minutes_over"),
    )


def summarise(rows: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Per `by` (owner_id, lead_source, ...; None: one row for all): leads, touched, met, late, overdue,
    pending, breaches, met_rate (met among the leads whose SLA is decided: met, late or overdue),
    median and 90th percentile working minutes to first touch (touched leads), median calendar minutes."""
    touched = pl.col("touched_at").is_not_null()
    aggregates = [
        pl.len().alias("leads"),
        touched.sum().alias("touched"),
        *[(pl.col("state") == state).sum().alias(state) for state in STATES],
        pl.col("breached").sum().alias("breaches"),
        pl.col("open").sum().alias("open_breaches"),
        pl.col("business_minutes").filter(touched).median().alias("median_business_minutes"),
        pl.col("business_minutes").filter(touched).quantile(0.9, interpolation="linear")
        .alias("p90_business_minutes"),
        pl.col("response_minutes").median().alias("median_response_minutes"),
    ]
    grouped = rows.select(aggregates) if by is None else rows.group_by(by).agg(aggregates)
    decided = pl.col(MET) + pl.col(LATE) + pl.col(OVERDUE)
    out = grouped.with_columns(
        pl.when(decided > 0).then(pl.col(MET) / decided).otherwise(None).alias("met_rate"))
    return out if by is None else out.sort(["breaches", by], descending=[True, False], nulls_last=True)


def escalations(rows: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """The open breaches (untouched, past the SLA, still new or working), each with the manager it goes to:
    the owner's manager; the owner when they have none; null for an unassigned lead (for whoever routes).
    Sorted by manager, then the longest overdue first."""
    managers = users.select(pl.col("id").alias("owner_id"), pl.col("manager_id").alias("_manager"))
    return (rows.filter(pl.col("open"))
            .join(managers, on="owner_id", how="left")
            .with_columns(pl.coalesce("_manager", "owner_id").alias("escalate_to"))
            .drop("_manager")
            .sort(["escalate_to", "minutes_over"], descending=[False, True], nulls_last=True))
