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

import numpy as np
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
    as-of joins into it. Running totals are kept sorted by (id, time), ties in log order, as `_as_of_join`
    wants them: the last row at or before a moment then holds everything known at it."""
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


def _as_of_join(
    rows: pl.DataFrame, running: pl.DataFrame, columns: Sequence[str], *, key: str = s.ID,
    row_key: pl.Series | None = None, at: pl.Series | None = None, suffix: str = "",
) -> pl.DataFrame:
    """`rows` with the `columns` (renamed with `suffix`) of the last `running` row of the same `key` (default:
    the deal id; `row_key` gives the rows' own) at or before each row's `at` (default: its `as_of`), null when
    there is none. `running` is sorted by (`key`, `_t`) (`_memo`); rows keep their order.

    A binary search per row inside its key's block of `running`, not a Polars `join_asof ... by`: that one
    hashes the whole right side (13M changes, 5M activities at 1M deals) on every call, even to look up the
    85,000 deals of one scoring date."""
    left_keys = (rows[key] if row_key is None else row_key).to_numpy()
    moments = _micros(rows[s.AS_OF] if at is None else at)
    found = _last_at_or_before(running[key].to_numpy(), _micros(running["_t"]), left_keys, moments)
    index = pl.Series("_i", found).set(pl.Series(found < 0), None)
    picked = running.select(pl.col(c).gather(index).alias(c + suffix) for c in columns)
    return rows.with_columns(picked.get_columns())


def _micros(times: pl.Series) -> np.ndarray:
    return times.cast(s.TIMESTAMP).dt.epoch("us").to_numpy()


def _last_at_or_before(keys: np.ndarray, times: np.ndarray, left_keys: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """Per left row, the index of the last (key, time) row with its key and a time at or before its moment (the
    last of equal times: the one holding everything known then), else -1. `keys` ascending, `times` ascending
    within each key."""
    lo = np.searchsorted(keys, left_keys, side="left")
    below, above = lo.copy(), np.searchsorted(keys, left_keys, side="right")
    active = np.flatnonzero(below < above)
    while active.size:
        mid = (below[active] + above[active]) // 2
        earlier = times[mid] <= moments[active]
        below[active[earlier]] = mid[earlier] + 1
        above[active[~earlier]] = mid[~earlier]
        active = active[below[active] < above[active]]
    last = below - 1
    return np.where(last >= lo, last, -1)


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
    )


def _stage_norms(frames: OrgFrames, dates: list[datetime]) -> pl.DataFrame:
    """Median days of the stage visits finished by each date, per stage: `as_of`, `stage`, `_norm`.

    Each date's medians are kept in `frames.derived` (a date is scored and also trained on, at other sample
    rates). Per stage, the visits are kept in the order they were left, so those finished by a date are a
    prefix; its median is taken by a partial sort of the prefix, as Polars takes it (the lower of the two middle
    values plus half their difference), instead of filtering all the org's visits for every date."""
    keys = {day: f"norms:{day.isoformat()}" for day in dates}
    missing = [day for day in dates if keys[day] not in frames.derived]
    if missing:
        by_stage = _memo(frames, "visits:by_stage", lambda: _finished_visits(frames).drop_nulls(h.DAYS).sort(
            s.STAGE, h.LEFT_AT, maintain_order=True))
        left, days = _micros(by_stage[h.LEFT_AT]), by_stage[h.DAYS].cast(pl.Float64).to_numpy()
        runs = by_stage.select(pl.col(s.STAGE).rle()).unnest(s.STAGE)
        ends = np.cumsum(runs["len"].to_numpy())
        blocks = [(stage, end - length, end) for stage, length, end in
                  zip(runs["value"].to_list(), runs["len"].to_list(), ends.tolist(), strict=True) if stage is not None]
        for day, moment in zip(missing, _micros(pl.Series(missing, dtype=s.TIMESTAMP)).tolist(), strict=True):
            medians = {stage: _prefix_median(days[start:end], int(np.searchsorted(left[start:end], moment,
                                                                                  side="right")))
                       for stage, start, end in blocks}
            frames.derived[keys[day]] = pl.DataFrame(
                {s.AS_OF: [day] * len(medians), s.STAGE: list(medians), "_norm": list(medians.values())},
                schema={s.AS_OF: s.TIMESTAMP, s.STAGE: pl.String(), "_norm": pl.Float64()},
            ).drop_nulls("_norm")
    pieces = [frames.derived[keys[day]] for day in dates]
    return pl.concat(pieces).select(s.AS_OF, s.STAGE, pl.col("_norm").clip(lower_bound=0.5))


def _prefix_median(values: np.ndarray, count: int) -> float | None:
    """The median of `values[:count]` as Polars computes it (null for none)."""
    if count == 0:
        return None
    half = count // 2
    if count % 2:
        return float(np.partition(values[:count], half)[half])
    part = np.partition(values[:count], (half - 1, half))
    lower, upper = float(part[half - 1]), float(part[half])
    return lower + (upper - lower) / 2


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
    )


