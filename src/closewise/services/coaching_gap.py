"""The performance gap as a signed-in user sees it: the top performers among the reps in sight, how their
behaviour differs from the rest (`coaching.gap`), the checklist it suggests (`coaching.checklist`), and the
adoption of checklist items into the playbook with their tracked effect."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.coaching import checklist as checklist_rules
from closewise.coaching import gap as gap_rules
from closewise.coaching.behaviours import lead_behaviours
from closewise.db import audit
from closewise.db import coaching as store
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
from closewise.playbook.default import ExitCriterion
from closewise.playbook.yaml_io import playbook_to_yaml
from closewise.services import playbook as playbook_service
from closewise.services.coaching_access import may_adopt
from closewise.services.coaching_data import (
    CoachingData,
    everyone,
    json_dict,
    json_row,
    json_safe,
    load,
    reps_in_sight,
    window_quotas,
)
from closewise.services.report_cache import ReportCache


@dataclass(frozen=True)
class GapReport:
    as_of: datetime
    window_days: int
    currency: str
    rule: str
    ranked_by: str
    controls: list[str]
    deals: int
    leads: int
    reps: list[dict[str, Any]]  # the ranking: every rep in sight, eligible or not
    top_performers: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    checklist: list[dict[str, Any]]
    adopted: list[dict[str, Any]]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(), "window_days": self.window_days, "currency": self.currency,
            "rule": self.rule, "ranked_by": self.ranked_by, "controls": self.controls, "deals": self.deals,
            "leads": self.leads, "alpha": self.alpha, "top_performers": self.top_performers, "reps": self.reps,
            "metrics": self.metrics, "checklist": self.checklist, "adopted": self.adopted,
        }


def performance_gap(engine: Engine, *, scope: Scope, as_of: datetime | None = None, window_days: int = 365,
                    options: gap_rules.GapOptions | None = None, data: CoachingData | None = None,
                    cache: ReportCache | None = None) -> GapReport:
    """Top performers among the reps `scope` sees, how their behaviour differs from the rest, and the checklist
    the significant differences suggest (`coaching.gap`, `coaching.checklist`). With a `cache`
    (`services.report_cache`) the report is kept there."""
    if not 30 <= window_days <= 3 * 366:
        raise InvalidInput("the window must be 30 to 1,098 days", where="window_days")
    if cache is not None and data is None:
        return cache.remember_as_of("gap", (scope.owner_ids, window_days, options), as_of, lambda: _gap(
            engine, load(engine, scope=scope, as_of=as_of, cache=cache), window_days, options))
    return _gap(engine, data or load(engine, scope=scope, as_of=as_of), window_days, options)


def _gap(engine: Engine, data: CoachingData, window_days: int, options: gap_rules.GapOptions | None) -> GapReport:
    since = data.at - timedelta(days=window_days)
    reps = reps_in_sight(data)
    ranking = gap_rules.rank_reps(reps, data.deals, window_quotas(engine, data, since=since), as_of=data.at,
                                  window_days=window_days)
    leads = lead_behaviours(data.leads, since=since, as_of=data.at)
    result = gap_rules.compare(data.behaviours, leads, ranking, data.playbook, as_of=data.at, window_days=window_days,
                               options=options)
    with engine.connect() as connection:
        adopted = store.list_adoptions(connection)
    items = checklist_rules.propose(result.metrics, data.playbook, adopted_keys={a["item_key"] for a in adopted},
                                    controls=result.controls)
    table = ranking.table.with_columns(pl.col("hire_date").cast(pl.String))
    ranked = [json_row(row) for row in table.iter_rows(named=True)]
    return GapReport(
        as_of=data.at, window_days=window_days, currency=data.org.corporate_currency, rule=ranking.rule,
        ranked_by=ranking.by, controls=result.controls, deals=result.deals, leads=result.leads, reps=ranked,
        top_performers=[{"id": r["user_id"], **r} for r in ranked if r["top"]],
        metrics=[json_row(row) for row in result.metrics.iter_rows(named=True)],
        checklist=[item.to_dict() for item in items],
        adopted=[_adoption(a, data) for a in adopted], alpha=result.options.alpha,
    )


def org_gap(engine: Engine, *, scope: Scope, at: datetime) -> GapReport:
    """The org-wide gap (the benchmark a plan's skills come from): only its aggregates are shown to the user."""
    return performance_gap(engine, scope=everyone(scope), as_of=at)


def adopt_item(engine: Engine, *, scope: Scope, item_key: str, as_of: datetime | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """Adopt a proposed checklist item: it becomes a checkbox exit criterion of its stage (through
    `services.playbook.import_playbook`, so the playbook's own checks apply), unless it enforces criteria
    the playbook already has; the adoption and its evidence are recorded. Leaders and admins."""
    if not may_adopt(scope):
        raise Forbidden(f"a {scope.role.value} cannot change the playbook")
    moment = as_utc(now) if now is not None else utcnow()
    report = performance_gap(engine, scope=scope, as_of=as_of)
    item = next((i for i in report.checklist if i["key"] == item_key), None)
    if item is None:
        raise NotFound(f"no proposed checklist item {item_key!r}", where="item")
    if item["adopted"]:
        raise Conflict(f"{item_key!r} is already adopted", where="item")
    if item["adds_criterion"]:
        playbook = playbook_service.current_playbook(engine)
        if any(c.key == item_key for stage in playbook.stages for c in stage.exit_criteria):
            raise Conflict(f"the playbook already has an exit criterion {item_key!r}", where="item")
        stages = tuple(
            replace(stage, exit_criteria=(*stage.exit_criteria, ExitCriterion(item_key, item["label"], "checkbox")))
            if stage.key == item["stage"] else stage
            for stage in playbook.stages)
        playbook_service.import_playbook(engine, text=playbook_to_yaml(replace(playbook, stages=stages)),
                                         source="coaching checklist", actor_id=scope.user_id)
    with engine.begin() as connection:
        adoption_id = store.insert_adoption(connection, values={
            "item_key": item_key, "stage": item["stage"], "criterion_key": item_key, "label": item["label"],
            "metric": item["metric"], "threshold": item["threshold"],
            "evidence": json_safe({k: item[k] for k in ("top", "rest", "effect_size", "p_value", "q_value",
                                                        "evidence", "adds_criterion")}),
            "adopted_at": moment, "adopted_by": scope.user_id})
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.adopt", entity="playbook",
                     entity_id=item["stage"], detail={"item": item_key, "adoption_id": adoption_id})
    return {"id": adoption_id, **item, "adopted": True, "adopted_at": moment.isoformat()}


def _adoption(row: dict[str, Any], data: CoachingData) -> dict[str, Any]:
    adopted_at = naive_utc(as_utc(row["adopted_at"]))
    effect = checklist_rules.adoption_effect(data.behaviours, row["metric"], adopted_at=adopted_at, as_of=data.at)
    ticked = data.checks.filter(pl.col("criterion_key") == row["criterion_key"], pl.col("done"),
                                pl.col("checked_at") <= data.at)["opportunity_id"].n_unique()
    return json_dict({"id": row["id"], "item_key": row["item_key"], "stage": row["stage"], "label": row["label"],
                      "metric": row["metric"], "threshold": row["threshold"], "adopted_at": adopted_at,
                      "adopted_by": row["adopted_by_name"], "evidence": row["evidence"], "effect": effect,
                      "deals_ticked": ticked})
