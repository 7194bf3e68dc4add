"""Do the gates matter? Win and slip rates of deals that advanced with their exit criteria met against deals
that advanced without them (by override, or before gates were enforced), overall and per criterion — the
evidence to tune the playbook with.

An advance is a stage change to a later stage in the change log. It met its criteria when every exit
criterion of the stage it left (and of any stage it skipped) had a check recorded done at or before the
advance (the latest such check counts). A deal advanced "with criteria" when all its advances met them.
Outcomes are those known at `as_of`: win rate = won / closed (won, lost, no decision) among deals closed by
then; slip rate = share of those deals whose close date was ever moved later after their first advance.
Per stage: the closed deals that left it, split by whether all its criteria were met when they did (the
sharpest view: it compares deals at the same point of the funnel), with the lift of one win rate over the
other. Per criterion: the advances out of its stage, split by whether that criterion was met, and the win
rate of their deals. Everything after `as_of` is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from closewise.playbook.default import Playbook


@dataclass(frozen=True)
class GateEffect:
    as_of: datetime
    groups: pl.DataFrame  # group, deals, closed, won, win_rate, slip_rate
    stages: pl.DataFrame  # stage, met_deals, met_win_rate, unmet_deals, unmet_win_rate, lift
    criteria: pl.DataFrame  # stage, criterion, label, met_advances, met_win_rate, unmet_advances, unmet_win_rate

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "groups": self.groups.to_dicts(),
                "stages": self.stages.to_dicts(), "criteria": self.criteria.to_dicts()}


def advances(changes: pl.DataFrame, checks: pl.DataFrame, playbook: Playbook, *, as_of: datetime) -> pl.DataFrame:
    """Every forward stage change by `as_of`: `opportunity_id`, `changed_at`, `from_stage`, `to_stage`, and
    per criterion judged (`criterion`, `stage`, `met`) — one row per (advance, criterion)."""
    order = {stage.key: index for index, stage in enumerate(playbook.stages)}
    criteria = pl.DataFrame(
        [(stage.key, order[stage.key], c.key) for stage in playbook.stages for c in stage.exit_criteria],
        schema={"stage": pl.String(), "_stage_order": pl.Int64(), "criterion": pl.String()}, orient="row")
    moves = (changes.filter(pl.col("field") == "stage", pl.col("changed_at") <= as_of)
             .select("opportunity_id", "changed_at", pl.col("old_value").alias("from_stage"),
                     pl.col("new_value").alias("to_stage"))
             .with_columns(pl.col("from_stage").replace_strict(order, default=None, return_dtype=pl.Int64)
                           .alias("_from"),
                           pl.col("to_stage").replace_strict(order, default=None, return_dtype=pl.Int64).alias("_to"))
             .filter(pl.col("_from").is_not_null(), pl.col("_to").is_not_null(), pl.col("_to") > pl.col("_from"))
             .with_row_index("advance"))
    judged = moves.join(criteria, how="cross").filter(
        pl.col("_stage_order") >= pl.col("_from"), pl.col("_stage_order") < pl.col("_to"))
    done = (checks.filter(pl.col("checked_at") <= as_of)
            .select("opportunity_id", pl.col("criterion_key").alias("criterion"), "checked_at", "done")
            .sort("checked_at"))
    latest = (judged.select("advance", "opportunity_id", "criterion", "changed_at")
              .join(done, on=["opportunity_id", "criterion"], how="inner")
              .filter(pl.col("checked_at") <= pl.col("changed_at"))
              .group_by("advance", "criterion").agg(pl.col("done").sort_by("checked_at").last().alias("met")))
    return (judged.join(latest, on=["advance", "criterion"], how="left")
            .with_columns(pl.col("met").fill_null(False))
            .select("advance", "opportunity_id", "changed_at", "from_stage", "to_stage", "stage", "criterion", "met"))


def gate_effect(changes: pl.DataFrame, checks: pl.DataFrame, outcomes: pl.DataFrame, playbook: Playbook, *,
                as_of: datetime, overrides: pl.DataFrame | None = None) -> GateEffect:
    """`changes`: the change log (`opportunity_id`, `field`, `old_value`, `new_value`, `changed_at`); `checks`:
    `opportunity_id`, `criterion_key`, `done`, `checked_at`; `outcomes`: `id`, `status`, `closed_at` (current
    rows; closed after `as_of` counts as open); `overrides`: advances made with an override reason
    (`opportunity_id`, `changed_at`)."""
    judged = advances(changes, checks, playbook, as_of=as_of)
    per_advance = judged.group_by("advance", "opportunity_id", "changed_at").agg(pl.col("met").all().alias("met"))
    if overrides is not None and overrides.height:
        marked = overrides.select("opportunity_id", "changed_at").unique().with_columns(
            pl.lit(True).alias("override"))
        per_advance = per_advance.join(marked, on=["opportunity_id", "changed_at"], how="left")
    else:
        per_advance = per_advance.with_columns(pl.lit(None, pl.Boolean).alias("override"))
    per_deal = per_advance.group_by("opportunity_id").agg(
        pl.col("met").all().alias("all_met"), pl.col("override").fill_null(False).any().alias("override"),
        pl.col("changed_at").min().alias("first_advance"))
    closed = outcomes.filter(pl.col("status") != "open", pl.col("closed_at") <= as_of).select(
        pl.col("id").alias("opportunity_id"), (pl.col("status") == "won").alias("won"))
    pushes = (changes.filter(pl.col("field") == "close_date", pl.col("changed_at") <= as_of,
                             pl.col("new_value") > pl.col("old_value"))
              .select("opportunity_id", pl.col("changed_at").alias("_pushed_at")))
    slipped = (per_deal.join(pushes, on="opportunity_id", how="inner")
               .filter(pl.col("_pushed_at") > pl.col("first_advance")).select("opportunity_id").unique()
               .with_columns(pl.lit(True).alias("slipped")))
    deals = (per_deal.join(closed, on="opportunity_id", how="left").join(slipped, on="opportunity_id", how="left")
             .with_columns(pl.col("slipped").fill_null(False),
                           pl.when(pl.col("override")).then(pl.lit("advanced by override"))
                           .when(pl.col("all_met")).then(pl.lit("criteria met"))
                           .otherwise(pl.lit("criteria not met")).alias("group")))
    groups = (deals.group_by("group").agg(
        pl.len().alias("deals"), pl.col("won").is_not_null().sum().alias("closed"),
        pl.col("won").fill_null(False).sum().alias("won"),
        pl.col("slipped").filter(pl.col("won").is_not_null()).mean().alias("slip_rate"))
        .with_columns(pl.when(pl.col("closed") > 0).then(pl.col("won") / pl.col("closed")).alias("win_rate"))
        .select("group", "deals", "closed", "won", "win_rate", "slip_rate").sort("group"))
    labels = pl.DataFrame([(c.key, c.label) for s in playbook.stages for c in s.exit_criteria],
                          schema={"criterion": pl.String(), "label": pl.String()}, orient="row")
    outcome = judged.join(closed, on="opportunity_id", how="inner")
    criteria = (outcome.group_by("stage", "criterion").agg(
        pl.col("met").sum().alias("met_advances"), pl.col("won").filter(pl.col("met")).mean().alias("met_win_rate"),
        (~pl.col("met")).sum().alias("unmet_advances"),
        pl.col("won").filter(~pl.col("met")).mean().alias("unmet_win_rate"))
        .join(labels, on="criterion", how="left")
        .select("stage", "criterion", "label", "met_advances", "met_win_rate", "unmet_advances", "unmet_win_rate"))
    order = {stage.key: index for index, stage in enumerate(playbook.stages)}
    # Per stage: closed deals that left it, split by whether all its criteria were met when they did.
    left = (outcome.group_by("advance", "opportunity_id", "stage").agg(pl.col("met").all(), pl.col("won").first())
            .group_by("opportunity_id", "stage").agg(pl.col("met").all(), pl.col("won").first()))
    stages = (left.group_by("stage").agg(
        pl.col("met").sum().alias("met_deals"), pl.col("won").filter(pl.col("met")).mean().alias("met_win_rate"),
        (~pl.col("met")).sum().alias("unmet_deals"),
        pl.col("won").filter(~pl.col("met")).mean().alias("unmet_win_rate"))
        .with_columns(pl.when(pl.col("unmet_win_rate") > 0).then(pl.col("met_win_rate") / pl.col("unmet_win_rate"))
                      .alias("lift"))
        .with_columns(pl.col("stage").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort("_o")
        .drop("_o"))
    criteria = criteria.with_columns(pl.col("stage").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort(
        "_o", "criterion").drop("_o")
    return GateEffect(as_of, groups, stages, criteria)
