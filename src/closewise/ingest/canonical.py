"""Converting one source cell into a canonical value of a given kind (see ingest/fields.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from closewise.domain.enums import ForecastCategory, OpportunityStatus
from closewise.ingest.fields import Kind
from closewise.ingest.refs import AccountRef, UserRef
from closewise.ingest.values import DateFormat, parse_amount, parse_bool, parse_date, parse_datetime

SALESFORCE_NULL_ID = "000000000000000AAA"

_STATUS = {
    "open": OpportunityStatus.OPEN, "won": OpportunityStatus.WON, "closed won": OpportunityStatus.WON,
    "closedwon": OpportunityStatus.WON, "lost": OpportunityStatus.LOST, "closed lost": OpportunityStatus.LOST,
    "closedlost": OpportunityStatus.LOST, "no decision": OpportunityStatus.NO_DECISION,
    "no_decision": OpportunityStatus.NO_DECISION, "nodecision": OpportunityStatus.NO_DECISION,
}
_CATEGORY = {
    "pipeline": ForecastCategory.PIPELINE, "best case": ForecastCategory.BEST_CASE,
    "bestcase": ForecastCategory.BEST_CASE, "best_case": ForecastCategory.BEST_CASE,
    "commit": ForecastCategory.COMMIT, "forecast": ForecastCategory.COMMIT, "closed": ForecastCategory.CLOSED,
    "omitted": ForecastCategory.OMITTED,
}


def parse_status(text: str) -> str | None:
    value = text.strip().lower()
    if not value:
        return None
    if value not in _STATUS:
        raise ValueError(f"{text!r} is not a status (open, won, lost, no_decision)")
    return _STATUS[value].value


def parse_category(text: str) -> str | None:
    value = text.strip().lower()
    if not value:
        return None
    if value not in _CATEGORY:
        raise ValueError(f"{text!r} is not a forecast category (pipeline, best_case, commit, closed, omitted)")
    return _CATEGORY[value].value


def clean_id(text: str) -> str | None:
    value = text.strip()
    if value[:1] == "'" and value.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r"):
        value = value[1:]  # undo the `'` that `closewise export` puts before formula-like text (see _text)
    return None if not value or value == SALESFORCE_NULL_ID else value


def _text(text: str) -> str | None:
    """Trimmed text, None when empty; one `'` put before formula-like text by an export is removed.

    `closewise export` prefixes `'` to text starting with `= + - @`, tab or CR, and to text already starting
    with `'`s followed by one of those (so a stored `'=x` survives the round trip); exactly that `'` is
    removed here, and every other apostrophe is kept.
    """
    value = text.strip()
    if value[:1] == "'" and value.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r"):
        value = value[1:]
    return value or None


def _number(text: str) -> float | None:
    return parse_amount(text.strip().rstrip("%"))


def _integer(text: str) -> int | None:
    value = parse_amount(text)
    if value is None:
        return None
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def _user(text: str) -> UserRef | None:
    value = clean_id(text)
    if value is None:
        return None
    if "@" in value:
        return UserRef(email=value)
    return UserRef(external_id=value, name=value)


def _account(text: str) -> AccountRef | None:
    value = clean_id(text)
    return AccountRef(external_id=value, name=value) if value else None


def _currency(text: str) -> str | None:
    value = text.strip().upper()
    if not value:
        return None
    if len(value) != 3 or not value.isalpha():
        raise ValueError(f"{text!r} is not a currency code like USD")
    return value


def converter(kind: Kind, *, date_format: DateFormat | None = None,
              datetime_format: DateFormat | None = None) -> Callable[[str], Any]:
    """A function turning the text of one cell into the canonical value (ValueError says why not)."""
    if kind is Kind.DATE:
        return lambda text: parse_date(text, date_format) if text.strip() else None
    if kind is Kind.DATETIME:
        return lambda text: parse_datetime(text, datetime_format) if text.strip() else None
    table: dict[Kind, Callable[[str], Any]] = {
        Kind.TEXT: _text, Kind.ID: clean_id, Kind.AMOUNT: parse_amount, Kind.NUMBER: _number,
        Kind.INTEGER: _integer, Kind.BOOL: parse_bool, Kind.USER: _user, Kind.ACCOUNT: _account,
        Kind.STAGE: _text, Kind.STATUS: parse_status, Kind.CATEGORY: parse_category, Kind.CURRENCY: _currency,
    }
    return table[kind]
