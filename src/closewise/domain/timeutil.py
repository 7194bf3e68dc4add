"""UTC helpers: every stored timestamp is UTC; SQLite hands them back naive."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime from an aware one or a naive one that is already UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def naive_utc(value: datetime) -> datetime:
    """The naive UTC datetime the frames hold (Polars timestamps carry no zone): aware values are converted,
    naive ones are taken to be UTC already."""
    return as_utc(value).replace(tzinfo=None)


def midnight(day: date) -> datetime:
    """The first instant of `day`, naive UTC (the frames' convention)."""
    return datetime.combine(day, time.min)


def parse_as_of(text: str | None) -> datetime:
    """`--as-of 2024-03-31` means the end of that day: everything known on it counts."""
    from closewise.errors import InvalidInput

    if text is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"--as-of {text!r} is not a date like 2024-03-31") from exc
    if len(text.strip()) <= 10:
        parsed = datetime.combine(parsed.date(), time.max)
    return as_utc(parsed)
