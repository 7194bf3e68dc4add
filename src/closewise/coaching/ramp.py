"""New-hire ramp: how reps build up over their first months, each new hire against the cohort norm.

**Tenure months** are 30-day blocks from the hire date. For every rep and month `m` (1-12) the curves hold the
cumulative figures at the end of month `m`: `first_meeting`, `first_opportunity`, `first_win` (reached or not),
`opportunities` and `pipeline` (deals opened, their amount in the corporate currency), `bookings` (won amount)
and `attainment` (bookings ÷ quota over the same days, when the rep has quotas).

**Segment-fair volumes.** A rep selling enterprise deals opens fewer, bigger deals than an SMB rep; volumes are
also given as an index: the rep's figure ÷ what a ramped rep of the same segment (180+ days of tenure) opens
over the same number of days (`opportunities_index`, `pipeline_index`; 1.0 = a ramped rep's pace).

**The cohort** is the reps whose first months the data shows (hired on or after the first recorded deal); a
month is in the norm once it has ended by `as_of`. The norm at month `m` is the median (and quartiles) over
the cohort reps other than the one compared, with the share of them that had reached each milestone.

**Behind.** A new hire (under `new_hire_days`, 365, of tenure) is compared at their last completed month. They
are behind when their opportunities or pipeline index is under `behind_ratio` (half) of the cohort median, when
their attainment is under half the median, or when they have not reached a milestone that three quarters of
the cohort had by then. The behaviours they lag in compare their deals (`coaching.behaviours`) with the deals
the cohort opened in the same months of tenure: a lag is a measure at least 15% worse than the cohort's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

import polars as pl

from closewise.coaching.behaviours import VALUE

MONTH_DAYS: Final = 30
RAMPED_DAYS: Final = 180
METRICS: Final = ("opportunities", "pipeline", "bookings", "attainment", "opportunities_index", "pipeline_index")
MILESTONES: Final = ("first_meeting", "first_opportunity", "first_win")
# (measure, label, better): the behaviours a new hire is compared on.
BEHAVIOURS: Final = (
    ("days_to_first_meeting", "Days to the first meeting on a deal", "lower", "median"),
    ("contacts_engaged", "Contacts engaged per deal", "higher", "mean"),
    ("activities_per_week", "Activities per week on a deal", "higher", "median"),
    ("criteria_met_rate", "Stages left with exit criteria met", "higher", "mean"),
    ("qualification_completeness", "Qualification questions answered", "higher", "mean"),
)


@dataclass(frozen=True)
class RampOptions:
    months: int = 12
    new_hire_days: int = 365
    behind_ratio: float = 0.5
    milestone_share: float = 0.75
    lag_ratio: float = 0.15
    min_cohort: int = 3
    min_deals: int = 3


@dataclass(frozen=True)
class RampResult:
    curves: pl.DataFrame  # rep_id, month, observed, metrics..., milestones...
    norm: pl.DataFrame  # month, reps, <metric>_median/_p25/_p75, <milestone>_share
    new_hires: list[dict[str, Any]]
    cohort: list[int]
    data_start: date | None
    options: RampOptions = field(default_factory=RampOptions)


def _segment_rates(reps: pl.DataFrame, deals: pl.DataFrame, *, start: datetime, as_of: datetime) -> pl.DataFrame:
    """Per segment, what a ramped rep opens per 30 days: `segment`, `_opps_rate`, `_pipe_rate`."""
    ramped_from = reps.select(
        pl.col("id").alias("owner_id"), "segment",
        pl.max_horizontal(pl.col("hire_date").cast(pl.Datetime("us")).fill_null(pl.lit(start))
                          + pl.duration(days=RAMPED_DAYS), pl.lit(start)).alias("_from"))
    days = ramped_from.with_columns(
        ((pl.lit(as_of) - pl.col("_from")).dt.total_seconds() / 86_400).clip(lower_bound=0.0).alias("_days"))
    made = (deals.join(ramped_from, on="owner_id", how="inner").filter(pl.col("created_at") >= pl.col("_from"))
            .group_by("segment").agg(pl.len().alias("_n"), pl.col(VALUE).sum().alias("_v")))
    return (days.group_by("segment").agg(pl.col("_days").sum())
            .join(made, on="segment", how="left")
            .select("segment",
                    pl.when(pl.col("_days") > 0).then(pl.col("_n").fill_null(0) / pl.col("_days") * MONTH_DAYS)
                    .alias("_opps_rate"),
                    pl.when(pl.col("_days") > 0).then(pl.col("_v").fill_null(0.0) / pl.col("_days") * MONTH_DAYS)
                    .alias("_pipe_rate")))


def ramp_curves(reps: pl.DataFrame, deals: pl.DataFrame, activities: pl.DataFrame, quotas: pl.DataFrame, *,
                as_of: datetime, data_start: datetime, months: int = 12) -> pl.DataFrame:
    """`reps`: `id`, `hire_date`, `segment`; `deals`: `owner_id`, `created_at`, `status`, `closed_at`, `value`;
    `activities`: `owner_id`, `type`, `occurred_at`, `completed`; `quotas`: `user_id`, `period_start`,
    `period_end` (inclusive), `quota`."""
    hired = reps.filter(pl.col("hire_date").is_not_null()).select(
        pl.col("id").alias("rep_id"), "segment", pl.col("hire_date").cast(pl.Datetime("us")).alias("_hire"))
    grid = hired.join(pl.DataFrame({"month": list(range(1, months + 1))}, schema={"month": pl.Int64()}), how="cross")
    grid = grid.with_columns((pl.col("_hire") + pl.duration(days=pl.col("month") * MONTH_DAYS)).alias("_end"))
    grid = grid.with_columns((pl.col("_end") <= as_of).alias("observed"),
                             (pl.col("_hire") >= data_start).alias("_from_start"))
    own = deals.rename({"owner_id": "rep_id"})
    opened = (grid.join(own.select("rep_id", "created_at", VALUE), on="rep_id", how="inner")
              .filter(pl.col("created_at") < pl.col("_end"), pl.col("created_at") <= as_of)
              .group_by("rep_id", "month").agg(pl.len().alias("opportunities"), pl.col(VALUE).sum().alias("pipeline")))
    wins = own.filter(pl.col("status") == "won").select("rep_id", "closed_at", VALUE)
    won = (grid.join(wins, on="rep_id", how="inner")
           .filter(pl.col("closed_at") < pl.col("_end"), pl.col("closed_at") <= as_of)
           .group_by("rep_id", "month").agg(pl.len().alias("_wins"), pl.col(VALUE).sum().alias("bookings")))
    meetings = (activities.filter(pl.col("type") == "meeting", pl.col("completed").fill_null(value=True),
                                  pl.col("occurred_at") <= as_of)
                .group_by("owner_id").agg(pl.col("occurred_at").min().alias("_first_meeting"))
                .rename({"owner_id": "rep_id"}))
    quota = _quota_to_date(grid, quotas)
    table = (grid.join(opened, on=["rep_id", "month"], how="left").join(won, on=["rep_id", "month"], how="left")
             .join(meetings, on="rep_id", how="left").join(quota, on=["rep_id", "month"], how="left")
             .with_columns(pl.col("opportunities").fill_null(0), pl.col("pipeline").fill_null(0.0),
                           pl.col("_wins").fill_null(0), pl.col("bookings").fill_null(0.0))
             .with_columns((pl.col("_first_meeting") < pl.col("_end")).fill_null(value=False).alias("first_meeting"),
                           (pl.col("opportunities") > 0).alias("first_opportunity"),
                           (pl.col("_wins") > 0).alias("first_win"),
                           pl.when(pl.col("_quota") > 0).then(pl.col("bookings") / pl.col("_quota"))
                           .alias("attainment")))
    rates = _segment_rates(reps, deals, start=data_start, as_of=as_of)
    return (table.join(rates, on="segment", how="left")
            .with_columns(
                pl.when(pl.col("_opps_rate") > 0)
                .then(pl.col("opportunities") / (pl.col("_opps_rate") * pl.col("month")))
                .alias("opportunities_index"),
                pl.when(pl.col("_pipe_rate") > 0).then(pl.col("pipeline") / (pl.col("_pipe_rate") * pl.col("month")))
                .alias("pipeline_index"))
            .select("rep_id", "month", "observed", pl.col("_from_start").alias("in_cohort"), *METRICS, *MILESTONES)
            .sort("rep_id", "month"))


def _quota_to_date(grid: pl.DataFrame, quotas: pl.DataFrame) -> pl.DataFrame:
    """Quota prorated by day from the hire date to each month's end: `rep_id`, `month`, `_quota`."""
    if quotas.height == 0:
        return pl.DataFrame(schema={"rep_id": pl.Int64(), "month": pl.Int64(), "_quota": pl.Float64()})
    rows = quotas.select(pl.col("user_id").alias("rep_id"), pl.col("period_start").cast(pl.Datetime("us")).alias("_qs"),
                         (pl.col("period_end").cast(pl.Datetime("us")) + pl.duration(days=1)).alias("_qe"), "quota")
    joined = grid.select("rep_id", "month", "_hire", "_end").join(rows, on="rep_id", how="inner")
    overlap = ((pl.min_horizontal("_qe", "_end") - pl.max_horizontal("_qs", "_hire")).dt.total_seconds() / 86_400)
    span = (pl.col("_qe") - pl.col("_qs")).dt.total_seconds() / 86_400
    return (joined.with_columns((pl.col("quota") * overlap.clip(lower_bound=0.0) / span).alias("_part"))
            .group_by("rep_id", "month").agg(pl.col("_part").sum().alias("_quota")))


