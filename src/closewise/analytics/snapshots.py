"""The as-of engine: every opportunity's state at any past time, rebuilt from the append-only change log.

What it estimates: nothing, it reconstructs. For each opportunity, the stage, status, amount, close date,
forecast category, owner, probability and next step that held at a time `t`, following the rule written in
`closewise.domain.changes` to the letter: an opportunity exists from its `created_at`; a field's value at
`t` is the `new_value` of its last change at or before `t`; before its first change it is that change's
`old_value`; a field that never changed has its current value throughout. Changes stamped before
`created_at` are taken as made at `created_at`. A closed opportunity without a logged status change is
open until its record's `closed_at` (`analytics.implied`).

How (`build_timeline`), once per data set, vectorised over all opportunities at once (numpy arrays, no
join and a single one-key sort):

1. Keep the tracked fields' changes of known opportunities and sort them by (opportunity, time, log order):
   a stable sort by opportunity of the log in time order. Clamping to `created_at` then moves only each
   opportunity's first changes onto one instant, and only those are put back in log order.
2. The state boundaries are `created_at` plus every distinct later change time, per opportunity; the log is
   already in that order, so a change's boundary is its opportunity's row plus the number of boundaries
   started by the changes up to it (no second sort). Every boundary starts one state row (`valid_from`,
   `valid_to`), so simultaneous changes of several fields give one row.
3. Per field (two at a time, in threads), changes at one boundary collapse into one (the first `old_value`,
   the last `new_value`). Each opportunity's values are laid out in time order: the value before any change
   (the first change's decoded `old_value`, else the current value), then each change's decoded
   `new_value`. Entry positions grow along the boundaries, so scattering them onto the boundaries they
   begin at and taking a running maximum gives every boundary its value's position: one gather.
4. `closed_at` is not tracked; a state's `closed_at` is when its current closed run began in the log (the
   record's `closed_at` when the opportunity is closed from its first known state; a snapshot hides it
   until it is reached).

This is the "transaction-time" or slowly-changing-dimension type 2 table of data warehousing (Kimball):
`snapshot` is then a point-in-time filter `valid_from <= t < valid_to`, and `snapshots` turns each state
row into the indices of the as-of dates its interval covers (two binary searches) and explodes them, so the
work is proportional to the output, never to states x dates.

`as_of` semantics: a change made exactly at `as_of` is included (the state at `as_of` is the state after
it); an opportunity created exactly at `as_of` is present. Aware `as_of` values are converted to UTC; naive
ones are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.implied import with_implied_status_changes
from closewise.domain.changes import TRACKED_FIELDS
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput

_TRACKED: Final[tuple[str, ...]] = tuple(field.value for field in TRACKED_FIELDS)
_FLOAT_FIELDS: Final = frozenset({ChangeField.AMOUNT.value, ChangeField.PROBABILITY.value})
_CODES: Final = {name: code for code, name in enumerate(_TRACKED)}
_CODE: Final = "_code"


def build_timeline(
    opportunities: pl.DataFrame, changes: pl.DataFrame, *, fields: Iterable[str] | None = None
) -> pl.DataFrame:
    """One row per (opportunity, state interval), sorted by `id`, `valid_from`.

    Columns: `id`, `valid_from`, `valid_to` (null: still current), then every opportunities-frame column
    (tracked fields as they were during the interval, `closed_at` as described in the module header), then
    any extra columns of `opportunities`, carried unchanged. Changes of untracked fields (e.g. `currency`)
    and of opportunities absent from `opportunities` are ignored.

    `fields` (tracked field names; default all) rebuilds only those fields: the others are left out of the
    timeline and their changes start no state row. Every analysis that reads only those fields gets the
    same answers from it, for less work (`status` is always rebuilt: `closed_at` follows it).
    """
    s.validate_opportunities(opportunities)
    s.validate_changes(changes)
    changes = with_implied_status_changes(opportunities, changes)
    wanted = _wanted(fields)
    opps = opportunities.sort(s.ID)
    if opps.height and opps[s.ID].n_unique() != opps.height:
        duplicated = opps.filter(pl.col(s.ID).is_duplicated())[s.ID][0]
        raise InvalidInput(f"opportunity id {duplicated} appears more than once", where="opportunities frame")

    opp_ids = opps[s.ID].to_numpy()
    log = _sorted_log(opps, changes, wanted)
    bounds = _boundaries(opps, log)
    rebuilt = [field for field in _TRACKED if field in wanted]
    # The fields are independent and their numpy and Polars work releases the GIL: two at a time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        columns = pool.map(lambda field: _field_state(field, log, bounds, changes, opps[field], opp_ids), rebuilt)
        states = dict(zip(rebuilt, columns, strict=True))
    static = opps.select(pl.exclude(s.ID, *_TRACKED)).gather(bounds.opp_row)
    timeline = pl.DataFrame(
        [
            pl.Series(s.ID, opp_ids[bounds.opp_row]),
            pl.Series(s.VALID_FROM, bounds.valid_from).cast(s.TIMESTAMP),
        ]
    ).with_columns(
        pl.when(pl.col(s.ID) == pl.col(s.ID).shift(-1)).then(pl.col(s.VALID_FROM).shift(-1)).alias(s.VALID_TO),
        *(series.alias(field) for field, series in states.items()),
        *static.iter_columns(),
    )
    return timeline.with_columns(_closed_at()).select(
        s.ID,
        s.VALID_FROM,
        s.VALID_TO,
        *(name for name in s.OPPORTUNITY_SCHEMA if name != s.ID and (name not in _TRACKED or name in wanted)),
        *(name for name in opps.columns if name not in s.OPPORTUNITY_SCHEMA),
    )


def snapshot(timeline: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The state of every opportunity that existed at `as_of` (created at or before it), one row each.

    Columns: those of the timeline without `valid_to` (which would tell the future); `valid_from` is when
    the state began. A change made exactly at `as_of` is included.
    """
    _check_timeline(timeline)
    at = naive_utc(as_of)
    return (
        timeline.lazy()
        .filter(
            pl.col(s.VALID_FROM) <= at,
            pl.col(s.VALID_TO).is_null() | (pl.col(s.VALID_TO) > at),
        )
        .with_columns(_known_closed_at(pl.lit(at, dtype=s.TIMESTAMP)))
        .drop(s.VALID_TO)
        .collect()
    )


