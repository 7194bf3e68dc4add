"""A deal against the playbook: `GET /api/opportunities/{id}/playbook` (exit criteria met or not, what is
missing to advance, qualification scorecards), `POST …/criteria` (tick or untick a criterion) and
`POST …/answers` (answer a qualification question). Scoped like every deal route: 404 outside the caller's
visibility; writes need `edit_deal` (403 for a viewer)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from closewise.services import playbook
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["playbook"])
DealId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The opportunity's id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    404: {"description": "no such opportunity, or one outside the caller's visibility (the same answer)"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 403: {"description": "the caller's role cannot change deals"},
    422: {"description": "unknown criterion, framework, question or answer"},
}


class CriterionState(BaseModel):
    stage: str
    key: str = Field(description="The criterion's key (`field:<name>` for a stage's required field).")
    label: str
    kind: str = Field(description="checkbox, field, evidence, required_field, or proposal (the stage requires a "
                                  "proposal that passes its quality checks; key `proposal:passing`).")
    done: bool
    how: str = Field(description="Why it counts as done or not: checked, field, evidence, missing, unchecked.")


class QuestionState(BaseModel):
    key: str
    label: str
    answer: str | None = Field(description="yes, partial, no, unknown; null when never answered.")
    answered_at: str | None


class Framework(BaseModel):
    key: str
    name: str
    score: float = Field(ge=0, le=1, description="Mean over the questions: yes 1, partial 0.5, else 0.")
    questions: list[QuestionState]


class Unknown(BaseModel):
    framework: str
    question: str


class DealPlaybook(BaseModel):
    id: int
    stage: str
    next_stage: str | None
    exit_criteria: list[CriterionState] = Field(description="The current stage's exit criteria and required fields.")
    missing_to_advance: list[CriterionState] = Field(description="What must be done before moving to next_stage.")
    frameworks: list[Framework]
    unknowns: list[Unknown] = Field(description="Questions whose latest answer is `unknown` (findings).")


class CriterionCheck(BaseModel):
    key: str = Field(min_length=1, max_length=64, description="The exit criterion's key.")
    done: bool = True


class Answer(BaseModel):
    framework: str = Field(min_length=1, max_length=64)
    question: str = Field(min_length=1, max_length=64)
    answer: Literal["yes", "partial", "no", "unknown"]
    evidence: str | None = Field(default=None, max_length=4000, description="What the answer rests on.")


@router.get("/opportunities/{opportunity_id}/playbook", response_model=DealPlaybook, responses=_ERRORS)
def deal_playbook(opportunity_id: DealId, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """The deal against the playbook: criteria of its stage, what is missing to advance, its scorecards."""
    return playbook.deal_playbook(engine, scope=user.scope, deal_id=opportunity_id)


@router.post("/opportunities/{opportunity_id}/criteria", response_model=DealPlaybook, responses=_WRITE_ERRORS)
def check_criterion(opportunity_id: DealId, body: CriterionCheck, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Record a check of one exit criterion (kept with who and when); answers the deal's playbook state."""
    playbook.set_criterion(engine, scope=user.scope, deal_id=opportunity_id, key=body.key, done=body.done)
    return playbook.deal_playbook(engine, scope=user.scope, deal_id=opportunity_id)


@router.post("/opportunities/{opportunity_id}/answers", response_model=DealPlaybook, responses=_WRITE_ERRORS)
def answer(opportunity_id: DealId, body: Answer, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Answer one qualification question (dated, with who answered); answers the deal's playbook state."""
    playbook.answer_question(engine, scope=user.scope, deal_id=opportunity_id, framework=body.framework,
                             question=body.question, answer=body.answer, evidence=body.evidence)
    return playbook.deal_playbook(engine, scope=user.scope, deal_id=opportunity_id)
