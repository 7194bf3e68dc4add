"""Reading and writing the playbook (stages, exit criteria, qualification frameworks) and a deal's evidence:
criteria checks, qualification answers, activities and the buying roles of the contacts engaged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import (
    activities,
    contacts,
    criteria_checks,
    exit_criteria,
    opportunities,
    opportunity_changes,
    qualification_answers,
    qualification_frameworks,
    stages,
)
from closewise.domain.enums import ForecastCategory
from closewise.domain.timeutil import as_utc
from closewise.playbook.default import (
    CriterionKind,
    ExitCriterion,
    Playbook,
    QualificationFramework,
    Question,
    StageDefinition,
)
from closewise.playbook.gates import DealEvidence


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value).replace(tzinfo=None)


def load_playbook(connection: Connection, *, pipeline: str = "default") -> Playbook:
    stage_rows = connection.execute(sa.select(stages).where(stages.c.pipeline == pipeline)
                                    .order_by(stages.c.order)).mappings().all()
    criteria_rows = connection.execute(
        sa.select(exit_criteria, stages.c.key.label("stage_key"))
        .join(stages, stages.c.id == exit_criteria.c.stage_id).where(stages.c.pipeline == pipeline)
        .order_by(exit_criteria.c.order, exit_criteria.c.id)).mappings().all()
    by_stage: dict[str, list[ExitCriterion]] = {}
    for row in criteria_rows:
        kind: CriterionKind = row["kind"] if row["kind"] in ("checkbox", "field", "evidence") else "checkbox"
        by_stage.setdefault(row["stage_key"], []).append(ExitCriterion(row["key"], row["label"], kind, row["spec"]))
    defined = tuple(
        StageDefinition(key=row["key"], name=row["name"], order=row["order"],
                        default_probability=float(row["default_probability"]),
                        forecast_category=ForecastCategory(row["forecast_category"]),
                        days_to_rot=int(row["days_to_rot"] or 30), requalify_days=int(row["requalify_days"] or 30),
                        guidance=row["guidance"] or "", exit_criteria=tuple(by_stage.get(row["key"], [])),
                        required_fields=tuple(row["required_fields"] or ()),
                        requires_passing_proposal=bool(row["requires_passing_proposal"]))
        for row in stage_rows)
    frameworks = tuple(
        QualificationFramework(row.key, row.name, tuple(Question(q["key"], q["label"]) for q in row.questions))
        for row in connection.execute(sa.select(qualification_frameworks).order_by(qualification_frameworks.c.id)))
    return Playbook(pipeline=pipeline, stages=defined, frameworks=frameworks)


def open_deals_by_stage(connection: Connection, *, pipeline: str) -> dict[str, int]:
    o = opportunities
    rows = connection.execute(sa.select(o.c.stage, sa.func.count()).where(o.c.pipeline == pipeline,
                                                                          o.c.status == "open").group_by(o.c.stage))
    return {row[0]: int(row[1]) for row in rows}


def save_playbook(connection: Connection, playbook: Playbook) -> None:
    """Make the stored playbook equal `playbook`: stages upserted by key (ids kept) and the ones no longer
    named removed, each stage's exit criteria replaced, frameworks upserted by key. Criteria checks and
    answers refer to keys, so they survive."""
    existing = {row.key: row.id for row in connection.execute(
        sa.select(stages.c.key, stages.c.id).where(stages.c.pipeline == playbook.pipeline))}
    keep = {stage.key for stage in playbook.stages}
    gone = [stage_id for key, stage_id in existing.items() if key not in keep]
    if gone:
        connection.execute(stages.delete().where(stages.c.id.in_(gone)))
    for stage in playbook.stages:
        values = {"pipeline": playbook.pipeline, "key": stage.key, "name": stage.name, "order": stage.order,
                  "default_probability": stage.default_probability,
                  "forecast_category": stage.forecast_category.value, "days_to_rot": stage.days_to_rot,
                  "requalify_days": stage.requalify_days, "guidance": stage.guidance or None,
                  "required_fields": list(stage.required_fields),
                  "requires_passing_proposal": stage.requires_passing_proposal}
        if stage.key in existing:
            stage_id = existing[stage.key]
            connection.execute(stages.update().where(stages.c.id == stage_id).values(**values))
            connection.execute(exit_criteria.delete().where(exit_criteria.c.stage_id == stage_id))
        else:
            inserted = connection.execute(stages.insert().values(**values)).inserted_primary_key
            assert inserted is not None
            stage_id = int(inserted[0])
        if stage.exit_criteria:
            connection.execute(exit_criteria.insert(), [
                {"stage_id": stage_id, "key": c.key, "label": c.label, "kind": c.kind,
                 "spec": dict(c.spec) if c.spec else None, "order": index}
                for index, c in enumerate(stage.exit_criteria, start=1)])
    frameworks = {row.key: row.id for row in connection.execute(
        sa.select(qualification_frameworks.c.key, qualification_frameworks.c.id))}
    for framework in playbook.frameworks:
        values = {"key": framework.key, "name": framework.name,
                  "questions": [{"key": q.key, "label": q.label} for q in framework.questions]}
        if framework.key in frameworks:
            connection.execute(qualification_frameworks.update()
                               .where(qualification_frameworks.c.id == frameworks[framework.key]).values(**values))
        else:
            connection.execute(qualification_frameworks.insert().values(**values))


def deal_evidence(connection: Connection, *, deal_id: int) -> DealEvidence:
    """What is on record for one deal now (the caller has checked the deal is visible)."""
    o = opportunities
    row = connection.execute(sa.select(o).where(o.c.id == deal_id)).mappings().one()
    checks = {r.criterion_key: bool(r.done) for r in connection.execute(
        sa.select(criteria_checks.c.criterion_key, criteria_checks.c.done)
        .where(criteria_checks.c.opportunity_id == deal_id)
        .order_by(criteria_checks.c.checked_at, criteria_checks.c.id))}
    a = activities
    done = connection.execute(
        sa.select(a.c.type, a.c.contact_id, contacts.c.buying_role)
        .select_from(a.outerjoin(contacts, contacts.c.id == a.c.contact_id))
        .where(a.c.opportunity_id == deal_id, a.c.completed.is_(True))).all()
    answers = {(r.framework, r.question): r.answer for r in connection.execute(
        sa.select(qualification_answers.c.framework, qualification_answers.c.question, qualification_answers.c.answer)
        .where(qualification_answers.c.opportunity_id == deal_id)
        .order_by(qualification_answers.c.answered_at, qualification_answers.c.id))}
    return DealEvidence(
        fields=dict(row), checks=checks, activity_types=frozenset(r.type for r in done),
        activity_with_contact=any(r.contact_id is not None for r in done),
        contact_roles=frozenset(r.buying_role for r in done if r.buying_role), answers=answers)


def insert_check(connection: Connection, *, deal_id: int, key: str, done: bool, at: datetime,
                 by: int | None) -> None:
    connection.execute(criteria_checks.insert().values(opportunity_id=deal_id, criterion_key=key, done=done,
                                                       checked_at=at, checked_by=by))


def insert_answer(connection: Connection, *, deal_id: int, framework: str, question: str, answer: str,
                  evidence: str | None, at: datetime, by: int | None) -> None:
    connection.execute(qualification_answers.insert().values(
        opportunity_id=deal_id, framework=framework, question=question, answer=answer, evidence=evidence,
        answered_at=at, answered_by=by))


def deal_answers(connection: Connection, *, deal_id: int) -> list[dict[str, Any]]:
    q = qualification_answers
    rows = connection.execute(sa.select(q.c.framework, q.c.question, q.c.answer, q.c.evidence, q.c.answered_at,
                                        q.c.answered_by).where(q.c.opportunity_id == deal_id)
                              .order_by(q.c.answered_at, q.c.id)).mappings()
    return [dict(row) for row in rows]


def load_checks(connection: Connection, *, ids: Sequence[int] | None = None) -> pl.DataFrame:
    c = criteria_checks
    query = sa.select(c.c.opportunity_id, c.c.criterion_key, c.c.done, c.c.checked_at)
    if ids is not None:
        query = query.where(c.c.opportunity_id.in_(list(ids)))
    rows = [(r.opportunity_id, r.criterion_key, bool(r.done), _naive(r.checked_at)) for r in connection.execute(query)]
    return pl.DataFrame(rows, schema={"opportunity_id": pl.Int64(), "criterion_key": pl.String(),
                                      "done": pl.Boolean(), "checked_at": pl.Datetime("us")}, orient="row")


def load_answers(connection: Connection, *, deal_id: int | None = None) -> pl.DataFrame:
    """Every qualification answer (of one deal with `deal_id`)."""
    q = qualification_answers
    statement = sa.select(q.c.opportunity_id, q.c.framework, q.c.question, q.c.answer, q.c.answered_at,
                          q.c.answered_by)
    if deal_id is not None:
        statement = statement.where(q.c.opportunity_id == deal_id)
    rows = [(r.opportunity_id, r.framework, r.question, r.answer, _naive(r.answered_at), r.answered_by)
            for r in connection.execute(statement)]
    return pl.DataFrame(rows, schema={"opportunity_id": pl.Int64(), "framework": pl.String(), "question": pl.String(),
                                      "answer": pl.String(), "answered_at": pl.Datetime("us"),
                                      "answered_by": pl.Int64()}, orient="row")


def load_overrides(connection: Connection) -> pl.DataFrame:
    """Stage changes made in the app with a gate override reason: `opportunity_id`, `changed_at`."""
    c = opportunity_changes
    rows = [(r.opportunity_id, _naive(r.changed_at)) for r in connection.execute(
        sa.select(c.c.opportunity_id, c.c.changed_at).where(c.c.field == "stage", c.c.reason.like("gate override:%")))]
    return pl.DataFrame(rows, schema={"opportunity_id": pl.Int64(), "changed_at": pl.Datetime("us")}, orient="row")
