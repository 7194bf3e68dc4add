"""Turn the raw text of an imported cell into a typed value: amounts, booleans, dates and date-times.

Every parser maps empty (or blank) text to None and raises `ValueError` with a short human reason for text
it cannot read, e.g. `'12abc' is not a number`; the importer adds the file, line and column.

Dates come in many shapes, and one column keeps one shape, so the shape is decided once per column by
`infer_date_format` (from many values) or given by the user (`DateFormat.from_spec("%d-%m-%y")`), then
applied to every cell by `parse_date` / `parse_datetime`. Inference reads digit groups: a first group
above 12 can only be a day (day-first), a second group above 12 only a day (month-first); when no value
decides, `/` means month-first (US exports, Salesforce's Excel-style `MM/DD/YY`) and `.` or `-` mean
day-first (European). ISO 8601 values (`2024-03-31`, `2024-03-31 00:00:00` from Salesforce Data Export,
`2024-03-31T12:00:00.000+0000` from the Salesforce API) are read under every format, since they are never
ambiguous. Two-digit years follow strptime's POSIX rule: 00-68 are 2000-2068, 69-99 are 1969-1999.

Date-times without an offset are taken as UTC (what Salesforce writes); those with one are converted to
UTC; `parse_datetime` always returns an aware UTC datetime.

These run once per cell on files of millions of rows, so each format carries pre-bound parsers and the
common cases (ISO through `fromisoformat`, numeric dates through `str.split`) avoid regular expressions
and `strptime`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

__all__ = [
    "DateFormat",
    "infer_date_format",
    "parse_amount",
    "parse_bool",
    "parse_date",
    "parse_datetime",
    "two_digit_year",
]

# --- amounts -----------------------------------------------------------------------------------------

_CURRENCY_AFFIX = re.compile(r"^(?:[A-Z]{3}|[$€£¥₹₩₽¤]|R\$|CHF|kr)\s*|\s*(?:[A-Z]{3}|[$€£¥₹₩₽¤]|CHF|kr)$")
_GROUPED_SPACE = re.compile(r"\d{1,3}(?:[ '\u00a0\u202f]\d{3})+(?:[.,]\d+)?")
_US = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_EUROPEAN = re.compile(r"(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")


def parse_amount(text: str) -> float | None:
    """Read a money amount or any number as written in exports and spreadsheets.

    Accepts `1234.5`, `-12`, `1.5E+05`, thousands separators (`1,234.56`, `1 234`, `1'234`), currency
    symbols or codes before or after (`$1,234`, `€ 1.234,56`, `1234 EUR`), the European decimal comma
    (when the last separator is a comma followed by one or two digits, or a sole comma after a leading
    zero, as in `0,125`) and accounting negatives `(1,234.00)`. Rejects anything else, and NaN or
    infinite values. '' or blank → None.
    """
    try:
        value = float(text)
    except ValueError:
        body = text.strip()
        if not body:
            return None
        value = _parse_formatted_amount(body)
    else:
        if "_" in text:  # float() accepts Python's 1_000; exports never mean it
            raise ValueError(f"{text.strip()!r} is not a number")
    if not math.isfinite(value):
        kind = "a number" if math.isnan(value) else "a finite number"
        raise ValueError(f"{text.strip()!r} is not {kind}")
    return value


def _parse_formatted_amount(body: str) -> float:
    reason = f"{body!r} is not a number"
    negative = False
    if body.startswith("(") and body.endswith(")"):
        negative, body = True, body[1:-1].strip()
    for _ in range(3):  # sign and currency in either order: -$12, $-12, USD -12, 12 EUR
        if body[:1] in ("+", "-"):
            negative, body = negative != (body[0] == "-"), body[1:].lstrip()
        stripped = _CURRENCY_AFFIX.sub("", body, count=1)
        if stripped == body:
            break
        body = stripped
    if body.endswith("-") and body[:-1].strip().replace(",", "").replace(".", "").isdigit():
        negative, body = not negative, body[:-1].strip()  # SAP-style trailing minus
    if not body or (not body[0].isdigit() and body[0] != "."):
        raise ValueError(reason)
    if not body.isascii():
        if _GROUPED_SPACE.fullmatch(body) is None:
            raise ValueError(reason)
        body = re.sub(r"[ '\u00a0\u202f]", "", body)
    elif " " in body or "'" in body:
        if _GROUPED_SPACE.fullmatch(body) is None:
            raise ValueError(reason)
        body = body.replace(" ", "").replace("'", "")
    comma, dot = body.rfind(","), body.rfind(".")
    european = comma > dot and (
        dot >= 0 or re.search(r",\d{1,2}$", body) is not None or re.fullmatch(r"0,\d+", body) is not None
    )
    if european or (comma < 0 and body.count(".") > 1):
        if _EUROPEAN.fullmatch(body) is None:
            raise ValueError(reason)
        body = body.replace(".", "").replace(",", ".")
    elif comma >= 0:
        if _US.fullmatch(body) is None:
            raise ValueError(reason)
        body = body.replace(",", "")
    try:
        value = float(body)
    except ValueError:
        raise ValueError(reason) from None
    return -value if negative else value


# --- booleans ----------------------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})


def parse_bool(text: str) -> bool | None:
    """0/1, true/false, yes/no, y/n, t/f in any case; '' or blank → None."""
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    if not key:
        return None
    raise ValueError(f"{text.strip()!r} is not a yes/no value (expected 1/0, true/false or yes/no)")


# --- dates -------------------------------------------------------------------------------------------

Order = Literal["iso", "ymd", "mdy", "dmy", "strptime"]
_Parts = tuple[int, int, int, int, int, int, int]  # year, month, day, hour, minute, second, microsecond

_NUMERIC = re.compile(
    r"\s*(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})" + r"(?:(?:\s+|T)(\d{1,2}):(\d{2})"
    r"(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?(?:\s*([AaPp])\.?[Mm]\.?)?)?\s*"
)
_LOOKS_ISO = re.compile(r"\s*\d{4}-\d{2}-\d{2}(?:[T ]|\s*$)")
_STRPTIME_SHAPE = re.compile(r"%([dmyY])([/.-])%([dmyY])\2%([dmyY])(?: %H:%M(?::%S)?)?")
_SPEC_SHAPE = re.compile(
    r"(D{1,2}|M{1,2}|Y{4}|Y{2})([/.-])(D{1,2}|M{1,2}|Y{4}|Y{2})\2(D{1,2}|M{1,2}|Y{4}|Y{2})(?=$|[ T])"
)
_ORDERS: dict[str, Order] = {"ymd": "ymd", "mdy": "mdy", "dmy": "dmy"}


def two_digit_year(year: int) -> int:
    """Expand a two-digit year like strptime's %y: 00-68 → 2000-2068, 69-99 → 1969-1999."""
    return year + (2000 if year < 69 else 1900)


