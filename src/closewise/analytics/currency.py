"""Amounts in the corporate currency.

Rates follow Salesforce: `rate` units of a currency buy one unit of the corporate currency, so
`corporate = amount / rate`. A dated rate applies from its `start_date` until the next one of the same
currency (DatedConversionRate); before the first dated rate, or with none, the static rate (CurrencyType,
`start_date` null) applies. A deal is converted at the rate of its close date, as Salesforce's dated
currency management does.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from closewise.errors import InvalidInput

# Prefix of the temporary columns made here (and dropped again); callers' own columns never use it.
_TEMP = "__cw_"

RATES_SCHEMA = {"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()}


def to_corporate(
    frame: pl.DataFrame, rates: pl.DataFrame, *, corporate: str, amount: str = "amount",
    currency: str = "currency", on: str = "close_date", into: str = "amount_corporate",
) -> pl.DataFrame:
    """`frame` with a column `into`: `amount` converted from `currency` at the rate on date `on`."""
    if on not in frame.columns:
        raise InvalidInput(f"column {on!r} (the date to convert at) is missing", where="frame to convert")
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(into))
    codes = set(frame.get_column(currency).drop_nulls().unique().to_list()) - {corporate}
    known = set(rates.get_column("currency").to_list()) if rates.height else set()
    missing = sorted(codes - known)
    if missing:
        raise InvalidInput(f"no conversion rate to {corporate} for {', '.join(missing)}")
    if not codes:
        return frame.with_columns(pl.col(amount).cast(pl.Float64).alias(into))
    static = rates.filter(pl.col("start_date").is_null()).group_by("currency").agg(pl.col("rate").last()
                                                                                   .alias("__cw_static"))
    dated = rates.filter(pl.col("start_date").is_not_null()).select(
        pl.col("currency").alias("__cw_cur"), pl.col("start_date").alias("__cw_on"), pl.col("rate").alias("__cw_dated")
    ).sort("__cw_on")
    day = pl.col(on).cast(pl.Date).fill_null(date(1970, 1, 1))
    keyed = frame.with_row_index("__cw_row").with_columns(day.alias("__cw_on"), pl.col(currency).alias("__cw_cur"))
    converted = keyed.sort("__cw_on").join_asof(
        dated, on="__cw_on", by="__cw_cur", strategy="backward", check_sortedness=False) if dated.height \
        else keyed.with_columns(pl.lit(None, dtype=pl.Float64).alias("__cw_dated"))
    converted = converted.join(static, left_on="__cw_cur", right_on="currency", how="left")
    rate = (pl.when(pl.col("__cw_cur") == corporate).then(pl.lit(1.0))
            .otherwise(pl.coalesce("__cw_dated", "__cw_static", pl.lit(None, dtype=pl.Float64))))
    # A currency with only dated rates uses its first one before it starts.
    first = dated.group_by("__cw_cur").agg(pl.col("__cw_dated").first().alias("__cw_first")) if dated.height else None
    if first is not None:
        converted = converted.join(first, on="__cw_cur", how="left")
        rate = pl.coalesce(rate, pl.col("__cw_first"))
    return (converted.with_columns((pl.col(amount).cast(pl.Float64) / rate).alias(into))
            .sort("__cw_row").drop([c for c in converted.columns if c.startswith(_TEMP)]))
