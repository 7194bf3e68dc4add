"""The frames the analytics layer works on: column names and Polars dtypes, fixed once here.

Like statsforecast's `unique_id` / `ds` / `y`, the names are constants and every frame is checked once, at
the border (`validate_*`), so the algorithms behind it can trust the columns they read. Timestamps are naive
`pl.Datetime("us")` holding UTC (DESIGN.md: every timestamp is UTC); the database layer strips the zone.

Extra columns are allowed and carried along where it makes sense; missing or mistyped ones are an error
that names the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

from closewise.errors import InvalidInput

TIMESTAMP: Final = pl.Datetime("us")

# Opportunities frame: one row per opportunity, its current state.
ID: Final = "id"
OWNER_ID: Final = "owner_id"
ACCOUNT_ID: Final = "account_id"
STAGE: Final = "stage"
STATUS: Final = "status"
AMOUNT: Final = "amount"  # in the record currency
CURRENCY: Final = "currency"
CLOSE_DATE: Final = "close_date"
FORECAST_CATEGORY: Final = "forecast_category"
PROBABILITY: Final = "probability"
NEXT_STEP: Final = "next_step"
CREATED_AT: Final = "created_at"
CLOSED_AT: Final = "closed_at"

OPPORTUNITY_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    ID: pl.Int64(),
    OWNER_ID: pl.Int64(),
    ACCOUNT_ID: pl.Int64(),
    STAGE: pl.String(),
    STATUS: pl.String(),
    AMOUNT: pl.Float64(),
    CURRENCY: pl.String(),
    CLOSE_DATE: pl.Date(),
    FORECAST_CATEGORY: pl.String(),
    PROBABILITY: pl.Float64(),
    NEXT_STEP: pl.String(),
    CREATED_AT: TIMESTAMP,
    CLOSED_AT: TIMESTAMP,
}
OPPORTUNITY_REQUIRED: Final[tuple[str, ...]] = (ID, STAGE, STATUS, CURRENCY, CREATED_AT)

# Changes frame: the append-only log, one row per change of one field (values encoded as in
# `closewise.domain.changes`).
OPPORTUNITY_ID: Final = "opportunity_id"
FIELD: Final = "field"
OLD_VALUE: Final = "old_value"
NEW_VALUE: Final = "new_value"
CHANGED_AT: Final = "changed_at"

CHANGE_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    OPPORTUNITY_ID: pl.Int64(),
    FIELD: pl.String(),
    OLD_VALUE: pl.String(),
    NEW_VALUE: pl.String(),
    CHANGED_AT: TIMESTAMP,
}
CHANGE_REQUIRED: Final[tuple[str, ...]] = (OPPORTUNITY_ID, FIELD, CHANGED_AT)

# Timeline frame (analytics/snapshots.py): the opportunities columns plus the interval a state held for.
VALID_FROM: Final = "valid_from"
VALID_TO: Final = "valid_to"  # null: still the current state
AS_OF: Final = "as_of"


def _validate(
    frame: pl.DataFrame,
    schema: Mapping[str, pl.DataType],
    required: tuple[str, ...],
    *,
    what: str,
) -> pl.DataFrame:
    for name, dtype in schema.items():
        if name not in frame.columns:
            raise InvalidInput(f"column {name!r} ({dtype}) is missing", where=what)
        if frame.schema[name] != dtype:
            raise InvalidInput(f"column {name!r} is {frame.schema[name]}, expected {dtype}", where=what)
    nulls = frame.select(pl.col(required).null_count()).row(0)
    for name, count in zip(required, nulls, strict=True):
        if count:
            raise InvalidInput(f"column {name!r} has {count} empty value(s)", where=what)
    return frame


def validate_opportunities(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` unchanged if it is an opportunities frame; raise `InvalidInput` naming the column."""
    return _validate(frame, OPPORTUNITY_SCHEMA, OPPORTUNITY_REQUIRED, what="opportunities frame")


def validate_changes(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` unchanged if it is a changes frame; raise `InvalidInput` naming the column."""
    return _validate(frame, CHANGE_SCHEMA, CHANGE_REQUIRED, what="changes frame")


def empty_opportunities() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(OPPORTUNITY_SCHEMA))


def empty_changes() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(CHANGE_SCHEMA))
