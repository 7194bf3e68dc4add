"""Each rep's forecast tendency: do their calls run low (sandbagging), high (happy ears) or true?

What it estimates: for every person who submitted forecast calls, the typical ratio of their **commit**
call to what they then booked, from the calls of periods that had ended by `as_of`, and a correction for
their next call.

From what, as known at `as_of`:

- the calls: `forecast_submissions` rows of kind `submission` (a manager's `adjustment` of someone else's
  number is not the person's own call) submitted by `as_of`, for periods (`2025-Q3`, `2025-08`, `2025`, read
  with the org's fiscal calendar) that ended by `as_of`;
- the outcome of a call: the person's **closed-won** in that period, `analytics.history.deal_outcomes` at
  `as_of` (deals won with `closed_at` inside the period, owned by them as of `as_of`), converted to the
  corporate currency at each deal's close-date rate (`analytics.currency`).

How:

1. Each call's ratio `r = commit / actual`. A period in which the person booked nothing gives no ratio (the
   ratio is undefined; managers, who own no deals, drop out here) and is counted in
   `periods_without_bookings`. A call that does not exceed what the caller had already won in the period
   when making it (within `floor_tolerance`, 2%: calls are rounded and currencies converted at other
   rates) is left out: nobody can commit less than is booked, so such a call only repeats the closed deals
   and says nothing about the caller's judgement of the open ones. Keeping them would pull every
   sandbagger toward 1 as the quarter's wins accumulate (the commit is censored from below at the booked
   amount).
2. A person's **median ratio** is the median of `r` over all their calls in those periods, so every weekly
   call counts once and a period weighs by its number of calls (all quarters have the same Mondays). With
   `weighting="late"` each call weighs `0.5 + progress` (progress = the share of its period elapsed when
   it was made, 0 to 1), a weighted median that listens more to the calls that drive the quarter's end.
   The median rather than the mean: early-quarter calls are noisy and one freak quarter (a deal slipping
   out, a whale landing) must not flip a label.
3. **Label**: `sandbagger` below 0.92, `happy_ears` above 1.10, else `accurate` (settings). The thresholds
   are the demo's (docs/demo.md) and the common rule of thumb that a call within ~10% of the outcome is
   good; `periods` says how much history the label stands on.
4. **Correction**: `corrected = submitted / r̃` where `r̃ = exp(n/(n + k) · ln r)` is the median ratio
   shrunk toward 1 (no bias) in log space, `n` the periods behind it and `k` (`prior_periods`, default 2)
   the weight of the prior: with one period the correction goes a third of the way, with eight 80%. This is
   the partial-pooling / credibility form (Bühlmann credibility `Z = n / (n + k)`; Gelman et al., *Bayesian
   Data Analysis*, ch. 5) applied to the log ratio.

The ratio is commit / actual, so an overall under-call of the organisation shows up in every rep's number;
that is intended (a leader corrects each call as it comes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.history import deal_outcomes
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput

SUBMISSION_KIND: Final = "submission"
_VALUE: Final = "won_value"

RATIO_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_id": pl.Int64(),
    "period": pl.String(),
    "submitted_at": pl.Datetime("us"),
    "progress": pl.Float64(),
    "commit": pl.Float64(),
    "best_case": pl.Float64(),
    "booked_before": pl.Float64(),
    "actual": pl.Float64(),
    "ratio": pl.Float64(),
}
BIAS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_id": pl.Int64(),
    "label": pl.String(),
    "median_ratio": pl.Float64(),
    "shrunk_ratio": pl.Float64(),
    "periods": pl.Int64(),
    "calls": pl.Int64(),  # calls the median stands on (booked periods, above what was already won)
    "periods_without_bookings": pl.Int64(),
    "median_best_case_ratio": pl.Float64(),
}


class BiasLabel(StrEnum):
    SANDBAGGER = "sandbagger"
    HAPPY_EARS = "happy_ears"
    ACCURATE = "accurate"


@dataclass(frozen=True)
class RepBiasSettings:
    sandbagger_below: float = 0.92
    happy_ears_above: float = 1.10
    prior_periods: float = 2.0  # k: periods' worth of weight on "no bias"
    min_periods: int = 1  # periods with a ratio a person needs to get a row
    weighting: Literal["equal", "late"] = "equal"
    floor_tolerance: float = 0.02  # a call within this share above what was already booked commits nothing more

    def __post_init__(self) -> None:
        if not 0 < self.sandbagger_below <= 1 <= self.happy_ears_above:
            raise InvalidInput("thresholds must satisfy 0 < sandbagger_below <= 1 <= happy_ears_above")
        if self.prior_periods < 0 or self.min_periods < 1:
            raise InvalidInput("prior_periods must be >= 0 and min_periods >= 1")


def call_ratios(
    submissions: pl.DataFrame,
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    *,
    as_of: datetime,
    calendar: FiscalCalendar,
    rates: pl.DataFrame,
    corporate: str,
) -> pl.DataFrame:
    """Every own call of a period ended by `as_of`, with the caller's closed-won there: RATIO_SCHEMA.

    `submissions`: `user_id`, `period`, `submitted_at` (naive UTC), `commit`, `best_case`, optionally
    `kind` (`db.submissions.load_submissions`); `opportunities` and `changes` as `analytics.schema` frames.
    `ratio` is null where `actual` is 0. Sorted by `user_id`, `submitted_at`.
    """
    at = naive_utc(as_of)
    calls = _own_calls(submissions, at)
    periods = _ended_periods(calls, calendar, at)
    if calls.height == 0 or not periods:
        return pl.DataFrame(schema=RATIO_SCHEMA)
    bounds = pl.DataFrame(
        [(label, midnight(p.start), midnight(p.end)) for label, p in periods.items()],
        schema={"period": pl.String(), "_start": pl.Datetime("us"), "_end": pl.Datetime("us")},
        orient="row",
    )
    won = _won_deals(opportunities, changes, bounds, at, rates, corporate)
    actual = won.group_by("user_id", "period").agg(pl.col(_VALUE).sum().alias("actual"))
    calls = calls.join(bounds, on="period", how="inner")
    return (
        calls.with_columns(_booked_before_call(calls, won).alias("booked_before"))
        .join(actual, on=["user_id", "period"], how="left")
        .with_columns(
            pl.col("actual").fill_null(0.0),
            ((pl.col("submitted_at") - pl.col("_start")) / (pl.col("_end") - pl.col("_start")))
            .clip(0.0, 1.0)
            .alias("progress"),
        )
        .with_columns(
            pl.when(pl.col("actual") > 0).then(pl.col("commit") / pl.col("actual")).alias("ratio"),
        )
        .select(*RATIO_SCHEMA)
        .sort("user_id", "submitted_at")
    )


def rep_bias(
    submissions: pl.DataFrame,
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    *,
    as_of: datetime,
    calendar: FiscalCalendar,
    rates: pl.DataFrame,
    corporate: str,
    settings: RepBiasSettings | None = None,
) -> pl.DataFrame:
    """One row per person with enough past calls (module header): BIAS_SCHEMA, sorted by `user_id`."""
    ratios = call_ratios(
        submissions, opportunities, changes, as_of=as_of, calendar=calendar, rates=rates, corporate=corporate
    )
    return summarise(ratios, settings)


def summarise(ratios: pl.DataFrame, settings: RepBiasSettings | None = None) -> pl.DataFrame:
    """`rep_bias` from `call_ratios` output (steps 2-4 of the module header)."""
    settings = settings or RepBiasSettings()
    rows = []
    for (user_id,), calls in ratios.sort("user_id", "submitted_at").group_by("user_id", maintain_order=True):
        booked = calls.filter(
            pl.col("ratio").is_not_null(),
            pl.col("commit") > pl.col("booked_before") * (1.0 + settings.floor_tolerance),
        )
        periods = booked["period"].n_unique()
        if periods < settings.min_periods:
            continue
        weights = (
            0.5 + booked["progress"].to_numpy()
            if settings.weighting == "late"
            else np.ones(booked.height, dtype=np.float64)
        )
        ratio = weighted_median(booked["ratio"].to_numpy(), weights)
        best = weighted_median((booked["best_case"] / booked["actual"]).to_numpy(), weights)
        rows.append(
            (
                user_id,
                label_for(ratio, settings).value,
                ratio,
                shrunk_ratio(ratio, periods, prior_periods=settings.prior_periods),
                periods,
                booked.height,
                calls.filter(pl.col("actual") == 0)["period"].n_unique(),
                best,
            )
        )
    return pl.DataFrame(rows, schema=BIAS_SCHEMA, orient="row").sort("user_id")


def label_for(median_ratio: float, settings: RepBiasSettings | None = None) -> BiasLabel:
    """`sandbagger` below the low threshold, `happy_ears` above the high one, else `accurate`."""
    settings = settings or RepBiasSettings()
    if median_ratio < settings.sandbagger_below:
        return BiasLabel.SANDBAGGER
    if median_ratio > settings.happy_ears_above:
        return BiasLabel.HAPPY_EARS
    return BiasLabel.ACCURATE


def shrunk_ratio(median_ratio: float, periods: int, *, prior_periods: float = 2.0) -> float:
    """`exp(n / (n + k) · ln r)`: the ratio pulled toward 1 by a prior worth `k` periods (step 4)."""
    if not math.isfinite(median_ratio) or median_ratio <= 0:
        raise InvalidInput(f"a call ratio must be a positive number, got {median_ratio}")
    if periods <= 0:
        return 1.0
    weight = periods / (periods + prior_periods)
    return math.exp(weight * math.log(median_ratio))


def corrected(submitted: float, median_ratio: float, periods: int, *, prior_periods: float = 2.0) -> float:
    """A call with the caller's bias taken out: `submitted / shrunk_ratio(...)` (step 4)."""
    return submitted / shrunk_ratio(median_ratio, periods, prior_periods=prior_periods)


