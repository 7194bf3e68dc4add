"""The history half of the deal features: as-of running totals over a deal's change log, activities, exit
criteria and its owner's record, added to the (as-of date, deal) rows of `ml.features.features_at`.

Every cumulative count is read with an as-of join (the last running total at or before each row's `as_of`),
so the cost is the log's size plus the rows', never their product. The running totals do not depend on the
as-of dates, so each is built once per `OrgFrames` (kept in `frames.derived`) and every later call only joins
into it. What each column means: `ml.features.DESCRIPTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.errors import InvalidInput
from closewise.ml.frames import OrgFrames

OWNER_PRIOR: Final = 10.0
ACTIVITY_WINDOW_DAYS: Final = 30
ACTIVITY_TYPES: Final = ("call", "email", "meeting", "task")
_OPEN: Final = OpportunityStatus.OPEN.value
_WON: Final = OpportunityStatus.WON.value



def _memo(frames: OrgFrames, key: str, build: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """A piece of the features that does not depend on the as-of dates (a running total over the whole log,
    the finished stage visits), built once per `frames` and kept in `frames.derived`: every later call only
    as-of joins into it. Running totals are kept sorted by their time, as the as-of joins want them."""
    if key not in frames.derived:
        frames.derived[key] = build()
    return frames.derived[key]


def _clamped_log(frames: OrgFrames, field: ChangeField) -> pl.DataFrame:
    """One field's changes with their time clamped to the deal's creation, sorted by (id, time, log order)."""
    return _memo(frames, f"log:{field.value}", lambda: _build_clamped_log(frames, field))


def _build_clamped_log(frames: OrgFrames, field: ChangeField) -> pl.DataFrame:
    return (
        frames.changes.lazy()
        .with_row_index("_seq")
        .filter(pl.col(s.FIELD) == field.value)
        .join(frames.opportunities.lazy().select(s.ID, s.CREATED_AT), left_on=s.OPPORTUNITY_ID, right_on=s.ID)
        .select(
            pl.col(s.OPPORTUNITY_ID).alias(s.ID),
            pl.max_horizontal(s.CHANGED_AT, s.CREATED_AT).alias("_t"),
            "_seq",
            pl.col(s.OLD_VALUE).replace("", None),
            pl.col(s.NEW_VALUE).replace("", None),
        )
        .sort(s.ID, "_t", "_seq")
        .collect()
    )


def _as_of_join(rows: pl.DataFrame, running: pl.DataFrame, columns: Sequence[str], *, on: str = "_t") -> pl.DataFrame:
    """`rows` with the last `running` row (per id) at or before each row's `as_of`: its `columns`."""
    right = running.select(s.ID, pl.col(on).alias("_at"), *columns).sort("_at")
    joined = rows.sort(s.AS_OF).join_asof(
        right, left_on=s.AS_OF, right_on="_at", by=s.ID, strategy="backward", check_sortedness=False
    )
    return joined.drop("_at").sort(s.ID, s.AS_OF)


def with_stage_history(rows: pl.DataFrame, frames: OrgFrames, dates: list[datetime]) -> pl.DataFrame:
    running = _memo(frames, "running:stage", lambda: _stage_running(frames))
    rows = _as_of_join(rows, running, ("stage_changes", "regressions", "_entered"))
    rows = rows.with_columns(
        pl.col("stage_changes", "regressions").fill_null(0.0),
        h.days_between(pl.coalesce("_entered", s.CREATED_AT), pl.col(s.AS_OF)).alias("days_in_stage"),
    ).drop("_entered")
    norms = _stage_norms(frames, dates)
    return (
        rows.join(norms, on=[s.AS_OF, s.STAGE], how="left")
        .with_columns((pl.col("days_in_stage") / pl.col("_norm")).alias("stage_time_ratio"))
        .drop("_norm")
    )


