"""The reference data a demo org starts from: the default playbook, org settings and currency rates."""

from __future__ import annotations

from typing import Any, Final

from closewise.demo.plan import CORPORATE_CURRENCY, STATIC_RATES, DemoPlan, stream
from closewise.playbook.default import Playbook

Row = dict[str, Any]

ORG_SETTINGS: Final = {"corporate_currency": CORPORATE_CURRENCY, "fiscal_year_start_month": "1"}


def stage_rows(playbook: Playbook, first_stage_id: int, first_criterion_id: int) -> tuple[list[Row], list[Row]]:
    stages: list[Row] = []
    criteria: list[Row] = []
    for index, stage in enumerate(playbook.stages):
        stage_id = first_stage_id + index
        stages.append(
            {
                "id": stage_id,
                "pipeline": playbook.pipeline,
                "key": stage.key,
                "name": stage.name,
                "order": stage.order,
                "default_probability": stage.default_probability,
                "forecast_category": stage.forecast_category.value,
                "days_to_rot": stage.days_to_rot,
                "requalify_days": stage.requalify_days,
                "guidance": stage.guidance,
                "required_fields": list(stage.required_fields),
                "requires_passing_proposal": stage.requires_passing_proposal,
            }
        )
        for order, criterion in enumerate(stage.exit_criteria, start=1):
            criteria.append(
                {
                    "id": first_criterion_id + len(criteria),
                    "stage_id": stage_id,
                    "key": criterion.key,
                    "label": criterion.label,
                    "kind": criterion.kind,
                    "spec": dict(criterion.spec) if criterion.spec else None,
                    "order": order,
                }
            )
    return stages, criteria


def framework_rows(playbook: Playbook, first_id: int) -> list[Row]:
    return [
        {
            "id": first_id + index,
            "key": framework.key,
            "name": framework.name,
            "questions": [{"key": q.key, "label": q.label} for q in framework.questions],
        }
        for index, framework in enumerate(playbook.frameworks)
    ]


def currency_rate_rows(plan: DemoPlan, first_id: int) -> list[Row]:
    """The static rate of each currency, and a dated rate from the start of every history quarter that
    wanders within about 3% of it."""
    rng = stream(plan.seed, "currency-rates")
    rows: list[Row] = []
    for currency, rate in STATIC_RATES.items():
        rows.append({"currency": currency, "rate": rate, "start_date": None})
        for quarter in plan.quarters:
            rows.append(
                {
                    "currency": currency,
                    "rate": round(rate * (1 + rng.normal(0.0, 0.015)), 4),
                    "start_date": quarter.start,
                }
            )
    return [{"id": first_id + index, **row} for index, row in enumerate(rows)]
