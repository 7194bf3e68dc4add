"""Features of every open deal at an as-of date, from what was known then, and the labels to learn from.

What it computes: for each (as-of date `t`, deal open at `t`) one row of numbers describing the deal as a
sales manager would have seen it at `t` (the column list is `FEATURES`, each described in `DESCRIPTIONS`):

- its state at `t`, rebuilt from the change log (`analytics.snapshots`): stage (playbook order), CRM
  probability, forecast category (pipeline < best case < commit), next step filled, amount (log, corporate
  currency at `t`'s rates), segment, days to its expected close date;
- its history up to `t`: age, days in the current stage and that against the stage's norm (median stay of
  the stage visits finished by `t`, `analytics.history.stage_visits`), stage changes and regressions,
  close-date pushes (count, total days) and pull-ins, amount changes (count, change since creation);
- activity up to `t`: calls, emails, meetings, tasks in the last 30 days, all activities, days since the
  last one, distinct contacts engaged;
- exit criteria met by `t` when the checks are given: share of the current stage's criteria done, share of
  the earlier stages' criteria done (a stage left with criteria unmet predicts a loss);
- its owner's record up to `t`: win rate and close-date pushes per deal over the owner's deals closed by
  `t`, each shrunk toward the org's (additive smoothing with `OWNER_PRIOR` pseudo-deals: the posterior mean
  of a beta-binomial, Efron & Morris' empirical Bayes in its simplest form).

Every cumulative count is read with an as-of join (the last running total at or before `t`), so the cost is
the log's size plus the examples', never their product. `OrgFrames.known_at(t)` gives the frames as they
stood at `t`; features at `t` are the same from either (tested).

Labels and training sets are in `ml.training_set`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshots_lazy
from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus
from closewise.errors import InvalidInput
from closewise.ml.frames import OrgFrames

OWNER_PRIOR: Final = 10.0
ACTIVITY_WINDOW_DAYS: Final = 30
ACTIVITY_TYPES: Final = ("call", "email", "meeting", "task")
_CATEGORY_RANK: Final = {
    ForecastCategory.PIPELINE.value: 0.0,
    ForecastCategory.BEST_CASE.value: 1.0,
    ForecastCategory.COMMIT.value: 2.0,
}
_OPEN: Final = OpportunityStatus.OPEN.value
_WON: Final = OpportunityStatus.WON.value
_DAY_US: Final = 86_400_000_000

# Feature columns in model order, with how each reads in a reason ("{value}" is the deal's value).
DESCRIPTIONS: Final[dict[str, str]] = {
    "stage_order": "stage {value:.0f} of the playbook",
    "probability": "CRM probability {value:.0f}%",
    "forecast_rank": "forecast category {category}",
    "has_next_step": "{yes_no} next step",
    "log_amount": "amount {amount}",
    "days_to_close": "expected close in {value:.0f} days",
    "age_days": "open for {value:.0f} days",
    "days_in_stage": "{value:.0f} days in its stage",
    "stage_time_ratio": "{value:.1f}x the stage's usual time",
    "stage_changes": "{value:.0f} stage changes",
    "regressions": "moved back a stage {value:.0f} times",
    "pushes": "close date pushed {value:.0f} times",
    "days_pushed": "close date pushed {value:.0f} days in all",
    "pull_ins": "close date pulled in {value:.0f} times",
    "amount_changes": "amount changed {value:.0f} times",
    "amount_change": "amount {signed_pct} since creation",
    "calls_30d": "{value:.0f} calls in 30 days",
    "emails_30d": "{value:.0f} emails in 30 days",
    "meetings_30d": "{value:.0f} meetings in 30 days",
    "tasks_30d": "{value:.0f} tasks in 30 days",
    "activities": "{value:.0f} activities in all",
    "days_since_activity": "last activity {value:.0f} days ago",
    "contacts": "{value:.0f} contacts engaged",
    "criteria_stage_share": "{pct} of this stage's exit criteria met",
    "criteria_prior_share": "{pct} of earlier stages' exit criteria met",
    "owner_win_rate": "owner wins {pct} of closed deals",
    "owner_pushes": "owner's deals pushed {value:.1f} times on average",
    "segment": "{text} segment",
}
FEATURES: Final[tuple[str, ...]] = tuple(DESCRIPTIONS)
CATEGORICAL: Final[tuple[str, ...]] = ("segment",)
KEYS: Final[tuple[str, ...]] = (s.AS_OF, s.ID)
LABELS: Final[tuple[str, ...]] = ("resolved", "won", "closed_at", "days_to_outcome", "won_amount")
# Carried beside the features for scoring, baselines and labels; never fed to a model.
CONTEXT: Final[tuple[str, ...]] = (
    s.OWNER_ID,
    "team_id",
    s.STAGE,
    s.CLOSE_DATE,
    s.FORECAST_CATEGORY,
    "amount_corporate",
)


def naive(value: datetime) -> datetime:
    return h.naive_utc(value)


def deal_features(frames: OrgFrames, as_of: datetime) -> pl.DataFrame:
    """`features_at` for one date."""
    return features_at(frames, [as_of])


def features_at(frames: OrgFrames, as_ofs: Sequence[datetime]) -> pl.DataFrame:
    """One row per (as-of date, deal open then): `as_of`, `id`, the `CONTEXT` columns and `FEATURES`, sorted
    by `as_of`, `id`. Numeric features are Float64 (null where unknown), `segment` a string."""
    dates = sorted({naive(day) for day in as_ofs})
    if not dates:
        raise InvalidInput("features need at least one as-of date")
    states = snapshots_lazy(frames.timeline, dates).collect()
    open_ = states.filter(pl.col(s.STATUS) == _OPEN).sort(s.ID, s.AS_OF)
    orders = frames.stages.select(pl.col("key").alias(s.STAGE), pl.col(h.ORDER).cast(pl.Float64).alias("stage_order"))
    rows = (
        open_.join(orders, on=s.STAGE, how="left")
        .with_columns(
            pl.col(s.AS_OF).dt.date().alias("_day"),
            h.days_between(s.CREATED_AT, s.AS_OF).alias("age_days"),
            pl.col(s.FORECAST_CATEGORY)
            .replace_strict(_CATEGORY_RANK, default=None, return_dtype=pl.Float64)
            .alias("forecast_rank"),
            (pl.col(s.NEXT_STEP).fill_null("").str.strip_chars() != "").cast(pl.Float64).alias("has_next_step"),
            pl.col(s.PROBABILITY).cast(pl.Float64).alias("probability"),
        )
        .with_columns((pl.col(s.CLOSE_DATE) - pl.col("_day")).dt.total_days().cast(pl.Float64).alias("days_to_close"))
    )
    rows = to_corporate(rows, frames.rates, corporate=frames.corporate_currency, on="_day").drop("_day")
    rows = rows.with_columns(pl.col("amount_corporate").clip(lower_bound=0.0).log1p().alias("log_amount"))
    rows = _with_stage_history(rows, frames, dates)
    rows = _with_close_date_moves(rows, frames)
    rows = _with_amount_history(rows, frames)
    rows = _with_activity(rows, frames)
    rows = _with_criteria(rows, frames)
    rows = _with_owner_record(rows, states, frames)
    if "team_id" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Int64).alias("team_id"))
    if "segment" not in rows.columns:
        rows = rows.with_columns(pl.lit("unknown").alias("segment"))
    numeric = [name for name in FEATURES if name not in CATEGORICAL]
    return (
        rows.with_columns(pl.col(numeric).cast(pl.Float64), pl.col("segment").cast(pl.String).fill_null("unknown"))
        .select(*KEYS, *CONTEXT, *FEATURES)
        .sort(*KEYS)
    )


# --- history pieces (each adds columns to the (as_of, id) rows) -------------------------------------------


def _clamped_log(frames: OrgFrames, field: ChangeField) -> pl.DataFrame:
    """One field's changes with their time clamped to the deal's creation, sorted by (id, time, log order)."""
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


def _with_stage_history(rows: pl.DataFrame, frames: OrgFrames, dates: list[datetime]) -> pl.DataFrame:
    log = _clamped_log(frames, ChangeField.STAGE)
    order = dict(zip(frames.stages["key"].to_list(), frames.stages[h.ORDER].to_list(), strict=True))
    running = log.with_columns(
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


def _stage_norms(frames: OrgFrames, dates: list[datetime]) -> pl.DataFrame:
    """Median days of the stage visits finished by each date, per stage: `as_of`, `stage`, `_norm`."""
    visits = h.stage_visits(frames.opportunities, frames.changes, frames.stages, as_of=dates[-1]).filter(
        pl.col(h.LEFT_AT).is_not_null()
    )
    pieces = [
        visits.filter(pl.col(h.LEFT_AT) <= day)
        .group_by(s.STAGE)
        .agg(pl.col(h.DAYS).median().alias("_norm"))
        .with_columns(pl.lit(day, dtype=s.TIMESTAMP).alias(s.AS_OF))
        for day in dates
    ]
    return pl.concat(pieces).select(s.AS_OF, s.STAGE, pl.col("_norm").cast(pl.Float64).clip(lower_bound=0.5))


def _with_close_date_moves(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    def as_date(name: str) -> pl.Expr:
        return pl.col(name).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)

    moves = (
        _clamped_log(frames, ChangeField.CLOSE_DATE)
        .with_columns((as_date(s.NEW_VALUE) - as_date(s.OLD_VALUE)).dt.total_days().fill_null(0).alias("_d"))
        .with_columns(
            (pl.col("_d") > 0).cum_sum().over(s.ID).cast(pl.Float64).alias("pushes"),
            pl.col("_d").clip(lower_bound=0).cum_sum().over(s.ID).cast(pl.Float64).alias("days_pushed"),
            (pl.col("_d") < 0).cum_sum().over(s.ID).cast(pl.Float64).alias("pull_ins"),
        )
    )
    rows = _as_of_join(rows, moves, ("pushes", "days_pushed", "pull_ins"))
    return rows.with_columns(pl.col("pushes", "days_pushed", "pull_ins").fill_null(0.0))


def _with_amount_history(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    log = _clamped_log(frames, ChangeField.AMOUNT).with_columns(
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("amount_changes")
    )
    # The amount a deal was created with is the first change's old value, known from creation on.
    initial = log.group_by(s.ID).agg(pl.col(s.OLD_VALUE).first().cast(pl.Float64, strict=False).alias("_initial"))
    rows = _as_of_join(rows, log, ("amount_changes",)).join(initial, on=s.ID, how="left")
    start = pl.coalesce("_initial", s.AMOUNT)
    return rows.with_columns(
        pl.col("amount_changes").fill_null(0.0),
        pl.when(start > 0).then(pl.col(s.AMOUNT) / start - 1.0).alias("amount_change"),
    ).drop("_initial")


def _with_activity(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    acts = frames.activities.filter(pl.col("opportunity_id").is_not_null()).select(
        pl.col("opportunity_id").alias(s.ID), pl.col("occurred_at").alias("_t"), "type", "contact_id"
    )
    type_counts = [f"{kind}s_30d" for kind in ACTIVITY_TYPES]
    running = acts.sort(s.ID, "_t").with_columns(
        *((pl.col("type") == kind).cum_sum().over(s.ID).cast(pl.Float64).alias(f"_{kind}") for kind in ACTIVITY_TYPES),
        pl.int_range(1, pl.len() + 1).over(s.ID).cast(pl.Float64).alias("activities"),
        (pl.col("contact_id").is_not_null() & pl.col("contact_id").is_first_distinct().over(s.ID))
        .cum_sum()
        .over(s.ID)
        .cast(pl.Float64)
        .alias("contacts"),
        pl.col("_t").alias("_last"),
    )
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


def _with_criteria(rows: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
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


def _with_owner_record(rows: pl.DataFrame, states: pl.DataFrame, frames: OrgFrames) -> pl.DataFrame:
    """Owner win rate and pushes per deal over the owner's deals closed by each date, smoothed to the org's."""
    pushes = _pushes_before_first_close(frames)
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


def day_of(value: datetime) -> date:
    return naive(value).date()