def snapshots_lazy(timeline: pl.DataFrame, as_ofs: Sequence[datetime]) -> pl.LazyFrame:
    """`snapshot` for many dates at once, as a lazy frame in no particular order, with an `as_of` column.

    Filter or aggregate it before collecting: at a million opportunities, a thousand dates make hundreds of
    millions of rows. Each state row becomes the dates `as_ofs[lo:hi]` its interval covers, found by binary
    search (`lo`: first date >= valid_from, `hi`: first date >= valid_to), so the cost is the output's size.
    Repeated dates count once.
    """
    _check_timeline(timeline)
    dates = pl.Series(s.AS_OF, sorted({naive_utc(day) for day in as_ofs}), dtype=s.TIMESTAMP)
    return (
        timeline.lazy()
        .with_columns(
            pl.lit(dates).search_sorted(pl.col(s.VALID_FROM), side="left").cast(pl.Int64).alias("_lo"),
            # Where search_sorted puts nulls is unspecified: an open-ended interval covers every later date.
            pl.when(pl.col(s.VALID_TO).is_null())
            .then(pl.lit(dates.len(), dtype=pl.Int64))
            .otherwise(pl.lit(dates).search_sorted(pl.col(s.VALID_TO), side="left").cast(pl.Int64))
            .alias("_hi"),
        )
        .filter(pl.col("_lo") < pl.col("_hi"))
        .with_columns(pl.int_ranges("_lo", "_hi").alias("_i"))
        .explode("_i", empty_as_null=False)
        .with_columns(pl.lit(dates).gather(pl.col("_i")).alias(s.AS_OF))
        .with_columns(_known_closed_at(pl.col(s.AS_OF)))
        .drop("_lo", "_hi", "_i", s.VALID_TO)
        .select(s.AS_OF, pl.exclude(s.AS_OF))
    )


def snapshots(timeline: pl.DataFrame, as_ofs: Sequence[datetime]) -> pl.DataFrame:
    """`snapshot` for every date of `as_ofs`, stacked with an `as_of` column, sorted by `as_of`, `id`."""
    return snapshots_lazy(timeline, as_ofs).sort(s.AS_OF, s.ID).collect()


def is_closed() -> pl.Expr:
    """True where the state's status is won, lost or no decision (a snapshot's deals closed by `as_of`)."""
    return pl.col(s.STATUS) != OpportunityStatus.OPEN.value


# --- internals -------------------------------------------------------------------------------------------


def _wanted(fields: Iterable[str] | None) -> frozenset[str]:
    if fields is None:
        return frozenset(_TRACKED)
    chosen = frozenset(fields)
    unknown = sorted(chosen - set(_TRACKED))
    if unknown:
        raise InvalidInput(f"{', '.join(unknown)} is not a tracked field; choose among {', '.join(_TRACKED)}")
    return chosen | {ChangeField.STATUS.value}


@dataclass(frozen=True)
class _Log:
    """The wanted fields' changes in (opportunity, clamped time, log order) order, as numpy arrays: the
    opportunity's row in the sorted opportunities frame, the clamped time (microseconds), the field's code
    and the change's row in the changes frame."""

    row: np.ndarray
    t: np.ndarray
    code: np.ndarray
    source: np.ndarray


