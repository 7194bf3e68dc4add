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
- `activities_30d`: completed activities the rep logged in the `activity_days` (30) before `as_of`;
- `findings` and `flagged_deals`: hygiene findings (`analytics.hygiene`, snoozes applied) on the rep's open
  deals at `as_of`;
- `slipped_deals_90d`: the rep's deals whose expected close date was moved later at least once in the
  `slip_days` (90) before `as_of`, while the deal was open (a close date set at or after the closing is CRM
  bookkeeping, not slippage, as in `analytics.slippage`).

`team_total` computes the same figures over a group of reps' deals together: ratios from the summed parts
(a team's win rate is its wins over its closed deals, not the mean of the reps' rates) and the median cycle
over all the team's wins. The windows follow the conventions of CRM scorecards (Salesforce's and HubSpot's
"trailing twelve months" win rate and sales cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.periods import Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput

USER_ID: Final = "user_id"
SCORECARD_COLUMNS: Final = (
    USER_ID, "quota", "won_quarter", "won_quarter_count", "attainment", "won_12m", "won_12m_count", "closed_12m",
    "win_rate", "average_won", "median_cycle_days", "open_pipeline", "open_deals", "pipeline_quarter",
    "remaining_quota", "coverage", "activities_30d", "findings", "flagged_deals", "slipped_deals_90d",
)
QUOTA_SCHEMA: Final = {USER_ID: pl.Int64(), "quota": pl.Float64()}

_WON: Final = OpportunityStatus.WON.value
_OPEN: Final = OpportunityStatus.OPEN.value
_CORPORATE: Final = "_amount"
_DAY_US: Final = 86_400_000_000
_COUNTS: Final = ("won_quarter_count", "won_12m_count", "closed_12m", "open_deals", "activities_30d", "findings",
                  "flagged_deals", "slipped_deals_90d")
_SUMS: Final = ("won_quarter", "won_12m", "open_pipeline", "pipeline_quarter")


@dataclass(frozen=True)
class ScorecardWindows:
    """The look-back windows, in days."""

    trailing_days: int = 365
    activity_days: int = 30
    slip_days: int = 90

    def __post_init__(self) -> None:
        for name in ("trailing_days", "activity_days", "slip_days"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", where="scorecard windows")


@dataclass(frozen=True)
class ScorecardInputs:
    """Everything a scorecard reads, as frames.

    `timeline`: `analytics.snapshots.build_timeline`'s; `changes`: the change log (`analytics.schema`);
    `activities`: `owner_id`, `occurred_at`, `completed`; `findings`: hygiene findings at `as_of` (`id`,
    `code`); `quotas`: `quarter_quotas`'s (`user_id`, `quota` in the corporate currency); `rates`: currency
    rates (`analytics.currency`).
    """

    timeline: pl.DataFrame
    changes: pl.DataFrame
    activities: pl.DataFrame
    findings: pl.DataFrame
    quotas: pl.DataFrame
    rates: pl.DataFrame
    corporate: str


def rep_scorecards(
    inputs: ScorecardInputs,
    *,
    reps: pl.Series,
    as_of: datetime,
    quarter: Period,
    windows: ScorecardWindows | None = None,
) -> pl.DataFrame:
    """One row per rep id in `reps` (in that order), `SCORECARD_COLUMNS`; a rep with no deals has zero
    counts and amounts, and null ratios."""
    deals = _deals(inputs, as_of)
    facts = _facts(inputs, deals, as_of, quarter, windows or ScorecardWindows())
    ids = pl.DataFrame({USER_ID: reps.cast(pl.Int64)})
    table = ids.join(facts.group_by(USER_ID).agg(_sums()), on=USER_ID, how="left", maintain_order="left")
    return _ratios(table.join(inputs.quotas, on=USER_ID, how="left", maintain_order="left"))


def team_total(
    inputs: ScorecardInputs,
    *,
    reps: pl.Series,
    as_of: datetime,
    quarter: Period,
    windows: ScorecardWindows | None = None,
) -> dict[str, float | int | None]:
    """The scorecard of the reps in `reps` taken together (see the module header); `user_id` is None."""
    members = reps.cast(pl.Int64).implode()
    deals = _deals(inputs, as_of)
    facts = _facts(inputs, deals, as_of, quarter, windows or ScorecardWindows())
    together = facts.filter(pl.col(USER_ID).is_in(members)).select(_sums())
    quota = inputs.quotas.filter(pl.col(USER_ID).is_in(members))
    total = together.with_columns(
        pl.lit(None, dtype=pl.Int64).alias(USER_ID),
        pl.lit(float(quota["quota"].sum()) if quota.height else None, dtype=pl.Float64).alias("quota"),
    )
    return _ratios(total).row(0, named=True)


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
    inputs: ScorecardInputs, deals: pl.DataFrame, as_of: datetime, quarter: Period, windows: ScorecardWindows
) -> pl.DataFrame:
    """One row per counted thing (a deal, an activity, a finding), with the per-rep amounts and 0/1 flags
    `_sums` adds up and the cycle days `_sums` takes the median of."""
    at = naive_utc(as_of)
    q_start, q_end = midnight(quarter.start), midnight(quarter.end)
    since = at - timedelta(days=windows.trailing_days)
    closed = pl.col(s.STATUS) != _OPEN
    won = pl.col(s.STATUS) == _WON
    in_quarter = won & (pl.col(s.CLOSED_AT) >= q_start) & (pl.col(s.CLOSED_AT) <= at) & (pl.col(s.CLOSED_AT) < q_end)
    in_year = closed & (pl.col(s.CLOSED_AT) > since) & (pl.col(s.CLOSED_AT) <= at)
    is_open = pl.col(s.STATUS) == _OPEN
    due = is_open & (pl.col(s.CLOSE_DATE) >= quarter.start) & (pl.col(s.CLOSE_DATE) < quarter.end)
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
    per_activity = pl.DataFrame({USER_ID: done[s.OWNER_ID].cast(pl.Int64)}).with_columns(
        pl.lit(1, dtype=pl.Int64).alias("activities_30d"))
    return pl.concat([per_deal, per_activity], how="diagonal_relaxed")


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
    ]


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
    ).select(SCORECARD_COLUMNS)
