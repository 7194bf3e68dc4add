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
  so before then it is open;
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

import polars as pl

from closewise.analytics import schema as s
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.timeutil import as_utc
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


def naive_utc(value: datetime) -> datetime:
    """`value` as a naive UTC datetime, the form timestamps take in the frames."""
    return as_utc(value).replace(tzinfo=None)


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


def _field_log(opportunities: pl.DataFrame, changes: pl.DataFrame, field: str) -> pl.LazyFrame:
    """Every change of `field` (all times), clamped to `created_at`, with its log position, sorted."""
    return (
        changes.lazy()
        .filter(pl.col(s.FIELD) == field)
        # Log order among this field's changes is all that orders changes made at one instant.
        .with_row_index(_SEQ)
        .join(opportunities.lazy().select(s.ID, s.CREATED_AT), left_on=s.OPPORTUNITY_ID, right_on=s.ID, how="inner")
        .select(
            pl.col(s.OPPORTUNITY_ID).alias(s.ID),
            pl.max_horizontal(s.CHANGED_AT, s.CREATED_AT).alias(_T),
            pl.col(_SEQ),
            pl.col(s.OLD_VALUE).replace("", None),
            pl.col(s.NEW_VALUE).replace("", None),
        )
        .sort(s.ID, _T, _SEQ)
    )


def value_as_of(opportunities: pl.DataFrame, changes: pl.DataFrame, field: ChangeField, as_of: datetime) -> pl.Series:
    """The value of `field` (amount or owner_id) for every row of `opportunities` at `as_of`, in row order."""
    if field not in (ChangeField.AMOUNT, ChangeField.OWNER):
        raise InvalidInput(f"value_as_of reads amount or owner_id, not {field.value}")
    at = naive_utc(as_of)
    name = field.value
    log = _field_log(opportunities, changes, name)
    first = log.group_by(s.ID).agg(pl.col(s.OLD_VALUE).first().alias("_first_old"), pl.len().alias("_n_log"))
    last = (
        log.filter(pl.col(_T) <= at)
        .group_by(s.ID)
        .agg(pl.col(s.NEW_VALUE).last().alias("_last_new"), pl.len().alias("_n_last"))
    )
    dtype = pl.Float64 if field is ChangeField.AMOUNT else pl.Int64
    return (
        opportunities.lazy()
        .select(s.ID, pl.col(name))
        .join(first, on=s.ID, how="left", maintain_order="left")
        .join(last, on=s.ID, how="left", maintain_order="left")
        .select(
            pl.when(pl.col("_n_last").is_not_null())
            .then(pl.col("_last_new").str.strip_chars().cast(dtype, strict=False))
            .when(pl.col("_n_log").is_not_null())
            .then(pl.col("_first_old").str.strip_chars().cast(dtype, strict=False))
            .otherwise(pl.col(name).cast(dtype))
            .alias(name)
        )
        .collect()[name]
    )


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
    log = _field_log(opps, changes, ChangeField.STATUS.value)
    first = log.group_by(s.ID).agg(pl.col(s.OLD_VALUE).first().alias("_first_old"), pl.len().alias("_n_log"))
    known = log.filter(pl.col(_T) <= at)
    last = known.group_by(s.ID).agg(pl.col(s.NEW_VALUE).last().alias("_last_new"), pl.len().alias("_n_known"))
    reopened = known.filter(pl.col(s.NEW_VALUE) == OPEN).group_by(s.ID).agg(pl.col(_T).max().alias("_reopened"))
    run_start = (
        known.filter(pl.col(s.NEW_VALUE).is_in(CLOSED_STATUSES))
        .join(reopened, on=s.ID, how="left")
        .filter(pl.col("_reopened").is_null() | (pl.col(_T) > pl.col("_reopened")))
        .group_by(s.ID)
        .agg(pl.col(_T).min().alias("_run_start"))
    )
    record_closed = pl.coalesce(s.CLOSED_AT, s.CREATED_AT)
    status = (
        pl.when(pl.col("_n_known").is_not_null())
        .then(pl.col("_last_new"))
        .when(pl.col("_n_log").is_not_null())
        .then(pl.col("_first_old"))
        # No logged status change: closed only from the record's closing on.
        .when(pl.col(s.STATUS).is_in(CLOSED_STATUSES) & (record_closed > at))
        .then(pl.lit(OPEN))
        .otherwise(pl.col(s.STATUS))
        .fill_null(OPEN)
    )
    closed = pl.col(s.STATUS).is_in(CLOSED_STATUSES)
    closed_at = pl.when(closed).then(
        pl.coalesce("_run_start", pl.when(record_closed <= at).then(record_closed), pl.col(s.CREATED_AT))
    )
    extra = [name for name in opps.columns if name not in s.OPPORTUNITY_SCHEMA]
    frame = (
        opps.lazy()
        .select(s.ID, s.CREATED_AT, s.STATUS, s.CLOSED_AT, s.CURRENCY, s.CLOSE_DATE, *extra)
        .join(first, on=s.ID, how="left", maintain_order="left")
        .join(last, on=s.ID, how="left", maintain_order="left")
        .join(run_start, on=s.ID, how="left", maintain_order="left")
        .with_columns(status.alias(s.STATUS))
        .with_columns(closed_at.alias(s.CLOSED_AT))
        .select(s.ID, s.CREATED_AT, s.STATUS, s.CLOSED_AT, s.CURRENCY, s.CLOSE_DATE, *extra)
        .collect()
    )
    owner = value_as_of(opps, changes, ChangeField.OWNER, at)
    amount = value_as_of(opps, changes, ChangeField.AMOUNT, at)
    return frame.with_columns(owner.alias(s.OWNER_ID), amount.alias(s.AMOUNT)).select(
        s.ID, s.CREATED_AT, s.STATUS, s.CLOSED_AT, s.OWNER_ID, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE, *extra
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
    when the caller has it already.
    """
    check_stages(stages)
    at = naive_utc(as_of)
    if deals is None:
        deals = deal_outcomes(opportunities, changes, as_of=as_of)
    opps = opportunities.filter(pl.col(s.CREATED_AT) <= at)
    log = _field_log(opps, changes, ChangeField.STAGE.value)
    initial = log.group_by(s.ID).agg(pl.col(s.OLD_VALUE).first().alias("_initial"), pl.len().alias("_n_log"))
    start = (
        opps.lazy()
        .select(s.ID, s.CREATED_AT, s.STAGE)
        .join(initial, on=s.ID, how="left", maintain_order="left")
        .select(
            s.ID,
            pl.col(s.CREATED_AT).alias(_T),
            pl.lit(-1, dtype=pl.Int64).alias(_SEQ),
            pl.when(pl.col("_n_log").is_not_null()).then(pl.col("_initial")).otherwise(pl.col(s.STAGE)).alias(s.STAGE),
        )
    )
    later = log.filter(pl.col(_T) <= at).select(
        s.ID, _T, pl.col(_SEQ).cast(pl.Int64), pl.col(s.NEW_VALUE).alias(s.STAGE)
    )
    order = stages.lazy().select(pl.col("key").alias(s.STAGE), pl.col(ORDER).cast(pl.Int64))
    same_deal_next = pl.col(s.ID) == pl.col(s.ID).shift(-1)
    visits = (
        pl.concat([start, later])
        .join(deals.lazy().select(s.ID, s.STATUS, s.CLOSED_AT), on=s.ID, how="inner")
        .filter(pl.col(s.STAGE).is_not_null(), pl.col(s.CLOSED_AT).is_null() | (pl.col(_T) <= pl.col(s.CLOSED_AT)))
        .sort(s.ID, _T, _SEQ)
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