def with_amount_history(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    log = _memo(frames, "running:amount", lambda: _clamped_log(frames, ChangeField.AMOUNT).with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("amount_changes")))
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
    acts = frames.activities.filter(pl.col("opportunity_id").is_not_null(), pl.col("occurred_at").is_not_null()).select(
        pl.col("opportunity_id").alias(s.ID), pl.col("occurred_at").alias("_t"), "type", "contact_id"
    )
    # The first-contact flag is its own step: a window nested in a window (`is_first_distinct().over()` inside
    # `cum_sum().over()`) took Polars 140 s CPU on 5M activities, the two steps 2 s.
    return acts.sort(s.ID, "_t", maintain_order=True).with_columns(
        (pl.col("contact_id").is_not_null() & pl.col("contact_id").is_first_distinct().over(s.ID)).alias("_new")
    ).with_columns(
        *((pl.col("type") == kind).cum_sum().over(s.ID).cast(pl.Float64).alias(f"_{kind}") for kind in ACTIVITY_TYPES),
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("activities"),
        pl.col("_new").cum_sum().over(s.ID).cast(pl.Float64).alias("contacts"),
        pl.col("_t").alias("_last"),
    ).drop("_new")


def _with_activity_counts(rows: pl.DataFrame, running: pl.DataFrame, type_counts: list[str]) -> pl.DataFrame:
    cumulative = [f"_{kind}" for kind in ACTIVITY_TYPES]
    rows = _as_of_join(rows, running, (*cumulative, "activities", "contacts", "_last"))
    # The counts 30 days earlier, subtracted to leave the window's.
    before = rows[s.AS_OF] - timedelta(days=ACTIVITY_WINDOW_DAYS)
    rows = _as_of_join(rows, running, cumulative, at=before, suffix="_b")
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
    total = _memo(frames, "criteria:all", lambda: _criteria_done(frames).with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("_done_all")))
    in_stage = _memo(frames, "criteria:stage", lambda: _criteria_in_stage(frames))
    per_stage = _memo(frames, "criteria:per_stage", lambda: _criteria_per_stage(frames))
    rows = _as_of_join(rows, total, ("_done_all",))
    codes = _memo(frames, "criteria:codes", lambda: _criteria_stage_codes(frames))
    rows = _as_of_join(rows, in_stage, ("_done_stage",), key="_k", row_key=_stage_key(rows, codes))
    prior_n = _memo(frames, "criteria:prior", lambda: _criteria_prior(frames, per_stage))
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


def _criteria_done(frames: OrgFrames) -> pl.DataFrame:
    """Each criterion's first `done` check per deal: `id`, `stage`, `_t`, sorted by (id, time)."""
    checks = frames.criteria_checks
    assert checks is not None
    return _memo(frames, "criteria:done", lambda: (
        checks.filter(pl.col("done"))
        .unique(["opportunity_id", "criterion_key"], keep="first")
        .select(pl.col("opportunity_id").alias(s.ID), s.STAGE, pl.col("checked_at").alias("_t"))
        .drop_nulls("_t")
        .sort(s.ID, "_t", maintain_order=True)
    ))


def _criteria_stage_codes(frames: OrgFrames) -> pl.DataFrame:
    """A number per stage seen in the checks (`stage`, `_code`), for one integer key per (deal, stage)."""
    return _criteria_done(frames).select(pl.col(s.STAGE).unique().sort()).drop_nulls().with_row_index("_code")


def _stage_key(rows: pl.DataFrame, codes: pl.DataFrame) -> pl.Series:
    """`id * stages + code` of each row's (deal, stage); -1 where its stage has no checks (no match)."""
    code = rows.select(pl.col(s.STAGE).replace_strict(codes[s.STAGE], codes["_code"], default=None,
                                                      return_dtype=pl.Int64)).to_series()
    return (rows[s.ID] * (codes.height + 1) + code).fill_null(-1)


def _criteria_in_stage(frames: OrgFrames) -> pl.DataFrame:
    """Done criteria counted per (deal, stage) in time order, keyed by `_stage_key` (`_k`)."""
    codes = _memo(frames, "criteria:codes", lambda: _criteria_stage_codes(frames))
    done = _criteria_done(frames).filter(pl.col(s.STAGE).is_not_null())
    return (
        done.with_columns(_stage_key(done, codes).alias("_k"))
        .sort("_k", "_t", maintain_order=True)
        .with_columns(pl.int_range(1, pl.len() + 1).over("_k").cast(pl.Float64).alias("_done_stage"))
    )


def _criteria_per_stage(frames: OrgFrames) -> pl.DataFrame:
    """Per stage of the playbook with exit criteria: `stage`, `_n` (its criteria), `order`."""
    checks = frames.criteria_checks
    assert checks is not None
    catalogue = (
        (frames.exit_criteria if frames.exit_criteria is not None else checks).select(s.STAGE, "criterion_key").unique()
    )
    order = frames.stages.select(pl.col("key").alias(s.STAGE), pl.col(h.ORDER).cast(pl.Int64))
    return catalogue.group_by(s.STAGE).agg(pl.len().cast(pl.Float64).alias("_n")).join(order, on=s.STAGE)