def _stage_running(frames: OrgFrames) -> pl.DataFrame:
    log = _clamped_log(frames, ChangeField.STAGE)
    order = dict(zip(frames.stages["key"].to_list(), frames.stages[h.ORDER].to_list(), strict=True))
    return log.with_columns(
        pl.col(s.OLD_VALUE).replace_strict(order, default=None, return_dtype=pl.Int64).alias("_from"),
        pl.col(s.NEW_VALUE).replace_strict(order, default=None, return_dtype=pl.Int64).alias("_to"),
    ).with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("stage_changes"),
        (pl.col("_to") < pl.col("_from"))
        .fill_null(value=False)
        .cum_sum()
        .over(s.ID)
        .cast(pl.Float64)
        .alias("regressions"),
        pl.col("_t").alias("_entered"),
    ).sort("_t")


def _stage_norms(frames: OrgFrames, dates: list[datetime]) -> pl.DataFrame:
    """Median days of the stage visits finished by each date, per stage: `as_of`, `stage`, `_norm`."""
    visits = _memo(frames, "visits", lambda: _finished_visits(frames))
    pieces = [
        visits.filter(pl.col(h.LEFT_AT) <= day)
        .group_by(s.STAGE)
        .agg(pl.col(h.DAYS).median().alias("_norm"))
        .with_columns(pl.lit(day, dtype=s.TIMESTAMP).alias(s.AS_OF))
        for day in dates
    ]
    return pl.concat(pieces).select(s.AS_OF, s.STAGE, pl.col("_norm").cast(pl.Float64).clip(lower_bound=0.5))


def _finished_visits(frames: OrgFrames) -> pl.DataFrame:
    """Every stage visit finished by the end of the log (a visit finished by a date is finished, with the same
    length, as of any later date, so one table serves every date: `_stage_norms` keeps those left by it)."""
    times = [frames.changes[s.CHANGED_AT].max(), frames.opportunities[s.CREATED_AT].max(),
             frames.opportunities[s.CLOSED_AT].max()]
    known = [t for t in times if isinstance(t, datetime)]
    end = max(known) if known else datetime(2000, 1, 1)
    return h.stage_visits(frames.opportunities, frames.changes, frames.stages, as_of=end).filter(
        pl.col(h.LEFT_AT).is_not_null()).select(s.STAGE, h.LEFT_AT, h.DAYS)


def with_close_date_moves(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    moves = _memo(frames, "running:close_date", lambda: _close_date_running(frames))
    rows = _as_of_join(rows, moves, ("pushes", "days_pushed", "pull_ins"))
    return rows.with_columns(pl.col("pushes", "days_pushed", "pull_ins").fill_null(0.0))


def _close_date_running(frames: OrgFrames) -> pl.DataFrame:
    def as_date(name: str) -> pl.Expr:
        return pl.col(name).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)

    return (
        _clamped_log(frames, ChangeField.CLOSE_DATE)
        .with_columns((as_date(s.NEW_VALUE) - as_date(s.OLD_VALUE)).dt.total_days().fill_null(0).alias("_d"))
        .with_columns(
            (pl.col("_d") > 0).cum_sum().over(s.ID).cast(pl.Float64).alias("pushes"),
            pl.col("_d").clip(lower_bound=0).cum_sum().over(s.ID).cast(pl.Float64).alias("days_pushed"),
            (pl.col("_d") < 0).cum_sum().over(s.ID).cast(pl.Float64).alias("pull_ins"),
        )
        .sort("_t")
    )


def with_amount_history(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    log = _memo(frames, "running:amount", lambda: _clamped_log(frames, ChangeField.AMOUNT).with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("amount_changes")).sort("_t"))
    # The amount a deal was created with is the first change's old value, known from creation on.
    initial = _memo(frames, "initial:amount", lambda: _clamped_log(frames, ChangeField.AMOUNT).group_by(s.ID).agg(
        pl.col(s.OLD_VALUE).first().cast(pl.Float64, strict=False).alias("_initial")))
    rows = _as_of_join(rows, log, ("amount_changes",)).join(initial, on=s.ID, how="left")
    start = pl.coalesce("_initial", s.AMOUNT)
    return rows.with_columns(
        pl.col("amount_changes").fill_null(0.0),
        pl.when(start > 0).then(pl.col(s.AMOUNT) / start - 1.0).alias("amount_change"),
    ).drop("_initial")