@dataclass(frozen=True)
class DateFormat:
    """How one column writes its dates: ISO, a numeric day/month/year order, or a strptime pattern.

    Build with `DateFormat.iso()`, `DateFormat.numeric("mdy", "/", year_digits=2)`,
    `DateFormat.from_spec("%d-%m-%y" or "DD/MM/YYYY")` or `infer_date_format(values)`.
    `description` says what it is and, when inferred, from how many values.
    """

    order: Order
    separator: str = "-"
    year_digits: int = 4
    pattern: str | None = None  # the strptime pattern when order == "strptime"
    with_time: bool = False
    inferred_from: int | None = None
    contradicted_by: int = 0
    _date: Callable[[str], date] = field(init=False, repr=False, compare=False)
    _datetime: Callable[[str], datetime] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.order == "strptime":
            if not self.pattern:
                raise ValueError("a strptime date format needs a pattern")
            pattern = self.pattern
            object.__setattr__(self, "_date", lambda text: _strptime_datetime(text, pattern).date())
            object.__setattr__(self, "_datetime", lambda text: _strptime_datetime(text, pattern))
            return
        if self.order != "iso" and (self.separator not in "/.-" or len(self.separator) != 1):
            raise ValueError(f"unsupported date separator {self.separator!r}")
        order, separator = self.order, self.separator
        object.__setattr__(self, "_date", lambda text: _numeric_date(text, order, separator))
        object.__setattr__(self, "_datetime", lambda text: _numeric_datetime(text, order))

    @classmethod
    def iso(cls, *, with_time: bool = False) -> DateFormat:
        return cls("iso", with_time=with_time)

    @classmethod
    def numeric(cls, order: Literal["ymd", "mdy", "dmy"], separator: str, *, year_digits: int = 4) -> DateFormat:
        return cls(order, separator, year_digits)

    @classmethod
    def from_spec(cls, spec: str) -> DateFormat:
        """A user's format: a strptime pattern (`%d-%m-%y`, `%Y%m%d`) or a picture (`DD/MM/YYYY`, `YYYY-MM-DD`).

        Simple day/month/year patterns use the fast numeric parser (which also accepts one-digit days and
        months, either year length and an optional time); anything else goes through strptime.
        """
        text = spec.strip()
        if text.upper() in {"ISO", "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS", "ISO8601", "ISO 8601"}:
            return cls.iso(with_time="HH" in text.upper())
        if "%" in text:
            if text in {"%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"}:
                return cls.iso(with_time="%H" in text)
            shape = _STRPTIME_SHAPE.fullmatch(text)
            if shape:
                tokens = [shape.group(1), shape.group(3), shape.group(4)]
                key = "".join(t.lower() for t in tokens)
                if key in _ORDERS:
                    digits = 4 if "%Y" in text else 2
                    return cls(_ORDERS[key], shape.group(2), digits, with_time="%H" in text)
            try:
                datetime.strptime(datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC).strftime(text), text)
            except ValueError as exc:
                raise ValueError(f"{spec!r} is not a valid date format ({exc})") from None
            return cls("strptime", pattern=text, with_time=any(t in text for t in ("%H", "%I", "%M")))
        picture = _SPEC_SHAPE.match(text.upper())
        if picture:
            key = "".join(picture.group(i)[0].lower() for i in (1, 3, 4))
            if key in _ORDERS:
                digits = 4 if "YYYY" in text.upper() else 2
                separator = picture.group(2)
                if key == "ymd" and separator == "-":
                    return cls.iso(with_time=":" in text)
                return cls(_ORDERS[key], separator, digits, with_time=":" in text)
        raise ValueError(f"{spec!r} is not a date format (use e.g. %d-%m-%y, DD/MM/YYYY or YYYY-MM-DD)")

    @property
    def pattern_text(self) -> str:
        """The format as a picture, e.g. `MM/DD/YY` or `YYYY-MM-DD HH:MM:SS`."""
        if self.order == "strptime":
            return str(self.pattern)
        if self.order == "iso":
            return "YYYY-MM-DD HH:MM:SS" if self.with_time else "YYYY-MM-DD"
        year = "Y" * self.year_digits
        parts = {"y": year, "m": "MM", "d": "DD"}
        text = self.separator.join(parts[letter] for letter in self.order)
        return text + (" HH:MM" if self.with_time else "")

    @property
    def description(self) -> str:
        """E.g. `MM/DD/YY (inferred from 1,204 values)`, for import reports."""
        if self.inferred_from is None:
            return self.pattern_text
        if self.inferred_from == 0:
            return f"{self.pattern_text} (default: no recognisable dates to infer from)"
        plural = "" if self.inferred_from == 1 else "s"
        text = f"{self.pattern_text} (inferred from {self.inferred_from:,} value{plural}"
        if self.contradicted_by:
            verb = "does" if self.contradicted_by == 1 else "do"
            text += f"; {self.contradicted_by:,} {verb} not fit it"
        return text + ")"

    def __str__(self) -> str:
        return self.description


