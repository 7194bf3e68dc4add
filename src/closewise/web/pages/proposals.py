"""Pages for issue 11: /proposals (deals ready for a proposal, then a deal's executive summary, its checks,
generate and download), /differentiation (record against each competitor, talking points per persona) and
/prospecting (ideal-customer profile, target accounts ranked by fit, cadences and rep progress). Every page
shows only what the signed-in user sees; a deal outside that is a 404 like a missing one. A generated proposal is
downloaded as it was stored; the other download is a draft from the deal as it is now."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from closewise.domain.scope import Action
from closewise.services import proposals as service
from closewise.web.deps import EngineDep, PageUser, PageWriter, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

MAX_ID = 2**63 - 1
DealId = Annotated[int, Path(ge=1, le=MAX_ID)]
Format = Literal["html", "docx", "pdf"]


@router.get("/proposals", response_class=HTMLResponse)
def proposals_page(request: Request, engine: EngineDep, user: PageUser) -> HTMLResponse:
    rows = service.candidates(engine, scope=user.scope)
    return page(request, "proposals.html", user, title="Proposals", candidates=rows)


@router.get("/proposals/{deal_id}", response_class=HTMLResponse)
def proposal_page(request: Request, deal_id: DealId, engine: EngineDep, user: PageUser) -> HTMLResponse:
    preview = service.preview(engine, scope=user.scope, deal_id=deal_id)
    return page(request, "proposals_deal.html", user, title=f"Proposal for {preview['account']}", preview=preview)


@router.post("/proposals/{deal_id}", response_class=HTMLResponse)
def generate(request: Request, deal_id: DealId, engine: EngineDep, user: PageWriter,
             format: Annotated[Format, Form()] = "docx") -> Response:
    require(user, Action.EDIT_DEAL)
    result = service.generate(engine, scope=user.scope, deal_id=deal_id, fmt=format)
    if request.headers.get("HX-Request"):
        return page(request, "partials/proposals_result.html", user, title="Proposal", result=result)
    return RedirectResponse(f"/proposals/{deal_id}?generated={result['id']}", status_code=303)


@router.get("/proposals/{deal_id}/document")
def download(deal_id: DealId, engine: EngineDep, user: PageUser,
             format: Annotated[Format, Query()] = "docx") -> Response:
    """A draft as of now (nothing recorded); generated proposals are served by `stored_document`."""
    content, filename, media = service.document(engine, scope=user.scope, deal_id=deal_id, fmt=format)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/proposals/{deal_id}/history/{proposal_id}/document")
def stored_document(deal_id: DealId, proposal_id: Annotated[int, Path(ge=1, le=MAX_ID)], engine: EngineDep,
                    user: PageUser) -> Response:
    """A generated proposal's document exactly as it was generated."""
    content, filename, media = service.stored_document(engine, scope=user.scope, deal_id=deal_id,
                                                       proposal_id=proposal_id)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/differentiation", response_class=HTMLResponse)
def differentiation_page(request: Request, engine: EngineDep, user: PageUser) -> HTMLResponse:
    result = service.differentiation(engine, scope=user.scope)
    return page(request, "proposals_differentiation.html", user, title="Differentiation", result=result)


@router.get("/prospecting", response_class=HTMLResponse)
def prospecting_page(request: Request, engine: EngineDep, user: PageUser) -> HTMLResponse:
    plan = service.prospecting_plan(engine, scope=user.scope, limit=50)
    return page(request, "prospecting.html", user, title="Prospecting plan", plan=plan)