def with_activity(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    type_counts = [f"{kind}s_30d" for kind in ACTIVITY_TYPES]
    running = _memo(frames, "running:activity", lambda: _activity_running(frames))
    return _with_activity_counts(rows, running, type_counts)


def _activity_running(frames: OrgFrames) -> pl.DataFrame:
    acts = frames.activities.filter(pl.col("opportunity_id").is_not_null()).select(
        pl.col("opportunity_id").alias(s.ID), pl.col("occurred_at").alias("_t"), "type", "contact_id"
    )
    return acts.sort(s.ID, "_t").with_columns(
        *((pl.col("type") == kind).cum_sum().over(s.ID).cast(pl.Float64).alias(f"_{kind}") for kind in ACTIVITY_TYPES),
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("activities"),
        (pl.col("contact_id").is_not_null() & pl.col("contact_id").is_first_distinct().over(s.ID))
        .cum_sum()
        .over(s.ID)
        .cast(pl.Float64)
        .alias("contacts"),
        pl.col("_t").alias("_last"),
    ).sort("_t")


def _with_activity_counts(rows: pl.DataFrame, running: pl.DataFrame, type_counts: list[str]) -> pl.DataFrame:
    cumulative = [f"_{kind}" for kind in ACTIVITY_TYPES]
    rows = _as_of_join(rows, running, (*cumulative, "activities", "contacts", "_last"))
    earlier = rows.select(s.ID, s.AS_OF).with_columns(
        (pl.col(s.AS_OF) - timedelta(days=ACTIVITY_WINDOW_DAYS)).alias("_before")
    )
    window = (
        earlier.sort("_before")
        .join_asof(
            running.select(s.ID, pl.col("_t").alias("_at"), *(pl.col(c).alias(c + "_b") for c in cumulative)).sort(
                "_at"
            ),
            left_on="_before",
            right_on="_at",
            by=s.ID,
            strategy="backward",
            check_sortedness=False,
        )
        .drop("_at", "_before")
    )
    rows = rows.join(window, on=[s.ID, s.AS_OF], how="left")
    return rows.with_columns(
        *(
            (pl.col(f"_{kind}").fill_null(0.0) - pl.col(f"_{kind}_b").fill_null(0.0)).alias(name)
            for kind, name in zip(ACTIVITY_TYPES, type_counts, strict=True)
        ),
        pl.col("activities", "contacts").fill_null(0.0),
        h.days_between(pl.coalesce("_last", s.CREATED_AT), pl.col(s.AS_OF)).alias("days_since_activity"),
    ).drop(*cumulative, *(c + "_b" for c in cumulative), "_last")


def with_criteria(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    checks = frames.criteria_checks
    if checks is None:
        return rows.with_columns(
            pl.lit(None, dtype=pl.Float64).alias(c) for c in ("criteria_stage_share", "criteria_prior_share")
        )
    for name, dtype in (("opportunity_id", pl.Int64()), ("stage", pl.String()), ("checked_at", s.TIMESTAMP)):
        if name not in checks.columns or checks.schema[name] != dtype:
            raise InvalidInput(f"column {name!r} ({dtype}) is missing or mistyped", where="criteria checks frame")
    catalogue = (
        (frames.exit_criteria if frames.exit_criteria is not None else checks).select(s.STAGE, "criterion_key").unique()
    )
    order = frames.stages.select(pl.col("key").alias(s.STAGE), pl.col(h.ORDER).cast(pl.Int64))
    per_stage = catalogue.group_by(s.STAGE).agg(pl.len().cast(pl.Float64).alias("_n")).join(order, on=s.STAGE)
    done = (
        checks.filter(pl.col("done"))
        .unique(["opportunity_id", "criterion_key"], keep="first")
        .select(pl.col("opportunity_id").alias(s.ID), s.STAGE, pl.col("checked_at").alias("_t"))
        .sort(s.ID, "_t")
    )
    total = done.with_columns(pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("_done_all"))
    in_stage = done.sort(s.ID, s.STAGE, "_t").with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID, s.STAGE).cast(pl.Float64).alias("_done_stage")
    )
    rows = _as_of_join(rows, total, ("_done_all",))
    right = in_stage.select(s.ID, s.STAGE, pl.col("_t").alias("_at"), "_done_stage").sort("_at")
    rows = (
        rows.sort(s.AS_OF)
        .join_asof(
            right, left_on=s.AS_OF, right_on="_at", by=[s.ID, s.STAGE], strategy="backward", check_sortedness=False
        )
        .drop("_at")
        .sort(s.ID, s.AS_OF)
    )
    prior = [
        (order_, per_stage.filter(pl.col(h.ORDER) < order_)["_n"].sum()) for order_ in frames.stages[h.ORDER].to_list()
    ]
    prior_n = pl.DataFrame({"stage_order": [float(o) for o, _ in prior], "_prior_n": [float(n) for _, n in prior]})
    rows = rows.join(per_stage.select(s.STAGE, "_n"), on=s.STAGE, how="left").join(
        prior_n, on="stage_order", how="left"
    )
    stage_done = pl.col("_done_stage").fill_null(0.0)
    return rows.with_columns(
        pl.when(pl.col("_n") > 0).then((stage_done / pl.col("_n")).clip(upper_bound=1.0)).alias("criteria_stage_share"),
        pl.when(pl.col("_prior_n") > 0)
        .then(((pl.col("_done_all").fill_null(0.0) - stage_done) / pl.col("_prior_n")).clip(0.0, 1.0))
        .alias("criteria_prior_share"),
    ).drop("_done_all", "_done_stage", "_n", "_prior_n")


