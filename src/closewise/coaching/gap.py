"""Top performers against the rest: who they are (by bookings, with the rule written out) and how their
*behaviour* differs, measure by measure, with the size of each difference and whether it holds up.

**Who the top performers are** (`rank_reps`). Eligible reps are the active reps with at least
`min_tenure_days` (180) of tenure at `as_of` (unknown hire date: eligible) and at least one deal closed in the
`window_days` (365) before it: new hires are compared with their cohort instead (`coaching.ramp`). They are
ranked by their bookings — won amount in the corporate currency, deals closed in the window — taken as a share
of their quota over the same days when every eligible rep has one (so a rep in a segment of big deals is not a
top performer for the segment alone), otherwise by bookings itself; ties go to the rep with more won deals.
The top `top_share` (a quarter, at least one) are the top performers; the other eligible reps are "the rest".

**What differs** (`compare`). Each behaviour of `coaching.behaviours` is measured on the deals the eligible reps
created in the window (leads for speed to lead), summarised per group (median for durations and rates of
activity, mean for shares), and tested with `coaching.stats`: the within-strata difference (strata: the deal's
segment × its size band, the terciles of amount within the segment — the controls the data allows: none
when neither is known), a permutation test that reshuffles the top-performer label among reps of the same
segment, and Benjamini–Hochberg q-values over all the measures. A difference is `significant` when its
q-value is at most `alpha` (0.05) and each group has at least two reps and eight deals with the measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import polars as pl

from closewise.coaching.behaviours import VALUE
from closewise.coaching.stats import benjamini_hochberg, cluster_permutation_test
from closewise.playbook.default import Playbook

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str
    better: Better
    summary: Literal["median", "mean"]
    log: bool = False  # tested on log(1 + y): durations and rates are skewed
    stage: str | None = None
    kind: Literal["behaviour", "outcome"] = "behaviour"
    source: Literal["deals", "leads"] = "deals"


def measures(playbook: Playbook) -> list[Measure]:
    """The measures compared, for this playbook's stages."""
    stages = playbook.stages
    first = stages[0].key if stages else None
    keys = [s.key for s in stages]
    middle = keys[len(keys) // 2] if keys else None
    late = keys[-2] if len(keys) >= 2 else None
    found: list[Measure] = [
        Measure("speed_to_lead_hours", "Hours from a new lead to the first touch", "hours", "lower", "median",
                log=True, stage=first, source="leads"),
        Measure("days_to_first_meeting", "Days from opening a deal to the first meeting", "days", "lower", "median",
                log=True, stage=first),
        Measure("contacts_engaged", "Contacts engaged per deal", "contacts", "higher", "mean", stage=middle),
        Measure("economic_buyer_engaged", "Deals with the economic buyer engaged", "share", "higher", "mean",
                stage=middle),
        Measure("activities_per_week", "Activities per week on a deal", "per week", "higher", "median", log=True),
        Measure("meeting_share", "Meetings among a deal's activities", "share", "higher", "mean"),
        Measure("criteria_met_rate", "Stages left with every exit criterion met", "share", "higher", "mean"),
        Measure("qualification_completeness", "Qualification questions answered", "share", "higher", "mean",
                stage=middle),
        Measure("qualification_score", "Qualification score", "score", "higher", "mean", stage=middle),
        Measure("discount", "Discount given after the proposal", "share", "lower", "mean", stage=late),
    ]
    for stage in stages:
        found.append(Measure(f"activities_per_week_{stage.key}", f"Activities per week in {stage.name}",
                             "per week", "higher", "median", log=True, stage=stage.key))
        found.append(Measure(f"days_in_{stage.key}", f"Days in {stage.name} before moving on", "days", "lower",
                             "median", log=True, stage=stage.key))
        if stage.exit_criteria:
            found.append(Measure(f"criteria_met_{stage.key}", f"{stage.name} exit criteria all met on leaving",
                                 "share", "higher", "mean", stage=stage.key))
    found.append(Measure("win_rate", "Win rate of closed deals", "share", "higher", "mean", kind="outcome"))
    found.append(Measure(VALUE, "Deal size", "amount", "higher", "median", log=True, kind="outcome"))
    return found


@dataclass(frozen=True)
class Ranking:
    # user_id, name, bookings, won_deals, closed_deals, quota, attainment, eligible, note, rank, top
    table: pl.DataFrame
    rule: str
    by: Literal["attainment", "bookings"]

    @property
    def top_ids(self) -> list[int]:
        return self.table.filter(pl.col("top"))["user_id"].to_list()

    @property
    def rest_ids(self) -> list[int]:
        return self.table.filter(pl.col("eligible") & ~pl.col("top"))["user_id"].to_list()


def rank_reps(
    reps: pl.DataFrame,
    deals: pl.DataFrame,
    quotas: pl.DataFrame,
    *,
    as_of: datetime,
    window_days: int = 365,
    min_tenure_days: int = 180,
    top_share: float = 0.25,
) -> Ranking:
    """`reps`: `id`, `name`, `hire_date`; `deals`: `owner_id`, `status`, `closed_at`, `value` (as at `as_of`);
    `quotas`: `user_id`, `quota` (the corporate-currency quota over the window; may be empty)."""
    since = as_of - timedelta(days=window_days)
    closed = deals.filter(pl.col("status") != "open", pl.col("closed_at") > since, pl.col("closed_at") <= as_of)
    per_rep = closed.group_by("owner_id").agg(
        pl.col(VALUE).filter(pl.col("status") == "won").sum().alias("bookings"),
        (pl.col("status") == "won").sum().cast(pl.Int64).alias("won_deals"),
        pl.len().cast(pl.Int64).alias("closed_deals"),
    ).rename({"owner_id": "user_id"})
    hired_by = (as_of - timedelta(days=min_tenure_days)).date()
    tenure_ok = pl.col("hire_date").is_null() | (pl.col("hire_date") <= hired_by)
    table = (reps.select(pl.col("id").alias("user_id"), "name", "hire_date")
             .join(per_rep, on="user_id", how="left")
             .join(quotas.select("user_id", "quota"), on="user_id", how="left")
             .with_columns(pl.col("bookings").fill_null(0.0), pl.col("won_deals").fill_null(0),
                           pl.col("closed_deals").fill_null(0))
             .with_columns(pl.when(pl.col("quota") > 0).then(pl.col("bookings") / pl.col("quota")).alias("attainment"),
                           (tenure_ok & (pl.col("closed_deals") > 0)).alias("eligible"),
                           pl.when(~tenure_ok).then(pl.lit(f"under {min_tenure_days} days of tenure: see the ramp"))
                           .when(pl.col("closed_deals") == 0).then(pl.lit("no deal closed in the window"))
                           .otherwise(None).alias("note")))
    eligible = table.filter(pl.col("eligible"))
    by: Literal["attainment", "bookings"] = (
        "attainment" if eligible.height and eligible["attainment"].null_count() == 0 else "bookings")
    ranked = (eligible.sort([by, "won_deals", "user_id"], descending=[True, True, False])
              .with_row_index("rank", offset=1).select("user_id", pl.col("rank").cast(pl.Int64)))
    n_top = max(1, math.ceil(top_share * eligible.height)) if eligible.height >= 2 else 0
    table = (table.join(ranked, on="user_id", how="left")
             .with_columns((pl.col("rank").is_not_null() & (pl.col("rank") <= n_top)).alias("top"))
             .sort(pl.col("rank").fill_null(10**9), "name"))
    measure = ("bookings as a share of quota (attainment)" if by == "attainment" else "bookings")
    rule = (f"Top performers: the top {top_share:.0%} (at least one) of eligible reps ranked by {measure} — won "
            f"amount of deals closed in the {window_days} days to {as_of:%Y-%m-%d}, ties to more won deals. "
            f"Eligible: active reps with at least {min_tenure_days} days of tenure and a deal closed in that window.")
    return Ranking(table=table, rule=rule, by=by)


@dataclass(frozen=True)
class GapOptions:
    alpha: float = 0.05
    permutations: int = 2000
    min_reps: int = 2
    min_deals: int = 8
    seed: int = 20240601


@dataclass(frozen=True)
class GapResult:
    metrics: pl.DataFrame
    controls: list[str]
    deals: int
    leads: int
    options: GapOptions = field(default_factory=GapOptions)


def _strata(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Adds `_stratum` (segment × size tercile within segment) and says which controls were possible."""
    controls: list[str] = []
    segments = frame["segment"].fill_null("unknown")
    if segments.n_unique() > 1 or (segments.len() and segments[0] != "unknown"):
        controls.append("segment")
    sized = frame[VALUE].fill_null(0.0) > 0
    if sized.sum() >= 30:
        controls.append("deal size")
    band = (pl.when(pl.col(VALUE).fill_null(0.0) > 0)
            .then((pl.col(VALUE).rank("ordinal").over("_seg") * 3 / (pl.len().over("_seg") + 1)).floor()
                  .cast(pl.Int64).cast(pl.String))
            .otherwise(pl.lit("none")))
    out = frame.with_columns(pl.col("segment").fill_null("unknown").alias("_seg"))
    out = out.with_columns(band.alias("_band") if "deal size" in controls else pl.lit("all").alias("_band"))
    key = pl.concat_str([pl.col("_seg") if "segment" in controls else pl.lit("all"), pl.col("_band")], separator="|")
    return out.with_columns(key.alias("_stratum")), controls


def compare(
    behaviours: pl.DataFrame,
    leads: pl.DataFrame,
    ranking: Ranking,
    playbook: Playbook,
    *,
    as_of: datetime,
    window_days: int = 365,
    options: GapOptions | None = None,
) -> GapResult:
    """`behaviours`: `coaching.behaviours.deal_behaviours` (all deals; those the eligible reps created in the
    window are used); `leads`: `lead_behaviours`."""
    opts = options or GapOptions()
    since = as_of - timedelta(days=window_days)
    top_ids, rest_ids = ranking.top_ids, ranking.rest_ids
    people = top_ids + rest_ids
    deals = behaviours.filter(pl.col("owner_id").is_in(people), pl.col("created_at") >= since,
                              pl.col("created_at") <= as_of)
    deals = deals.with_columns(pl.col("won").cast(pl.Float64).alias("win_rate"))
    deals, controls = _strata(deals)
    # A rep's block for the permutation: the segment most of their deals are in.
    block = (deals.group_by("owner_id", "_seg").agg(pl.len().alias("_n"))
             .sort(["owner_id", "_n", "_seg"], descending=[False, True, False])
             .group_by("owner_id", maintain_order=True).first())
    block_of = dict(zip(block["owner_id"].to_list(), block["_seg"].to_list(), strict=True))
    lead_rows = leads.filter(pl.col("owner_id").is_in(people)).with_columns(
        pl.col("lead_source").alias("_stratum"))
    rep_index = {rep: i for i, rep in enumerate(people)}
    top_mask = np.array([rep in set(top_ids) for rep in people], dtype=np.bool_)
    blocks = sorted(set(block_of.values())) or ["all"]
    block_codes = np.array([blocks.index(block_of[rep]) if rep in block_of and "segment" in controls else 0
                            for rep in people], dtype=np.int64)
    rows: list[dict[str, Any]] = []
    for measure in measures(playbook):
        source = lead_rows if measure.source == "leads" else deals
        if measure.key not in source.columns:
            continue
        data = source.filter(pl.col(measure.key).is_not_null() & pl.col(measure.key).is_finite())
        rows.append(_one(measure, data, rep_index, top_mask, block_codes, set(top_ids), opts))
    q_values = benjamini_hochberg([row["p_value"] for row in rows])
    for row, q in zip(rows, q_values, strict=True):
        row["q_value"] = q
        row["significant"] = bool(q is not None and q <= opts.alpha and row["testable"])
    metrics = pl.DataFrame(rows, schema=_METRIC_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_METRIC_SCHEMA)
    return GapResult(metrics=metrics, controls=controls, deals=deals.height, leads=lead_rows.height, options=opts)


_METRIC_SCHEMA: Final = {
    "metric": pl.String(), "label": pl.String(), "kind": pl.String(), "stage": pl.String(), "unit": pl.String(),
    "better": pl.String(), "summary": pl.String(), "top": pl.Float64(), "rest": pl.Float64(),
    "difference": pl.Float64(), "ratio": pl.Float64(), "adjusted_difference": pl.Float64(),
    "effect_size": pl.Float64(), "p_value": pl.Float64(), "q_value": pl.Float64(), "significant": pl.Boolean(),
    "favours_top": pl.Boolean(), "testable": pl.Boolean(), "top_deals": pl.Int64(), "rest_deals": pl.Int64(),
    "top_reps": pl.Int64(), "rest_reps": pl.Int64(), "transform": pl.String(),
}


def _summary(values: pl.Series, how: str) -> float | None:
    if values.len() == 0:
        return None
    result = values.median() if how == "median" else values.mean()
    return float(result) if isinstance(result, int | float) else None


def _one(measure: Measure, data: pl.DataFrame, rep_index: dict[int, int], top_mask: np.ndarray[Any, Any],
         block_codes: np.ndarray[Any, Any], top_ids: set[int], opts: GapOptions) -> dict[str, Any]:
    is_top = pl.col("owner_id").is_in(sorted(top_ids))
    top_vals, rest_vals = data.filter(is_top)[measure.key], data.filter(~is_top)[measure.key]
    top, rest = _summary(top_vals, measure.summary), _summary(rest_vals, measure.summary)
    top_reps = data.filter(is_top)["owner_id"].n_unique()
    rest_reps = data.filter(~is_top)["owner_id"].n_unique()
    testable = (top_reps >= opts.min_reps and rest_reps >= opts.min_reps and top_vals.len() >= opts.min_deals
                and rest_vals.len() >= opts.min_deals)
    adjusted = effect = p = None
    if testable:
        y = data[measure.key].cast(pl.Float64).to_numpy()
        if measure.log:
            y = np.log1p(np.clip(y, 0.0, None))
        strata = data["_stratum"].cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()
        rep_of = np.array([rep_index[r] for r in data["owner_id"].to_list()], dtype=np.int64)
        result = cluster_permutation_test(y, rep_of, top_mask, block_codes, strata,
                                          permutations=opts.permutations, seed=opts.seed)
        if math.isfinite(result.difference):
            adjusted, effect = result.difference, result.effect_size
            p = result.p_value if math.isfinite(result.p_value) else None
        else:
            testable = False
    favours = None if adjusted is None else (adjusted > 0) == (measure.better == "higher")
    return {
        "metric": measure.key, "label": measure.label, "kind": measure.kind, "stage": measure.stage,
        "unit": measure.unit, "better": measure.better, "summary": measure.summary, "top": top, "rest": rest,
        "difference": None if top is None or rest is None else top - rest,
        "ratio": top / rest if top is not None and rest not in (None, 0.0) else None,
        "adjusted_difference": adjusted, "effect_size": effect, "p_value": p, "q_value": None,
        "significant": False, "favours_top": favours, "testable": testable,
        "top_deals": top_vals.len(), "rest_deals": rest_vals.len(), "top_reps": top_reps, "rest_reps": rest_reps,
        "transform": "log1p" if measure.log else None,
    }
