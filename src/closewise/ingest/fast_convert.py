"""Converting whole columns of source text at once, exactly as the per-cell converters would.

The per-cell converters of `canonical.py` are the definition of what a cell means. Here each column is
converted with Polars expressions for the shapes that are common and unambiguous (plain ASCII text, plain
decimals, ISO dates), and every cell the fast conversion is not *sure* about (surrounding whitespace,
formula-like prefixes, `$1,234`, `2024-02-30`, an unknown code...) is handed to the per-cell converter,
which either reads it or raises the very `ValueError` whose message the errors file shows. Columns with
few distinct values (statuses, categories, yes/no) are converted once per distinct value.

So for any input the result equals that of the per-cell path; only the speed differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from closewise.domain.money import round_cents
from closewise.ingest.canonical import SALESFORCE_NULL_ID
from closewise.ingest.fields import Kind
from closewise.ingest.refs import AccountRef, UserRef
from closewise.ingest.values import DateFormat

# A cell is left as it is by strip() when both ends are printable ASCII other than a space.
_PLAIN_TEXT = r"(?s)^[\x21-\x7e](?:.*[\x21-\x7e])?$"
_DECIMAL = r"^-?[0-9]+(?:\.[0-9]+)?$"
_CURRENCY = r"^[A-Za-z]{3}$"
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_MOMENT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
# Kinds with few distinct values: converted once per value.
_BY_VALUE = frozenset({Kind.STATUS, Kind.CATEGORY, Kind.BOOL})
DTYPES: dict[Kind, pl.DataType] = {
    Kind.AMOUNT: pl.Float64(), Kind.NUMBER: pl.Float64(), Kind.DATE: pl.Date(), Kind.DATETIME: pl.Datetime("us"),
    Kind.BOOL: pl.Boolean(),
}


@dataclass(frozen=True)
class Converted:
    """One converted column: typed values (null where empty or rejected) and {row index: reason}."""

    values: pl.Series
    errors: dict[int, str]


def _plain_text(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    sure = (text == "") | (text.str.contains(_PLAIN_TEXT) & ~text.str.starts_with("'"))
    return pl.when(text == "").then(None).otherwise(text), sure


def _fast(kind: Kind, text: pl.Expr, fmt: DateFormat | None) -> tuple[pl.Expr, pl.Expr] | None:
    """(value, sure) expressions for a kind, or None when every cell goes through the per-cell converter."""
    if kind in (Kind.TEXT, Kind.STAGE):
        return _plain_text(text)
    if kind in (Kind.ID, Kind.USER, Kind.ACCOUNT):
        value, sure = _plain_text(text)
        return pl.when(text == SALESFORCE_NULL_ID).then(None).otherwise(value), sure
    if kind in (Kind.AMOUNT, Kind.NUMBER):
        sure = (text == "") | text.str.contains(_DECIMAL)
        return pl.when(text == "").then(None).otherwise(text.cast(pl.Float64, strict=False)), sure
    if kind is Kind.CURRENCY:
        sure = (text == "") | text.str.contains(_CURRENCY)
        return pl.when(text == "").then(None).otherwise(text.str.to_uppercase()), sure
    if kind in (Kind.DATE, Kind.DATETIME):
        # ISO text is read as ISO under every format, except a strptime pattern for a date with a time.
        day = text.str.contains(_DAY)
        moment = text.str.contains(_MOMENT) if kind is Kind.DATETIME or (fmt and fmt.order != "strptime") else \
            pl.lit(False)
        parsed = (
            pl.when(day).then(text.str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False))
            .when(moment).then(text.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False))
        )
        value = parsed.dt.date() if kind is Kind.DATE else parsed
        # An impossible date (2024-02-30) parses to null: the per-cell converter says why.
        return pl.when(text == "").then(None).otherwise(value), (text == "") | ((day | moment) & parsed.is_not_null())
    return None


def _canonical(kind: Kind, value: Any) -> Any:
    """A per-cell converter's value in the column's representation (references as their text)."""
    if isinstance(value, UserRef):
        return value.email or value.external_id
    if isinstance(value, AccountRef):
        return value.external_id
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if kind is Kind.DATE and isinstance(value, date):
        return value
    return value


def convert_column(texts: pl.Series, kind: Kind, convert: Callable[[str], Any],
                   fmt: DateFormat | None = None) -> Converted:
    """Convert a String column (no nulls) of one field; `convert` is the field's per-cell converter."""
    dtype = DTYPES.get(kind, pl.String())
    errors: dict[int, str] = {}
    if kind in _BY_VALUE:
        mapping: dict[str, Any] = {}
        failed: dict[str, str] = {}
        for text in texts.unique().to_list():
            try:
                mapping[text] = _canonical(kind, convert(text))
            except ValueError as exc:
                failed[text] = str(exc)
                mapping[text] = None
        values = texts.replace_strict(mapping, return_dtype=dtype)
        if failed:
            for index, text in enumerate(texts.to_list()):
                if text in failed:
                    errors[index] = failed[text]
        return Converted(values, errors)
    exprs = _fast(kind, pl.col("text"), fmt)
    if exprs is None:
        frame = texts.rename("text").to_frame().with_columns(value=pl.lit(None, dtype), sure=pl.lit(False))
    else:
        frame = texts.rename("text").to_frame().with_columns(value=exprs[0].cast(dtype), sure=exprs[1])
    values = frame.get_column("value")
    unsure = frame.with_row_index("i").filter(~pl.col("sure")).select("i", "text")
    if unsure.height:
        indices: list[int] = []
        fixed: list[Any] = []
        for index, text in unsure.iter_rows():
            try:
                value = _canonical(kind, convert(text))
            except ValueError as exc:
                errors[index] = str(exc)
                value = None
            indices.append(index)
            fixed.append(value)
        values = values.scatter(indices, pl.Series(fixed, dtype=dtype))
    return Converted(values, errors)


def round_cents_column(values: pl.Series) -> pl.Series:
    """`domain.money.round_cents` over a column, with exactly its results (nulls kept).

    `round(x, 2)` rounds the exact binary value of x to the cent, so it equals floor(100x + 0.5) / 100 (an
    IEEE division, correctly rounded like the decimal Python builds) unless 100x, as computed, lies too close
    to a half cent to be sure which way the exact value goes; those few cells, and very large or
    non-finite ones, are rounded by `round_cents` itself. Division goes through NumPy: Polars divides by a
    constant as a multiplication by its reciprocal, which is not correctly rounded.
    """
    x = values.cast(pl.Float64).to_numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x * 100.0
        rounded = np.copysign(np.floor(scaled + 0.5) / 100.0, x)
        sure = (np.abs(scaled - np.floor(scaled) - 0.5) > np.abs(scaled) * 2.0**-49 + 1e-9) & (np.abs(x) < 1e12)
    for index in np.flatnonzero(~sure & ~np.isnan(x)).tolist():
        rounded[index] = round_cents(float(x[index]))
    result = pl.Series(values.name, rounded, dtype=pl.Float64)
    return result.set(values.is_null(), None) if values.null_count() else result
