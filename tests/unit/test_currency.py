"""Conversion to the corporate currency with static and dated rates (Salesforce's convention)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from closewise.analytics.currency import RATES_SCHEMA, to_corporate
from closewise.errors import InvalidInput

RATES = pl.DataFrame(
    {"currency": ["EUR", "EUR", "EUR", "GBP"], "rate": [0.9, 0.8, 1.0, 0.5],
     "start_date": [None, date(2024, 1, 1), date(2024, 7, 1), None]},
    schema=RATES_SCHEMA,
)


def test_dated_rates_by_close_date_and_static_fallback() -> None:
    deals = pl.DataFrame({
        "amount": [100.0, 100.0, 100.0, 100.0, 50.0],
        "currency": ["EUR", "EUR", "EUR", "USD", "GBP"],
        "close_date": [date(2023, 6, 1), date(2024, 3, 1), date(2024, 8, 1), date(2024, 8, 1), None],
    })
    result = to_corporate(deals, RATES, corporate="USD").get_column("amount_corporate").to_list()
    # 2023-06: before the first dated EUR rate, the static 0.9 -> 100 / 0.9; 2024-03: dated 0.8 -> 125;
    # 2024-08: dated 1.0 -> 100; USD is the corporate currency; GBP has only a static rate, 0.5 -> 100.
    assert result == pytest.approx([100 / 0.9, 125.0, 100.0, 100.0, 100.0])
    assert to_corporate(deals, RATES, corporate="USD").get_column("amount").to_list() == deals["amount"].to_list()


def test_missing_rate_is_named() -> None:
    deals = pl.DataFrame({"amount": [1.0], "currency": ["JPY"], "close_date": [date(2024, 1, 1)]})
    with pytest.raises(InvalidInput, match="JPY"):
        to_corporate(deals, RATES, corporate="USD")


def test_callers_underscore_columns_survive() -> None:
    deals = pl.DataFrame({"amount": [100.0, 10.0], "currency": ["EUR", "USD"],
                          "close_date": [date(2024, 3, 1), date(2024, 3, 1)], "_x": [1, 2]})
    result = to_corporate(deals, RATES, corporate="USD")
    assert result.columns == ["amount", "currency", "close_date", "_x", "amount_corporate"]
    assert result["_x"].to_list() == [1, 2]
    assert result["amount_corporate"].to_list() == pytest.approx([125.0, 10.0])


def test_missing_on_column_is_named() -> None:
    deals = pl.DataFrame({"amount": [1.0], "currency": ["EUR"]})
    with pytest.raises(InvalidInput, match="close_date"):
        to_corporate(deals, RATES, corporate="USD")
