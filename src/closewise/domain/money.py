"""Currency conversion to the corporate currency.

Rates follow Salesforce's convention: `rate` is how many units of the currency buy one unit of the
corporate currency, so `corporate = amount / rate`. Dated rates apply from `start_date` until the next
rate for the same currency; a currency with no dated rate on a day falls back to its static rate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from closewise.errors import InvalidInput


def round_cents(amount: float) -> float:
    """A money amount rounded to the cent, the one rule every stored amount follows (Python `round`)."""
    return round(float(amount), 2)


def round_cents_expr(expr: pl.Expr) -> pl.Expr:
    """`round_cents` for a Polars column (nulls kept); gives exactly the scalar's result."""
    return expr.cast(pl.Float64).map_elements(round_cents, return_dtype=pl.Float64, skip_nulls=True)


@dataclass
class CurrencyConverter:
    corporate: str = "USD"
    static: dict[str, float] = field(default_factory=dict)
    dated: dict[str, list[tuple[date, float]]] = field(default_factory=dict)

    def add_dated(self, currency: str, start: date, rate: float) -> None:
        series = self.dated.setdefault(currency.upper(), [])
        bisect.insort(series, (start, rate))

    def known(self, currency: str) -> bool:
        code = currency.upper()
        return code == self.corporate or code in self.static or code in self.dated

    def rate(self, currency: str, on: date | None = None) -> float:
        code = currency.upper()
        if code == self.corporate:
            return 1.0
        series = self.dated.get(code)
        if series and on is not None:
            index = bisect.bisect_right(series, (on, float("inf"))) - 1
            if index >= 0:
                return series[index][1]
        if code in self.static:
            return self.static[code]
        if series:
            return series[0][1]
        raise InvalidInput(f"unknown currency {currency!r}: no conversion rate to {self.corporate}")

    def to_corporate(self, amount: float, currency: str, on: date | None = None) -> float:
        return amount / self.rate(currency, on)