@dataclass(frozen=True)
class _Bounds:
    """Step 2: each boundary's opportunity row and start (microseconds), and each log row's boundary."""

    opp_row: np.ndarray
    valid_from: np.ndarray
    of_log: np.ndarray
    first: np.ndarray  # per opportunity, its first boundary


def _micros(series: pl.Series) -> np.ndarray:
    return series.cast(s.TIMESTAMP).dt.epoch("us").to_numpy().astype(np.int64, copy=False)


def _sorted_log(opps: pl.DataFrame, changes: pl.DataFrame, wanted: frozenset[str]) -> _Log:
    """Step 1: the wanted fields' changes of known opportunities, at their clamped time, sorted.

    A stable sort by (opportunity, raw time) keeps log order among ties; clamping then moves only each
    opportunity's first rows (those at or before its creation) onto one instant, so only they are re-sorted
    by log order.
    """
    codes = {name: code for name, code in _CODES.items() if name in wanted}
    tracked = (
        changes.lazy()
        .select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_source"),
            pl.col(s.OPPORTUNITY_ID),
            pl.col(s.CHANGED_AT).dt.epoch("us").alias(s.CHANGED_AT),
            pl.col(s.FIELD).replace_strict(codes, default=None, return_dtype=pl.UInt8).alias(_CODE),
        )
        .filter(pl.col(_CODE).is_not_null())
        .collect()
    )
    oid, raw = tracked[s.OPPORTUNITY_ID].to_numpy(), tracked[s.CHANGED_AT].to_numpy()
    # Logs are mostly stored in time order, which makes the sort by opportunity alone enough.
    by_time = np.arange(raw.size) if (raw[1:] >= raw[:-1]).all() else np.argsort(raw, kind="stable")
    by_opp = pl.DataFrame({"_o": oid[by_time]}).select(pl.arg_sort_by("_o", maintain_order=True))["_o"].to_numpy()
    order = by_time[by_opp]
    oid, raw = oid[order], raw[order]
    source, code = tracked["_source"].to_numpy()[order], tracked[_CODE].to_numpy()[order]
    ids = opps[s.ID].to_numpy()
    row = np.searchsorted(ids, oid)
    known = ids[np.minimum(row, ids.size - 1)] == oid if ids.size else np.zeros(oid.size, dtype=bool)
    if not known.all():
        row, raw, source, code = row[known], raw[known], source[known], code[known]
    created = _micros(opps[s.CREATED_AT])[row]
    t = np.maximum(raw, created)
    if (raw < created).any():
        # The rows at an opportunity's creation instant come first within it; put them in log order.
        at_creation = np.flatnonzero(raw <= created)
        fixed = at_creation[np.lexsort((source[at_creation], row[at_creation]))]
        row, t, code, source = (array.copy() for array in (row, t, code, source))
        row[at_creation], t[at_creation], code[at_creation], source[at_creation] = (
            row[fixed], t[fixed], code[fixed], source[fixed])
    return _Log(row, t, code, source)


def _boundaries(opps: pl.DataFrame, log: _Log) -> _Bounds:
    """Step 2 without a sort: each opportunity's boundaries are its creation and then every distinct change
    time after it, and the log is already in that order. A log row starts a boundary when its (opportunity,
    time) differs from the previous row's and it is later than the creation; so the boundary of a log row is
    its opportunity's row plus the number of such starts up to it."""
    n = opps.height
    created = _micros(opps[s.CREATED_AT])
    same_as_prev = np.zeros(log.row.size, dtype=bool)
    same_as_prev[1:] = (log.row[1:] == log.row[:-1]) & (log.t[1:] == log.t[:-1])
    starts = ~same_as_prev & (log.t > created[log.row]) if log.row.size else same_as_prev
    of_log = log.row + np.cumsum(starts)
    per_opp = np.bincount(log.row[starts], minlength=n) + 1
    opp_row = np.repeat(np.arange(n), per_opp)
    valid_from = np.empty(opp_row.size, dtype=np.int64)
    first = np.cumsum(per_opp) - per_opp
    valid_from[first] = created
    valid_from[of_log[starts]] = log.t[starts]
    return _Bounds(opp_row, valid_from, of_log, first)


