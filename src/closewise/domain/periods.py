"""The fiscal calendar: months, quarters and years, with a configurable fiscal-year start.

A period is written `2023-05` (a calendar month), `2023-Q2` (a fiscal quarter) or `2023` (a fiscal year).
A fiscal year is named for the calendar year in which it *starts* unless `name_by_end` is set (so with a
February start and `name_by_end`, FY2024 runs from 2023-02-01 to 2024-01-31, as Salesforce's "ending
month" option does). Periods are half-open internally (`start <= d < end`); `last_day` is the inclusive end
shown to people and written in JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from closewise.errors import InvalidInput


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date  # exclusive
    kind: PeriodKind
    label: str

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(?:FY)?(\d{4})-?Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(?:FY)?(\d{4})$", re.IGNORECASE)


@dataclass(frozen=True)
class FiscalCalendar:
    start_month: int = 1
    name_by_end: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.start_month <= 12:
            raise InvalidInput(f"fiscal year start month must be 1-12, got {self.start_month}")

    # -- construction -------------------------------------------------------------------------------------
    def year_start(self, fiscal_year: int) -> date:
        first = date(fiscal_year, self.start_month, 1)
        if self.name_by_end and self.start_month != 1:
            first = date(fiscal_year - 1, self.start_month, 1)
        return first

    def year(self, fiscal_year: int) -> Period:
        start = self.year_start(fiscal_year)
        return Period(start, _add_months(start, 12), PeriodKind.YEAR, f"{fiscal_year}")

    def quarter(self, fiscal_year: int, quarter: int) -> Period:
        if not 1 <= quarter <= 4:
            raise InvalidInput(f"quarter must be 1-4, got {quarter}")
        start = _add_months(self.year_start(fiscal_year), 3 * (quarter - 1))
        return Period(start, _add_months(start, 3), PeriodKind.QUARTER, f"{fiscal_year}-Q{quarter}")

    @staticmethod
    def month(year: int, month: int) -> Period:
        if not 1 <= month <= 12:
            raise InvalidInput(f"month must be 1-12, got {month}")
        start = date(year, month, 1)
        return Period(start, _add_months(start, 1), PeriodKind.MONTH, f"{year}-{month:02d}")

    # -- lookup -------------------------------------------------------------------------------------------
    def fiscal_year_of(self, day: date) -> int:
        months_since_start = (day.month - self.start_month) % 12
        start_year = _add_months(date(day.year, day.month, 1), -months_since_start).year
        return start_year + 1 if self.name_by_end and self.start_month != 1 else start_year

    def period_containing(self, day: date, kind: PeriodKind) -> Period:
        if kind is PeriodKind.MONTH:
            return self.month(day.year, day.month)
        fiscal_year = self.fiscal_year_of(day)
        if kind is PeriodKind.YEAR:
            return self.year(fiscal_year)
        months_in = (day.month - self.start_month) % 12
        return self.quarter(fiscal_year, months_in // 3 + 1)

    def parse(self, text: str) -> Period:
        """Read `2023-05`, `2023-Q2` (or `FY2023-Q2`) or `2023`; anything else is an InvalidInput."""
        value = text.strip()
        if match := _MONTH.match(value):
            return self.month(int(match[1]), int(match[2]))
        if match := _QUARTER.match(value):
            return self.quarter(int(match[1]), int(match[2]))
        if match := _YEAR.match(value):
            return self.year(int(match[1]))
        raise InvalidInput(f"period {text!r} is not a month (2023-05), a quarter (2023-Q2) or a year (2023)")

    def periods_between(self, start: date, end: date, kind: PeriodKind) -> list[Period]:
        """Every period of `kind` whose first day lies in [start, end]."""
        periods: list[Period] = []
        current = self.period_containing(start, kind)
        if current.start < start:
            current = self.next(current)
        while current.start <= end:
            periods.append(current)
            current = self.next(current)
        return periods

    def next(self, period: Period) -> Period:
        return self.period_containing(period.end, period.kind)

    def previous(self, period: Period) -> Period:
        return self.period_containing(period.start - timedelta(days=1), period.kind)
