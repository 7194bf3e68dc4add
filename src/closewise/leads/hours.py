"""Business hours in a time zone: the working minutes between two instants, and the instant a number of
working minutes after another (an SLA's deadline).

The hours are wall-clock hours on working weekdays (`Mon-Fri 09:00-17:00` by default) in a time zone, so a
lead created on Friday at 16:30 in New York and touched on Monday at 09:30 there waited 60 working minutes,
whatever that was in UTC and across a daylight-saving change. Instants are UTC: aware, or naive UTC (the
frames' convention); what is returned is naive UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from closewise.errors import InvalidInput

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*,\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)
_LONGEST = 3_660  # days a deadline may lie ahead before the hours are taken to have no working time


@dataclass(frozen=True)
class BusinessHours:
    start: time = time(9)
    end: time = time(17)
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInput(f"business hours end ({self.end:%H:%M}) before they start ({self.start:%H:%M})",
                               where="business hours")
        if not self.weekdays:
            raise InvalidInput("business hours need at least one working day", where="business hours")

    @property
    def minutes_per_day(self) -> float:
        return (_seconds(self.end) - _seconds(self.start)) / 60.0

    def describe(self) -> str:
        """`Mon-Fri 09:00-17:00`: the form `parse` reads back."""
        days = sorted(self.weekdays)
        runs: list[str] = []
        first = previous = days[0]
        for day in [*days[1:], None]:
            if day is not None and day == previous + 1:
                previous = day
                continue
            name = DAY_NAMES[first].title()
            runs.append(name if first == previous else f"{name}-{DAY_NAMES[previous].title()}")
            if day is not None:
                first = previous = day
        return f"{','.join(runs)} {self.start:%H:%M}-{self.end:%H:%M}"

    @classmethod
    def parse(cls, text: str) -> BusinessHours:
        """`Mon-Fri 09:00-17:00`, `Mon,Wed,Fri 08:30-18:00`, `Sun-Thu 08:00-16:00`."""
        match = _SPEC.match(text.strip().lower())
        if match is None:
            raise InvalidInput(f"{text!r} is not business hours like 'Mon-Fri 09:00-17:00'", where="business hours")
        weekdays: set[int] = set()
        for part in match["days"].split(","):
            ends = [piece.strip() for piece in part.split("-")]
            if any(name not in DAY_NAMES for name in ends):
                raise InvalidInput(f"unknown day in {part.strip()!r} (use Mon, Tue, ... Sun)", where="business hours")
            first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
            weekdays.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)])
        try:
            start, end = time.fromisoformat(match["start"].zfill(5)), time.fromisoformat(match["end"].zfill(5))
        except ValueError:
            raise InvalidInput(f"{text!r} has a time that does not exist", where="business hours") from None
        return cls(start=start, end=end, weekdays=frozenset(weekdays))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def working_days_between(self, first: date, last: date) -> int:
        """Working days in [first, last] (0 when last < first)."""
        if last < first:
            return 0
        days = (last - first).days + 1
        weeks, rest = divmod(days, 7)
        count = weeks * len(self.weekdays)
        count += sum(1 for offset in range(rest) if (first.weekday() + offset) % 7 in self.weekdays)
        return count - sum(1 for holiday in self.holidays if first <= holiday <= last and
                           holiday.weekday() in self.weekdays)


@lru_cache(maxsize=512)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The time zone called `name` (an IANA name like `Europe/Berlin`); `default` when it is empty or unknown."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate.strip())
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def working_minutes(start: datetime, end: datetime, tz: ZoneInfo, hours: BusinessHours) -> float:
    """Working minutes between two instants (0 when `end` is not after `start`)."""
    begin, finish = _aware(start), _aware(end)
    if finish <= begin:
        return 0.0
    local_start, local_end = begin.astimezone(tz), finish.astimezone(tz)
    first, last = local_start.date(), local_end.date()
    if first == last:
        return _overlap(first, begin, finish, tz, hours)
    total = _overlap(first, begin, finish, tz, hours) + _overlap(last, begin, finish, tz, hours)
    between = hours.working_days_between(first + timedelta(days=1), last - timedelta(days=1))
    return total + between * hours.minutes_per_day


def add_working_minutes(start: datetime, minutes: float, tz: ZoneInfo, hours: BusinessHours) -> datetime:
    """The instant `minutes` working minutes after `start` (naive UTC): an SLA's deadline."""
    moment = _aware(start)
    remaining = max(float(minutes), 0.0)
    day = moment.astimezone(tz).date()
    for _ in range(_LONGEST):
        if hours.is_working_day(day):
            opens, closes = _window(day, tz, hours)
            begin = max(opens, moment)
            if begin < closes:
                available = (closes - begin).total_seconds() / 60.0
                if remaining <= available:
                    return (begin + timedelta(minutes=remaining)).astimezone(UTC).replace(tzinfo=None)
                remaining -= available
        day += timedelta(days=1)
    raise InvalidInput("the business hours leave no working time in the next ten years", where="business hours")


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window(day: date, tz: ZoneInfo, hours: BusinessHours) -> tuple[datetime, datetime]:
    return datetime.combine(day, hours.start, tzinfo=tz), datetime.combine(day, hours.end, tzinfo=tz)


def _overlap(day: date, begin: datetime, finish: datetime, tz: ZoneInfo, hours: BusinessHours) -> float:
    if not hours.is_working_day(day):
        return 0.0
    opens, closes = _window(day, tz, hours)
    seconds = (min(closes, finish) - max(opens, begin)).total_seconds()
    return max(seconds, 0.0) / 60.0