def cohort_norm(curves: pl.DataFrame, *, exclude: int | None = None) -> pl.DataFrame:
    """Per month: `reps` in the norm, median / p25 / p75 of each metric, the share that reached each milestone."""
    pool = curves.filter(pl.col("observed"), pl.col("in_cohort"))
    if exclude is not None:
        pool = pool.filter(pl.col("rep_id") != exclude)
    aggs: list[pl.Expr] = [pl.col("rep_id").n_unique().alias("reps")]
    for metric in METRICS:
        aggs += [pl.col(metric).median().alias(f"{metric}_median"),
                 pl.col(metric).quantile(0.25).alias(f"{metric}_p25"),
                 pl.col(metric).quantile(0.75).alias(f"{metric}_p75")]
    aggs += [pl.col(name).cast(pl.Float64).mean().alias(f"{name}_share") for name in MILESTONES]
    return pool.group_by("month").agg(aggs).sort("month")


def assess(
    reps: pl.DataFrame,
    curves: pl.DataFrame,
    behaviours: pl.DataFrame,
    *,
    as_of: datetime,
    data_start: datetime | None,
    options: RampOptions | None = None,
) -> RampResult:
    """Each new hire at their last completed month against the cohort (module header). `reps`: `id`, `name`,
    `hire_date`; `behaviours`: `coaching.behaviours.deal_behaviours` with the owner's `hire_date`."""
    opts = options or RampOptions()
    norm = cohort_norm(curves)
    cohort = sorted(curves.filter(pl.col("in_cohort"))["rep_id"].unique().to_list())
    new = reps.filter(pl.col("hire_date").is_not_null(),
                      pl.col("hire_date") > (as_of - timedelta(days=opts.new_hire_days)).date()).sort("hire_date", "id")
    hires: list[dict[str, Any]] = []
    for rep in new.iter_rows(named=True):
        hires.append(_one_hire(rep, curves, behaviours, as_of, opts))
    return RampResult(curves=curves, norm=norm, new_hires=hires, cohort=cohort,
                      data_start=data_start.date() if data_start else None, options=opts)


