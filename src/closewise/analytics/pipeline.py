"""The open pipeline as of a date, in the corporate currency, and its breakdowns.

What it measures: the deals that were open at `as_of` (optionally only those expected to close in a period),
each valued in the corporate currency, and their count, total and CRM-weighted total per stage, owner,
team, segment or close period.

How:

1. `open_deals` takes the as-of snapshot of the timeline (analytics.snapshots: the state every opportunity
   had at `as_of`, changes made exactly then included), keeps the open ones and, for a period `P`, those
   whose close date then lay in `P` (half-open, `P.start <= close_date < P.end`; no close date: not in any
   period).
2. Each deal's amount (a missing amount counts as 0) is converted at the rate of its close date as of then
   (analytics.currency, Salesforce's dated-rate convention), into `value`.
3. `weighted` is `value × probability / 100`, the probability being the CRM's, as of then, in percent; a deal
   without one takes its stage's default probability from the playbook, else 0.
4. `pipeline_by` groups the valued deals: stages in playbook order (stages unknown to the playbook after
   them, by name), close periods in time order (fiscal months or quarters of the org's calendar; deals
   without a close date last), owners, teams and segments by total, largest first. The owner and team are
   those of the owner as of `as_of` (team by the owner's current team membership, the only one recorded).

`open_deals(...)[value].sum()` is "the pipeline total at `as_of`" that the waterfall (analytics.waterfall)
starts and ends with. Steps 1 and 2 are done once per (timeline, instant, rates, currency) and shared by every
later call (a small memo, `_ValuedMemo`): the pipeline, both ends of each waterfall and coverage ask for the
same instants of the same timeline.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput

VALUE: Final = "value"  # the amount in the corporate currency
WEIGHTED: Final = "weighted"
KEY: Final = "key"
LABEL: Final = "label"
COUNT: Final = "count"
TOTAL: Final = "total"
NONE_KEY: Final = "none"  # the group of deals without the grouping attribute (no owner, no close date...)


class Grouping(StrEnum):
    STAGE = "stage"
    OWNER = "owner"
    TEAM = "team"
    SEGMENT = "segment"
    PERIOD = "period"


def in_pipeline(period: Period | None) -> pl.Expr:
    """True for a state that belongs to the pipeline: open, and for a period, closing in it."""
    is_open = pl.col(s.STATUS) == OpportunityStatus.OPEN.value
    if period is None:
        return is_open
    closes_in = (pl.col(s.CLOSE_DATE) >= period.start) & (pl.col(s.CLOSE_DATE) < period.end)
    return (is_open & closes_in).fill_null(value=False)


def open_deals(
    timeline: pl.DataFrame,
    as_of: datetime,
    *,
    rates: pl.DataFrame,
    corporate: str,
    period: Period | None = None,
    stages: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The pipeline at `as_of`: one row per deal in it, the snapshot's columns plus `value` and `weighted`.

    `stages` (the playbook: `key`, `default_probability`) supplies the probability of deals without one.
    """
    try:
        deals = _VALUED.get(timeline, as_of, rates, corporate)
    except InvalidInput:
        if period is None:
            raise
        # A deal outside the period may lack a rate; only those in it must have one.
        deals = _valued(timeline, as_of, rates, corporate, period)
    if period is not None:
        deals = deals.filter(in_pipeline(period))
    probability = pl.col(s.PROBABILITY)
    if stages is not None and stages.height:
        defaults = stages.select(pl.col("key").alias(s.STAGE), pl.col("default_probability").alias("_default"))
        deals = deals.join(defaults, on=s.STAGE, how="left")
        probability = pl.coalesce(probability, pl.col("_default"))
    deals = deals.with_columns((pl.col(VALUE) * probability.fill_null(0.0) / 100.0).alias(WEIGHTED))
    return deals.drop("_default", strict=False)


def pipeline_by(
    deals: pl.DataFrame,
    by: Grouping,
    *,
    stages: pl.DataFrame | None = None,
    users: pl.DataFrame | None = None,
    teams: pl.DataFrame | None = None,
    calendar: FiscalCalendar | None = None,
    period_kind: PeriodKind = PeriodKind.QUARTER,
) -> pl.DataFrame:
    """`deals` (from `open_deals`) grouped: `key`, `label`, `count`, `total`, `weighted`, in display order.

    Labels come from `stages` (key, name, order), `users` (id, name, team_id) and `teams` (id, name) when
    given, else the key is the label. `key` is text; deals without the attribute are grouped under "none".
    """
    keyed = _keyed(deals, by, users=users, calendar=calendar or FiscalCalendar(), period_kind=period_kind)
    groups = (
        keyed.group_by(KEY)
        .agg(pl.len().cast(pl.Int64).alias(COUNT), pl.col(VALUE).sum().alias(TOTAL), pl.col(WEIGHTED).sum(),
             pl.col("_sort").first())
    )
    labels = _labels(by, stages=stages, users=users, teams=teams)
    groups = groups.join(labels, on=KEY, how="left").with_columns(pl.coalesce(LABEL, KEY).alias(LABEL))
    if by is Grouping.STAGE:
        order = [pl.col("_order").is_null(), pl.col("_order"), pl.col(KEY)]
    elif by is Grouping.PERIOD:
        order = [pl.col("_sort").is_null(), pl.col("_sort")]
    else:
        order = [pl.col(KEY) == NONE_KEY, -pl.col(TOTAL), pl.col(KEY)]
    return groups.sort(order).select(KEY, LABEL, COUNT, TOTAL, WEIGHTED)


# --- internals -------------------------------------------------------------------------------------------


