"""Rep scorecards: how each rep stands this quarter and over the trailing year, as known at `as_of`.

What it measures, per rep (the owner of each deal *at* `as_of`, from `analytics.snapshots.snapshot`, so a
past date shows what a manager would have seen that day: later changes, closings and owner moves are not
known yet), amounts in the corporate currency (converted at each deal's close-date rate, `analytics.currency`):

- `quota`: the rep's quota for the quarter holding `as_of` (`quarter_quotas`); `won_quarter` (amount) and
  `won_quarter_count`: deals won from the quarter's first day up to `as_of`; `attainment` = won_quarter ÷
  quota (null without a quota);
- over the trailing `trailing_days` (365) before `as_of` (closed in `(as_of - 365 days, as_of]`):
  `won_12m`, `won_12m_count`, `closed_12m` (won, lost or no decision), `win_rate` = won ÷ closed (null when
  nothing closed), `average_won` = won amount ÷ won count, `median_cycle_days` = the median of the days from
  creation to winning of those wins;
- `open_pipeline` and `open_deals`: every deal open at `as_of`; `pipeline_quarter`: the open deals whose
  expected close date lies in the quarter (overdue ones included: they are still this quarter's unless
  moved); `remaining_quota` = max(quota - won_quarter, 0); `coverage` = pipeline_quarter ÷ remaining_quota
  (null without a quota or with nothing left to win), the usual "3x coverage" ratio;
- `activities_30d`: completed activities the rep logged in the `activity_days` (30) before `as_of`, and their
  mix by type: `calls_30d`, `emails_30d`, `meetings_30d`, `tasks_30d`, `other_activities_30d` (which add up to
  it);
- `created_quarter` and `created_quarter_count`: the pipeline the rep created this quarter, i.e. the deals
  opened from the quarter's first day up to `as_of` (at their amount then, whatever became of them since);
- `findings` and `flagged_deals`: hygiene findings (`analytics.hygiene`, snoozes applied) on the rep's open
  deals at `as_of`;
- `slipped_deals_90d`: the rep's deals whose expected close date was moved later at least once in the
  `slip_days` (90) before `as_of`, while the deal was open (a close date set at or after the closing is CRM
  bookkeeping, not slippage, as in `analytics.slippage`);
- over the deals the rep opened in the trailing year (`analytics.rep_cohort`): `stage_conversion` = of the
  stage entries decided by `as_of` (`stage_decided`), the share that moved on (`stage_advanced`), pooled over
  the playbook's stages (each stage's own rates are in `Scorecards.stages`); `slip_rate` = the share of those
  `deals_12m` pushed out at least once while open (`pushed_deals_12m`);
- forecast accuracy (`analytics.rep_accuracy`): over the rep's calls for periods that ended in the trailing
  year and in which they won something (`forecast_calls`), `forecast_mape` (mean absolute percentage error of
  the final commit against what they won), `forecast_bias` (median signed error: positive called high) and
  `forecast_label` (sandbagger, happy ears or accurate, as the forecast call labels them);
- the trend over the last `trend_quarters` (6) fiscal quarters (`analytics.rep_trend`): `Scorecards.trend`.

`scorecards` computes them all once; its `total` holds the same figures over a group of reps' deals together:
ratios from the summed parts (a team's win rate is its wins over its closed deals, not the mean of the reps'
rates) and the medians (cycle, forecast bias) over all the team's wins and calls. `rep_scorecards` and
`team_total` are its two halves. The windows follow the conventions of CRM scorecards (Salesforce's and HubSpot's
"trailing twelve months" win rate and sales cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from closewise.analytics import rep_trend
from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.rep_accuracy import forecast_label, scored_calls
from closewise.analytics.rep_cohort import CohortFacts, cohort_facts
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import ActivityType, ChangeField, OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput

USER_ID: Final = "user_id"
MIX_COLUMNS: Final = ("calls_30d", "emails_30d", "meetings_30d", "tasks_30d", "other_activities_30d")
SCORECARD_COLUMNS: Final = (
    USER_ID, "quota", "won_quarter", "won_quarter_count", "attainment", "won_12m", "won_12m_count", "closed_12m",
    "win_rate", "average_won", "median_cycle_days", "open_pipeline", "open_deals", "pipeline_quarter",
    "remaining_quota", "coverage", "created_quarter", "created_quarter_count", "stage_decided", "stage_advanced",
    "stage_conversion", "deals_12m", "pushed_deals_12m", "slip_rate", "forecast_calls", "forecast_mape",
    "forecast_bias", "forecast_label", "activities_30d", *MIX_COLUMNS, "findings", "flagged_deals",
    "slipped_deals_90d",
)
STAGE_CONVERSION_COLUMNS: Final = (USER_ID, s.STAGE, "order", "entered", "advanced", "pending", "conversion_rate")
QUOTA_SCHEMA: Final = {USER_ID: pl.Int64(), "quota": pl.Float64()}

_WON: Final = OpportunityStatus.WON.value
_OPEN: Final = OpportunityStatus.OPEN.value
_CORPORATE: Final = rep_trend.AMOUNT
_DAY_US: Final = 86_400_000_000
_MIX: Final = {ActivityType.CALL.value: "calls_30d", ActivityType.EMAIL.value: "emails_30d",
               ActivityType.MEETING.value: "meetings_30d", ActivityType.TASK.value: "tasks_30d"}
_COUNTS: Final = ("won_quarter_count", "won_12m_count", "closed_12m", "open_deals", "created_quarter_count",
                  "stage_decided", "stage_advanced", "deals_12m", "pushed_deals_12m", "forecast_calls",
                  "activities_30d", *MIX_COLUMNS, "findings", "flagged_deals", "slipped_deals_90d")
_SUMS: Final = ("won_quarter", "won_12m", "open_pipeline", "pipeline_quarter", "created_quarter")


@dataclass(frozen=True)
class ScorecardWindows:
    """The look-back windows, in days."""

    trailing_days: int = 365
    activity_days: int = 30
    slip_days: int = 90
    trend_quarters: int = 6  # quarters, not days: how far back the trend goes, the current quarter included

    def __post_init__(self) -> None:
        for name in ("trailing_days", "activity_days", "slip_days", "trend_quarters"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", where="scorecard windows")


@dataclass(frozen=True)
class ScorecardInputs:
    """Everything a scorecard reads, as frames.

    `opportunities`: the current rows (`analytics.schema`); `timeline`: `analytics.snapshots.build_timeline`'s
    of them; `changes`: the change log; `stages`: the playbook's stages (`key`, `order`); `activities`:
    `owner_id`, `type`, `occurred_at`, `completed`; `findings`: hygiene findings at `as_of` (`id`, `code`);
    `quotas`: `quarter_quotas`'s for the quarter holding `as_of` (`user_id`, `quota` in the corporate
    currency); `trend_quotas`: the same for each quarter of the trend (`user_id`, `period_start`, `quota`);
    `submissions`: forecast calls (`db.submissions.load_submissions`'s columns); `rates`: currency rates
    (`analytics.currency`); `calendar`: the fiscal calendar the calls' periods are named in.
    """

    opportunities: pl.DataFrame
    timeline: pl.DataFrame
    changes: pl.DataFrame
    stages: pl.DataFrame
    activities: pl.DataFrame
    findings: pl.DataFrame
    quotas: pl.DataFrame
    trend_quotas: pl.DataFrame
    submissions: pl.DataFrame
    rates: pl.DataFrame
    corporate: str
    calendar: FiscalCalendar


@dataclass(frozen=True)
class Scorecards:
    """`scorecards`' answer. `stages` and `trend` hold a row per rep asked for (in that order) and per stage or
    quarter, then the total's rows (`user_id` null); `calls` the scored forecast calls of those reps."""

    reps: pl.DataFrame  # SCORECARD_COLUMNS
    total: dict[str, Any]
    stages: pl.DataFrame  # STAGE_CONVERSION_COLUMNS
    trend: pl.DataFrame  # analytics.rep_trend.TREND_COLUMNS
    calls: pl.DataFrame  # analytics.rep_accuracy.CALL_COLUMNS


def scorecards(
    inputs: ScorecardInputs,
    *,
    reps: pl.Series,
    as_of: datetime,
    quarter: Period,
    windows: ScorecardWindows | None = None,
) -> Scorecards:
    """The scorecard of each rep id in `reps` and of them together, their stage conversion and their trend (see
    the module header). A rep with no deals has zero counts and amounts, and null ratios."""
    spans = windows or ScorecardWindows()
    ids = reps.cast(pl.Int64)
    members = ids.implode()
    deals = _deals(inputs, as_of)
    quarters = rep_trend.trend_quarters(inputs.calendar, as_of, spans.trend_quarters)
    since = naive_utc(as_of) - timedelta(days=spans.trailing_days)
    first = min(midnight(quarters[0].start), since)
    calls = scored_calls(inputs.submissions.filter(pl.col(USER_ID).is_in(members)), inputs.timeline, inputs.rates,
                         corporate=inputs.corporate, calendar=inputs.calendar, as_of=as_of, since=first)
    cohort = cohort_facts(inputs.opportunities, inputs.changes, inputs.stages, as_of=as_of,
                          window_days=spans.trailing_days)
    ended_since = (pl.col("period_end").cast(s.TIMESTAMP) + pl.duration(days=1)) > since  # ended in the window
    facts = _facts(inputs, deals, as_of, quarter, spans, cohort, calls.filter(ended_since))
    table = pl.DataFrame({USER_ID: ids}).join(facts.group_by(USER_ID).agg(_sums()), on=USER_ID, how="left",
                                              maintain_order="left")
    cards = _ratios(table.join(inputs.quotas, on=USER_ID, how="left", maintain_order="left"))
    together = facts.filter(pl.col(USER_ID).is_in(members)).select(_sums())
    quota = inputs.quotas.filter(pl.col(USER_ID).is_in(members))
    total = _ratios(together.with_columns(
        pl.lit(None, dtype=pl.Int64).alias(USER_ID),
        pl.lit(float(quota["quota"].sum()) if quota.height else None, dtype=pl.Float64).alias("quota"),
    )).row(0, named=True)
    trend = rep_trend.rep_trend(deals, inputs.trend_quotas, calls, reps=ids, quarters=quarters, as_of=as_of)
    return Scorecards(reps=cards, total=total, stages=_stage_table(cohort, inputs.stages, ids),
                      trend=pl.concat([trend, rep_trend.group_trend(trend)]), calls=calls)


def rep_scorecards(
    inputs: ScorecardInputs,
    *,
    reps: pl.Series,
    as_of: datetime,
    quarter: Period,
    windows: ScorecardWindows | None = None,
) -> pl.DataFrame:
    """One row per rep id in `reps` (in that order), `SCORECARD_COLUMNS` (`scorecards(...).reps`)."""
    return scorecards(inputs, reps=reps, as_of=as_of, quarter=quarter, windows=windows).reps


def team_total(
    inputs: ScorecardInputs,
    *,
    reps: pl.Series,
    as_of: datetime,
    quarter: Period,
    windows: ScorecardWindows | None = None,
) -> dict[str, Any]:
    """The scorecard of the reps in `reps` taken together (`scorecards(...).total`); `user_id` is None."""
    return scorecards(inputs, reps=reps, as_of=as_of, quarter=quarter, windows=windows).total


def quarter_quotas(quotas: pl.DataFrame, quarter: Period, rates: pl.DataFrame, *, corporate: str) -> pl.DataFrame:
    """Each user's quota for `quarter`, in the corporate currency (converted at the period's start):
    `user_id`, `quota`. A user's row for exactly the quarter wins; without one, the user's rows of shorter
    periods inside the quarter are added up (months), leaving out any row lying inside another of them.
    Team quotas (no user) are not a rep's. `quotas` has `user_id`, `period_start`, `period_end` (inclusive),
    `amount`, `currency`."""
    inside = quotas.filter(pl.col(USER_ID).is_not_null(), pl.col("period_start") >= quarter.start,
                           pl.col("period_end") <= quarter.last_day)
    if inside.height == 0:
        return pl.DataFrame(schema=QUOTA_SCHEMA)
    inside = to_corporate(inside, rates, corporate=corporate, on="period_start", into="_v").with_row_index("_row")
    exact = (pl.col("period_start") == quarter.start) & (pl.col("period_end") == quarter.last_day)
    has_exact = inside.filter(exact)[USER_ID].unique().implode()
    other = inside.select(USER_ID, pl.col("_row").alias("_o"), pl.col("period_start").alias("_os"),
                          pl.col("period_end").alias("_oe"))
    same_dates = (pl.col("_os") == pl.col("period_start")) & (pl.col("_oe") == pl.col("period_end"))
    nested = inside.join(other, on=USER_ID).filter(
        pl.col("_o") != pl.col("_row"), pl.col("_os") <= pl.col("period_start"), pl.col("_oe") >= pl.col("period_end"),
        # Of two rows with the same dates, the first stays.
        ~same_dates | (pl.col("_o") < pl.col("_row")),
    )["_row"].implode()
    chosen = inside.filter(
        pl.when(pl.col(USER_ID).is_in(has_exact)).then(exact).otherwise(~pl.col("_row").is_in(nested)))
    return chosen.group_by(USER_ID).agg(pl.col("_v").sum().alias("quota")).sort(USER_ID)


# --- internals -------------------------------------------------------------------------------------------


def _deals(inputs: ScorecardInputs, as_of: datetime) -> pl.DataFrame:
    """Every deal as it stood at `as_of`, with its amount in the corporate currency."""
    state = snapshot(inputs.timeline, as_of).select(s.ID, s.OWNER_ID, s.STATUS, s.AMOUNT, s.CURRENCY,
                                                    s.CLOSE_DATE, s.CREATED_AT, s.CLOSED_AT)
    return to_corporate(state, inputs.rates, corporate=inputs.corporate, into=_CORPORATE).with_columns(
        pl.col(_CORPORATE).fill_null(0.0))


def _facts(
    inputs: ScorecardInputs, deals: pl.DataFrame, as_of: datetime, quarter: Period, windows: ScorecardWindows,
    cohort: CohortFacts, calls: pl.DataFrame,
) -> pl.DataFrame:
    """One row per counted thing (a deal, an activity, a stage entry, a forecast call), with the per-rep
    amounts and counts `_sums` adds up and the cycle days and call errors `_sums` takes the median of."""
    at = naive_utc(as_of)
    q_start, q_end = midnight(quarter.start), midnight(quarter.end)
    since = at - timedelta(days=windows.trailing_days)
    closed = pl.col(s.STATUS) != _OPEN
    won = pl.col(s.STATUS) == _WON
    in_quarter = won & (pl.col(s.CLOSED_AT) >= q_start) & (pl.col(s.CLOSED_AT) <= at) & (pl.col(s.CLOSED_AT) < q_end)
    in_year = closed & (pl.col(s.CLOSED_AT) > since) & (pl.col(s.CLOSED_AT) <= at)
    is_open = pl.col(s.STATUS) == _OPEN
    due = is_open & (pl.col(s.CLOSE_DATE) >= quarter.start) & (pl.col(s.CLOSE_DATE) < quarter.end)
    opened = (pl.col(s.CREATED_AT) >= q_start) & (pl.col(s.CREATED_AT) <= at) & (pl.col(s.CREATED_AT) < q_end)
    slipped = _slipped(inputs.changes, deals, at, windows.slip_days)
    found = inputs.findings.group_by("id").agg(pl.len().alias("_n"))
    amount = pl.col(_CORPORATE)
    per_deal = (
        deals.join(slipped, on=s.ID, how="left").join(found, on=s.ID, how="left")
        .with_columns(
            pl.col("_slipped").fill_null(value=False), pl.col("_n").fill_null(0).cast(pl.Int64),
        )
        .select(
            pl.col(s.OWNER_ID).alias(USER_ID),
            pl.when(in_quarter).then(amount).otherwise(0.0).alias("won_quarter"),
            in_quarter.cast(pl.Int64).alias("won_quarter_count"),
            pl.when(in_year & won).then(amount).otherwise(0.0).alias("won_12m"),
            (in_year & won).cast(pl.Int64).alias("won_12m_count"),
            in_year.cast(pl.Int64).alias("closed_12m"),
            pl.when(in_year & won)
            .then((pl.col(s.CLOSED_AT) - pl.col(s.CREATED_AT)).dt.total_microseconds() / _DAY_US)
            .alias("_cycle_days"),
            pl.when(is_open).then(amount).otherwise(0.0).alias("open_pipeline"),
            is_open.cast(pl.Int64).alias("open_deals"),
            pl.when(due).then(amount).otherwise(0.0).alias("pipeline_quarter"),
            pl.when(opened).then(amount).otherwise(0.0).alias("created_quarter"),
            opened.cast(pl.Int64).alias("created_quarter_count"),
            pl.lit(0, dtype=pl.Int64).alias("activities_30d"),
            pl.when(is_open).then(pl.col("_n")).otherwise(0).alias("findings"),
            (is_open & (pl.col("_n") > 0)).cast(pl.Int64).alias("flagged_deals"),
            pl.col("_slipped").cast(pl.Int64).alias("slipped_deals_90d"),
        )
    )
    activity_since = at - timedelta(days=windows.activity_days)
    done = inputs.activities.filter(
        pl.col("occurred_at") > activity_since, pl.col("occurred_at") <= at,
        pl.col("completed").fill_null(value=True), pl.col(s.OWNER_ID).is_not_null(),
    )
    kind = pl.col("type").fill_null("").str.to_lowercase()
    per_activity = done.select(
        pl.col(s.OWNER_ID).cast(pl.Int64).alias(USER_ID), pl.lit(1, dtype=pl.Int64).alias("activities_30d"),
        *((kind == value).cast(pl.Int64).alias(name) for value, name in _MIX.items()),
        (~kind.is_in(list(_MIX))).cast(pl.Int64).alias("other_activities_30d"),
    )
    per_entry = cohort.stages.select(USER_ID, (pl.col("entered") - pl.col("pending")).alias("stage_decided"),
                                     pl.col("advanced").alias("stage_advanced"))
    per_cohort_deal = cohort.deals.select(USER_ID, pl.lit(1, dtype=pl.Int64).alias("deals_12m"),
                                          pl.col("pushed").cast(pl.Int64).alias("pushed_deals_12m"))
    per_call = calls.filter(pl.col("pct_error").is_not_null()).select(
        USER_ID, pl.lit(1, dtype=pl.Int64).alias("forecast_calls"), pl.col("pct_error").abs().alias("_abs_error"),
        pl.col("pct_error").alias("_error"))
    return pl.concat([per_deal, per_activity, per_entry, per_cohort_deal, per_call], how="diagonal_relaxed")


def _slipped(changes: pl.DataFrame, deals: pl.DataFrame, at: datetime, days: int) -> pl.DataFrame:
    """`id`, `_slipped` (true) for the deals whose close date was moved later in `(at - days, at]` while open."""
    since = at - timedelta(days=days)
    as_date = {name: pl.col(name).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
               for name in (s.OLD_VALUE, s.NEW_VALUE)}
    pushes = changes.filter(
        pl.col(s.FIELD) == ChangeField.CLOSE_DATE.value, pl.col(s.CHANGED_AT) > since, pl.col(s.CHANGED_AT) <= at,
    ).filter(as_date[s.NEW_VALUE] > as_date[s.OLD_VALUE]).select(pl.col(s.OPPORTUNITY_ID).alias(s.ID), s.CHANGED_AT)
    return (
        pushes.join(deals.select(s.ID, s.CLOSED_AT), on=s.ID, how="inner")
        .filter(pl.col(s.CLOSED_AT).is_null() | (pl.col(s.CHANGED_AT) < pl.col(s.CLOSED_AT)))
        .select(s.ID).unique().with_columns(pl.lit(value=True).alias("_slipped"))
    )


def _sums() -> list[pl.Expr]:
    return [
        *(pl.col(name).sum() for name in (*_SUMS, *_COUNTS)),
        pl.col("_cycle_days").median().alias("median_cycle_days"),
        pl.col("_abs_error").sum(), pl.col("_error").median().alias("forecast_bias"),
    ]


def _stage_table(cohort: CohortFacts, stages: pl.DataFrame, reps: pl.Series) -> pl.DataFrame:
    """Every rep of `reps` × every playbook stage (zeros where their cohort never entered it), then the reps'
    totals per stage; `conversion_rate` = advanced ÷ (entered − pending)."""
    playbook = stages.select(pl.col("key").alias(s.STAGE), pl.col("order").cast(pl.Int64)).sort("order")
    grid = pl.DataFrame({USER_ID: reps}).with_row_index("_rep").join(playbook, how="cross").sort("_rep", "order")
    counts = ("entered", "advanced", "pending")
    per_rep = grid.drop("_rep").join(cohort.stages.drop("order"), on=[USER_ID, s.STAGE], how="left",
                                     maintain_order="left").with_columns(pl.col(counts).fill_null(0))
    total = per_rep.group_by(s.STAGE, "order", maintain_order=True).agg(pl.col(counts).sum()).with_columns(
        pl.lit(None, dtype=pl.Int64).alias(USER_ID))
    decided = pl.col("entered") - pl.col("pending")
    return (pl.concat([per_rep, total], how="diagonal_relaxed")
            .with_columns(pl.col(counts).cast(pl.Int64),
                          pl.when(decided > 0).then(pl.col("advanced") / decided).alias("conversion_rate"))
            .select(STAGE_CONVERSION_COLUMNS))


def _ratios(table: pl.DataFrame) -> pl.DataFrame:
    """The sums filled in (zero for reps with nothing), then the ratios from them."""
    filled = table.with_columns(
        *(pl.col(name).fill_null(0.0).round(2) for name in _SUMS),
        *(pl.col(name).fill_null(0).cast(pl.Int64) for name in _COUNTS),
        pl.col("quota").round(2),
    )
    quota, won_q = pl.col("quota"), pl.col("won_quarter")
    remaining = pl.max_horizontal(quota - won_q, pl.lit(0.0))
    return filled.with_columns(
        pl.when(quota > 0).then(won_q / quota).alias("attainment"),
        pl.when(pl.col("closed_12m") > 0).then(pl.col("won_12m_count") / pl.col("closed_12m")).alias("win_rate"),
        pl.when(pl.col("won_12m_count") > 0).then((pl.col("won_12m") / pl.col("won_12m_count")).round(2))
        .alias("average_won"),
        pl.when(quota.is_not_null()).then(remaining.round(2)).alias("remaining_quota"),
        pl.when(remaining > 0).then(pl.col("pipeline_quarter") / remaining).alias("coverage"),
        pl.col("median_cycle_days").round(1),
        pl.when(pl.col("stage_decided") > 0).then(pl.col("stage_advanced") / pl.col("stage_decided"))
        .alias("stage_conversion"),
        pl.when(pl.col("deals_12m") > 0).then(pl.col("pushed_deals_12m") / pl.col("deals_12m")).alias("slip_rate"),
        pl.when(pl.col("forecast_calls") > 0).then(pl.col("_abs_error") / pl.col("forecast_calls"))
        .alias("forecast_mape"),
        pl.col("forecast_bias").map_elements(forecast_label, return_dtype=pl.String).alias("forecast_label"),
    ).select(SCORECARD_COLUMNS)