def _one_hire(rep: dict[str, Any], curves: pl.DataFrame, behaviours: pl.DataFrame, as_of: datetime,
              opts: RampOptions) -> dict[str, Any]:
    tenure = (as_of.date() - rep["hire_date"]).days
    month = min(tenure // MONTH_DAYS, opts.months)
    out: dict[str, Any] = {"rep_id": rep["id"], "name": rep["name"], "hire_date": rep["hire_date"].isoformat(),
                           "tenure_days": tenure, "month": month, "status": "too_early", "behind": False,
                           "reasons": [], "lagging": [], "figures": {}, "norm": {}, "cohort_reps": 0}
    if month < 1:
        out["reasons"] = ["less than a month of tenure"]
        return out
    mine = curves.filter(pl.col("rep_id") == rep["id"], pl.col("month") == month)
    norm = cohort_norm(curves, exclude=rep["id"]).filter(pl.col("month") == month)
    reps_in_norm = int(norm["reps"][0]) if norm.height else 0
    out["cohort_reps"] = reps_in_norm
    if mine.height == 0 or reps_in_norm < opts.min_cohort:
        out["status"] = "no_cohort"
        out["reasons"] = [f"fewer than {opts.min_cohort} reps of the cohort have reached month {month}"]
        return out
    row, ref = mine.row(0, named=True), norm.row(0, named=True)
    out["figures"] = {name: row[name] for name in (*METRICS, *MILESTONES)}
    out["norm"] = {**{metric: ref[f"{metric}_median"] for metric in METRICS},
                   **{name: ref[f"{name}_share"] for name in MILESTONES}}
    reasons: list[str] = []
    labels = {"opportunities_index": "opportunities opened", "pipeline_index": "pipeline built",
              "attainment": "attainment"}
    for metric, label in labels.items():
        value, median = row[metric], ref[f"{metric}_median"]
        if value is not None and median is not None and median > 0 and value < opts.behind_ratio * median:
            reasons.append(f"{label}: {value / median:.0%} of the cohort's at month {month}")
    names = {"first_meeting": "first meeting", "first_opportunity": "first opportunity", "first_win": "first win"}
    for milestone, label in names.items():
        share = ref[f"{milestone}_share"]
        if not row[milestone] and share is not None and share >= opts.milestone_share:
            reasons.append(f"no {label} yet: {share:.0%} of the cohort had one by month {month}")
    out["reasons"] = reasons
    out["behind"] = bool(reasons)
    out["status"] = "behind" if reasons else "on_track"
    out["lagging"] = _lagging(rep, curves, behaviours, month, opts)
    return out


def _lagging(rep: dict[str, Any], curves: pl.DataFrame, behaviours: pl.DataFrame, month: int,
             opts: RampOptions) -> list[dict[str, Any]]:
    """The behaviours on the hire's deals against the deals the cohort opened in their first `month` months."""
    cohort = curves.filter(pl.col("in_cohort"), pl.col("observed"), pl.col("month") == month,
                           pl.col("rep_id") != rep["id"]).select("rep_id")
    span = timedelta(days=month * MONTH_DAYS)
    mine = behaviours.filter(pl.col("owner_id") == rep["id"])
    theirs = behaviours.join(cohort.rename({"rep_id": "owner_id"}), on="owner_id", how="semi")
    if "hire_date" in behaviours.columns:  # the cohort's deals of their first `month` months only
        theirs = theirs.filter(pl.col("created_at") < pl.col("hire_date").cast(pl.Datetime("us")) + span)
    lags: list[dict[str, Any]] = []
    for measure, label, better, how in BEHAVIOURS:
        if measure not in behaviours.columns:
            continue
        a = mine[measure].drop_nulls()
        b = theirs[measure].drop_nulls()
        if a.len() < opts.min_deals or b.len() < opts.min_deals:
            continue
        va = float(a.median() if how == "median" else a.mean())  # type: ignore[arg-type]
        vb = float(b.median() if how == "median" else b.mean())  # type: ignore[arg-type]
        if vb == 0:
            continue
        worse = (va - vb) / abs(vb) if better == "lower" else (vb - va) / abs(vb)
        if worse >= opts.lag_ratio:
            lags.append({"metric": measure, "label": label, "value": va, "cohort": vb, "better": better,
                         "deals": a.len()})
    return lags


def first_deal_at(deals: pl.DataFrame) -> datetime | None:
    value = deals["created_at"].min() if deals.height else None
    return value if isinstance(value, datetime) else None