def _field_state(
    field: str, log: _Log, bounds: _Bounds, changes: pl.DataFrame, current: pl.Series, ids: np.ndarray
) -> pl.Series:
    """Step 3 for one field: the decoded new value of the last change at or before each boundary, else the
    old value of the next change, else the current value."""
    mine = np.flatnonzero(log.code == _CODES[field])
    at_all = bounds.of_log[mine]
    # Changes of the field at one instant (one boundary) collapse: the first old value, the last new value.
    last_of_group = np.ones(mine.size, dtype=bool)
    last_of_group[:-1] = at_all[:-1] != at_all[1:]
    first_of_group = np.ones(mine.size, dtype=bool)
    first_of_group[1:] = at_all[1:] != at_all[:-1]
    new_rows, old_rows = log.source[mine[last_of_group]], log.source[mine[first_of_group]]
    at = at_all[last_of_group]
    owner = log.row[mine[last_of_group]]

    texts = pl.DataFrame(
        {
            s.NEW_VALUE: changes[s.NEW_VALUE].gather(new_rows),
            s.OLD_VALUE: changes[s.OLD_VALUE].gather(old_rows),
            s.ID: ids[owner],
        }
    )
    decoded = texts.select(
        _decode(field, pl.col(s.NEW_VALUE)).alias("_new"), _decode(field, pl.col(s.OLD_VALUE)).alias("_old")
    )
    _check_decoded(field, texts, decoded)

    # Lay each opportunity's values out in time order: its value before any change (the first change's
    # old value, else the current value), then each change's new value. A boundary's value is the last of
    # its opportunity's entries that began at or before it; entry positions grow along the boundaries, so
    # one running maximum over the positions scattered onto their boundaries finds it for every boundary.
    n_opps, n_log = bounds.first.size, at.size
    per_opp = np.bincount(owner, minlength=n_opps)
    initial_at = np.arange(n_opps) + np.cumsum(per_opp) - per_opp
    change_at = np.arange(n_log) + owner + 1
    entry = np.zeros(bounds.opp_row.size, dtype=np.int64)
    entry[bounds.first] = initial_at
    entry[at] = change_at
    np.maximum.accumulate(entry, out=entry)
    # Where each entry's value is in [new values, first old values, current values].
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if n_log else np.zeros(0, dtype=np.int64)
    initial_source = np.arange(n_opps) + n_log + starts.size
    initial_source[owner[starts]] = n_log + np.arange(starts.size)
    source_of = np.empty(n_opps + n_log, dtype=np.int64)
    source_of[initial_at] = initial_source
    source_of[change_at] = np.arange(n_log)
    values = pl.concat(
        [decoded["_new"].alias(field), decoded["_old"].gather(starts).alias(field), current.alias(field)]
    ).rechunk()
    return values.gather(source_of[entry])


def _check_decoded(field: str, log: pl.DataFrame, decoded: pl.DataFrame) -> None:
    for text, value in ((s.NEW_VALUE, "_new"), (s.OLD_VALUE, "_old")):
        unreadable = log[text].is_not_null() & (log[text] != "") & decoded[value].is_null()
        if unreadable.any():
            bad = log.filter(unreadable).row(0, named=True)
            raise InvalidInput(
                f"cannot read {bad[text]!r} as {field}", where=f"changes of opportunity {bad[s.ID]}, {text}"
            )


def _decode(field: str, text: pl.Expr) -> pl.Expr:
    """`closewise.domain.changes.decode`, vectorised: empty text is None."""
    text = pl.when(text != "").then(text)
    if field == ChangeField.CLOSE_DATE.value:
        return text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    if field in _FLOAT_FIELDS:
        return text.str.strip_chars().cast(pl.Float64, strict=False)
    if field == ChangeField.OWNER.value:
        return text.str.strip_chars().cast(pl.Int64, strict=False)
    return text


def _closed_at() -> pl.Expr:
    """Step 4: when the current closed run began (null while open)."""
    closed = is_closed().fill_null(value=False)
    same_as_prev = pl.col(s.ID) == pl.col(s.ID).shift(1)
    prev_closed = same_as_prev.fill_null(value=False) & closed.shift(1).fill_null(value=False)
    first = ~same_as_prev.fill_null(value=False)
    run_start = (
        pl.when(closed & first)
        .then(pl.coalesce(s.CLOSED_AT, s.VALID_FROM))
        .when(closed & ~prev_closed)
        .then(pl.col(s.VALID_FROM))
    )
    return pl.when(closed).then(run_start.forward_fill()).alias(s.CLOSED_AT)


def _known_closed_at(at: pl.Expr) -> pl.Expr:
    """A record's `closed_at` later than `as_of` (possible only without a logged status change) was not
    yet known then."""
    return pl.when(pl.col(s.CLOSED_AT) <= at).then(pl.col(s.CLOSED_AT)).alias(s.CLOSED_AT)



def _check_timeline(timeline: pl.DataFrame) -> None:
    for name in (s.ID, s.VALID_FROM, s.VALID_TO, s.CLOSED_AT):
        if name not in timeline.columns:
            raise InvalidInput(f"column {name!r} is missing; build it with build_timeline()", where="timeline")
