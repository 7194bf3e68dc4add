"""Does answering faster win more? Conversion by response-time bucket, measured on the org's own leads.

A lead counts once it has had time to convert (`min_age_days` old by `as_of`); it converted when it became an
opportunity (status `converted`, a conversion date, or a linked opportunity). Each bucket of calendar time from
creation to first touch (< 1 h, 1-24 h, 1-3 days, > 3 days, never touched) gets its conversion rate with a 95%
Wilson interval and its lift over the slowest touched bucket.

Faster leads could simply be better leads (a referral answered in minutes, a content download left for a
week), so each bucket also gets the conversion its source mix alone would predict (`expected`: the mean of
the sources' overall rates) and `vs_expected` = observed / expected. A ratio that falls with the bucket is the
effect of speed, not of the mix.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.domain.enums import LeadStatus
from closewise.domain.timeutil import naive_utc

# (label, lower bound in minutes, upper bound in minutes): touched leads by calendar minutes to first touch.
BUCKETS: Final = (("< 1 h", 0.0, 60.0), ("1-24 h", 60.0, 1_440.0), ("1-3 days", 1_440.0, 4_320.0),
                  ("> 3 days", 4_320.0, math.inf))
NEVER: Final = "never touched"
LABELS: Final = (*(label for label, _, _ in BUCKETS), NEVER)
Z95: Final = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion (None, None with no trials)."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def converted_flag(leads: pl.DataFrame) -> pl.Expr:
    expr = (pl.col("status") == LeadStatus.CONVERTED.value) | pl.col("converted_at").is_not_null()
    if "converted_opportunity_id" in leads.columns:
        expr = expr | pl.col("converted_opportunity_id").is_not_null()
    if "opportunity_id" in leads.columns:
        expr = expr | pl.col("opportunity_id").is_not_null()
    return expr.fill_null(False)


def bucket_of(minutes: pl.Expr) -> pl.Expr:
    expr: pl.Expr = pl.lit(NEVER)
    for label, low, high in reversed(BUCKETS):
        expr = pl.when(minutes.is_not_null() & (minutes >= low) & (minutes < high)).then(pl.lit(label)).otherwise(expr)
    return expr


def response_effect(leads: pl.DataFrame, as_of: datetime, *, min_age_days: int = 30) -> pl.DataFrame:
    """One row per bucket (in order): bucket, leads, converted, rate, low, high (95% Wilson), lift (rate over the
    slowest touched bucket with leads), expected (from the source mix), vs_expected.

    `leads` needs created_at, first_touch_at, status, converted_at, lead_source (and may carry
    converted_opportunity_id / opportunity_id)."""
    moment = naive_utc(as_of)
    cutoff = moment - timedelta(days=min_age_days)
    mature = leads.filter(pl.col("created_at") <= cutoff).with_columns(
        converted_flag(leads).alias("_converted"),
        pl.when(pl.col("first_touch_at") <= moment)
        .then((pl.col("first_touch_at") - pl.col("created_at")).dt.total_seconds() / 60.0)
        .otherwise(None).alias("_minutes"),
        pl.col("lead_source").fill_null("(none)").alias("_source"),
    ).with_columns(bucket_of(pl.col("_minutes")).alias("bucket"))
    source_rate = mature.group_by("_source").agg(pl.col("_converted").mean().alias("_source_rate"))
    mature = mature.join(source_rate, on="_source", how="left")
    stats = mature.group_by("bucket").agg(
        pl.len().alias("leads"), pl.col("_converted").sum().alias("converted"),
        pl.col("_source_rate").mean().alias("expected"))
    found = {row["bucket"]: row for row in stats.iter_rows(named=True)}
    rows = []
    for label in LABELS:
        row = found.get(label, {"leads": 0, "converted": 0, "expected": None})
        n, k = int(row["leads"]), int(row["converted"])
        low, high = wilson(k, n)
        rate = k / n if n else None
        expected = row["expected"]
        rows.append({"bucket": label, "leads": n, "converted": k, "rate": rate, "low": low, "high": high,
                     "expected": expected,
                     "vs_expected": rate / expected if rate is not None and expected else None})
    slowest = next((row["rate"] for row in reversed(rows[: len(BUCKETS)]) if row["leads"] and row["rate"]), None)
    for row in rows:
        row["lift"] = row["rate"] / slowest if slowest and row["rate"] is not None else None
    return pl.DataFrame(rows, schema={"bucket": pl.String, "leads": pl.Int64, "converted": pl.Int64,
                                      "rate": pl.Float64, "low": pl.Float64, "high": pl.Float64,
                                      "expected": pl.Float64, "vs_expected": pl.Float64, "lift": pl.Float64})


def rate_ratio(effect: pl.DataFrame, faster: str, slower: str) -> float | None:
    """Conversion of bucket `faster` over bucket `slower` (None when either has no leads or no conversion)."""
    rates = dict(zip(effect["bucket"].to_list(), effect["rate"].to_list(), strict=True))
    fast, slow = rates.get(faster), rates.get(slower)
    return fast / slow if fast is not None and slow else None