def _valued(
    timeline: pl.DataFrame, as_of: datetime, rates: pl.DataFrame, corporate: str, period: Period | None = None
) -> pl.DataFrame:
    """Steps 1 and 2: the snapshot's rows in the pipeline, with `value`."""
    deals = snapshot(timeline, as_of).filter(in_pipeline(period))
    return to_corporate(deals.with_columns(pl.col(s.AMOUNT).fill_null(0.0).alias("_amount")), rates,
                        corporate=corporate, amount="_amount", into=VALUE).drop("_amount")


class _ValuedMemo:
    """The last few `_valued` frames, so the pipeline, both ends of each waterfall and coverage, asking for
    the same (timeline, instant, rates, currency), share one snapshot and conversion.

    Frames are keyed by identity: an entry holds weak references to its timeline and rates, is used only
    while they are the very objects asked about, and goes when the timeline does. Callers never get the
    memoised frame itself, only frames derived from it, so it cannot be changed under the memo. (A timeline
    changed in place after a call would be served stale data; nothing in Closewise does that.)
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, int, str, datetime], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, timeline: pl.DataFrame, as_of: datetime, rates: pl.DataFrame, corporate: str) -> pl.DataFrame:
        at = naive_utc(as_of)
        key = (id(timeline), id(rates), corporate, at)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.timeline() is timeline and entry.rates() is rates:
                self._entries.move_to_end(key)
                return entry.frame
        frame = _valued(timeline, at, rates, corporate)
        with self._lock:
            for stale in [k for k, e in self._entries.items() if e.timeline() is None or e.rates() is None]:
                del self._entries[stale]
            self._entries[key] = _Entry(weakref.ref(timeline, lambda _: self._drop(key)), weakref.ref(rates), frame)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return frame

    def _drop(self, key: tuple[int, int, str, datetime]) -> None:
        # Called when a timeline goes, possibly inside `get` on this thread: never wait for the lock (the
        # next `get` removes what is left).
        if self._lock.acquire(blocking=False):
            try:
                self._entries.pop(key, None)
            finally:
                self._lock.release()


@dataclass(frozen=True)
class _Entry:
    timeline: weakref.ref[pl.DataFrame]
    rates: weakref.ref[pl.DataFrame]
    frame: pl.DataFrame


_VALUED: Final = _ValuedMemo(size=4)


def _keyed(
    deals: pl.DataFrame, by: Grouping, *, users: pl.DataFrame | None, calendar: FiscalCalendar,
    period_kind: PeriodKind,
) -> pl.DataFrame:
    """`deals` with `_key` → `key` (text) and `_sort` (a period's first day; null otherwise)."""
    no_sort = pl.lit(None, dtype=pl.Date).alias("_sort")
    if by is Grouping.STAGE:
        return deals.with_columns(pl.col(s.STAGE).fill_null(NONE_KEY).alias(KEY), no_sort)
    if by is Grouping.OWNER:
        return deals.with_columns(pl.col(s.OWNER_ID).cast(pl.String).fill_null(NONE_KEY).alias(KEY), no_sort)
    if by is Grouping.SEGMENT:
        if "segment" not in deals.columns:
            raise InvalidInput("the deals carry no segment", where="pipeline by segment")
        return deals.with_columns(pl.col("segment").fill_null(NONE_KEY).alias(KEY), no_sort)
    if by is Grouping.TEAM:
        if users is not None:
            team = deals.join(users.select(pl.col("id").alias(s.OWNER_ID), pl.col("team_id").alias("_team")),
                              on=s.OWNER_ID, how="left")["_team"]
        elif "team_id" in deals.columns:
            team = deals["team_id"]
        else:
            raise InvalidInput("the deals carry no team and no users were given", where="pipeline by team")
        return deals.with_columns(team.cast(pl.String).fill_null(NONE_KEY).alias(KEY), no_sort)
    # Close periods: few distinct close dates, so each is placed by the calendar itself.
    days = deals[s.CLOSE_DATE].drop_nulls().unique().to_list()
    placed = [calendar.period_containing(day, period_kind) for day in days]
    lookup = pl.DataFrame(
        {s.CLOSE_DATE: days, KEY: [p.label for p in placed], "_sort": [p.start for p in placed]},
        schema={s.CLOSE_DATE: pl.Date(), KEY: pl.String(), "_sort": pl.Date()},
    )
    keyed = deals.join(lookup, on=s.CLOSE_DATE, how="left")
    return keyed.with_columns(pl.col(KEY).fill_null(NONE_KEY))


def _labels(
    by: Grouping, *, stages: pl.DataFrame | None, users: pl.DataFrame | None, teams: pl.DataFrame | None
) -> pl.DataFrame:
    """`key`, `label`, `_order` for the grouping (empty when there is nothing to look labels up in)."""
    schema = {KEY: pl.String(), LABEL: pl.String(), "_order": pl.Int64()}
    source: pl.DataFrame | None = None
    if by is Grouping.STAGE and stages is not None:
        source = stages.select(pl.col("key").alias(KEY), pl.col("name").alias(LABEL), pl.col("order").alias("_order"))
    elif by is Grouping.OWNER and users is not None:
        source = users.select(pl.col("id").cast(pl.String).alias(KEY), pl.col("name").alias(LABEL))
    elif by is Grouping.TEAM and teams is not None:
        source = teams.select(pl.col("id").cast(pl.String).alias(KEY), pl.col("name").alias(LABEL))
    if source is None:
        return pl.DataFrame(schema=schema)
    for name, dtype in schema.items():
        if name not in source.columns:
            source = source.with_columns(pl.lit(None, dtype=dtype).alias(name))
    return source.select(pl.col(name).cast(dtype) for name, dtype in schema.items()).unique(KEY, keep="first")