def with_owner_record(rows: pl.DataFrame, states: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    """Owner win rate and pushes per deal over the owner's deals closed by each date, smoothed to the org's."""
    pushes = _memo(frames, "pushes", lambda: _pushes_before_first_close(frames))
    closed = (
        states.filter(pl.col(s.STATUS) != _OPEN)
        .select(s.AS_OF, s.ID, s.OWNER_ID, (pl.col(s.STATUS) == _WON).cast(pl.Float64).alias("_won"))
        .join(pushes, on=s.ID, how="left")
        .with_columns(pl.col("_pushes").fill_null(0.0))
    )
    org = closed.group_by(s.AS_OF).agg(
        pl.len().cast(pl.Float64).alias("_org_n"),
        pl.col("_won").mean().alias("_org_rate"),
        pl.col("_pushes").mean().alias("_org_pushes"),
    )
    owner = closed.group_by(s.AS_OF, s.OWNER_ID).agg(
        pl.len().cast(pl.Float64).alias("_n"), pl.col("_won").sum().alias("_w"), pl.col("_pushes").sum().alias("_p")
    )
    m = OWNER_PRIOR
    rows = rows.join(org, on=s.AS_OF, how="left").join(owner, on=[s.AS_OF, s.OWNER_ID], how="left")
    n = pl.col("_n").fill_null(0.0)
    return rows.with_columns(
        ((pl.col("_w").fill_null(0.0) + m * pl.col("_org_rate")) / (n + m)).alias("owner_win_rate"),
        ((pl.col("_p").fill_null(0.0) + m * pl.col("_org_pushes")) / (n + m)).alias("owner_pushes"),
    ).drop("_org_n", "_org_rate", "_org_pushes", "_n", "_w", "_p")


def _pushes_before_first_close(frames: OrgFrames) -> pl.DataFrame:
    """Per deal, the close-date pushes made before it first closed (all of them are known once it has)."""
    status = _clamped_log(frames, ChangeField.STATUS)
    first_close = (
        status.filter(pl.col(s.NEW_VALUE).is_not_null() & (pl.col(s.NEW_VALUE) != _OPEN))
        .group_by(s.ID)
        .agg(pl.col("_t").min().alias("_closed"))
    )
    record = frames.opportunities.filter(pl.col(s.STATUS) != _OPEN).select(
        s.ID, pl.coalesce(s.CLOSED_AT, s.CREATED_AT).alias("_record")
    )
    moves = _clamped_log(frames, ChangeField.CLOSE_DATE).with_columns(
        (
            pl.col(s.NEW_VALUE).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            > pl.col(s.OLD_VALUE).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        )
        .fill_null(value=False)
        .alias("_push")
    )
    return (
        moves.join(first_close, on=s.ID, how="left")
        .join(record, on=s.ID, how="left")
        .filter(pl.col("_t") < pl.coalesce("_closed", "_record"))
        .group_by(s.ID)
        .agg(pl.col("_push").sum().cast(pl.Float64).alias("_pushes"))
    )
