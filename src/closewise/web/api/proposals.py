"""`/api/proposals`, `/api/differentiation`, `/api/prospecting` (issue 11).

Reads cover the deals (and accounts) the caller sees; a deal outside that answers 404 exactly like a missing one.
Generating a proposal needs `edit_deal` (a viewer gets 403); adding talking points or cadences needs
`manage_settings` (admin, leader).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from closewise.domain.scope import Action
from closewise.services import proposals as service
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["proposals"])

MAX_ID = 2**63 - 1
DealId = Annotated[int, Path(ge=1, le=MAX_ID, description="The deal's id.")]
Format = Literal["html", "docx", "pdf"]
_READ: dict[int | str, dict[str, Any]] = {401: {"description": "no or expired bearer token"}}
_ONE: dict[int | str, dict[str, Any]] = {
    **_READ, 404: {"description": "no such deal, or one outside the caller's visibility (the same answer)"},
    422: {"description": "a parameter that cannot be used (`where` names it)"}}
_WRITE: dict[int | str, dict[str, Any]] = {**_ONE, 403: {"description": "the caller's role may not do this"}}


class Readiness(BaseModel):
    pain: bool = Field(description="Discovery recorded the customer's pain (with evidence).")
    outcomes: bool = Field(description="Discovery recorded an outcome or metric (with evidence).")
    economic_buyer_met: bool


class Candidate(BaseModel):
    id: int
    name: str
    account: str | None
    owner_id: int | None
    owner: str | None
    stage: str
    stage_name: str | None
    amount: float | None
    currency: str
    close_date: str | None
    competitor: str | None
    ready: Readiness
    proposal_passed: bool | None = Field(description="The latest proposal's verdict; null without one.")


class CheckOut(BaseModel):
    key: str
    label: str
    passed: bool
    detail: str


class ProposalOut(BaseModel):
    id: int
    deal_id: int
    created_at: str
    created_by: str | None
    format: str
    path: str | None
    executive_summary: str
    checks: list[CheckOut]
    passed: bool


class SectionOut(BaseModel):
    title: str
    paragraphs: list[str]
    bullets: list[str]


class Preview(BaseModel):
    deal_id: int
    deal: str
    account: str
    stage: str
    amount: float | None
    currency: str
    competitor: str | None
    executive_summary: str
    paragraphs: list[str]
    polished_by: str | None
    checks: list[CheckOut]
    passed: bool
    sections: list[SectionOut]
    history: list[ProposalOut]
    pdf_available: bool


class GenerateIn(BaseModel):
    format: Format = "docx"


class Generated(BaseModel):
    id: int
    deal_id: int
    path: str | None
    format: str
    executive_summary: str
    polished_by: str | None
    checks: list[CheckOut]
    passed: bool
    download: str = Field(description="GET this to download the document.")


class PointIn(BaseModel):
    competitor: str = Field(min_length=1, max_length=120, description="As deals record it, or `*` for any.")
    persona: Literal["economic_buyer", "champion", "decision_maker", "technical_evaluator", "procurement"]
    headline: str = Field(min_length=1, max_length=255)
    detail: str = Field(min_length=1, max_length=4000)
    proof: str | None = Field(default=None, max_length=4000)


class StepIn(BaseModel):
    week: int = Field(ge=1, le=52)
    day: int = Field(ge=1, le=7)
    kind: Literal["call", "email", "meeting"]
    label: str = Field(min_length=1, max_length=200)


class CadenceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    steps: list[StepIn] = Field(min_length=1, max_length=100)
    accounts_per_rep: int = Field(ge=1, le=1000)


@router.get("/proposals/candidates", response_model=list[Candidate], responses=_READ)
def candidates(engine: EngineDep, user: ApiUser) -> list[dict[str, Any]]:
    """Open deals the caller sees that are ready for a proposal."""
    return service.candidates(engine, scope=user.scope)


@router.get("/proposals/{deal_id}", response_model=Preview, responses=_ONE)
def preview(deal_id: DealId, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """The executive summary and checks a proposal for the deal would have now, and the proposals made."""
    return service.preview(engine, scope=user.scope, deal_id=deal_id)


@router.post("/proposals/{deal_id}", response_model=Generated, status_code=201, responses=_WRITE)
def generate(deal_id: DealId, body: GenerateIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """Generate and record a proposal (its document is downloaded from `download`)."""
    require(user, Action.EDIT_DEAL)
    result = service.generate(engine, scope=user.scope, deal_id=deal_id, fmt=body.format)
    result.pop("content")
    result["download"] = f"/api/proposals/{deal_id}/document?format={body.format}"
    return result


@router.get("/proposals/{deal_id}/history", response_model=list[ProposalOut], responses=_ONE)
def history(deal_id: DealId, engine: EngineDep, user: ApiUser) -> list[dict[str, Any]]:
    return service.history(engine, scope=user.scope, deal_id=deal_id)


@router.get("/proposals/{deal_id}/document", response_class=Response, responses={
    **_ONE, 200: {"description": "The proposal document", "content": {
        "text/html": {}, "application/pdf": {},
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": {}}}})
def download(deal_id: DealId, engine: EngineDep, user: ApiUser,
             format: Annotated[Format, Query(description="html, docx or pdf")] = "docx") -> Response:
    content, filename, media = service.document(engine, scope=user.scope, deal_id=deal_id, fmt=format)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/differentiation", responses=_READ)
def differentiation(engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """Win rate against each competitor (the caller's deals), talking points per persona, deals facing them."""
    return service.differentiation(engine, scope=user.scope)


@router.post("/differentiation/points", status_code=201, responses=_WRITE)
def add_point(body: PointIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    require(user, Action.MANAGE_SETTINGS)
    return service.add_talking_point(engine, scope=user.scope, **body.model_dump())


@router.get("/prospecting", responses=_READ)
def prospecting(engine: EngineDep, user: ApiUser,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """The ideal-customer profile, the caller's target accounts ranked by fit, cadences and rep progress."""
    return service.prospecting_plan(engine, scope=user.scope, limit=limit)


@router.post("/prospecting/cadences", status_code=201,
             responses={**_WRITE, 409: {"description": "a cadence with that name already exists"}})
def add_cadence(body: CadenceIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    require(user, Action.MANAGE_SETTINGS)
    return service.add_cadence(engine, scope=user.scope, name=body.name,
                               steps=[s.model_dump() for s in body.steps], accounts_per_rep=body.accounts_per_rep)
