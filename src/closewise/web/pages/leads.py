"""The Leads page: the funnel, speed to lead (breaches and escalations), the response-time effect, lead quality
by source, the leads awaiting a verdict (accept / reject with a recycle reason), nurture and come-backs, and
routing for those who run it. Every number covers the leads the signed-in user sees. The write controls are
htmx forms answered with partials; without JavaScript they post and come back to the page."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from closewise.domain.scope import Action
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, InvalidInput
from closewise.leads.recycle import NURTURE_DAYS, REASON_LABELS
from closewise.services import lead_routing, lead_verdicts
from closewise.services import leads as service
from closewise.services.auth import Principal
from closewise.web.deps import EngineDep, PageUser, PageWriter, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

MAX_ID = 2**63 - 1
LeadId = Annotated[int, Path(ge=1, le=MAX_ID)]
STATE_TONES = {"met": "good", "late": "warn", "overdue": "bad", "pending": ""}
STATUS_TONES = {"new": "", "working": "", "accepted": "good", "converted": "good", "rejected": "bad",
                "recycled": "warn"}
EVENT_LABELS = {"created": "Created", "assigned": "Assigned", "first_touch": "First touch", "accepted": "Accepted",
                "rejected": "Rejected", "recycled": "Back to nurture", "returned": "Came back",
                "converted": "Converted to an opportunity"}
_QUALIFY_ROWS = 25
_BLUE, _GREY, _AMBER = "#1e40af", "#94a3b8", "#d97706"


def _context() -> dict[str, Any]:
    today = utcnow().date()
    return {"reasons": REASON_LABELS, "nurture_days": {r.value: d for r, d in NURTURE_DAYS.items()},
            "state_tones": STATE_TONES, "status_tones": STATUS_TONES, "event_labels": EVENT_LABELS,
            "tomorrow": today + timedelta(days=1), "default_re_engage": today + timedelta(days=90)}


def funnel_chart(funnel: dict[str, Any]) -> dict[str, Any]:
    steps = ["Leads", "Accepted", "Opportunities", "Won"]
    values = [funnel["leads"], funnel["accepted"], funnel["opportunities"], funnel["won"]]
    return {
        "data": [{"type": "funnel", "y": steps, "x": values, "textinfo": "value+percent initial",
                  "marker": {"color": ["#1e3a8a", "#1e40af", "#3b82f6", "#15803d"]},
                  "connector": {"line": {"color": "#cbd5e1"}},
                  "hovertemplate": "%{y}: %{x:,} (%{percentInitial:.1%} of leads)<extra></extra>"}],
        "layout": {"height": 300, "margin": {"l": 110, "r": 16, "t": 8, "b": 8}},
    }


def effect_chart(effect: dict[str, Any]) -> dict[str, Any]:
    """Conversion per response bucket with its 95% interval, and what the source mix alone would give."""
    rows = [row for row in effect["buckets"] if row["leads"]]
    labels = [row["bucket"] for row in rows]
    rates = [row["rate"] or 0.0 for row in rows]
    return {
        "data": [
            {"type": "bar", "name": "Converted", "x": labels, "y": rates,
             "marker": {"color": [_GREY if row["bucket"] == "never touched" else _BLUE for row in rows]},
             "error_y": {"type": "data", "symmetric": False, "color": "#334155", "thickness": 1.2,
                         "array": [(row["high"] or 0.0) - (row["rate"] or 0.0) for row in rows],
                         "arrayminus": [(row["rate"] or 0.0) - (row["low"] or 0.0) for row in rows]},
             "text": [f"{(row['rate'] or 0) * 100:.1f}%" for row in rows], "textposition": "outside",
             "customdata": [[row["leads"], row["converted"], (row["low"] or 0) * 100, (row["high"] or 0) * 100]
                            for row in rows],
             "hovertemplate": "%{x}: %{y:.1%} converted (%{customdata[1]} of %{customdata[0]} leads; 95% "
                              "interval %{customdata[2]:.1f}-%{customdata[3]:.1f}%)<extra></extra>"},
            {"type": "scatter", "mode": "markers", "name": "Expected from the source mix", "x": labels,
             "y": [row["expected"] for row in rows],
             "marker": {"symbol": "line-ew-open", "size": 26, "color": _AMBER, "line": {"width": 3}},
             "hovertemplate": "%{x}: the source mix alone predicts %{y:.1%}<extra></extra>"},
        ],
        "layout": {"height": 300, "margin": {"l": 48, "r": 16, "t": 8, "b": 40}, "bargap": 0.35,
                   "yaxis": {"tickformat": ".0%", "rangemode": "tozero", "gridcolor": "#e5e7eb",
                             "title": {"text": "converted"}},
                   "legend": {"orientation": "h", "y": 1.12, "x": 0}},
    }


def _show_routing(user: Principal) -> bool:
    return user.scope.everything and user.scope.may(Action.MANAGE_SETTINGS)


@router.get("/leads", response_class=HTMLResponse)
def leads_page(
    request: Request, user: PageUser, engine: EngineDep,
    days: Annotated[int, Query(ge=1, le=3660)] = service.DEFAULT_DAYS,
) -> HTMLResponse:
    scope = user.scope
    data = service.load(engine, scope)
    now = utcnow()
    funnel = service.funnel(engine, data=data)
    sla = service.sla(engine, data=data, as_of=now, days=days, limit=100)
    effect = service.response_effect(engine, data=data, as_of=now)
    recycle = service.recycle(engine, data=data, today=now.date(), limit=100)
    quality = service.quality(engine, data=data, as_of=now)
    to_qualify = service.to_qualify(engine, data=data, limit=_QUALIFY_ROWS)
    routing = lead_routing.unassigned_count(engine) if _show_routing(user) else None
    return page(request, "leads.html", user, title="Leads", funnel=funnel, sla=sla, effect=effect,
                recycle=recycle, quality=quality, to_qualify=to_qualify, open_total=data.leads.filter(
                    data.leads["status"].is_in(["new", "working"])).height,
                unassigned=routing, days=days, funnel_figure=funnel_chart(funnel), effect_figure=effect_chart(effect),
                **_context())


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
def lead_page(request: Request, lead_id: LeadId, user: PageUser, engine: EngineDep) -> HTMLResponse:
    lead = service.lead_detail(engine, lead_id=lead_id, scope=user.scope)
    return page(request, "leads_detail.html", user, title=f"Lead {lead['name'] or lead_id}", lead=lead,
                **_context())


def _answer(request: Request, user: Principal, engine: EngineDep, lead_id: int, action: Any) -> Response:
    """Run a verdict; an htmx request gets the lead's row back (or the error in it), a form post the page."""
    htmx = bool(request.headers.get("HX-Request"))
    try:
        lead = action()
    except (InvalidInput, Conflict) as exc:
        if not htmx:
            raise
        return page(request, "partials/error.html", user, title="Leads", message=exc.message)
    if not htmx:
        return RedirectResponse(f"/leads/{lead_id}", status_code=303)
    return page(request, "partials/leads_row.html", user, title="Leads", lead=lead, done=True, **_context())


