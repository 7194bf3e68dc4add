"""Deal outcomes and stage paths as known at a date, read straight from the change log.

What it estimates: nothing, it reconstructs, like `analytics.snapshots` and by the same rule
(`closewise.domain.changes`): a field's value at `t` is the `new_value` of its last change at or before `t`;
before its first change it is that change's `old_value`; a field that never changed has its current value
throughout; changes stamped before `created_at` count as made at `created_at`. Only the few fields the stage
analytics read are rebuilt (stage, status, owner, amount), which is much cheaper than a whole timeline.

`as_of` semantics (shared by every stage analytic):

- an opportunity exists from its `created_at`; deals created after `as_of` are left out;
- a change made after `as_of` is ignored, one made exactly at `as_of` is included;
- a deal is closed at `as_of` only if its status then was won, lost or no decision. A deal closed without a
  logged status change is taken as closed at its record's `closed_at` (its `created_at` when that is empty),
  so before then it is open: the log is read with that implied change added (`analytics.implied`);
- `closed_at` is when the deal's current closed run began (a reopened and re-closed deal counts from the
  second closing).

A deal's **stage visits** are the stretches it spent in one stage: from creation (in its first known stage)
and from every later stage change, up to the next stage change or, for the last one, up to its closing.
Stage changes made after the closing are ignored (some CRMs move closed deals to "Closed Won"-like stages).
Each visit records how it ended (`exit`): `advanced` (to a stage later in the playbook), `regressed`
(earlier), `moved` (to a stage the playbook does not know), `won`, `lost`, `no_decision`, or null while
the deal is still open in it at `as_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.implied import with_implied_status_changes
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.timeutil import naive_utc as naive_utc  # re-exported: older callers read h.naive_utc
from closewise.errors import InvalidInput

# Column names of the frames built here, beyond those of `analytics.schema`.
ENTERED_AT: Final = "entered_at"
LEFT_AT: Final = "left_at"
EXIT: Final = "exit"
DAYS: Final = "days"
ORDER: Final = "order"

ADVANCED: Final = "advanced"
REGRESSED: Final = "regressed"
MOVED: Final = "moved"
WON: Final = OpportunityStatus.WON.value
LOST: Final = OpportunityStatus.LOST.value
NO_DECISION: Final = OpportunityStatus.NO_DECISION.value
OPEN: Final = OpportunityStatus.OPEN.value
CLOSED_STATUSES: Final = (WON, LOST, NO_DECISION)

_T: Final = "_t"
_SEQ: Final = "_seq"
_DAY_US: Final = 86_400_000_000



def days_between(start: str | pl.Expr, end: str | pl.Expr) -> pl.Expr:
    """Fractional days from `start` to `end` (two timestamp columns)."""
    first = pl.col(start) if isinstance(start, str) else start
    last = pl.col(end) if isinstance(end, str) else end
    return (last - first).dt.total_microseconds() / _DAY_US


def check_stages(stages: pl.DataFrame) -> None:
    """The playbook frame needs `key` and `order` (as `db.org_frames.load_stages` returns)."""
    for name in ("key", ORDER):
        if name not in stages.columns:
            raise InvalidInput(f"column {name!r} is missing", where="stages frame")


_FIELD: Final = "_field"
_ROW: Final = "_row"
_OUTCOME_FIELDS: Final = (ChangeField.STATUS, ChangeField.OWNER, ChangeField.AMOUNT)


def _history_log(opportunities: pl.DataFrame, changes: pl.DataFrame, fields: Sequence[ChangeField]) -> pl.DataFrame:
    """Every change of `fields` (all times) of `opportunities`, in (opportunity, clamped time, log order)
    order: `id`, `_row` (the opportunity's row in `opportunities`), `_field` (the field's position in
    `fields`), `_t` (clamped to `created_at`) and `_seq` (the change's row in `changes`).

    One filter, join and sort of the log serves every field: a field's rows, picked with a mask, keep that
    order, which is the order of its own changes (log order among one field's changes is all that orders
    changes made at one instant). Only numbers are sorted; the few values needed are gathered afterwards
    (`_values`), and placed by `_row` rather than joined (`_per_opportunity`).
    """
    codes = {field.value: code for code, field in enumerate(fields)}
    ranked = opportunities.lazy().select(s.ID, s.CREATED_AT).with_row_index(_ROW).sort(s.ID).with_row_index("_rank")
    log = (
        changes.lazy()
        .with_row_index(_SEQ)
        .filter(pl.col(s.FIELD).is_in(list(codes)))
        .join(ranked, left_on=s.OPPORTUNITY_ID, right_on=s.ID, how="inner")
        .select(
            pl.col(s.OPPORTUNITY_ID).alias(s.ID),
            pl.col(_ROW),
            pl.col(s.FIELD).replace_strict(codes, default=None, return_dtype=pl.UInt8).alias(_FIELD),
            pl.max_horizontal(s.CHANGED_AT, s.CREATED_AT).alias(_T),
            pl.col(_SEQ),
            "_rank",
        )
        .collect()
    )
    # Logs are mostly stored in time order. Then each opportunity's changes in log order are in time order
    # (clamping keeps it), and one sort on (opportunity's rank by id, log row) packed in an integer is enough.
    raw = changes[s.CHANGED_AT]
    if raw.len() < 2 or bool((raw.diff().drop_nulls() >= timedelta(0)).all()):
        ordered = log.sort(pl.col("_rank").cast(pl.Int64) * (1 << 32) + pl.col(_SEQ).cast(pl.Int64))
    else:
        ordered = log.sort("_rank", _T, _SEQ)
    return ordered.drop("_rank")


def _field_rows(log: pl.DataFrame, fields: Sequence[ChangeField], field: ChangeField) -> pl.DataFrame:
    """The rows of `log` (`_history_log(..., fields)`) that change `field`, still in order."""
    return log.filter(pl.col(_FIELD) == fields.index(field))


def _values(changes: pl.DataFrame, rows: pl.DataFrame, column: str) -> pl.Series:
    """`column` (old or new value) of the changes `rows` (of `_history_log`), in their order; empty text is
    null."""
    return changes[column].gather(rows[_SEQ]).replace("", None)


def _per_opportunity(n: int, rows: pl.DataFrame, values: pl.Series) -> pl.Series:
    """`values` (one per row of `rows`, at most one per opportunity) at their opportunity's row of a column
    of length `n`; null elsewhere."""
    where = np.full(n, len(values), dtype=np.int64)
    where[rows[_ROW].to_numpy()] = np.arange(len(values))
    return values.extend_constant(None, 1).gather(where)


def _has_row(n: int, rows: pl.DataFrame) -> pl.Series:
    """True at the opportunity rows that have one of `rows`."""
    found = np.zeros(n, dtype=bool)
    found[rows[_ROW].to_numpy()] = True
    return pl.Series(found)


def _ends(changes: pl.DataFrame, rows: pl.DataFrame, n: int, at: datetime) -> dict[str, pl.Series]:
    """Per opportunity row (of `n`), from its changes of one field (`rows`, sorted): `_logged` (it has
    one), `_first_old` (the first one's old value), `_known` (it has one at or before `at`) and `_last_new`
    (the last of those's new value)."""
    first = rows.filter((pl.col(_ROW) != pl.col(_ROW).shift(1)).fill_null(value=True))
    known = rows.filter(pl.col(_T) <= at)
    last = known.filter((pl.col(_ROW) != pl.col(_ROW).shift(-1)).fill_null(value=True))
    return {
        "_logged": _has_row(n, first),
        "_first_old": _per_opportunity(n, first, _values(changes, first, s.OLD_VALUE)),
        "_known": _has_row(n, last),
        "_last_new": _per_opportunity(n, last, _values(changes, last, s.NEW_VALUE)),
    }


def _value_at(
    opportunities: pl.DataFrame, changes: pl.DataFrame, rows: pl.DataFrame, field: ChangeField, at: datetime
) -> pl.Series:
    """`value_as_of` from the field's sorted, clamped changes `rows` (of `_history_log(opportunities, ...)`)."""
    name = field.value
    dtype = pl.Float64 if field is ChangeField.AMOUNT else pl.Int64
    ends = _ends(changes, rows, opportunities.height, at)
    return (
        pl.DataFrame({**ends, name: opportunities[name]})
        .select(
            pl.when(pl.col("_known"))
            .then(pl.col("_last_new").str.strip_chars().cast(dtype, strict=False))
            .when(pl.col("_logged"))
            .then(pl.col("_first_old").str.strip_chars().cast(dtype, strict=False))
            .otherwise(pl.col(name).cast(dtype))
            .alias(name)
        )[name]
    )


def value_as_of(opportunities: pl.DataFrame, changes: pl.DataFrame, field: ChangeField, as_of: datetime) -> pl.Series:
    """The value of `field` (amount or owner_id) for every row of `opportunities` at `as_of`, in row order."""
    if field not in (ChangeField.AMOUNT, ChangeField.OWNER):
        raise InvalidInput(f"value_as_of reads amount or owner_id, not {field.value}")
    rows = _history_log(opportunities, changes, (field,))
    return _value_at(opportunities, changes, rows, field, naive_utc(as_of))


def deal_outcomes(opportunities: pl.DataFrame, changes: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """One row per opportunity created by `as_of`: its status and `closed_at` as known then.

    Columns: `id`, `created_at`, `status`, `closed_at` (null while open), `owner_id` and `amount` as of
    `as_of`, `currency`, `close_date` (current; read it only for closed deals), then any extra columns of
    `opportunities` (e.g. `segment`, `team_id`), carried unchanged.
    """
    s.validate_opportunities(opportunities)
    s.validate_changes(changes)
    at = naive_utc(as_of)
    opps = opportunities.filter(pl.col(s.CREATED_AT) <= at)
    changes = with_implied_status_changes(opps, changes)
    return _outcomes(opps, changes, _history_log(opps, changes, _OUTCOME_FIELDS), _OUTCOME_FIELDS, at)


def outcomes_and_visits(
    opportunities: pl.DataFrame, changes: pl.DataFrame, stages: pl.DataFrame, *, as_of: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`deal_outcomes` and `stage_visits` at `as_of`, the same frames, from one read of the change log."""
    s.validate_opportunities(opportunities)
    s.validate_changes(changes)
    check_stages(stages)
    at = naive_utc(as_of)
    opps = opportunities.filter(pl.col(s.CREATED_AT) <= at)
    changes = with_implied_status_changes(opps, changes)
    fields = (*_OUTCOME_FIELDS, ChangeField.STAGE)
    log = _history_log(opps, changes, fields)
    deals = _outcomes(opps, changes, log, fields, at)
    return deals, _visits(opps, changes, _field_rows(log, fields, ChangeField.STAGE), stages, deals, at, aligned=True)


def _outcomes(
    opps: pl.DataFrame, changes: pl.DataFrame, log: pl.DataFrame, fields: Sequence[ChangeField], at: datetime
) -> pl.DataFrame:
    """`deal_outcomes` of `opps` (created by `at`) from their `_history_log` over `fields`."""
    n = opps.height
    statuses = _field_rows(log, fields, ChangeField.STATUS)
    known_rows = statuses.filter(pl.col(_T) <= at)
    known = known_rows.select(_ROW, _T).with_columns(_values(changes, known_rows, s.NEW_VALUE).alias(s.NEW_VALUE))
    reopened = known.filter(pl.col(s.NEW_VALUE) == OPEN).group_by(_ROW).agg(pl.col(_T).max().alias("_reopened"))
    run_start = (
        known.filter(pl.col(s.NEW_VALUE).is_in(CLOSED_STATUSES))
        .join(reopened, on=_ROW, how="left")
        .filter(pl.col("_reopened").is_null() | (pl.col(_T) > pl.col("_reopened")))
        .group_by(_ROW)
        .agg(pl.col(_T).min().alias("_run_start"))
    )
    status = (
        pl.when(pl.col("_known"))
        .then(pl.col("_last_new"))
        .when(pl.col("_logged"))
        .then(pl.col("_first_old"))
        .otherwise(pl.col(s.STATUS))
        .fill_null(OPEN)
    )
    closed = pl.col(s.STATUS).is_in(CLOSED_STATUSES)
    closed_at = pl.when(closed).then(pl.coalesce("_run_start", pl.col(s.CREATED_AT)))
    extra = [name for name in opps.columns if name not in s.OPPORTUNITY_SCHEMA]
    owner = _value_at(opps, changes, _field_rows(log, fields, ChangeField.OWNER), ChangeField.OWNER, at)
    amount = _value_at(opps, changes, _field_rows(log, fields, ChangeField.AMOUNT), ChangeField.AMOUNT, at)
    return (
        opps.select(s.ID, s.CREATED_AT, s.STATUS, s.CLOSED_AT, s.CURRENCY, s.CLOSE_DATE, *extra)
        .with_columns(
            *(series.alias(name) for name, series in _ends(changes, statuses, n, at).items()),
            _per_opportunity(n, run_start, run_start["_run_start"]).alias("_run_start"),
        )
        .with_columns(status.alias(s.STATUS))
        .with_columns(closed_at.alias(s.CLOSED_AT), owner.alias(s.OWNER_ID), amount.alias(s.AMOUNT))
        .select(s.ID, s.CREATED_AT, s.STATUS, s.CLOSED_AT, s.OWNER_ID, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE, *extra)
    )


def stage_visits(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    stages: pl.DataFrame,
    *,
    as_of: datetime,
    deals: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every stage visit up to `as_of`, sorted by `id`, `entered_at` (see the module header).

    Columns: `id`, `stage`, `order` (the playbook's; null for a stage it does not know), `entered_at`,
    `left_at` (null while still in the stage), `exit`, `days` (null while still in the stage), and the
    deal's `status` and `closed_at` as of `as_of`. `deals` is `deal_outcomes(...)` for the same `as_of`,
    when the caller has it already (`outcomes_and_visits` computes both from one read of the log).
    """
    check_stages(stages)
    if deals is None:
        return outcomes_and_visits(opportunities, changes, stages, as_of=as_of)[1]
    at = naive_utc(as_of)
    opps = opportunities.filter(pl.col(s.CREATED_AT) <= at)
    return _visits(opps, changes, _history_log(opps, changes, (ChangeField.STAGE,)), stages, deals, at, aligned=False)


def _visits(
    opps: pl.DataFrame,
    changes: pl.DataFrame,
    log: pl.DataFrame,
    stages: pl.DataFrame,
    deals: pl.DataFrame,
    at: datetime,
    *,
    aligned: bool,
) -> pl.DataFrame:
    """`stage_visits` of `opps` (created by `at`) from their sorted, clamped stage changes `log`. `aligned`:
    `deals` is `_outcomes` of `opps` (row for row), so each deal's status is read by row, not joined."""
    n = opps.height
    first = log.filter((pl.col(_ROW) != pl.col(_ROW).shift(1)).fill_null(value=True))
    initial = _per_opportunity(n, first, _values(changes, first, s.OLD_VALUE))
    start = opps.select(
        s.ID,
        pl.col(s.CREATED_AT).alias(_T),
        pl.when(_has_row(n, first)).then(initial).otherwise(pl.col(s.STAGE)).alias(s.STAGE),
    )
    known = log.filter(pl.col(_T) <= at)
    later = known.select(s.ID, _T).with_columns(_values(changes, known, s.NEW_VALUE).alias(s.STAGE))
    outcome = (s.STATUS, s.CLOSED_AT)
    if aligned:
        start = start.with_columns(deals.select(outcome))
        later = later.with_columns(deals.select(outcome)[known[_ROW]])
        stays = pl.concat([start, later]).lazy()
    else:
        stays = pl.concat([start, later]).lazy().join(
            deals.lazy().select(s.ID, *outcome), on=s.ID, how="inner", maintain_order="left")
    order = stages.lazy().select(pl.col("key").alias(s.STAGE), pl.col(ORDER).cast(pl.Int64))
    same_deal_next = pl.col(s.ID) == pl.col(s.ID).shift(-1)
    visits = (
        stays.filter(pl.col(s.STAGE).is_not_null(), pl.col(s.CLOSED_AT).is_null() | (pl.col(_T) <= pl.col(s.CLOSED_AT)))
        # Each deal's start (at its creation, no later than its clamped changes) comes before its changes,
        # which are in order already: a stable sort by deal alone puts every row in place.
        .sort(s.ID, maintain_order=True)
        # A change to the stage a deal is already in (or several at one instant) starts no new visit.
        .filter(
            ((pl.col(s.ID) != pl.col(s.ID).shift(1)) | (pl.col(s.STAGE) != pl.col(s.STAGE).shift(1))).fill_null(
                value=True
            )
        )
        .join(order, on=s.STAGE, how="left", maintain_order="left")
        .with_columns(
            pl.when(same_deal_next).then(pl.col(_T).shift(-1)).alias("_next_t"),
            pl.when(same_deal_next).then(pl.col(ORDER).shift(-1)).alias("_next_order"),
            pl.when(same_deal_next).then(pl.lit(value=True)).otherwise(pl.lit(value=False)).alias("_has_next"),
        )
        .with_columns(
            pl.when(pl.col("_has_next"))
            .then(
                pl.when(pl.col(ORDER).is_null() | pl.col("_next_order").is_null())
                .then(pl.lit(MOVED))
                .when(pl.col("_next_order") > pl.col(ORDER))
                .then(pl.lit(ADVANCED))
                .otherwise(pl.lit(REGRESSED))
            )
            .when(pl.col(s.STATUS) != OPEN)
            .then(pl.col(s.STATUS))
            .alias(EXIT),
            pl.when(pl.col("_has_next")).then(pl.col("_next_t")).otherwise(pl.col(s.CLOSED_AT)).alias(LEFT_AT),
        )
        .select(
            s.ID,
            s.STAGE,
            ORDER,
            pl.col(_T).alias(ENTERED_AT),
            LEFT_AT,
            EXIT,
            days_between(_T, LEFT_AT).alias(DAYS),
            s.STATUS,
            s.CLOSED_AT,
        )
    )
    return visits.collect()


def created_between(frame: pl.DataFrame, as_of: datetime, window_days: int | None) -> pl.DataFrame:
    """Rows of `frame` created in the `window_days` before `as_of` (all of them when None)."""
    if window_days is None:
        return frame
    if window_days <= 0:
        raise InvalidInput(f"a look-back window must be a positive number of days, not {window_days}")
    since = naive_utc(as_of) - timedelta(days=window_days)
    return frame.filter(pl.col(s.CREATED_AT) > since)


def closed_between(frame: pl.DataFrame, as_of: datetime, window_days: int | None) -> pl.DataFrame:
    """Deals (`deal_outcomes` rows) closed in the `window_days` before `as_of` (all closed when None)."""
    closed = frame.filter(pl.col(s.CLOSED_AT).is_not_null())
    if window_days is None:
        return closed
    if window_days <= 0:
        raise InvalidInput(f"a look-back window must be a positive number of days, not {window_days}")
    since = naive_utc(as_of) - timedelta(days=window_days)
    return closed.filter(pl.col(s.CLOSED_AT) > since)


def group_column(frame: pl.DataFrame, by: str, allowed: Sequence[str]) -> str:
    """Check `by` names one of `allowed` and a column of `frame`."""
    if by not in allowed:
        raise InvalidInput(f"cannot group by {by!r}; choose one of {', '.join(allowed)}")
    if by not in frame.columns:
        raise InvalidInput(f"column {by!r} is missing", where="opportunities frame")
    return by
