"""The fiscal calendar: parsing, containment, and that periods tile time without gaps."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.errors import InvalidInput

calendars = st.builds(FiscalCalendar, start_month=st.integers(1, 12), name_by_end=st.booleans())
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))


def test_parse_calendar_year_periods() -> None:
    calendar = FiscalCalendar()
    month = calendar.parse("2023-05")
    assert (month.start, month.last_day, month.kind) == (date(2023, 5, 1), date(2023, 5, 31), PeriodKind.MONTH)
    quarter = calendar.parse("2023-Q2")
    assert (quarter.start, quarter.last_day) == (date(2023, 4, 1), date(2023, 6, 30))
    year = calendar.parse("2023")
    assert (year.start, year.last_day, year.days) == (date(2023, 1, 1), date(2023, 12, 31), 365)


def test_february_fiscal_year_named_by_start_and_by_end() -> None:
    # FY starting in February: Q1 is Feb-Apr. Named by its start year, FY2023 starts 2023-02-01;
    # named by its end year (Salesforce's other option), FY2024 is the one that starts 2023-02-01.
    by_start = FiscalCalendar(start_month=2)
    assert by_start.parse("2023-Q1").start == date(2023, 2, 1)
    assert by_start.parse("2023-Q4").last_day == date(2024, 1, 31)
    by_end = FiscalCalendar(start_month=2, name_by_end=True)
    assert by_end.parse("2024").start == date(2023, 2, 1)
    assert by_end.period_containing(date(2024, 1, 15), PeriodKind.QUARTER).label == "2024-Q4"


@pytest.mark.parametrize("text", ["", "2023-13", "2023-Q5", "Q2-2023", "twenty", "2023/05", "2023-00"])
def test_bad_periods_name_the_input(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"2023-Q2|must be"):
        FiscalCalendar().parse(text)


def test_start_month_out_of_range() -> None:
    with pytest.raises(InvalidInput, match="1-12"):
        FiscalCalendar(start_month=13)


@given(calendar=calendars, day=days, kind=st.sampled_from(list(PeriodKind)))
def test_every_day_lies_in_the_period_containing_it(calendar: FiscalCalendar, day: date, kind: PeriodKind) -> None:
    period = calendar.period_containing(day, kind)
    assert period.contains(day)
    assert calendar.parse(period.label) == period  # labels round-trip
    assert calendar.next(period).start == period.end  # no gap, no overlap
    assert calendar.previous(period).end == period.start


@given(calendar=calendars, day=days)
def test_quarters_tile_the_fiscal_year(calendar: FiscalCalendar, day: date) -> None:
    year = calendar.period_containing(day, PeriodKind.YEAR)
    fiscal_year = int(year.label)
    quarters = [calendar.quarter(fiscal_year, q) for q in range(1, 5)]
    assert quarters[0].start == year.start and quarters[-1].end == year.end
    assert all(a.end == b.start for a, b in itertools.pairwise(quarters))
    assert sum(q.days for q in quarters) == year.days


def test_periods_between_lists_periods_starting_in_range() -> None:
    calendar = FiscalCalendar()
    months = calendar.periods_between(date(2023, 1, 15), date(2023, 4, 1), PeriodKind.MONTH)
    # January starts before the 15th, so it is out; April starts on the end date, so it is in.
    assert [m.label for m in months] == ["2023-02", "2023-03", "2023-04"]
    assert (
        calendar.periods_between(date(2023, 1, 1), date(2023, 1, 1) + timedelta(days=400), PeriodKind.QUARTER)[-1].label
        == "2024-Q1"
    )
