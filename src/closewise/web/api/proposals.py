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
    stored: bool = Field(description="Whether the document was stored when generated (from migration 0009 on).")
    download: str | None = Field(default=None, description="GET this for the document exactly as generated; "
                                 "null when it was not stored.")


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
    download: str = Field(description="GET this for the document exactly as generated (stored, never rebuilt).")


class TalkingPointOut(BaseModel):
    competitor: str = Field(description="As deals record it, or `*` for any competitor.")
    persona: str
    headline: str
    detail: str
    proof: str | None
    source: Literal["built-in", "org"]


class PointOut(TalkingPointOut):
    id: int


class FacingDeal(BaseModel):
    id: int
    name: str
    account: str | None
    stage: str | None
    amount: float | None
    currency: str


class CompetitorOut(BaseModel):
    competitor: str
    closed: int = Field(description="Closed deals against them (won + lost + no_decision).")
    won: int
    lost: int
    no_decision: int
    open_deals: int
    open_amount: float = Field(description="Open amount facing them, in the corporate currency.")
    win_rate: float | None = Field(description="Won / closed; null with none closed.")
    baseline_win_rate: float | None = Field(description="The win rate of closed deals without a competitor.")
    gap: float | None = Field(description="win_rate - baseline_win_rate.")
    points: list[TalkingPointOut]
    deals: list[FacingDeal] = Field(description="Open deals facing them (up to 20).")


class Differentiation(BaseModel):
    currency: str
    competitors: list[CompetitorOut]
    generic_points: list[TalkingPointOut]
    personas: dict[str, str] = Field(description="Persona key -> label.")


class ProfileValue(BaseModel):
    feature: Literal["industry", "segment", "country", "size_band"]
    label: str
    value: str
    lift: float = Field(description="Share among won accounts over share among all accounts (smoothed).")
    won_share: float
    base_share: float


class IcpOut(BaseModel):
    won_accounts: int = Field(description="Accounts with a win closed before `as_of` (what the ICP learns from).")
    accounts: int = Field(description="Accounts that existed at `as_of` (the base).")
    profile: list[ProfileValue]


class TargetAccount(BaseModel):
    id: int
    name: str
    industry: str | None
    segment: str | None
    country: str | None
    employees: int | None
    owner_id: int | None
    owner: str | None
    fit: float = Field(ge=0, le=100)
    reasons: list[str]
    kind: Literal["customer", "prospect"] = Field(description="customer: the account has a won deal.")


class StepOut(BaseModel):
    week: int
    day: int
    kind: Literal["call", "email", "meeting"]
    label: str


class CadenceOut(BaseModel):
    name: str
    steps: list[StepOut]
    accounts_per_rep: int
    weeks: int
    source: Literal["built-in", "org"]
    id: int | None
    weekly_goals: dict[str, int] = Field(description="Activities per week per kind (call, email, meeting).")


class RepProgress(BaseModel):
    rep_id: int
    rep: str
    done: dict[str, int] = Field(description="Completed activities per kind in the 7 days before `as_of`.")
    goals: dict[str, float]
    progress: float | None = Field(description="Mean share of the goals reached (each capped at 1).")
    targets: int = Field(description="Target accounts the rep owns.")


class ProspectingPlan(BaseModel):
    as_of: str
    icp: IcpOut
    targets_total: int
    targets: list[TargetAccount]
    cadences: list[CadenceOut]
    reps: list[RepProgress]


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


def _stored_link(deal_id: int, proposal_id: int) -> str:
    return f"/api/proposals/{deal_id}/history/{proposal_id}/document"


def _with_links(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "download": _stored_link(item["deal_id"], item["id"]) if item["stored"] else None}
            for item in history]


@router.get("/proposals/{deal_id}", response_model=Preview, responses=_ONE)
def preview(deal_id: DealId, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """The executive summary and checks a proposal for the deal would have now, and the proposals made."""
    result = service.preview(engine, scope=user.scope, deal_id=deal_id)
    return {**result, "history": _with_links(result["history"])}


@router.post("/proposals/{deal_id}", response_model=Generated, status_code=201, responses=_WRITE)
def generate(deal_id: DealId, body: GenerateIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """Generate and record a proposal (its document is downloaded from `download`)."""
    require(user, Action.EDIT_DEAL)
    result = service.generate(engine, scope=user.scope, deal_id=deal_id, fmt=body.format)
    result.pop("content")
    result["download"] = _stored_link(deal_id, result["id"])
    return result


@router.get("/proposals/{deal_id}/history", response_model=list[ProposalOut], responses=_ONE)
def history(deal_id: DealId, engine: EngineDep, user: ApiUser) -> list[dict[str, Any]]:
    return _with_links(service.history(engine, scope=user.scope, deal_id=deal_id))


_DOCUMENT: dict[int | str, dict[str, Any]] = {200: {"description": "The proposal document", "content": {
    "text/html": {}, "application/pdf": {},
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": {}}}}


@router.get("/proposals/{deal_id}/history/{proposal_id}/document", response_class=Response,
            responses={**_ONE, **_DOCUMENT})
def stored_document(deal_id: DealId, proposal_id: Annotated[int, Path(ge=1, le=MAX_ID)], engine: EngineDep,
                    user: ApiUser) -> Response:
    """A generated proposal's document, byte for byte as it was generated (later edits of the deal do not change
    it). 404 for a deal the caller does not see, a proposal of another deal, or one recorded without a document."""
    content, filename, media = service.stored_document(engine, scope=user.scope, deal_id=deal_id,
                                                       proposal_id=proposal_id)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/proposals/{deal_id}/document", response_class=Response, responses={**_ONE, **_DOCUMENT})
def download(deal_id: DealId, engine: EngineDep, user: ApiUser,
             format: Annotated[Format, Query(description="html, docx or pdf")] = "docx") -> Response:
    """A draft: the document as it would be generated now, from the deal as it is now; nothing is recorded. A
    generated proposal is downloaded from `/api/proposals/{deal_id}/history/{proposal_id}/document`."""
    content, filename, media = service.document(engine, scope=user.scope, deal_id=deal_id, fmt=format)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/differentiation", response_model=Differentiation, responses=_READ)
def differentiation(engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    """Win rate against each competitor (the caller's deals), talking points per persona, deals facing them."""
    return service.differentiation(engine, scope=user.scope)


@router.post("/differentiation/points", response_model=PointOut, status_code=201, responses=_WRITE)
def add_point(body: PointIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    require(user, Action.MANAGE_SETTINGS)
    return service.add_talking_point(engine, scope=user.scope, **body.model_dump())


@router.get("/prospecting", response_model=ProspectingPlan, responses=_READ)
def prospecting(engine: EngineDep, user: ApiUser,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """The ideal-customer profile, the caller's target accounts ranked by fit, cadences and rep progress."""
    return service.prospecting_plan(engine, scope=user.scope, limit=limit)


@router.post("/prospecting/cadences", response_model=CadenceOut, status_code=201,
             responses={**_WRITE, 409: {"description": "a cadence with that name already exists"}})
def add_cadence(body: CadenceIn, engine: EngineDep, user: ApiUser) -> dict[str, Any]:
    require(user, Action.MANAGE_SETTINGS)
    return service.add_cadence(engine, scope=user.scope, name=body.name,
                               steps=[s.model_dump() for s in body.steps], accounts_per_rep=body.accounts_per_rep)
