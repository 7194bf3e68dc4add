"""The shape of a demo org: its size, its time window and the calendar lookups every module shares.

Time inside the generator is measured in days relative to `today` 00:00 UTC (negative numbers are the
past) so that everything can be placed with numpy arithmetic; only the row builders turn those numbers
into `date` and `datetime` values. Everything that happened lies strictly before `today` 00:00 UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from closewise.domain.periods import FiscalCalendar, Period, PeriodKind

DEFAULT_OPPORTUNITIES: Final = 2_500
HISTORY_QUARTERS: Final = 8  # the current quarter and the seven before it (the default)
HISTORY_QUARTERS_RANGE: Final = (4, 20)
DEALS_PER_REP_YEAR: Final = 120
MIN_REPS: Final = 22
SOURCE: Final = "demo"
EMAIL_DOMAIN: Final = "demo.closewise.io"
CORPORATE_CURRENCY: Final = "USD"
# Days of calendar lookups kept after `today` (close dates are pushed into the future).
FUTURE_DAYS: Final = 1_500
SECONDS_PER_DAY: Final = 86_400
# Units of each currency per US dollar (the static rate); dated rates wander around it.
STATIC_RATES: Final = {"EUR": 0.92, "GBP": 0.79}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def stream(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """An independent random stream per (seed, purpose, chunk): changing one part of the generator
    or the chunk size of another does not reshuffle the rest."""
    key = [int(byte) for byte in name.encode()]
    return np.random.Generator(np.random.PCG64([seed, chunk, *key]))


@dataclass(frozen=True)
class IdBase:
    """The last id already used in each table (0 for an empty one); new rows are numbered after it."""

    last: Mapping[str, int] = field(default_factory=dict)

    def first(self, table: str) -> int:
        return self.last.get(table, 0) + 1


@dataclass(frozen=True)
class DemoPlan:
    seed: int
    today: date
    opportunities: int
    ids: IdBase = field(default_factory=IdBase)
    calendar: FiscalCalendar = field(default_factory=FiscalCalendar)
    chunk_size: int = 10_000
    history_quarters: int = HISTORY_QUARTERS

    # -- window -------------------------------------------------------------------------------------------
    @property
    def current_quarter(self) -> Period:
        return self.calendar.period_containing(self.today, PeriodKind.QUARTER)

    @property
    def quarters(self) -> list[Period]:
        """The history quarters, oldest first, ending with the current one."""
        quarters = [self.current_quarter]
        while len(quarters) < self.history_quarters:
            quarters.insert(0, self.calendar.previous(quarters[0]))
        return quarters

    @property
    def start(self) -> date:
        return self.quarters[0].start

    @property
    def window_days(self) -> int:
        """Days from the first history day up to (not including) today."""
        return (self.today - self.start).days

    @property
    def start_day(self) -> int:
        """The first history day, relative to today (negative)."""
        return -self.window_days

    # -- size ---------------------------------------------------------------------------------------------
    @property
    def reps(self) -> int:
        years = self.window_days / 365.25
        return max(MIN_REPS, round(self.opportunities / (DEALS_PER_REP_YEAR * years)))

    @property
    def managers(self) -> int:
        return max(3, math.ceil(self.reps / 8))

    @property
    def directors(self) -> int:
        return 0 if self.managers <= 6 else math.ceil(self.managers / 6)

    @property
    def accounts(self) -> int:
        return max(300, round(self.opportunities / 2.5))

    @property
    def leads(self) -> int:
        return max(min(600, self.opportunities), round(0.6 * self.opportunities))

    # -- time ---------------------------------------------------------------------------------------------
    @property
    def midnight(self) -> datetime:
        return datetime(self.today.year, self.today.month, self.today.day, tzinfo=UTC)

    def timestamps(self, days: FloatArray | IntArray) -> list[datetime]:
        """UTC datetimes (whole seconds) from days relative to today."""
        seconds = np.floor(np.asarray(days, dtype=np.float64) * SECONDS_PER_DAY).astype(np.int64)
        origin = self.midnight.timestamp()
        return [datetime.fromtimestamp(origin + s, UTC) for s in seconds.tolist()]

    def date_of(self, day: int) -> date:
        return self.today + timedelta(days=day)


@dataclass(frozen=True)
class CalendarLookup:
    """Per-day lookups (month end, quarter start/end) over the whole span the generator uses."""

    today: date
    origin: int  # the day (relative to today) of index 0
    month_end: IntArray
    quarter_start: IntArray
    quarter_end: IntArray  # the last day of the quarter
    dates: tuple[date, ...]

    @classmethod
    def build(cls, plan: DemoPlan) -> CalendarLookup:
        origin = plan.start_day - 400
        days = range(origin, FUTURE_DAYS + 1)
        dates = tuple(plan.date_of(day) for day in days)
        month_end = np.empty(len(dates), dtype=np.int64)
        quarter_start = np.empty(len(dates), dtype=np.int64)
        quarter_end = np.empty(len(dates), dtype=np.int64)
        cache: dict[tuple[int, int], tuple[int, int, int]] = {}
        for index, day in enumerate(dates):
            key = (day.year, day.month)
            if key not in cache:
                month = plan.calendar.period_containing(day, PeriodKind.MONTH)
                quarter = plan.calendar.period_containing(day, PeriodKind.QUARTER)
                cache[key] = (
                    (month.last_day - plan.today).days,
                    (quarter.start - plan.today).days,
                    (quarter.last_day - plan.today).days,
                )
            month_end[index], quarter_start[index], quarter_end[index] = cache[key]
        return cls(plan.today, origin, month_end, quarter_start, quarter_end, dates)

    def _index(self, days: IntArray) -> IntArray:
        return np.clip(days - self.origin, 0, len(self.dates) - 1)

    def month_end_of(self, days: IntArray) -> IntArray:
        return self.month_end[self._index(days)]

    def quarter_start_of(self, days: IntArray) -> IntArray:
        return self.quarter_start[self._index(days)]

    def quarter_end_of(self, days: IntArray) -> IntArray:
        return self.quarter_end[self._index(days)]

    def date(self, day: int) -> date:
        index = day - self.origin
        if 0 <= index < len(self.dates):
            return self.dates[index]
        return self.today + timedelta(days=day)
