"""Sales' verdict on a lead, and what happens to the ones it turns down.

Sales accepts a lead (it is worth working as an opportunity) or rejects it with a reason from the standard
recycle taxonomy (`RecycleReason`: no budget, no authority, timing, not a fit, no response, competitor,
other). A rejected lead goes back to marketing for nurture — status `recycled` with a re-engage date — when
the reason says "not now" rather than "never" (no budget, timing and no response by default, each with a
default wait), or whenever the rep names a re-engage date; otherwise it is closed as `rejected`.

A recycled (or rejected) lead that shows interest again is *returned*: back to `working`, with its
`recycled_count` raised, so the come-backs and what became of them can be counted.

The functions here decide transitions and build the lists; `services.lead_verdicts` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import polars as pl

from closewise.domain.enums import LeadStatus, RecycleReason
from closewise.errors import Conflict, InvalidInput

# Reasons that mean "not now": nurtured by default, re-engaged after this many days.
NURTURE_DAYS: Final[dict[RecycleReason, int]] = {
    RecycleReason.TIMING: 90,
    RecycleReason.NO_BUDGET: 120,
    RecycleReason.NO_RESPONSE: 60,
}
REASON_LABELS: Final[dict[str, str]] = {
    RecycleReason.NO_BUDGET.value: "No budget", RecycleReason.NO_AUTHORITY.value: "No authority",
    RecycleReason.TIMING.value: "Timing", RecycleReason.NOT_A_FIT.value: "Not a fit",
    RecycleReason.NO_RESPONSE.value: "No response", RecycleReason.COMPETITOR.value: "Competitor",
    RecycleReason.OTHER.value: "Other",
}
ACCEPTABLE: Final = frozenset({LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.RECYCLED})
REJECTABLE: Final = frozenset({LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.ACCEPTED})
RETURNABLE: Final = frozenset({LeadStatus.RECYCLED, LeadStatus.REJECTED})
LONGEST_NURTURE: Final = 3 * 366


@dataclass(frozen=True)
class Verdict:
    status: LeadStatus
    reason: RecycleReason | None
    re_engage_at: date | None
    returned: bool  # a recycled lead accepted straight away comes back first


def parse_reason(value: str) -> RecycleReason:
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return RecycleReason(key)
    except ValueError:
        raise InvalidInput(f"unknown reason {value!r} (expected {', '.join(r.value for r in RecycleReason)})",
                           where="reason") from None


def accept(status: str) -> Verdict:
    current = LeadStatus(status)
    if current not in ACCEPTABLE:
        raise Conflict(f"a lead that is {current.value} cannot be accepted", where="status")
    return Verdict(LeadStatus.ACCEPTED, None, None, returned=current is LeadStatus.RECYCLED)


def reject(status: str, reason: RecycleReason, *, today: date, re_engage_at: date | None = None,
           nurture: bool | None = None) -> Verdict:
    """Reject with `reason`. Nurtured (recycled) when `nurture` says so, when a re-engage date is given, or by
    default for the "not now" reasons; a nurtured lead without a date gets the reason's default wait."""
    current = LeadStatus(status)
    if current not in REJECTABLE:
        raise Conflict(f"a lead that is {current.value} cannot be rejected", where="status")
    if re_engage_at is not None and nurture is False:
        raise InvalidInput("a re-engage date means the lead goes back to nurture; drop one or the other",
                           where="re_engage_at")
    recycle = nurture if nurture is not None else (re_engage_at is not None or reason in NURTURE_DAYS)
    if not recycle:
        return Verdict(LeadStatus.REJECTED, reason, None, returned=False)
    when = re_engage_at or today + timedelta(days=NURTURE_DAYS.get(reason, 90))
    if when <= today:
        raise InvalidInput("the re-engage date must be after today", where="re_engage_at")
    if when > today + timedelta(days=LONGEST_NURTURE):
        raise InvalidInput("the re-engage date is more than three years away", where="re_engage_at")
    return Verdict(LeadStatus.RECYCLED, reason, when, returned=False)


def give_back(status: str) -> Verdict:
    """A recycled or rejected lead that came back: working again."""
    current = LeadStatus(status)
    if current not in RETURNABLE:
        raise Conflict(f"only a recycled or rejected lead can come back; this one is {current.value}",
                       where="status")
    return Verdict(LeadStatus.WORKING, None, None, returned=True)


def nurture_list(leads: pl.DataFrame, today: date) -> pl.DataFrame:
    """Leads in nurture (status recycled), soonest re-engage date first, with `due` (the date has come) and
    `days_left` (negative: overdue for re-engagement)."""
    return (leads.filter(pl.col("status") == LeadStatus.RECYCLED.value)
            .with_columns((pl.col("re_engage_at") - pl.lit(today)).dt.total_days().alias("days_left"))
            .with_columns((pl.col("days_left").fill_null(0) <= 0).alias("due"))
            .sort(["re_engage_at", "id"], nulls_last=False))


def come_backs(leads: pl.DataFrame) -> pl.DataFrame:
    """Leads that came back from nurture (`recycled_count` > 0) and what they are now."""
    return leads.filter(pl.col("recycled_count").fill_null(0) > 0).sort("id")


def come_back_summary(leads: pl.DataFrame) -> dict[str, int | float | None]:
    back = come_backs(leads)
    converted = int((back.get_column("status") == LeadStatus.CONVERTED.value).sum()) if back.height else 0
    counts = {status.value: int((back.get_column("status") == status.value).sum()) if back.height else 0
              for status in LeadStatus}
    return {"came_back": back.height, "converted": converted,
            "conversion_rate": converted / back.height if back.height else None,
            "working": counts[LeadStatus.WORKING.value] + counts[LeadStatus.NEW.value],
            "accepted": counts[LeadStatus.ACCEPTED.value],
            "turned_down_again": counts[LeadStatus.REJECTED.value] + counts[LeadStatus.RECYCLED.value]}


def reasons(leads: pl.DataFrame) -> pl.DataFrame:
    """Turned-down leads per reason: reason, rejected (closed), recycled (in nurture), total, share."""
    turned = leads.filter(pl.col("status").is_in([LeadStatus.REJECTED.value, LeadStatus.RECYCLED.value]))
    total = turned.height
    out = turned.with_columns(pl.col("recycle_reason").fill_null(RecycleReason.OTHER.value)).group_by(
        "recycle_reason").agg(
        (pl.col("status") == LeadStatus.REJECTED.value).sum().alias("rejected"),
        (pl.col("status") == LeadStatus.RECYCLED.value).sum().alias("recycled"),
        pl.len().alias("total"))
    return (out.rename({"recycle_reason": "reason"})
            .with_columns((pl.col("total") / total if total else pl.lit(None, dtype=pl.Float64)).alias("share"))
            .sort(["total", "reason"], descending=[True, False]))
