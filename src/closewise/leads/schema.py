"""The frames the lead analytics take: column names and types (timestamps are naive UTC)."""

from __future__ import annotations

from typing import Final

import polars as pl

from closewise.domain.enums import LeadStatus

TS: Final = pl.Datetime("us")

LEADS: Final[dict[str, pl.DataType]] = {
    "id": pl.Int64(), "external_id": pl.String(), "name": pl.String(), "company": pl.String(),
    "lead_source": pl.String(), "campaign": pl.String(), "country": pl.String(), "timezone": pl.String(),
    "owner_id": pl.Int64(), "status": pl.String(), "created_at": TS, "assigned_at": TS, "first_touch_at": TS,
    "accepted_at": TS, "rejected_at": TS, "recycle_reason": pl.String(), "re_engage_at": pl.Date(),
    "recycled_count": pl.Int64(), "converted_at": TS, "converted_opportunity_id": pl.Int64(),
}
ACTIVITIES: Final[dict[str, pl.DataType]] = {
    "lead_id": pl.Int64(), "owner_id": pl.Int64(), "type": pl.String(), "occurred_at": TS, "completed": pl.Boolean(),
}
EVENTS: Final[dict[str, pl.DataType]] = {
    "lead_id": pl.Int64(), "kind": pl.String(), "occurred_at": TS, "user_id": pl.Int64(), "owner_id": pl.Int64(),
    "reason": pl.String(), "re_engage_at": pl.Date(), "note": pl.String(),
}
OPPORTUNITIES: Final[dict[str, pl.DataType]] = {
    "id": pl.Int64(), "lead_id": pl.Int64(), "owner_id": pl.Int64(), "status": pl.String(),
    "amount": pl.Float64(), "currency": pl.String(), "close_date": pl.Date(), "created_at": TS, "closed_at": TS,
}
USERS: Final[dict[str, pl.DataType]] = {
    "id": pl.Int64(), "name": pl.String(), "email": pl.String(), "role": pl.String(), "manager_id": pl.Int64(),
    "active": pl.Boolean(),
}

OPEN_STATUSES: Final = (LeadStatus.NEW.value, LeadStatus.WORKING.value)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
