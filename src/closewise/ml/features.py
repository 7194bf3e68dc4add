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
  `t`, each shrunk toward the org's (additive smoothing with `history_features.OWNER_PRIOR` pseudo-deals:
  the posterior mean of a beta-binomial, Efron & Morris' empirical Bayes in its simplest form);
- the calendar: days from `t` to the end of its fiscal quarter. Quarter ends move wins: deals due just
  after a quarter ends are pulled into its last days, so on a quarter's first days the late-stage deals
  still open are the ones that were not pulled, and they win less often than the same deals a month later
  (on the 100,000-deal demo org, deals in negotiation on a quarter's first day won ~0.43 of the time against
  ~0.52 on the first day of its second month). The win model needs the date's place in the quarter to
  learn that; the timing model reads it too (`ml.timing_model`).

The history pieces (every cumulative count, read with an as-of join) are in `ml.history_features`.
`OrgFrames.known_at(t)` gives the frames as they stood at `t`; features at `t` are the same from either
(tested).

Labels and training sets are in `ml.training_set`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshots_lazy
from closewise.domain.enums import ForecastCategory, OpportunityStatus
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput
from closewise.ml import history_features as hf
from closewise.ml.frames import OrgFrames

_CATEGORY_RANK: Final = {
    ForecastCategory.PIPELINE.value: 0.0,
    ForecastCategory.BEST_CASE.value: 1.0,
    ForecastCategory.COMMIT.value: 2.0,
}
_OPEN: Final = OpportunityStatus.OPEN.value

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
    "days_to_quarter_end": "{value:.0f} days to the fiscal quarter's end",
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



def deal_features(frames: OrgFrames, as_of: datetime) -> pl.DataFrame:
    """`features_at` for one date."""
    return features_at(frames, [as_of])


def features_at(frames: OrgFrames, as_ofs: Sequence[datetime], *, sample_rate: float = 1.0) -> pl.DataFrame:
    """One row per (as-of date, deal open then): `as_of`, `id`, the `CONTEXT` columns and `FEATURES`, sorted
    by `as_of`, `id`. Numeric features are Float64 (null where unknown), `segment` a string. With
    `sample_rate` < 1, only the deals `sampled` at that rate get rows (the org-level pieces, stage norms and
    owners' records, still read every deal). Dates computed before on the same `frames` are read from its
    `feature_cache`."""
    dates = sorted({naive_utc(day) for day in as_ofs})
    if not dates:
        raise InvalidInput("features need at least one as-of date")
    cache = frames.feature_cache
    missing = [day for day in dates if (day, sample_rate) not in cache]
    if missing:
        computed = _features_at(frames, missing, sample_rate)
        parts = computed.partition_by(s.AS_OF, as_dict=True, maintain_order=True)
        for day in missing:
            cache[day, sample_rate] = parts.get((day,), computed.clear())
    return pl.concat([cache[day, sample_rate] for day in dates])


def days_to_quarter_end(as_of: pl.Expr, start_month: int) -> pl.Expr:
    """Days (fractional) from each instant to the end of its fiscal quarter (the next quarter's first instant),
    for a fiscal year starting in `start_month`."""
    index = as_of.dt.year().cast(pl.Int64) * 12 + as_of.dt.month().cast(pl.Int64) - start_month
    boundary = index - index.mod(3) + 3 + start_month - 1  # the next quarter's first month, as year * 12 + month0
    first = pl.datetime(boundary // 12, boundary.mod(12) + 1, 1, time_unit="us")
    return (first - as_of).dt.total_microseconds().cast(pl.Float64) / 86_400_000_000


def sampled(ids: pl.Expr, rate: float) -> pl.Expr:
    """Whether a deal id falls in a deterministic sample of `rate` (Knuth's multiplicative hash of the id):
    the same deals at every date and every call, and a lower rate's sample inside a higher one's."""
    return ((ids.cast(pl.UInt64) * 2654435761) % (1 << 32)) < int(rate * (1 << 32))


def _features_at(frames: OrgFrames, dates: list[datetime], sample_rate: float) -> pl.DataFrame:
    # Only the open deals' states: the owners' records read closed deals from the timeline (`history_features`).
    states = snapshots_lazy(frames.timeline, dates).filter(pl.col(s.STATUS) == _OPEN)
    if sample_rate < 1.0:
        states = states.filter(sampled(pl.col(s.ID), sample_rate))
    open_ = states.collect().sort(s.ID, s.AS_OF)
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
    rows = rows.with_columns(
        pl.col("amount_corporate").clip(lower_bound=0.0).log1p().alias("log_amount"),
        days_to_quarter_end(pl.col(s.AS_OF), frames.fiscal_start_month).alias("days_to_quarter_end"),
    )
    rows = hf.with_stage_history(rows, frames, dates)
    rows = hf.with_close_date_moves(rows, frames)
    rows = hf.with_amount_history(rows, frames)
    rows = hf.with_activity(rows, frames)
    rows = hf.with_criteria(rows, frames)
    rows = hf.with_owner_record(rows, frames)
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