def _criteria_prior(frames: OrgFrames, per_stage: pl.DataFrame) -> pl.DataFrame:
    """Per stage order: `_prior_n`, the criteria of the stages before it."""
    prior = [
        (order_, per_stage.filter(pl.col(h.ORDER) < order_)["_n"].sum()) for order_ in frames.stages[h.ORDER].to_list()
    ]
    return pl.DataFrame({"stage_order": [float(o) for o, _ in prior], "_prior_n": [float(n) for _, n in prior]})


def with_owner_record(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    """Owner win rate and pushes per deal over the owner's deals closed by each date, smoothed to the org's.

    "Closed by the date" is the deal's state then (`analytics.snapshots`): a deal counts for the owner it had
    while closed, and stops counting if reopened. Each closed state interval of the timeline adds its deal at
    `valid_from` and removes it at `valid_to`, so running sums of those events (`_closing_events`), read as of
    each date, give the closed deals, wins and pushes per owner and for the org without a snapshot of every
    deal per date. The sums are of whole numbers, so the rates are exactly those of the snapshots."""
    if "closing:owner" not in frames.derived:
        _closing_events(frames)
    org_events, owner_events = frames.derived["closing:org"], frames.derived["closing:owner"]
    dates = rows.select(pl.col(s.AS_OF).unique().sort()).to_series()
    found = _last_at_or_before(np.zeros(org_events.height, dtype=np.int64), _micros(org_events["_t"]),
                               np.zeros(dates.len(), dtype=np.int64), _micros(dates))
    org = pl.DataFrame({s.AS_OF: dates}).with_columns(
        org_events.select(pl.col("_n", "_w", "_p").gather(pl.Series(found).set(pl.Series(found < 0), None)))
        .get_columns()
    ).select(
        s.AS_OF,
        # The org's rates over its deals closed then; none closed (before the first, or all reopened): null.
        pl.when(pl.col("_n") > 0).then(pl.col("_w") / pl.col("_n")).alias("_org_rate"),
        pl.when(pl.col("_n") > 0).then(pl.col("_p") / pl.col("_n")).alias("_org_pushes"),
    )
    owner = rows[s.OWNER_ID]
    rows = _as_of_join(rows, owner_events, ("_n", "_w", "_p"), key=s.OWNER_ID,
                       row_key=owner.fill_null(-1) if owner.null_count() else owner)
    m = OWNER_PRIOR
    rows = rows.join(org, on=s.AS_OF, how="left")
    n = pl.col("_n").fill_null(0.0)
    return rows.with_columns(
        ((pl.col("_w").fill_null(0.0) + m * pl.col("_org_rate")) / (n + m)).alias("owner_win_rate"),
        ((pl.col("_p").fill_null(0.0) + m * pl.col("_org_pushes")) / (n + m)).alias("owner_pushes"),
    ).drop("_org_rate", "_org_pushes", "_n", "_w", "_p")


def _closing_events(frames: OrgFrames) -> None:
    """Running sums of closed deals (`_n`), wins (`_w`) and pushes (`_p`) at each time `_t` a closed state
    begins or ends, kept in `frames.derived`: `closing:org` (one block) and `closing:owner` (by `owner_id`,
    owners without an id left out), each sorted by (key, `_t`), as `_as_of_join` reads them."""
    pushes = _memo(frames, "pushes", lambda: _pushes_before_first_close(frames))
    closed = (
        frames.timeline.lazy()
        .filter(pl.col(s.STATUS) != _OPEN)
        .select(s.ID, s.OWNER_ID, s.VALID_FROM, s.VALID_TO, (pl.col(s.STATUS) == _WON).cast(pl.Float64).alias("_won"))
        .join(pushes.lazy(), on=s.ID, how="left")
        .with_columns(pl.col("_pushes").fill_null(0.0))
    )
    starts = closed.select(s.OWNER_ID, pl.col(s.VALID_FROM).alias("_t"), pl.lit(1.0).alias("_dn"),
                           pl.col("_won").alias("_dw"), pl.col("_pushes").alias("_dp"))
    ends = closed.filter(pl.col(s.VALID_TO).is_not_null()).select(
        s.OWNER_ID, pl.col(s.VALID_TO).alias("_t"), pl.lit(-1.0).alias("_dn"), (-pl.col("_won")).alias("_dw"),
        (-pl.col("_pushes")).alias("_dp"))
    events = pl.concat([starts, ends]).collect()
    sums = (pl.col("_dn").cum_sum().alias("_n"), pl.col("_dw").cum_sum().alias("_w"),
            pl.col("_dp").cum_sum().alias("_p"))
    org = events.sort("_t").select(pl.lit(0, dtype=pl.Int64).alias("_key"), "_t", *sums)
    owner = events.drop_nulls(s.OWNER_ID).sort(s.OWNER_ID, "_t").select(
        s.OWNER_ID, "_t", *(e.over(s.OWNER_ID) for e in sums))
    frames.derived["closing:org"], frames.derived["closing:owner"] = org, owner


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
