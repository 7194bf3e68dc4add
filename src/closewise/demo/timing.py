"""When things happen around a deal's dates: wins bunching at quarter ends, close dates being pushed."""

from __future__ import annotations

import numpy as np

from closewise.demo.events import F_CLOSE, Events, record
from closewise.demo.plan import CalendarLookup, FloatArray, IntArray


def quarter_end_spike(
    rng: np.random.Generator, time: FloatArray, earliest: FloatArray, lookup: CalendarLookup
) -> FloatArray:
    """Deals due in a quarter's last 25 days hold out for its last three days 65% of the time; deals due in
    a quarter's first 15 days are pulled back into the previous quarter's last three days 40% of the time."""
    m = len(time)
    day = np.floor(time).astype(np.int64)
    quarter_end, quarter_start = lookup.quarter_end_of(day), lookup.quarter_start_of(day)
    draw = rng.random(m)
    hour = rng.uniform(0.3, 0.8, m)
    back = rng.integers(0, 3, m)
    late = (quarter_end - day <= 25) & (draw < 0.65) & (quarter_end - back + hour < 0)
    early = (day - quarter_start <= 15) & (draw < 0.40) & (quarter_start - 1 - back + hour > earliest)
    moved: FloatArray = np.where(
        late, quarter_end - back + hour, np.where(early, quarter_start - 1 - back + hour, time)
    )
    return moved


def close_date_moves(
    rng: np.random.Generator, events: Events, state: IntArray, created: FloatArray, until: FloatArray,
    lookup: CalendarLookup,
) -> None:  # fmt: skip
    """Close-date moves while the deal is worked: when the date passes the rep pushes it out (within five
    days, by 10-45 days); between those, about every 45 days a voluntary push (or, one time in six, a
    pull-in). Deals that stall keep their stale date."""
    n = len(created)
    cursor = created.copy()
    live = np.ones(n, dtype=np.bool_)
    for _ in range(25):
        ids = np.flatnonzero(live)
        if not len(ids):
            break
        m = len(ids)
        close = state[ids, F_CLOSE]
        due = close + 1 + rng.uniform(0.0, 5.0, m)
        voluntary = cursor[ids] + rng.exponential(45.0, m)
        when = np.fmin(due, voluntary)
        happens = when < until[ids]
        live[ids[~happens]] = False
        ids, when, close, is_due = ids[happens], when[happens], close[happens], (due <= voluntary)[happens]
        m = len(ids)
        day = np.floor(when).astype(np.int64)
        pushed = day + rng.integers(10, 46, m)
        pushed = np.where(rng.random(m) < 0.5, lookup.month_end_of(pushed), pushed)
        push_on = np.maximum(close + rng.integers(7, 41, m), day + 1)
        pull_in = np.maximum(day + 3, close - rng.integers(7, 22, m))
        voluntary_value = np.where((rng.random(m) < 1 / 6) & (pull_in < close), pull_in, push_on)
        value = np.where(is_due, pushed, voluntary_value)
        value = np.where(value == close, value + 7, value)
        record(events, state, F_CLOSE, ids, when, value)
        cursor[ids] = when