def parse_date(text: str, fmt: DateFormat | None = None) -> date | None:
    """The calendar date written in `text` ('' or blank → None); a time part, if any, is dropped.

    Without a format only ISO 8601 is read (which every format also reads).
    """
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    if not text or text.isspace():
        return None
    fmt = fmt or _ISO
    try:
        return fmt._date(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a valid date (expected {fmt.pattern_text})") from None


def parse_datetime(text: str, fmt: DateFormat | None = None) -> datetime | None:
    """The moment written in `text` as an aware UTC datetime ('' or blank → None; a date is its midnight).

    Without a format only ISO 8601 is read (which every format also reads).
    """
    try:
        if text[4:5] != "-":
            raise ValueError(text)
        value = datetime.fromisoformat(text)
    except ValueError:
        if not text or text.isspace():
            return None
        fmt = fmt or _ISO
        try:
            value = fmt._datetime(text)
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a valid date and time (expected {fmt.pattern_text})") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_ISO = DateFormat.iso()


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def _strptime_datetime(text: str, pattern: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), pattern)
    except ValueError:
        if _LOOKS_ISO.match(text):
            return _iso(text)
        raise


def _numeric_date(text: str, order: Order, separator: str) -> date:
    """Fast path for date-only cells (`3/31/24`); anything else goes through the full parser."""
    if order != "iso":
        first, _, rest = text.partition(separator)
        second, _, last = rest.partition(separator)
        digits = first + second + last
        if (
            0 < len(first) <= 4
            and 0 < len(second) <= 2
            and 0 < len(last) <= 4
            and digits.isdigit()
            and digits.isascii()
        ):
            a_len = len(first)
            year, month, day = _ymd(
                "ymd" if a_len == 4 else order, int(first), int(second), int(last), a_len, len(last)
            )
            return date(year, month, day)
    return _numeric_datetime(text, order).date()


