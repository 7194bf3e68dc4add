"""Cell value parsers for importers: amounts, booleans, date formats (inferred or given), dates and date-times."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closewise.ingest.values import (
    DateFormat,
    infer_date_format,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
    two_digit_year,
)

# --- amounts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.5", 1234.5),
        ("1,234.56", 1234.56),
        ("$1,234", 1234.0),
        ("€ 1.234,56", 1234.56),
        ("1.234.567", 1234567.0),
        ("1234,5", 1234.5),
        ("0,125", 0.125),
        ("1 234", 1234.0),
        ("1\u00a0234,50", 1234.5),
        ("1'234.50", 1234.5),
        ("(1,234.00)", -1234.0),
        ("-12", -12.0),
        ("-$12", -12.0),
        ("USD -12", -12.0),
        ("12 EUR", 12.0),
        ("1.5E+05", 150000.0),
        (" 42 ", 42.0),
        (".5", 0.5),
    ],
)
def test_parse_amount(text: str, expected: float) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_amount_empty_is_none(text: str) -> None:
    assert parse_amount(text) is None


@pytest.mark.parametrize(
    "text", ["abc", "12abc", "nan", "inf", "-Infinity", "1e400", "1,2,3", "1_000", "$", "--1", "1 2"]
)
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a (finite )?number"):
        parse_amount(text)


def test_parse_amount_reason_names_the_text() -> None:
    with pytest.raises(ValueError) as caught:
        parse_amount("12abc")
    assert str(caught.value) == "'12abc' is not a number"


money = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(money)
def test_formatted_amounts_round_trip(x: float) -> None:
    expected = float(f"{x:.2f}")
    us = f"{x:,.2f}"
    assert parse_amount(us) == expected
    european = us.replace(",", "_").replace(".", ",").replace("_", ".")
    assert parse_amount(european) == expected
    assert parse_amount(f"${abs(x):,.2f}") == abs(expected)
    assert parse_amount(f"({abs(x):,.2f})") == -abs(expected)
    assert parse_amount(repr(x)) == x


@given(st.text(max_size=20) | st.from_regex(r"[-+($€ ]{0,2}[0-9.,' eE+-]{1,14}[)€A-Z ]{0,2}", fullmatch=True))
def test_parse_amount_never_returns_nan_or_infinity(text: str) -> None:
    try:
        value = parse_amount(text)
    except ValueError:
        return
    assert value is None or math.isfinite(value)


# --- booleans ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("1", True), ("0", False), ("TRUE", True), ("false", False), ("Yes", True), ("no", False)],
        *[("y", True), ("N", False), ("", None), (" ", None)],
    ],
)
def test_parse_bool(text: str, expected: bool | None) -> None:
    assert parse_bool(text) is expected


@given(st.text(max_size=8))
def test_parse_bool_answers_or_explains(text: str) -> None:
    try:
        assert parse_bool(text) in (True, False, None)
    except ValueError as error:
        assert "is not a yes/no value" in str(error)


# --- dates: parsing ----------------------------------------------------------------------------------

ISO = DateFormat.iso()
US = DateFormat.numeric("mdy", "/", year_digits=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-31", date(2024, 3, 31)),
        ("2024-03-31 00:00:00", date(2024, 3, 31)),  # Salesforce Data Export writes dates so
        ("2024-03-31T12:00:00.000+0000", date(2024, 3, 31)),
        ("2024-3-1", date(2024, 3, 1)),
        (" 2024-03-31 ", date(2024, 3, 31)),
    ],
)
def test_iso_dates(text: str, expected: date) -> None:
    value = parse_date(text, ISO)
    assert value == expected and type(value) is date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-31T12:00:00.000+0000", datetime(2024, 3, 31, 12, tzinfo=UTC)),  # Salesforce API
        ("2024-03-31T12:00:00Z", datetime(2024, 3, 31, 12, tzinfo=UTC)),
        ("2024-03-31 23:00:00-05:00", datetime(2024, 4, 1, 4, tzinfo=UTC)),
        ("2024-03-31 12:00:00.25", datetime(2024, 3, 31, 12, 0, 0, 250000, tzinfo=UTC)),  # naive is UTC
        ("2024-03-31", datetime(2024, 3, 31, tzinfo=UTC)),
    ],
)
def test_iso_datetimes_are_aware_utc(text: str, expected: datetime) -> None:
    value = parse_datetime(text, ISO)
    assert value == expected and value is not None and value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02/23/26", datetime(2026, 2, 23, tzinfo=UTC)),
        ("2/3/2024", datetime(2024, 2, 3, tzinfo=UTC)),
        ("02/23/26 08:55 PM", datetime(2026, 2, 23, 20, 55, tzinfo=UTC)),  # Salesforce Excel-style layout
        ("02/23/26 12:05 AM", datetime(2026, 2, 23, 0, 5, tzinfo=UTC)),
        ("02/23/26 12:05 pm", datetime(2026, 2, 23, 12, 5, tzinfo=UTC)),
        ("3/31/2024 14:30:15", datetime(2024, 3, 31, 14, 30, 15, tzinfo=UTC)),
        ("2024-03-31", datetime(2024, 3, 31, tzinfo=UTC)),  # ISO is read under every format
    ],
)
def test_us_dates(text: str, expected: datetime) -> None:
    assert parse_datetime(text, US) == expected
    assert parse_date(text, US) == expected.date()


def test_two_digit_years_follow_strptime() -> None:
    assert [two_digit_year(y) for y in (0, 24, 68, 69, 99)] == [2000, 2024, 2068, 1969, 1999]
    assert parse_date("12/31/68", US) == date(2068, 12, 31)
    assert parse_date("01/01/69", US) == date(1969, 1, 1)
    assert parse_date("01/01/69", US) == datetime.strptime("01/01/69", "%m/%d/%y").date()


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("2024-02-30", ISO, "'2024-02-30' is not a valid date (expected YYYY-MM-DD)"),
        ("13/13/24", US, "'13/13/24' is not a valid date (expected MM/DD/YY)"),
        ("yesterday", US, "'yesterday' is not a valid date (expected MM/DD/YY)"),
        ("02/23/26 13:00 PM", US, "'02/23/26 13:00 PM' is not a valid date (expected MM/DD/YY)"),
        ("1/2/3/4", US, "'1/2/3/4' is not a valid date (expected MM/DD/YY)"),
    ],
)
def test_invalid_dates_say_what_was_expected(text: str, fmt: DateFormat, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_date(text, fmt)
    assert str(caught.value) == message
    with pytest.raises(ValueError, match="is not a valid date and time"):
        parse_datetime(text, fmt)


def test_empty_dates_are_none() -> None:
    assert parse_date("", US) is None and parse_date("  ", ISO) is None and parse_datetime("", ISO) is None


def test_without_a_format_iso_is_read() -> None:
    assert parse_date("2024-3-1") == date(2024, 3, 1)
    assert parse_datetime("2024-03-31 12:00:00") == datetime(2024, 3, 31, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"expected YYYY-MM-DD\)"):
        parse_date("03/31/2024")


def test_user_formats() -> None:
    short = DateFormat.from_spec("%d-%m-%y")
    assert (short.order, short.description) == ("dmy", "DD-MM-YY")
    assert parse_date("31-03-24", short) == date(2024, 3, 31)
    compact = DateFormat.from_spec("%Y%m%d")
    assert compact.order == "strptime"
    assert parse_date("20240331", compact) == date(2024, 3, 31)
    named = DateFormat.from_spec("%d %b %Y %H:%M %z")
    assert parse_datetime("31 Mar 2024 09:00 +0200", named) == datetime(2024, 3, 31, 7, tzinfo=UTC)
    assert DateFormat.from_spec("DD.MM.YYYY") == DateFormat.numeric("dmy", ".")
    assert DateFormat.from_spec("YYYY-MM-DD").order == "iso"
    for bad in ("%Q", "tomorrow", "DD/MM/YYYYX"):
        with pytest.raises(ValueError, match="format"):
            DateFormat.from_spec(bad)


# --- dates: inference --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "order", "pattern"),
    [
        (["2024-03-31 00:00:00", "2024-01-01 00:00:00"], "iso", "YYYY-MM-DD HH:MM:SS"),
        (["2024-03-31T12:00:00.000+0000"], "iso", "YYYY-MM-DD HH:MM:SS"),
        (["2024-03-31", "", "2024-04-01"], "iso", "YYYY-MM-DD"),
        (["02/03/24", "02/23/26", "01/27/21"], "mdy", "MM/DD/YY"),
        (["31/01/2024", "01/02/2024"], "dmy", "DD/MM/YYYY"),  # 31 can only be a day
        (["01/02/2024", "03/04/2024"], "mdy", "MM/DD/YYYY"),  # undecided: `/` is US
        (["01.02.2024"], "dmy", "DD.MM.YYYY"),  # undecided: `.` is European
        (["01-02-24"], "dmy", "DD-MM-YY"),
        (["2024/03/31"], "ymd", "YYYY/MM/DD"),
        (["3/31/2024 2:15 PM", "4/1/2024 9:00 AM"], "mdy", "MM/DD/YYYY HH:MM"),
    ],
)
def test_inference(samples: list[str], order: str, pattern: str) -> None:
    fmt = infer_date_format(samples)
    assert (fmt.order, fmt.pattern_text) == (order, pattern)


def test_inference_is_described_for_the_import_report() -> None:
    samples = [f"{1 + i % 12:02d}/{1 + i % 28:02d}/24" for i in range(1204)]
    assert infer_date_format(samples).description == "MM/DD/YY (inferred from 1,204 values)"
    mixed = infer_date_format(["31/01/2024", "13/02/2024", "01/31/2024"])
    assert mixed.order == "dmy"
    assert mixed.description == "DD/MM/YYYY (inferred from 3 values; 1 does not fit it)"
    assert infer_date_format(["n/a", ""]).description == "YYYY-MM-DD (default: no recognisable dates to infer from)"


Formatter = Callable[[datetime], str]
Precision = Literal["day", "minute", "second", "microsecond"]
WRITERS: dict[str, tuple[Formatter, Precision]] = {  # how a file writes a moment, and what of it survives
    "YYYY-MM-DD": (lambda d: d.strftime("%Y-%m-%d"), "day"),
    "Salesforce Data Export": (lambda d: d.strftime("%Y-%m-%d %H:%M:%S"), "second"),
    "Salesforce API": (lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "second"),
    "ISO fractional Z": (lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "microsecond"),
    "MM/DD/YY": (lambda d: d.strftime("%m/%d/%y"), "day"),
    "M/D/YYYY": (lambda d: f"{d.month}/{d.day}/{d.year}", "day"),
    "M/D/YYYY H:MM": (lambda d: f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}", "minute"),
    "MM/DD/YY HH:MM AM/PM": (lambda d: d.strftime("%m/%d/%y %I:%M %p"), "minute"),
    "M/D/YYYY H:MM:SS AM/PM": (lambda d: f"{d.month}/{d.day}/{d.year} {d.strftime('%-I:%M:%S %p')}", "second"),
    "DD/MM/YYYY": (lambda d: d.strftime("%d/%m/%Y"), "day"),
    "DD-MM-YY": (lambda d: d.strftime("%d-%m-%y"), "day"),
    "DD.MM.YYYY": (lambda d: d.strftime("%d.%m.%Y"), "day"),
    "DD.MM.YYYY HH:MM:SS": (lambda d: d.strftime("%d.%m.%Y %H:%M:%S"), "second"),
}
moments = st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2068, 12, 31, 23, 59, 59))


def _truncate(moment: datetime, precision: Precision) -> datetime:
    if precision == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if precision == "minute":
        return moment.replace(second=0, microsecond=0)
    if precision == "second":
        return moment.replace(microsecond=0)
    return moment


@given(
    writer=st.sampled_from(sorted(WRITERS)),
    moments=st.lists(moments, min_size=1, max_size=30),
    witness=moments.filter(lambda m: m.day > 12),
)
def test_inference_then_parsing_round_trips_every_layout(
    writer: str, moments: list[datetime], witness: datetime
) -> None:
    # A real column has many values; one with a day above 12 is what lets a day-first column be told apart.
    write, precision = WRITERS[writer]
    column = [*moments, witness]
    fmt = infer_date_format(write(m) for m in column)
    for moment in column:
        text = write(moment)
        assert parse_date(text, fmt) == moment.date(), (text, fmt)
        assert parse_datetime(text, fmt) == _truncate(moment, precision).replace(tzinfo=UTC), (text, fmt)


@given(
    pattern=st.sampled_from(["%d-%m-%y", "%m/%d/%Y", "%Y%m%d", "%d %B %Y", "%Y.%m.%d %H:%M", "%d/%m/%Y %H:%M:%S"]),
    moment=moments,
)
def test_user_formats_round_trip(pattern: str, moment: datetime) -> None:
    fmt = DateFormat.from_spec(pattern)
    text = moment.strftime(pattern)
    assert parse_date(text, fmt) == moment.date()
    expected = datetime.strptime(text, pattern).replace(tzinfo=UTC)
    assert parse_datetime(text, fmt) == expected


@given(moment=moments, offset_minutes=st.integers(-14 * 60, 14 * 60))
def test_offsets_are_converted_to_utc(moment: datetime, offset_minutes: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert parse_datetime(aware.isoformat(), ISO) == aware.astimezone(UTC)
    assert parse_datetime(aware.isoformat(), US) == aware.astimezone(UTC)
