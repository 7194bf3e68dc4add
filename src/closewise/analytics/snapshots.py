"""The as-of engine: every opportunity's state at any past time, rebuilt from the append-only change log.

What it estimates: nothing, it reconstructs. For each opportunity, the stage, status, amount, close date,
forecast category, owner, probability and next step that held at a time `t`, following the rule written in
`closewise.domain.changes` to the letter: an opportunity exists from its `created_at`; a field's value at
`t` is the `new_value` of its last change at or before `t`; before its first change it is that change's
`old_value`; a field that never changed has its current value throughout. Changes stamped before
`created_at` are taken as made at `created_at`.

How (`build_timeline`), once per data set, vectorised over all opportunities at once:

1. Keep the tracked fields' changes, clamp their times to `created_at`, and sort by (opportunity, time,
   field, log order). Several changes of one field at one instant collapse into one: first `old_value`,
   last `new_value`.
2. The state boundaries are `created_at` plus every distinct change time, per opportunity, sorted the same
   way; every boundary starts one state row (`valid_from`, `valid_to`), so simultaneous changes of several
   fields give one row.
3. Per field, scatter each change's position in that field's sorted changes onto the boundary it happened
   at. Both lists are sorted the same way, so positions never decrease along the boundaries: a running
   maximum is a forward fill (the last change at or before each boundary) and a reversed running minimum a
   backward fill (the next change). A filled position that belongs to another opportunity means "none".
   The value is the decoded `new_value` of the last change, else the decoded `old_value` of the next (so
   the first) change, else the current value: one gather from those three lists.
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

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.domain.changes import TRACKED_FIELDS
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.timeutil import as_utc
from closewise.errors import InvalidInput

_TRACKED: Final[tuple[str, ...]] = tuple(field.value for field in TRACKED_FIELDS)
_FLOAT_FIELDS: Final = frozenset({ChangeField.AMOUNT.value, ChangeField.PROBABILITY.value})
_CODES: Final = {name: code for code, name in enumerate(_TRACKED)}
_CODE: Final = "_code"


def build_timeline(opportunities: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """One row per (opportunity, state interval), sorted by `id`, `valid_from`.

    Columns: `id`, `valid_from`, `valid_to` (null: still current), then every opportunities-frame column
    (tracked fields as they were during the interval, `closed_at` as described in the module header), then
    any extra columns of `opportunities`, carried unchanged. Changes of untracked fields (e.g. `currency`)
    and of opportunities absent from `opportunities` are ignored.
    """
    s.validate_opportunities(opportunities)
    s.validate_changes(changes)
    opps = opportunities.sort(s.ID)
    if opps.height and opps[s.ID].n_unique() != opps.height:
        duplicated = opps.filter(pl.col(s.ID).is_duplicated())[s.ID][0]
        raise InvalidInput(f"opportunity id {duplicated} appears more than once", where="opportunities frame")

    log = _collapsed_log(opps, changes)
    boundaries, log_boundary = _boundaries(opps, log)
    boundary_ids = boundaries[s.ID].to_numpy()
    opp_rows = np.searchsorted(opps[s.ID].to_numpy(), boundary_ids)

    codes = log[_CODE].to_numpy()
    states: dict[str, pl.Series] = {}
    for code, field in enumerate(_TRACKED):
        mine = np.flatnonzero(codes == code)
        states[field] = _field_state(field, log[mine], log_boundary[mine], boundary_ids, opps[field], opp_rows)
    static = opps.select(pl.exclude(s.ID, *_TRACKED))[opp_rows]

    timeline = boundaries.select(s.ID, s.VALID_FROM).with_columns(
        pl.when(pl.col(s.ID) == pl.col(s.ID).shift(-1)).then(pl.col(s.VALID_FROM).shift(-1)).alias(s.VALID_TO),
        *(series.alias(field) for field, series in states.items()),
        *static.iter_columns(),
    )
    timeline = timeline.with_columns(_closed_at()).select(
        s.ID,
        s.VALID_FROM,
        s.VALID_TO,
        *(name for name in s.OPPORTUNITY_SCHEMA if name != s.ID),
        *(name for name in opps.columns if name not in s.OPPORTUNITY_SCHEMA),
    )
    return timeline


def snapshot(timeline: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The state of every opportunity that existed at `as_of` (created at or before it), one row each.

    Columns: those of the timeline without `valid_to` (which would tell the future); `valid_from` is when
    the state began. A change made exactly at `as_of` is included.
    """
    _check_timeline(timeline)
    at = _naive_utc(as_of)
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
    dates = pl.Series(s.AS_OF, sorted({_naive_utc(day) for day in as_ofs}), dtype=s.TIMESTAMP)
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


