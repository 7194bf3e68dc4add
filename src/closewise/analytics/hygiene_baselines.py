"""What normal looks like in an org's history, for the hygiene checks (`closewise.analytics.hygiene`).

From the timeline (`analytics.snapshots.build_timeline`) cut at `as_of`: each deal's runs of one (stage,
status) and when it entered its current stage (`runs`); the sales cycle of the deals won by then
(`won_cycles`) and its percentile per segment (`cycle_table`); how long deals stayed in each stage before
moving on or being won (`stays`), and the days-to-rot per stage from the settings or that learned figure
(`rot_table`). Percentiles interpolate linearly between order statistics (numpy's default "linear" method,
Hyndman and Fan's definition 7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.domain.enums import OpportunityStatus
from closewise.errors import InvalidInput

SEGMENT: Final = "segment"
ALL_SEGMENTS: Final = "all"

_OPEN: Final = OpportunityStatus.OPEN.value
_WON: Final = OpportunityStatus.WON.value
_DAY_US: Final = 86_400_000_000
_TIMELINE_COLUMNS: Final = (s.ID, s.VALID_FROM, s.VALID_TO, s.STAGE, s.STATUS, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE,
                            s.NEXT_STEP, s.CREATED_AT, s.CLOSED_AT)


def runs(timeline: pl.DataFrame, at: datetime) -> pl.LazyFrame:
    """Timeline rows begun by `at` (the columns the checks read), with `_new_run` on the first row of each
    run of one (stage, status), and `_stage_start`: when the deal entered the stage it is in. A reopened
    deal (or an undone sweep) that never left its stage keeps its stage clock."""
    for name in _TIMELINE_COLUMNS:
        if name not in timeline.columns:
            raise InvalidInput(f"column {name!r} is missing; build it with build_timeline()", where="timeline")
    segment = pl.col(SEGMENT) if SEGMENT in timeline.columns else pl.lit(ALL_SEGMENTS).alias(SEGMENT)
    new_run = (
        pl.col(s.ID).ne(pl.col(s.ID).shift(1))
        | pl.col(s.STAGE).ne_missing(pl.col(s.STAGE).shift(1))
        | pl.col(s.STATUS).ne_missing(pl.col(s.STATUS).shift(1))
    ).fill_null(value=True)
    new_stage = (
        pl.col(s.ID).ne(pl.col(s.ID).shift(1)) | pl.col(s.STAGE).ne_missing(pl.col(s.STAGE).shift(1))
    ).fill_null(value=True)
    return (
        timeline.lazy()
        .select(*_TIMELINE_COLUMNS, segment.cast(pl.String).fill_null(ALL_SEGMENTS))
        .filter(pl.col(s.VALID_FROM) <= at)
        .with_columns(new_run.alias("_new_run"),
                      pl.when(new_stage).then(pl.col(s.VALID_FROM)).forward_fill().alias("_stage_start"))
    )


def current(at: datetime) -> pl.Expr:
    """The timeline row in force at `at` (of the rows begun by then)."""
    return pl.col(s.VALID_TO).is_null() | (pl.col(s.VALID_TO) > at)


def days(duration: pl.Expr) -> pl.Expr:
    """A duration in (fractional) days."""
    return duration.dt.total_microseconds() / _DAY_US


def won_cycles(runs: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """`segment`, `_cycle` (days from creation to winning) of the deals won by `at`."""
    return runs.filter(current(at), pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) <= at).select(
        SEGMENT, days(pl.col(s.CLOSED_AT) - pl.col(s.CREATED_AT)).alias("_cycle"))


def cycle_table(won: pl.DataFrame, *, percentile: float, min_won: int) -> pl.DataFrame:
    """Per segment (and `ALL_SEGMENTS` for the org): `won`, `cycle_days` (the percentile of `won_cycles`),
    `scope`: "segment" with at least `min_won` wins there, else "org" with the org-wide figure."""
    schema = pl.Schema({SEGMENT: pl.String(), "won": pl.UInt32(), "cycle_days": pl.Float64(), "scope": pl.String()})
    if won.height == 0:
        return pl.DataFrame(schema=schema)
    quantile = pl.col("_cycle").quantile(percentile, interpolation="linear")
    org = won.select(pl.lit(ALL_SEGMENTS).alias(SEGMENT), pl.len().alias("won"), quantile.alias("cycle_days"))
    by_segment = won.group_by(SEGMENT).agg(pl.len().alias("won"), quantile.alias("cycle_days"))
    enough = pl.col("won") >= min_won
    return pl.concat([
        org.with_columns(pl.lit("org").alias("scope")),
        by_segment.with_columns(
            pl.when(enough).then(pl.col("cycle_days")).otherwise(pl.lit(org["cycle_days"][0])).alias("cycle_days"),
            pl.when(enough).then(pl.lit("segment")).otherwise(pl.lit("org")).alias("scope"),
        ),
    ]).cast(schema).sort(SEGMENT)


def stays(runs: pl.LazyFrame, *, percentile: float, min_exits: int) -> pl.LazyFrame:
    """Per stage, the stays (runs while open) that ended by moving to another stage or by being won:
    `stage`, `exits`, `_learned` (their percentile, in days), where there are enough of them."""
    same = pl.col(s.ID) == pl.col(s.ID).shift(-1)
    return (
        runs.filter(pl.col("_new_run"))
        .select(
            s.ID, s.STAGE, s.STATUS, s.VALID_FROM,
            pl.when(same).then(pl.col(s.VALID_FROM).shift(-1)).alias("_next_start"),
            pl.when(same).then(pl.col(s.STAGE).shift(-1)).alias("_next_stage"),
            pl.when(same).then(pl.col(s.STATUS).shift(-1)).alias("_next_status"),
        )
        .filter(
            pl.col(s.STATUS) == _OPEN,
            pl.col("_next_start").is_not_null(),
            pl.col("_next_stage").ne_missing(pl.col(s.STAGE)) | (pl.col("_next_status") == _WON),
        )
        .group_by(s.STAGE)
        .agg(
            pl.len().alias("exits"),
            days(pl.col("_next_start") - pl.col(s.VALID_FROM))
            .quantile(percentile, interpolation="linear").alias("_learned"),
        )
        .filter(pl.col("exits") >= min_exits)
    )


def rot_table(stays: pl.DataFrame, stages: pl.DataFrame) -> pl.DataFrame:
    """Per stage: `rot_days` from its `days_to_rot` setting, else the learned `stays` figure; `source`, `exits`."""
    settings_rows = stages.select(pl.col("key").alias(s.STAGE), pl.col("days_to_rot").cast(pl.Float64))
    schema = pl.Schema({s.STAGE: pl.String(), "rot_days": pl.Float64(), "source": pl.String(), "exits": pl.UInt32()})
    return (
        settings_rows.join(stays, on=s.STAGE, how="full", coalesce=True)
        .select(
            s.STAGE,
            pl.coalesce("days_to_rot", "_learned").alias("rot_days"),
            pl.when(pl.col("days_to_rot").is_not_null()).then(pl.lit("setting"))
            .when(pl.col("_learned").is_not_null()).then(pl.lit("learned")).alias("source"),
            pl.col("exits").fill_null(0),
        )
        .filter(pl.col("rot_days").is_not_null())
        .cast(schema)
        .sort(s.STAGE)
    )
