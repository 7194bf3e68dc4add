"""From the gap to a checklist: each behaviour where top performers differ significantly from the rest (and in the
better direction) becomes one item for the stage it belongs to, worded as something a rep can do and tick,
with the top performers' own level as the bar ("engage at least 3 contacts", "first meeting within 4 days").

An item can be adopted into the playbook (`services.coaching_gap.adopt_item`): it becomes a checkbox exit
criterion of its stage, keyed `coach_<metric>`, so gates, deal pages and the gate analysis pick it up. Items
about exit criteria already in the playbook ("complete the Discovery exit criteria") add nothing to the
playbook: adopting them records the decision to hold the team to the existing gate. Adoption is tracked
(`adoption_effect`): the behaviour's level on deals opened before the adoption against deals opened since.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from closewise.playbook.default import Playbook


@dataclass(frozen=True)
class ChecklistItem:
    key: str  # coach_<metric>: the exit criterion key it becomes
    stage: str
    stage_name: str
    metric: str
    label: str
    threshold: float | None
    top: float | None
    rest: float | None
    effect_size: float | None
    p_value: float | None
    q_value: float | None
    evidence: str
    adds_criterion: bool  # False: the item enforces criteria the playbook already has
    adopted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round_up(value: float) -> float:
    return float(math.ceil(value)) if value >= 2 else round(value, 1)


def _wording(metric: str, top: float, stage_name: str) -> tuple[str, float] | None:
    if metric == "days_to_first_meeting":
        days = max(1.0, _round_up(top))
        return f"Hold the first meeting within {days:g} days of opening the deal", days
    if metric == "speed_to_lead_hours":
        hours = max(1.0, _round_up(top))
        return f"Touch every new lead within {hours:g} hours", hours
    if metric == "contacts_engaged":
        count = max(2.0, float(round(top)))
        return f"Engage at least {count:g} contacts of the buying group", count
    if metric == "economic_buyer_engaged":
        return "Meet the economic buyer", 1.0
    if metric == "activities_per_week":
        rate = round(top, 1)
        return f"Keep at least {rate:g} touches a week on every open deal", rate
    if metric == "meeting_share":
        share = round(top * 100)
        return f"Make at least {share}% of touches meetings, not emails", top
    if metric == "criteria_met_rate":
        return "Tick every exit criterion before moving a deal on", 1.0
    if metric == "qualification_completeness":
        return f"Answer every qualification question (top performers answer {top:.0%})", top
    if metric == "qualification_score":
        return f"Reach a qualification score of {top:.0%} before the solution stage", round(top, 2)
    if metric == "discount":
        return f"Keep discounts under {max(top, 0.01):.0%} after the proposal", round(top, 3)
    if metric.startswith("activities_per_week_"):
        rate = round(top, 1)
        return f"{stage_name}: keep at least {rate:g} touches a week", rate
    if metric.startswith("days_in_"):
        days = max(1.0, _round_up(top))
        return f"Move out of {stage_name} within {days:g} days, or requalify the deal", days
    if metric.startswith("criteria_met_"):
        return f"Complete every {stage_name} exit criterion before moving on", 1.0
    return None


def propose(metrics: pl.DataFrame, playbook: Playbook, *, adopted_keys: set[str] | None = None,
            controls: list[str] | None = None) -> list[ChecklistItem]:
    """One item per significant behaviour that favours the top performers, in stage order, strongest first."""
    adopted = adopted_keys or set()
    names = {stage.key: stage.name for stage in playbook.stages}
    order = {stage.key: index for index, stage in enumerate(playbook.stages)}
    first = playbook.stages[0].key if playbook.stages else "general"
    items: list[ChecklistItem] = []
    if metrics.height == 0:
        return items
    adjusted = f"(within {' and '.join(controls)})" if controls else "(no controls available)"
    chosen = metrics.filter(pl.col("significant"), pl.col("favours_top").fill_null(value=False),
                            pl.col("kind") == "behaviour", pl.col("top").is_not_null())
    for row in chosen.iter_rows(named=True):
        stage = row["stage"] or first
        worded = _wording(row["metric"], float(row["top"]), names.get(stage, stage))
        if worded is None:
            continue
        label, threshold = worded
        key = f"coach_{row['metric']}"[:64]
        rest = row["rest"]
        evidence = (f"top performers {_fmt(row['top'], row['unit'])} vs the rest {_fmt(rest, row['unit'])}; "
                    f"effect size {row['effect_size']:+.2f}, p = {row['p_value']:.3f}, q = {row['q_value']:.3f} "
                    f"{adjusted}")
        items.append(ChecklistItem(
            key=key, stage=stage, stage_name=names.get(stage, stage), metric=row["metric"], label=label,
            threshold=threshold, top=row["top"], rest=rest, effect_size=row["effect_size"], p_value=row["p_value"],
            q_value=row["q_value"], evidence=evidence,
            adds_criterion=not row["metric"].startswith("criteria_met"), adopted=key in adopted))
    items.sort(key=lambda item: (order.get(item.stage, 99), -abs(item.effect_size or 0.0)))
    return items


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{value:.0%}"
    return f"{value:.1f} {unit}"


def adoption_effect(behaviours: pl.DataFrame, metric: str, *, adopted_at: datetime, as_of: datetime,
                    before_days: int = 90) -> dict[str, Any]:
    """The behaviour on deals opened in the `before_days` before the adoption against deals opened since:
    `before`, `after` (means), `before_deals`, `after_deals`, `change`."""
    if metric not in behaviours.columns:
        return {"before": None, "after": None, "before_deals": 0, "after_deals": 0, "change": None}
    values = behaviours.filter(pl.col(metric).is_not_null(), pl.col("created_at") <= as_of)
    before = values.filter(pl.col("created_at") >= adopted_at - timedelta(days=before_days),
                           pl.col("created_at") < adopted_at)[metric]
    after = values.filter(pl.col("created_at") >= adopted_at)[metric]
    b = float(before.mean()) if before.len() else None  # type: ignore[arg-type]
    a = float(after.mean()) if after.len() else None  # type: ignore[arg-type]
    return {"before": b, "after": a, "before_deals": before.len(), "after_deals": after.len(),
            "change": a - b if a is not None and b is not None else None}