def _ymd(order: Order, a: int, b: int, c: int, a_len: int, c_len: int) -> tuple[int, int, int]:
    if order in ("mdy", "dmy"):
        if a_len > 2 or c_len not in (2, 4):
            raise ValueError("wrong shape")
        year = two_digit_year(c) if c_len == 2 else c
        return (year, a, b) if order == "mdy" else (year, b, a)
    # ymd (and iso, which may be written 2024-3-1)
    if a_len != 4 or c_len > 2:
        raise ValueError("wrong shape")
    return a, b, c


def _numeric_datetime(text: str, order: Order) -> datetime:
    if order == "iso" or _LOOKS_ISO.match(text):
        try:
            return _iso(text)
        except ValueError:
            if order != "iso":
                raise
    match = _NUMERIC.fullmatch(text)
    if match is None:
        raise ValueError("wrong shape")
    a, _, b, c, hour, minute, second, fraction, meridiem = match.groups()
    # A four-digit first group is a year whatever the column's order: 2024/3/1, 2024-3-1.
    effective: Order = "ymd" if len(a) == 4 else order
    year, month, day = _ymd(effective, int(a), int(b), int(c), len(a), len(c))
    h = int(hour) if hour else 0
    if meridiem:
        if not 1 <= h <= 12:
            raise ValueError("hour out of range for AM/PM")
        h = h % 12 + (12 if meridiem in "Pp" else 0)
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(year, month, day, h, int(minute or 0), int(second or 0), micro)


# --- inference ---------------------------------------------------------------------------------------

_SHAPE = re.compile(r"\s*(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})(\s*(?:T|\s)\s*\d)?")


def infer_date_format(samples: Iterable[str]) -> DateFormat:
    """The date format that reads the most of `samples` (give it many: the first few thousand values).

    ISO values vote for ISO. Other numeric dates vote for a separator, a year length and, when a group is
    above 12, for day-first or month-first; undecided columns follow the separator (`/` month-first,
    `.` and `-` day-first). Values that fit no shape are ignored; with none left the result is ISO. The
    result's `description` tells how many values it rests on and how many contradict it.
    """
    shapes: Counter[tuple[str, str, int]] = Counter()  # (family, separator, year digits)
    day_first: Counter[str] = Counter()  # per separator: values that must be day-first
    month_first: Counter[str] = Counter()
    with_time = 0
    seen = 0
    for text in samples:
        if not text or text.isspace():
            continue
        match = _SHAPE.match(text)
        if match is None:
            continue
        a, sep, b, c, time_part = match.groups()
        if time_part:
            with_time += 1
        if len(a) == 4:
            if len(c) > 2:
                continue
            shapes["iso" if sep == "-" else "ymd", sep, 4] += 1
            seen += 1
            continue
        if len(a) > 2 or len(c) not in (2, 4):
            continue
        seen += 1
        shapes["numeric", sep, len(c)] += 1
        first, second = int(a), int(b)
        if first > 12 and second <= 12:
            day_first[sep] += 1
        elif second > 12 and first <= 12:
            month_first[sep] += 1
    if not shapes:
        return DateFormat("iso", inferred_from=0)
    (family, sep, digits), count = shapes.most_common(1)[0]
    timed = with_time * 2 > seen
    if family == "iso":
        return DateFormat("iso", with_time=timed, inferred_from=seen, contradicted_by=seen - count)
    if family == "ymd":
        return DateFormat("ymd", sep, 4, with_time=timed, inferred_from=seen, contradicted_by=seen - count)
    days, months = day_first[sep], month_first[sep]
    if days != months:
        order: Order = "dmy" if days > months else "mdy"
    else:
        order = "mdy" if sep == "/" else "dmy"
    wrong = min(days, months) if days and months else 0
    return DateFormat(order, sep, digits, with_time=timed, inferred_from=seen, contradicted_by=seen - count + wrong)
