"""The Hygiene page: the findings on the deals the user sees, a snooze per finding, and the sweep of dead deals
(preview, confirm exactly what the preview showed, undo). The write controls are htmx forms answered with
partials; without JavaScript the forms post and come back to the page."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from closewise.domain.scope import Action
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, InvalidInput
from closewise.services import hygiene as service
from closewise.services import hygiene_sweep
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser, PageWriter, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

LABELS = {
    "aged_past_cycle": "Aged past cycle",
    "stuck_in_stage": "Stuck in stage",
    "close_date_past": "Close date passed",
    "pushed_often": "Pushed often",
    "no_activity": "No activity",
    "no_next_step": "No next step",
    "amount_changed": "Amount swung",
    "not_requalified": "Not requalified",
}
# How loud each finding's pill is: the sweep's own findings are red, the slipping ones amber.
TONES = {"aged_past_cycle": "bad", "stuck_in_stage": "bad", "no_activity": "bad", "close_date_past": "warn",
         "pushed_often": "warn", "amount_changed": "warn", "not_requalified": "", "no_next_step": ""}
_SNOOZE_DAYS = 14


def _context() -> dict[str, Any]:
    today = utcnow().date()
    return {"labels": LABELS, "tones": TONES, "tomorrow": today + timedelta(days=1),
            "default_until": today + timedelta(days=_SNOOZE_DAYS)}


def _chart(overview: service.HygieneOverview) -> dict[str, Any]:
    """Deals per finding, largest at the top, with the amount they carry on hover."""
    rows = sorted(overview.by_code, key=lambda row: row.deals)
    return {
        "data": [{
            "type": "bar", "orientation": "h",
            "x": [row.deals for row in rows], "y": [LABELS.get(row.code, row.code) for row in rows],
            "customdata": [row.amount for row in rows],
            "hovertemplate": "%{y}: %{x} deals, %{customdata:,.0f} " + overview.currency + "<extra></extra>",
            "marker": {"color": ["#b91c1c" if TONES.get(row.code) == "bad" else
                                 "#d97706" if TONES.get(row.code) == "warn" else "#64748b" for row in rows]},
            "text": [row.deals for row in rows], "textposition": "auto",
        }],
        "layout": {"height": max(220, 44 * len(rows) + 60), "margin": {"l": 130, "r": 16, "t": 8, "b": 36},
                   "xaxis": {"title": {"text": "deals"}, "rangemode": "tozero", "gridcolor": "#e5e7eb"},
                   "bargap": 0.35},
    }


@router.get("/hygiene", response_class=HTMLResponse)
def hygiene_page(
    request: Request,
    user: PageUser,
    engine: EngineDep,
    views: ViewsDep,
    as_of: Annotated[date | None, Query()] = None,
    code: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    overview = service.overview(engine, scope=user.scope, as_of=service.end_of_day(as_of),
                                cache=open_cache(engine, views.orgs))
    deals = overview.review.deals
    if code:
        deals = [deal for deal in deals if any(reason.code == code for reason in deal.reasons)]
    deals = sorted(deals, key=lambda deal: (-(deal.amount or 0.0), deal.id))
    return page(request, "hygiene.html", user, title="Hygiene", overview=overview, deals=deals, code=code,
                as_of=as_of, live=as_of is None, figure=_chart(overview), **_context())


@router.post("/hygiene/snooze", response_model=None)
def snooze(
    request: Request,
    user: PageWriter,
    engine: EngineDep,
    opportunity_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
    code: Annotated[str, Form(max_length=32)],
    until: Annotated[date, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    require(user, Action.SNOOZE_FINDING)
    htmx = bool(request.headers.get("HX-Request"))
    try:
        made = service.snooze(engine, opportunity_id=opportunity_id, code=code, until=until, reason=reason,
                              scope=user.scope, user_id=user.user_id)
    except InvalidInput as exc:
        if not htmx:
            raise
        return page(request, "partials/error.html", user, title="Hygiene", message=exc.message)
    if not htmx:
        return RedirectResponse("/hygiene", status_code=303)
    return page(request, "partials/hygiene_snoozed.html", user, title="Hygiene", snooze=made, **_context())


@router.get("/hygiene/sweep", response_class=HTMLResponse)
def sweep_idle(request: Request, user: PageUser) -> HTMLResponse:
    """The sweep card's first state (the Cancel of a preview comes back to it)."""
    return page(request, "partials/hygiene_sweep_idle.html", user, title="Hygiene")


@router.post("/hygiene/sweep/preview", response_class=HTMLResponse)
def sweep_preview(request: Request, user: PageWriter, engine: EngineDep, views: ViewsDep) -> HTMLResponse:
    require(user, Action.SWEEP_DEALS)
    preview = hygiene_sweep.preview_sweep(engine, scope=user.scope, cache=open_cache(engine, views.orgs))
    names = service.owner_names(engine, [deal.owner_id for deal in preview.deals])
    return page(request, "partials/hygiene_sweep_preview.html", user, title="Hygiene", preview=preview,
                total=sum(deal.amount or 0.0 for deal in preview.deals), names=names, **_context())


@router.post("/hygiene/sweep/confirm", response_class=HTMLResponse)
def sweep_confirm(
    request: Request,
    user: PageWriter,
    engine: EngineDep,
    ids: Annotated[list[int], Form(max_length=10_000)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    require(user, Action.SWEEP_DEALS)
    result = hygiene_sweep.confirm_sweep(engine, scope=user.scope, ids=ids, reason=reason.strip() or None,
                                         user_id=user.user_id)
    return page(request, "partials/hygiene_sweep_result.html", user, title="Hygiene", result=result,
                total=sum(deal.amount or 0.0 for deal in result.deals), **_context())


@router.post("/hygiene/sweep/{sweep_id}/undo", response_class=HTMLResponse)
def sweep_undo(request: Request, user: PageWriter, engine: EngineDep, sweep_id: str) -> HTMLResponse:
    require(user, Action.SWEEP_DEALS)
    try:
        result = hygiene_sweep.undo_sweep(engine, sweep_id=sweep_id[:64], scope=user.scope, user_id=user.user_id)
    except Conflict as exc:
        return page(request, "partials/error.html", user, title="Hygiene", message=exc.message)
    return page(request, "partials/hygiene_undo.html", user, title="Hygiene", result=result)