def weighted_median(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> float:
    """The smallest value at which the cumulative weight reaches half the total; with equal weights and an
    even count, the mean of the two middle values (the ordinary median)."""
    if values.size == 0:
        raise InvalidInput("no values to take the median of")
    if np.all(weights == weights[0]):
        return float(np.median(values))
    order = np.argsort(values, kind="mergesort")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


# --- internals -------------------------------------------------------------------------------------------


def _own_calls(submissions: pl.DataFrame, at: datetime) -> pl.DataFrame:
    for name in ("user_id", "period", "submitted_at", "commit", "best_case"):
        if name not in submissions.columns:
            raise InvalidInput(f"column {name!r} is missing", where="submissions frame")
    own = submissions
    if "kind" in own.columns:
        own = own.filter(pl.col("kind") == SUBMISSION_KIND)
    return own.filter(pl.col("submitted_at") <= at, pl.col("user_id").is_not_null()).select(
        pl.col("user_id").cast(pl.Int64),
        pl.col("period").cast(pl.String),
        pl.col("submitted_at").cast(pl.Datetime("us")),
        pl.col("commit").cast(pl.Float64),
        pl.col("best_case").cast(pl.Float64),
    )


def _ended_periods(calls: pl.DataFrame, calendar: FiscalCalendar, at: datetime) -> dict[str, Period]:
    ended: dict[str, Period] = {}
    for label in calls["period"].unique().sort().to_list():
        try:
            period = calendar.parse(label)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, where="forecast_submissions.period") from None
        if midnight(period.end) <= at:
            ended[label] = period
    return ended


