"""How opportunity change-log values are written as text, and read back.

The log (`opportunity_changes`) is append-only and holds one row per change of one field: when, old value,
new value, who, from where. Values are text so one column serves every field:

- `stage`, `status`, `forecast_category`, `next_step`, `currency`: the string itself
- `amount`, `probability`: a decimal number (`"12500.0"`)
- `close_date`: an ISO date (`"2024-03-31"`)
- `owner_id`: the internal user id (`"42"`)
- `None`: empty

Reconstruction rule (the as-of engine relies on it): an opportunity exists from its `created_at`; the value
of a field at a time `t` is the `new_value` of the field's last change at or before `t`; before its first
change it is that change's `old_value`; a field that never changed has its current value throughout.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from closewise.domain.enums import ChangeField

TRACKED_FIELDS: Final[tuple[ChangeField, ...]] = (
    ChangeField.STAGE,
    ChangeField.STATUS,
    ChangeField.AMOUNT,
    ChangeField.CLOSE_DATE,
    ChangeField.FORECAST_CATEGORY,
    ChangeField.OWNER,
    ChangeField.PROBABILITY,
    ChangeField.NEXT_STEP,
)

NUMERIC_FIELDS: Final[frozenset[ChangeField]] = frozenset({ChangeField.AMOUNT, ChangeField.PROBABILITY})

Value = str | float | int | date | None


def encode(field: ChangeField, value: Value) -> str | None:
    if value is None:
        return None
    if field is ChangeField.CLOSE_DATE:
        return value.isoformat() if isinstance(value, date) else str(value)
    if field in NUMERIC_FIELDS:
        return repr(float(value))  # type: ignore[arg-type]
    if field is ChangeField.OWNER:
        return str(int(value))  # type: ignore[arg-type]
    return str(value)


def decode(field: ChangeField, text: str | None) -> Value:
    if text is None or text == "":
        return None
    if field is ChangeField.CLOSE_DATE:
        return date.fromisoformat(text[:10])
    if field in NUMERIC_FIELDS:
        return float(text)
    if field is ChangeField.OWNER:
        return int(text)
    return text