@router.post("/leads/{lead_id}/accept", response_model=None)
def accept(request: Request, lead_id: LeadId, user: PageWriter, engine: EngineDep,
           note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    require(user, Action.EDIT_DEAL)
    return _answer(request, user, engine, lead_id, lambda: lead_verdicts.accept(
        engine, lead_id=lead_id, scope=user.scope, user_id=user.user_id, note=note.strip() or None))


@router.post("/leads/{lead_id}/reject", response_model=None)
def reject(
    request: Request, lead_id: LeadId, user: PageWriter, engine: EngineDep,
    reason: Annotated[str, Form(max_length=32)],
    nurture: Annotated[Literal["auto", "yes", "no"], Form()] = "auto",
    re_engage_at: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    require(user, Action.EDIT_DEAL)

    def run() -> dict[str, Any]:
        when = None
        if re_engage_at.strip():
            try:
                when = date.fromisoformat(re_engage_at.strip())
            except ValueError:
                raise InvalidInput(f"{re_engage_at!r} is not a date", where="re_engage_at") from None
        wanted = {"auto": None, "yes": True, "no": False}[nurture]
        if wanted is False:
            when = None
        return lead_verdicts.reject(engine, lead_id=lead_id, reason=reason, scope=user.scope, user_id=user.user_id,
                                    re_engage_at=when, nurture=wanted, note=note.strip() or None)

    return _answer(request, user, engine, lead_id, run)


@router.post("/leads/{lead_id}/return", response_model=None)
def give_back(request: Request, lead_id: LeadId, user: PageWriter, engine: EngineDep) -> Response:
    require(user, Action.EDIT_DEAL)
    return _answer(request, user, engine, lead_id, lambda: lead_verdicts.give_back(
        engine, lead_id=lead_id, scope=user.scope, user_id=user.user_id))


@router.post("/leads/route", response_class=HTMLResponse)
def route(request: Request, user: PageWriter, engine: EngineDep,
          dry_run: Annotated[bool, Form()] = True) -> HTMLResponse:
    require(user, Action.MANAGE_SETTINGS)
    result = lead_routing.route(engine, dry_run=dry_run, user_id=user.user_id)
    return page(request, "partials/leads_route.html", user, title="Leads", result=result,
                unassigned=lead_routing.unassigned_count(engine))