def _won_deals(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    bounds: pl.DataFrame,
    at: datetime,
    rates: pl.DataFrame,
    corporate: str,
) -> pl.DataFrame:
    """Deals won inside one of the periods of `bounds` (as known at `at`): `user_id` (owner as of `at`),
    `period`, `closed_at` and the corporate value."""
    first, last = bounds["_start"].min(), bounds["_end"].max()
    outcomes = deal_outcomes(opportunities, changes, as_of=at).filter(
        pl.col(s.STATUS) == OpportunityStatus.WON.value,
        pl.col(s.OWNER_ID).is_not_null(),
        pl.col(s.CLOSED_AT) >= first,
        pl.col(s.CLOSED_AT) < last,
    )
    won = to_corporate(outcomes.with_columns(pl.col(s.AMOUNT).fill_null(0.0)), rates, corporate=corporate, into=_VALUE)
    return won.join_where(bounds, pl.col(s.CLOSED_AT) >= pl.col("_start"), pl.col(s.CLOSED_AT) < pl.col("_end")).select(
        pl.col(s.OWNER_ID).alias("user_id"), "period", s.CLOSED_AT, _VALUE
    )


def _booked_before_call(calls: pl.DataFrame, won: pl.DataFrame) -> pl.Series:
    """Per call (in row order), what its caller had won in its period by the time of the call."""
    keyed = calls.select("user_id", "period", "submitted_at").with_row_index("_call")
    before = (
        keyed.join(won, on=["user_id", "period"], how="inner")
        .filter(pl.col(s.CLOSED_AT) <= pl.col("submitted_at"))
        .group_by("_call")
        .agg(pl.col(_VALUE).sum().alias("_before"))
    )
    return keyed.join(before, on="_call", how="left").sort("_call")["_before"].fill_null(0.0)

