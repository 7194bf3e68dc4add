"""Pipeline hygiene: what is wrong with each open deal on a date, in plain words, and which deals are dead.

What it estimates: for every opportunity open at `as_of`, a list of findings, each a `code` and a
`detail` sentence that names the numbers behind it. Everything is computed from what was known at `as_of`:
the timeline rows that began by then, changes made by then, activities that happened by then and
qualification answers given by then. Nothing later leaks in, so a past date gives the list a manager would
have seen on that day (which is what the acceptance test checks against later outcomes).

The checks (thresholds in `HygieneSettings`):

- `aged_past_cycle`: the deal is older than the `cycle_percentile` (default the 90th, linear interpolation)
  of the sales cycle (created to won) of deals won by `as_of`. Learned per segment when the segment has at
  least `min_won_per_segment` (30) won deals, else over the whole org; with no won deal at all, no finding.
  The 90th percentile rather than the median because a deal only becomes suspect once it is older than
  nearly every deal that was ever won.
- `stuck_in_stage`: time since the deal entered its current stage (a status change that leaves the stage as
  it was, like a reopening, does not restart the clock) is past the stage's `days_to_rot`. Where a stage has
  none, the learned default is the `stage_percentile` (90th) of the time deals spent in that stage before
  leaving it forwards (to another stage, or by being won), over stays that ended by `as_of`, when there are
  at least `min_stage_exits` (10) of them.
- `close_date_past`: the expected close date is before the day of `as_of`.
- `pushed_often`: the close date was moved later at least `pushes` (3) times.
- `no_activity`: no completed activity for more than `no_activity_days` (30); a deal never worked counts
  from its creation.
- `no_next_step`: the next step is empty.
- `amount_changed`: over the last `amount_window_days` (30), the amount moved by more than
  `amount_change` (50%) of its value at the window's start (the first change's old value); a start of zero
  or unknown has no percentage and is skipped.
- `not_requalified`: no qualification answer for more than the stage's `requalify_days` (default
  `requalify_days`, 30), counted from the last answer or, never answered, from creation. Skipped when the
  org had no qualification answers at all by `as_of` (it does not use scorecards, so every deal would be
  flagged).

Dead deals (the sweep rule, `dead_deals`): aged past the cycle or stuck in its stage, *and* no activity.
Age or stage time alone also catches slow, live deals (a large enterprise deal can sit in legal for
weeks); a month with nobody touching the deal on top of it is what abandonment looks like. The demo's
stalled deals (docs/demo.md: nobody works them, they end as no decision) are exactly this, and the
acceptance test checks that such deals are won in the next 90 days at most a third as often as the others.

Snoozes (`apply_snoozes`): a finding (deal + code) hidden with a reason until a resume date; the latest
snooze of a finding made by `as_of` counts, and on its resume date the finding shows again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.hygiene_baselines import (
    ALL_SEGMENTS,
    SEGMENT,
    current,
    cycle_table,
    days,
    rot_table,
    runs,
    stays,
    won_cycles,
)
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput


class FindingCode(StrEnum):
    AGED_PAST_CYCLE = "aged_past_cycle"
    STUCK_IN_STAGE = "stuck_in_stage"
    CLOSE_DATE_PAST = "close_date_past"
    PUSHED_OFTEN = "pushed_often"
    NO_ACTIVITY = "no_activity"
    NO_NEXT_STEP = "no_next_step"
    AMOUNT_CHANGED = "amount_changed"
    NOT_REQUALIFIED = "not_requalified"


@dataclass(frozen=True)
class HygieneSettings:
    """Every threshold of the checks (see the module header for what each means)."""

    cycle_percentile: float = 0.90
    min_won_per_segment: int = 30
    stage_percentile: float = 0.90
    min_stage_exits: int = 10
    pushes: int = 3
    no_activity_days: int = 30
    amount_change: float = 0.50
    amount_window_days: int = 30
    requalify_days: int = 30

    def __post_init__(self) -> None:
        for name in ("cycle_percentile", "stage_percentile"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InvalidInput(f"{name} must be in (0, 1]", where="hygiene settings")
        for name in ("min_won_per_segment", "min_stage_exits", "pushes", "no_activity_days",
                     "amount_window_days", "requalify_days"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", where="hygiene settings")
        if self.amount_change <= 0:
            raise InvalidInput("amount_change must be above 0", where="hygiene settings")


FINDINGS_SCHEMA: Final = {"id": pl.Int64(), "code": pl.String(), "detail": pl.String()}
SNOOZE_SCHEMA: Final = {"opportunity_id": pl.Int64(), "code": pl.String(), "until": pl.Date(),
                        "created_at": s.TIMESTAMP}
ANSWER_SCHEMA: Final = {"opportunity_id": pl.Int64(), "answered_at": s.TIMESTAMP}
ACTIVITY_SCHEMA: Final = {"opportunity_id": pl.Int64(), "occurred_at": s.TIMESTAMP, "completed": pl.Boolean()}
DEAD_CODES: Final = frozenset({FindingCode.AGED_PAST_CYCLE.value, FindingCode.STUCK_IN_STAGE.value})

_OPEN: Final = OpportunityStatus.OPEN.value
_ORDER: Final = {code.value: rank for rank, code in enumerate(FindingCode)}


def findings(
    timeline: pl.DataFrame,
    *,
    as_of: datetime,
    stages: pl.DataFrame,
    changes: pl.DataFrame,
    activities: pl.DataFrame,
    answers: pl.DataFrame | None = None,
    settings: HygieneSettings | None = None,
) -> pl.DataFrame:
    """Findings of every deal open at `as_of`: columns `id`, `code`, `detail`, sorted by id then code
    (in `FindingCode` order); a deal with nothing wrong has no row.

    `timeline` is `analytics.snapshots.build_timeline`'s (sorted by id, valid_from), optionally carrying a
    `segment` column; `stages` has `key`, `days_to_rot`, `requalify_days`; `activities` and `answers` follow
    `ACTIVITY_SCHEMA` and `ANSWER_SCHEMA` (extra columns are ignored).
    """
    config = settings or HygieneSettings()
    at = naive_utc(as_of)
    history = runs(timeline, at)
    # One plan: the three reads of the runs share it and run in parallel.
    deals, won, stayed = pl.collect_all([
        history.filter(current(at), pl.col(s.STATUS) == _OPEN),
        won_cycles(history, at),
        stays(history, percentile=config.stage_percentile, min_exits=config.min_stage_exits),
    ])
    if deals.height == 0:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    cycles = cycle_table(won, percentile=config.cycle_percentile, min_won=config.min_won_per_segment)
    rot = rot_table(stayed, stages)
    parts = [
        _aged(deals, cycles, at, config),
        _stuck(deals, rot, at),
        _close_date_past(deals, at),
        _pushed(deals, changes, at, config),
        _no_activity(deals, activities, at, config),
        _no_next_step(deals),
        _amount_changed(deals, changes, at, config),
        _not_requalified(deals, answers, stages, at, config),
    ]
    return (
        pl.concat([part.select(pl.col(s.ID), pl.lit(code.value).alias("code"), pl.col("detail"))
                   for code, part in zip(FindingCode, parts, strict=True)])
        .sort(s.ID, pl.col("code").replace_strict(_ORDER, return_dtype=pl.Int8))
    )


def learned_cycle_thresholds(
    timeline: pl.DataFrame, *, as_of: datetime, settings: HygieneSettings | None = None
) -> pl.DataFrame:
    """The won-deal cycle threshold per segment: `segment`, `won` (deals won by `as_of` behind it),
    `cycle_days`, `scope` ("segment" or "org"). Segments with too few wins get the org-wide figure; the row
    with segment `ALL_SEGMENTS` is the org-wide one. Empty when nothing was won by `as_of`."""
    at = naive_utc(as_of)
    config = settings or HygieneSettings()
    return cycle_table(won_cycles(runs(timeline, at), at).collect(), percentile=config.cycle_percentile,
                       min_won=config.min_won_per_segment)


def stage_thresholds(
    timeline: pl.DataFrame, *, as_of: datetime, stages: pl.DataFrame, settings: HygieneSettings | None = None
) -> pl.DataFrame:
    """Days a deal may sit in each stage: `stage`, `rot_days`, `source` ("setting" for the stage's
    days_to_rot, "learned" for the percentile of past stays), `exits` (stays the learned figure is from).
    Stages with neither have no row, and their deals no `stuck_in_stage` finding."""
    at = naive_utc(as_of)
    config = settings or HygieneSettings()
    return rot_table(stays(runs(timeline, at), percentile=config.stage_percentile,
                           min_exits=config.min_stage_exits).collect(), stages)


def dead_deals(found: pl.DataFrame) -> pl.DataFrame:
    """The sweep rule over (unsnoozed) findings: deals with `aged_past_cycle` or `stuck_in_stage` and with
    `no_activity`. Columns `id`, `reasons` (the deal's qualifying findings: list of {code, detail})."""
    qualifying = found.filter(pl.col("code").is_in([*DEAD_CODES, FindingCode.NO_ACTIVITY.value]))
    per_deal = qualifying.group_by(s.ID, maintain_order=True).agg(
        pl.col("code").is_in(list(DEAD_CODES)).any().alias("_old"),
        (pl.col("code") == FindingCode.NO_ACTIVITY.value).any().alias("_idle"),
        pl.struct("code", "detail").alias("reasons"),
    )
    return per_deal.filter(pl.col("_old") & pl.col("_idle")).select(s.ID, "reasons").sort(s.ID)


def apply_snoozes(found: pl.DataFrame, snoozes: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """`found` without the findings snoozed at `as_of`. Of the snoozes of a finding (opportunity_id, code)
    made by `as_of`, the latest counts: it hides the finding until the day before `until`; on `until` the
    finding shows again."""
    at = naive_utc(as_of)
    active = (
        snoozes.lazy()
        .filter(pl.col("created_at") <= at)
        .sort("created_at")
        .group_by("opportunity_id", "code")
        .agg(pl.col("until").last())
        .filter(pl.col("until") > at.date())
        .select(pl.col("opportunity_id").alias(s.ID), "code")
        .collect()
    )
    return found.join(active, on=[s.ID, "code"], how="anti", maintain_order="left")


# --- the checks -------------------------------------------------------------------------------------------


def _int(expr: pl.Expr) -> pl.Expr:
    return expr.floor().cast(pl.Int64)


def _aged(deals: pl.DataFrame, cycles: pl.DataFrame, at: datetime, config: HygieneSettings) -> pl.DataFrame:
    if cycles.height == 0:
        return pl.DataFrame(schema={s.ID: pl.Int64(), "detail": pl.String()})
    org = cycles.filter(pl.col(SEGMENT) == ALL_SEGMENTS).row(0, named=True)
    share = f"{config.cycle_percentile:.0%}"
    return (
        deals.select(s.ID, SEGMENT, days(pl.lit(at) - pl.col(s.CREATED_AT)).alias("_age"))
        .join(cycles.filter(pl.col(SEGMENT) != ALL_SEGMENTS), on=SEGMENT, how="left")
        .with_columns(
            pl.col("cycle_days").fill_null(org["cycle_days"]),
            pl.col("won").fill_null(org["won"]),
            pl.col("scope").fill_null("org"),
        )
        .filter(pl.col("_age") > pl.col("cycle_days"))
        .select(s.ID, pl.format(
            "open {} days; {} of won deals closed within {} days (from {} wins, {})",
            _int(pl.col("_age")), pl.lit(share), _int(pl.col("cycle_days").ceil()), pl.col("won"),
            pl.when(pl.col("scope") == "segment").then(pl.format("segment {}", pl.col(SEGMENT)))
            .otherwise(pl.lit("org-wide")),
        ).alias("detail"))
    )


def _stuck(deals: pl.DataFrame, rot: pl.DataFrame, at: datetime) -> pl.DataFrame:
    return (
        deals.select(s.ID, s.STAGE, days(pl.lit(at) - pl.col("_stage_start")).alias("_in_stage"))
        .join(rot, on=s.STAGE, how="inner")
        .filter(pl.col("_in_stage") > pl.col("rot_days"))
        .select(s.ID, pl.format(
            "in {} for {} days, past {} of {} days",
            pl.col(s.STAGE), _int(pl.col("_in_stage")),
            pl.when(pl.col("source") == "setting").then(pl.lit("its days-to-rot"))
            .otherwise(pl.format("the learned default ({} stays that left it)", pl.col("exits"))),
            _int(pl.col("rot_days").ceil()),
        ).alias("detail"))
    )


def _close_date_past(deals: pl.DataFrame, at: datetime) -> pl.DataFrame:
    today = at.date()
    return deals.filter(pl.col(s.CLOSE_DATE) < today).select(s.ID, pl.format(
        "expected close date {} is {} days in the past",
        pl.col(s.CLOSE_DATE).dt.strftime("%Y-%m-%d"), (pl.lit(today) - pl.col(s.CLOSE_DATE)).dt.total_days(),
    ).alias("detail"))


def _pushed(deals: pl.DataFrame, changes: pl.DataFrame, at: datetime, config: HygieneSettings) -> pl.DataFrame:
    as_date = {name: pl.col(name).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
               for name in (s.OLD_VALUE, s.NEW_VALUE)}
    pushes = (
        changes.lazy()
        .filter(pl.col(s.FIELD) == ChangeField.CLOSE_DATE.value, pl.col(s.CHANGED_AT) <= at)
        .select(s.OPPORTUNITY_ID, as_date[s.OLD_VALUE].alias("_old"), as_date[s.NEW_VALUE].alias("_new"))
        .filter(pl.col("_new") > pl.col("_old"))
        .group_by(s.OPPORTUNITY_ID)
        .agg(pl.len().alias("_pushes"), (pl.col("_new") - pl.col("_old")).dt.total_days().sum().alias("_days"))
        .filter(pl.col("_pushes") >= config.pushes)
        .collect()
    )
    return deals.select(s.ID).join(pushes, left_on=s.ID, right_on=s.OPPORTUNITY_ID, how="inner").select(
        s.ID, pl.format("close date pushed out {} times (threshold {}), {} days in all",
                        pl.col("_pushes"), pl.lit(config.pushes), pl.col("_days")).alias("detail"))


def _no_activity(
    deals: pl.DataFrame, activities: pl.DataFrame, at: datetime, config: HygieneSettings
) -> pl.DataFrame:
    last = (
        activities.lazy()
        .filter(pl.col("occurred_at") <= at, pl.col("completed").fill_null(value=True))
        .group_by("opportunity_id")
        .agg(pl.col("occurred_at").max().alias("_last"))
        .collect()
    )
    idle = pl.coalesce("_last", s.CREATED_AT)
    return (
        deals.select(s.ID, s.CREATED_AT)
        .join(last, left_on=s.ID, right_on="opportunity_id", how="left")
        .with_columns(days(pl.lit(at) - idle).alias("_idle"))
        .filter(pl.col("_idle") > config.no_activity_days)
        .select(s.ID, pl.when(pl.col("_last").is_null()).then(
            pl.format("no activity in the {} days since it was created (threshold {})",
                      _int(pl.col("_idle")), pl.lit(config.no_activity_days))
        ).otherwise(
            pl.format("no activity for {} days, the last on {} (threshold {})",
                      _int(pl.col("_idle")), pl.col("_last").dt.strftime("%Y-%m-%d"), pl.lit(config.no_activity_days))
        ).alias("detail"))
    )


def _no_next_step(deals: pl.DataFrame) -> pl.DataFrame:
    empty = pl.col(s.NEXT_STEP).is_null() | (pl.col(s.NEXT_STEP).str.strip_chars() == "")
    return deals.filter(empty).select(s.ID, pl.lit("no next step recorded").alias("detail"))


def _amount_changed(
    deals: pl.DataFrame, changes: pl.DataFrame, at: datetime, config: HygieneSettings
) -> pl.DataFrame:
    start = at - timedelta(days=config.amount_window_days)
    moved = (
        changes.lazy()
        .filter(pl.col(s.FIELD) == ChangeField.AMOUNT.value, pl.col(s.CHANGED_AT) > start,
                pl.col(s.CHANGED_AT) <= at)
        .group_by(s.OPPORTUNITY_ID)
        .agg(
            pl.col(s.OLD_VALUE).sort_by(s.CHANGED_AT).first().str.strip_chars().cast(pl.Float64, strict=False)
            .alias("_from"),
            pl.col(s.NEW_VALUE).sort_by(s.CHANGED_AT).last().str.strip_chars().cast(pl.Float64, strict=False)
            .alias("_to"),
        )
        .filter(pl.col("_from") > 0, pl.col("_to").is_not_null())
        .with_columns(((pl.col("_to") - pl.col("_from")) / pl.col("_from")).alias("_rel"))
        .filter(pl.col("_rel").abs() > config.amount_change)
        .collect()
    )
    return deals.select(s.ID, s.CURRENCY).join(moved, left_on=s.ID, right_on=s.OPPORTUNITY_ID, how="inner").select(
        s.ID, pl.format(
            "amount changed from {} to {} {} ({}%) in the last {} days (threshold ±{}%)",
            _money(pl.col("_from")), _money(pl.col("_to")), pl.col(s.CURRENCY),
            pl.when(pl.col("_rel") > 0).then(pl.lit("+")).otherwise(pl.lit("")) + _int(
                (pl.col("_rel") * 100).round(0)).cast(pl.String),
            pl.lit(config.amount_window_days), pl.lit(round(config.amount_change * 100)),
        ).alias("detail"))


def _money(value: pl.Expr) -> pl.Expr:
    """Whole units with thousands separators: 125000.0 -> 125,000."""
    digits = value.round(0).cast(pl.Int64).abs().cast(pl.String)
    grouped = digits.str.reverse().str.replace_all(r"(\d{3})", "$1,").str.reverse().str.strip_chars_start(",")
    return pl.when(value < 0).then(pl.lit("-")).otherwise(pl.lit("")) + grouped


def _not_requalified(
    deals: pl.DataFrame, answers: pl.DataFrame | None, stages: pl.DataFrame, at: datetime, config: HygieneSettings
) -> pl.DataFrame:
    empty = pl.DataFrame(schema={s.ID: pl.Int64(), "detail": pl.String()})
    if answers is None:
        return empty
    last = (
        answers.lazy().filter(pl.col("answered_at") <= at).group_by("opportunity_id")
        .agg(pl.col("answered_at").max().alias("_last")).collect()
    )
    if last.height == 0:
        return empty
    cadence = stages.select(pl.col("key").alias(s.STAGE), pl.col("requalify_days").alias("_cadence"))
    since = pl.coalesce("_last", s.CREATED_AT)
    return (
        deals.select(s.ID, s.STAGE, s.CREATED_AT)
        .join(last, left_on=s.ID, right_on="opportunity_id", how="left")
        .join(cadence, on=s.STAGE, how="left")
        .with_columns(pl.col("_cadence").fill_null(config.requalify_days), days(pl.lit(at) - since).alias("_age"))
        .filter(pl.col("_age") > pl.col("_cadence"))
        .select(s.ID, pl.when(pl.col("_last").is_null()).then(
            pl.format("never qualified in the {} days since it was created ({} asks every {} days)",
                      _int(pl.col("_age")), pl.col(s.STAGE), pl.col("_cadence"))
        ).otherwise(
            pl.format("last qualified {} days ago, on {} ({} asks every {} days)", _int(pl.col("_age")),
                      pl.col("_last").dt.strftime("%Y-%m-%d"), pl.col(s.STAGE), pl.col("_cadence"))
        ).alias("detail"))
    )