def _collapsed_log(opps: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """Step 1: tracked changes at their clamped time, one row per (opportunity, time, field), sorted."""
    same_key = (
        (pl.col(s.ID) == pl.col(s.ID).shift(1))
        & (pl.col(s.VALID_FROM) == pl.col(s.VALID_FROM).shift(1))
        & (pl.col(_CODE) == pl.col(_CODE).shift(1))
    ).fill_null(value=False)
    return (
        changes.lazy()
        .with_row_index("_seq")
        .with_columns(pl.col(s.FIELD).replace_strict(_CODES, default=None, return_dtype=pl.UInt8).alias(_CODE))
        .filter(pl.col(_CODE).is_not_null())
        .join(opps.lazy().select(s.ID, s.CREATED_AT), left_on=s.OPPORTUNITY_ID, right_on=s.ID, how="inner")
        .select(
            pl.col(s.OPPORTUNITY_ID).alias(s.ID),
            pl.max_horizontal(s.CHANGED_AT, s.CREATED_AT).alias(s.VALID_FROM),
            _CODE,
            s.OLD_VALUE,
            s.NEW_VALUE,
            "_seq",
        )
        .sort(s.ID, s.VALID_FROM, _CODE, "_seq")
        .with_row_index("_row")
        # Changes of one field at one instant: keep the last row, with the first row's old value.
        .with_columns(same_key.alias("_same"))
        .with_columns(pl.col(s.OLD_VALUE).gather(pl.when(~pl.col("_same")).then(pl.col("_row")).forward_fill()))
        .filter(~pl.col("_same").shift(-1).fill_null(value=False))
        .select(s.ID, s.VALID_FROM, _CODE, s.OLD_VALUE, s.NEW_VALUE)
        .collect()
    )


def _boundaries(opps: pl.DataFrame, log: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """Step 2: the distinct (id, valid_from) sorted, and the boundary index of every log row."""
    union = (
        pl.concat(
            [
                opps.select(s.ID, pl.col(s.CREATED_AT).alias(s.VALID_FROM), pl.lit(-1, pl.Int64).alias("_k")),
                log.select(s.ID, s.VALID_FROM, pl.int_range(pl.len(), dtype=pl.Int64).alias("_k")),
            ]
        )
        .sort(s.ID, s.VALID_FROM, "_k")
        .with_columns(
            ((pl.col(s.ID) != pl.col(s.ID).shift(1)) | (pl.col(s.VALID_FROM) != pl.col(s.VALID_FROM).shift(1)))
            .fill_null(value=True)
            .alias("_new")
        )
        .with_columns((pl.col("_new").cum_sum() - 1).cast(pl.Int64).alias("_b"))
    )
    boundaries = union.filter("_new").select(s.ID, s.VALID_FROM)
    # The log is sorted like the union, so its rows come out in log order.
    log_boundary = union.filter(pl.col("_k") >= 0)["_b"].to_numpy()
    return boundaries, log_boundary


def _field_state(
    field: str,
    log: pl.DataFrame,
    at: np.ndarray,
    boundary_ids: np.ndarray,
    current: pl.Series,
    opp_rows: np.ndarray,
) -> pl.Series:
    """Step 3 for one field, given its collapsed changes (`log`, sorted), the boundary each is at, the
    current values (one per opportunity) and each boundary's opportunity row: the decoded new value of the
    last change at or before each boundary, else the old value of the next change, else the current value."""
    n_boundaries, n_log = len(boundary_ids), log.height
    ids = log[s.ID].to_numpy()
    positions = np.arange(n_log, dtype=np.int64)
    # Positions grow along the boundaries, so a running max fills forward and a reversed running min back.
    last = np.full(n_boundaries, -1, dtype=np.int64)
    last[at] = positions
    last = np.maximum.accumulate(last)
    nxt = np.full(n_boundaries, n_log, dtype=np.int64)
    nxt[at] = positions
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    if n_log:
        # A filled position from another opportunity means this one has no such change.
        has_last = (last >= 0) & (ids[np.maximum(last, 0)] == boundary_ids)
        has_next = (nxt < n_log) & (ids[np.minimum(nxt, n_log - 1)] == boundary_ids)
    else:
        has_last = has_next = np.zeros(n_boundaries, dtype=bool)

    decoded = log.select(
        _decode(field, pl.col(s.NEW_VALUE)).alias("_new"), _decode(field, pl.col(s.OLD_VALUE)).alias("_old")
    )
    _check_decoded(field, log, decoded)
    # One gather from [new values, old values, current values] instead of three and a choice.
    source = pl.concat([decoded["_new"].alias(field), decoded["_old"].alias(field), current.alias(field)])
    where = np.where(has_last, last, np.where(has_next, n_log + nxt, 2 * n_log + opp_rows))
    return source.gather(where)


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


def _naive_utc(value: datetime) -> datetime:
    return as_utc(value).replace(tzinfo=None)


def _check_timeline(timeline: pl.DataFrame) -> None:
    for name in (s.ID, s.VALID_FROM, s.VALID_TO, s.CLOSED_AT):
        if name not in timeline.columns:
            raise InvalidInput(f"column {name!r} is missing; build it with build_timeline()", where="timeline")
