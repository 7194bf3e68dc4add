"""What a rep *did* on each deal, as known at `as_of`: the behaviour measures the gap analysis, the ramp and the
1:1 plans compare. One row per deal (and one per lead for speed to lead); nothing after `as_of` is seen.

Per deal (`deal_behaviours`):

- `contacts_engaged`: distinct contacts on the deal's completed activities;
- `economic_buyer_engaged`: 1 when one of them is the account's economic buyer (contact `buying_role`), else 0;
- `days_to_first_meeting`: days from the deal's creation to its first completed meeting (null before one);
- `activities_per_week`: completed activities per week of the deal's worked life (creation to close, or to
  `as_of` while open; at least a week); `meeting_share`: meetings among them;
- `activities_per_week_<stage>`: the same, inside each stage the deal spent at least a day in;
- `days_in_<stage>`: days spent in a stage the deal left by moving forward (or by winning, from the last stage);
- `criteria_met_<stage>`: 1 when every exit criterion of a stage the deal left was checked done before it left
  (`playbook.gate_effect.advances`), else 0; `criteria_met_rate`: the share of the stages it left with all
  criteria met;
- `qualification_score` and `qualification_completeness` (questions answered other than "unknown", ÷ the
  framework's questions), the best framework's, for deals that reached the middle of the pipeline (the stage
  after the answering stages) — earlier, an unanswered question is not yet a gap;
- `discount`: for deals that reached the second-to-last stage (proposal in the default playbook), how far the
  amount came down from its value on entering it (0 when it did not).

Per lead (`lead_behaviours`): `speed_to_lead_hours`, from creation to the first touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.playbook.default import Playbook
from closewise.playbook.gate_effect import advances
from closewise.playbook.qualification import scores

_DAY_US: Final = 86_400_000_000
VALUE: Final = "value"  # a deal's amount in the corporate currency


@dataclass(frozen=True)
class BehaviourInputs:
    """`deals`: every deal as it stood at `as_of` (`id`, `owner_id`, `segment`, `stage`, `status`, `created_at`,
    `closed_at`, `value` = amount in the corporate currency); `changes`: the change log; `activities`:
    `opportunity_id`, `owner_id`, `type`, `occurred_at`, `completed`, `contact_id`; `contacts`: `id`,
    `buying_role`; `checks`: criteria checks; `answers`: qualification answers; `leads`: `id`, `owner_id`,
    `lead_source`, `created_at`, `first_touch_at`."""

    deals: pl.DataFrame
    changes: pl.DataFrame
    activities: pl.DataFrame
    contacts: pl.DataFrame
    checks: pl.DataFrame
    answers: pl.DataFrame
    leads: pl.DataFrame
    playbook: Playbook


def _days(end: pl.Expr, start: pl.Expr) -> pl.Expr:
    return (end - start).dt.total_microseconds() / _DAY_US


def stage_intervals(deals: pl.DataFrame, changes: pl.DataFrame, playbook: Playbook, *, as_of: datetime) -> pl.DataFrame:
    """Each stay of a deal in a stage up to `as_of`: `opportunity_id`, `stage`, `entered_at`, `left_at` (the
    next stage change, the close, or `as_of`), `advanced` (left by moving to a later stage, or by winning from
    its stage)."""
    order = {stage.key: index for index, stage in enumerate(playbook.stages)}
    moves = (changes.filter(pl.col("field") == "stage", pl.col("changed_at") <= as_of)
             .select("opportunity_id", "changed_at", "old_value", "new_value").sort("opportunity_id", "changed_at"))
    first_old = moves.group_by("opportunity_id").agg(pl.col("old_value").first().alias("_first"))
    starts = (deals.select(pl.col("id").alias("opportunity_id"), "created_at", "stage")
              .join(first_old, on="opportunity_id", how="left")
              .select("opportunity_id", pl.coalesce("_first", "stage").alias("stage"),
                      pl.col("created_at").alias("entered_at")))
    stays = pl.concat([starts, moves.select("opportunity_id", pl.col("new_value").alias("stage"),
                                            pl.col("changed_at").alias("entered_at"))])
    ends = deals.select(pl.col("id").alias("opportunity_id"), "status", "closed_at")
    at = pl.lit(as_of, dtype=pl.Datetime("us"))
    stays = (stays.join(ends, on="opportunity_id", how="inner").sort("opportunity_id", "entered_at")
             .with_columns(pl.col("entered_at").shift(-1).over("opportunity_id").alias("_next"),
                           pl.col("stage").shift(-1).over("opportunity_id").alias("_next_stage"))
             .with_columns(
                 pl.col("stage").replace_strict(order, default=None, return_dtype=pl.Int64).alias("_o"),
                 pl.col("_next_stage").replace_strict(order, default=None, return_dtype=pl.Int64).alias("_no"),
                 (pl.col("closed_at").is_not_null() & (pl.col("closed_at") <= at) & (pl.col("status") != "open"))
                 .alias("_closed"))
             .rename({"closed_at": "_closed_at"}))
    closed = pl.col("_closed")
    return stays.select(
        "opportunity_id", "stage",
        "entered_at",
        pl.when(pl.col("_next").is_not_null()).then(pl.col("_next"))
        .when(closed).then(pl.col("_closed_at")).otherwise(at).alias("left_at"),
        pl.when(pl.col("_next").is_not_null()).then(pl.col("_no").fill_null(-1) > pl.col("_o").fill_null(99))
        .otherwise(closed & (pl.col("status") == "won")).alias("advanced"),
    )


def deal_behaviours(inputs: BehaviourInputs, *, as_of: datetime) -> pl.DataFrame:
    """One row per deal of `inputs.deals`: `id`, `owner_id`, `segment`, `value`, `created_at`, `status`,
    `won` (null while open), and the measures of the module header."""
    deals = inputs.deals
    at = pl.lit(as_of, dtype=pl.Datetime("us"))
    ids = deals["id"].implode()
    done = inputs.activities.filter(pl.col("completed").fill_null(value=True), pl.col("occurred_at") <= as_of,
                                    pl.col("opportunity_id").is_in(ids))
    roles = inputs.contacts.select(pl.col("id").alias("contact_id"), "buying_role")
    done = done.join(roles, on="contact_id", how="left")
    per_deal_activity = done.group_by("opportunity_id").agg(
        pl.col("contact_id").drop_nulls().n_unique().alias("contacts_engaged"),
        (pl.col("buying_role") == "economic_buyer").any().cast(pl.Float64).alias("economic_buyer_engaged"),
        pl.col("occurred_at").filter(pl.col("type") == "meeting").min().alias("_first_meeting"),
        pl.len().alias("_activities"),
        (pl.col("type") == "meeting").sum().alias("_meetings"),
    )
    base = deals.select(
        "id", "owner_id", "segment", VALUE, "created_at", "status",
        pl.when(pl.col("status") == "open").then(None).otherwise(pl.col("status") == "won").alias("won"),
        pl.when(pl.col("status") == "open").then(at).otherwise(pl.col("closed_at")).alias("_end"),
    )
    table = (base.join(per_deal_activity.rename({"opportunity_id": "id"}), on="id", how="left")
             .with_columns(pl.col("contacts_engaged").fill_null(0).cast(pl.Float64),
                           pl.col("economic_buyer_engaged").fill_null(0.0),
                           pl.col("_activities").fill_null(0), pl.col("_meetings").fill_null(0))
             .with_columns(
                 _days(pl.col("_first_meeting"), pl.col("created_at")).clip(lower_bound=0.0)
                 .alias("days_to_first_meeting"),
                 (pl.col("_activities")
                  / pl.max_horizontal(_days(pl.col("_end"), pl.col("created_at")) / 7, pl.lit(1.0)))
                 .alias("activities_per_week"),
                 pl.when(pl.col("_activities") > 0).then(pl.col("_meetings") / pl.col("_activities"))
                 .alias("meeting_share"))
             .drop("_first_meeting", "_activities", "_meetings", "_end"))
    stays = stage_intervals(deals, inputs.changes, inputs.playbook, as_of=as_of)
    table = table.join(_stage_measures(stays, done), on="id", how="left")
    table = table.join(_criteria_measures(inputs, as_of), on="id", how="left")
    table = table.join(_qualification_measures(inputs, stays, as_of), on="id", how="left")
    return table.join(_discount(inputs, stays, as_of), on="id", how="left")


def _stage_measures(stays: pl.DataFrame, done: pl.DataFrame) -> pl.DataFrame:
    stays = stays.with_row_index("_stay").with_columns(
        _days(pl.col("left_at"), pl.col("entered_at")).alias("_d"))
    hits = (done.select("opportunity_id", "occurred_at").sort("occurred_at")
            .join_asof(stays.select("_stay", "opportunity_id", "entered_at").sort("entered_at"),
                       left_on="occurred_at", right_on="entered_at", by="opportunity_id", strategy="backward",
                       check_sortedness=False)
            .join(stays.select("_stay", "left_at"), on="_stay", how="inner")
            .filter(pl.col("occurred_at") < pl.col("left_at"))
            .group_by("_stay").agg(pl.len().alias("_n")))
    stays = stays.join(hits, on="_stay", how="left").with_columns(pl.col("_n").fill_null(0))
    rate = (stays.filter(pl.col("_d") >= 1)
            .group_by("opportunity_id", "stage").agg((pl.col("_n").sum() / (pl.col("_d").sum() / 7)).alias("v"))
            .with_columns(pl.format("activities_per_week_{}", "stage").alias("k")))
    spent = (stays.filter(pl.col("advanced"))
             .group_by("opportunity_id", "stage").agg(pl.col("_d").sum().alias("v"))
             .with_columns(pl.format("days_in_{}", "stage").alias("k")))
    return _wide(pl.concat([rate.select("opportunity_id", "k", "v"), spent.select("opportunity_id", "k", "v")]))


def _criteria_measures(inputs: BehaviourInputs, as_of: datetime) -> pl.DataFrame:
    ids = inputs.deals["id"].implode()
    judged = advances(inputs.changes.filter(pl.col("opportunity_id").is_in(ids)),
                      inputs.checks.filter(pl.col("opportunity_id").is_in(ids)), inputs.playbook, as_of=as_of)
    per_stage = (judged.group_by("opportunity_id", "stage").agg(pl.col("met").all().cast(pl.Float64).alias("v"))
                 .with_columns(pl.format("criteria_met_{}", "stage").alias("k")))
    wide = _wide(per_stage.select("opportunity_id", "k", "v"))
    rate = per_stage.group_by("opportunity_id").agg(pl.col("v").mean().alias("criteria_met_rate")).rename(
        {"opportunity_id": "id"})
    return wide.join(rate, on="id", how="full", coalesce=True) if wide.width > 1 else rate


def _qualification_measures(inputs: BehaviourInputs, stays: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    keys = [stage.key for stage in inputs.playbook.stages]
    middle = set(keys[len(keys) // 2:])
    reached = stays.filter(pl.col("stage").is_in(sorted(middle)))["opportunity_id"].unique()
    schema = {"id": pl.Int64(), "qualification_score": pl.Float64(), "qualification_completeness": pl.Float64()}
    if not inputs.playbook.frameworks or reached.len() == 0:
        return pl.DataFrame(schema=schema)
    answers = inputs.answers.filter(pl.col("opportunity_id").is_in(reached.implode()))
    cards = scores(answers, list(inputs.playbook.frameworks), as_of=as_of)
    best = (cards.with_columns(((pl.col("answered") - pl.col("unknown")) / pl.col("questions")).alias("_c"))
            .group_by("opportunity_id").agg(pl.col("score").max(), pl.col("_c").max()))
    return (pl.DataFrame({"id": reached}).join(best.rename({"opportunity_id": "id"}), on="id", how="left")
            .select("id", pl.col("score").fill_null(0.0).alias("qualification_score"),
                    pl.col("_c").fill_null(0.0).alias("qualification_completeness")))


def _discount(inputs: BehaviourInputs, stays: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    keys = [stage.key for stage in inputs.playbook.stages]
    schema = {"id": pl.Int64(), "discount": pl.Float64()}
    if len(keys) < 2:
        return pl.DataFrame(schema=schema)
    late = set(keys[-2:])
    entered = (stays.filter(pl.col("stage").is_in(sorted(late))).group_by("opportunity_id")
               .agg(pl.col("entered_at").min().alias("_at")))
    amounts = (inputs.changes.filter(pl.col("field") == "amount", pl.col("changed_at") <= as_of)
               .join(entered, on="opportunity_id", how="inner").filter(pl.col("changed_at") >= pl.col("_at"))
               .sort("changed_at")
               .group_by("opportunity_id").agg(
                   pl.col("old_value").first().cast(pl.Float64, strict=False).alias("_from"),
                                               pl.col("new_value").last().cast(pl.Float64, strict=False).alias("_to")))
    return (entered.join(amounts, on="opportunity_id", how="left")
            .select(pl.col("opportunity_id").alias("id"),
                    pl.when(pl.col("_from") > 0).then((1 - pl.col("_to") / pl.col("_from")).clip(lower_bound=0.0))
                    .otherwise(0.0).fill_null(0.0).alias("discount")))


def _wide(long: pl.DataFrame) -> pl.DataFrame:
    if long.height == 0:
        return pl.DataFrame(schema={"id": pl.Int64()})
    return long.pivot(on="k", index="opportunity_id", values="v").rename({"opportunity_id": "id"})


def lead_behaviours(leads: pl.DataFrame, *, since: datetime, as_of: datetime) -> pl.DataFrame:
    """Leads created in `[since, as_of]` and touched by `as_of`: `id`, `owner_id`, `lead_source`,
    `speed_to_lead_hours`."""
    return (leads.filter(pl.col("created_at") >= since, pl.col("created_at") <= as_of,
                         pl.col("first_touch_at").is_not_null(), pl.col("first_touch_at") <= as_of,
                         pl.col("owner_id").is_not_null())
            .select("id", "owner_id", pl.col("lead_source").fill_null("(none)"),
                    (_days(pl.col("first_touch_at"), pl.col("created_at")) * 24).clip(lower_bound=0.0)
                    .alias("speed_to_lead_hours")))


def window_start(as_of: datetime, days: int) -> datetime:
    return as_of - timedelta(days=days)
