"""The Coaching pages: `/coaching/gap` (top performers vs the rest, the checklist, adoption), `/coaching/ramp`
(new hires against the cohort), `/coaching/reviews` (the opportunity review agenda, notes, next steps) and
`/coaching/plans` (1:1 plans). Every form posts with the CSRF token and comes back to its page (303)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from closewise.domain.enums import Role
from closewise.domain.scope import Action
from closewise.services import (
    coaching_access,
    coaching_commitments,
    coaching_gap,
    coaching_plans,
    coaching_ramp,
    coaching_reviews,
    hygiene,
)
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser, PageWriter, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

MAX_ID = 2**63 - 1
TABS = (("/coaching/gap", "Top performers"), ("/coaching/ramp", "New-hire ramp"),
        ("/coaching/reviews", "Opportunity reviews"), ("/coaching/plans", "1:1 plans"))
PlanId = Annotated[int, Path(ge=1, le=MAX_ID)]
_GOOD, _BAD, _MUTED = "#0f766e", "#b45309", "#9ca3af"


def _render(request: Request, user: Any, template: str, title: str, **context: Any) -> HTMLResponse:
    return page(request, template, user, title=title, tabs=TABS, **context)


@router.get("/coaching", response_model=None)
def coaching_home(user: PageUser) -> Response:
    target = "/coaching/plans" if user.scope.role == Role.REP else "/coaching/gap"
    return RedirectResponse(target, status_code=303)


def _effect_chart(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [m for m in metrics if m["effect_size"] is not None and m["kind"] == "behaviour"]
    # Effect sizes in the "better" direction: positive means the top performers do better.
    signed = [(m["label"], m["effect_size"] if m["better"] == "higher" else -m["effect_size"], m) for m in rows]
    signed.sort(key=lambda item: item[1])
    return {
        "data": [{
            "type": "bar", "orientation": "h", "y": [s[0] for s in signed], "x": [round(s[1], 3) for s in signed],
            "marker": {"color": [(_GOOD if s[1] > 0 else _BAD) if s[2]["significant"] else _MUTED for s in signed]},
            "customdata": [[s[2]["p_value"], s[2]["q_value"]] for s in signed],
            "hovertemplate": "%{y}<br>effect size %{x:+.2f}<br>p = %{customdata[0]:.3f}, q = %{customdata[1]:.3f}"
                             "<extra></extra>",
        }],
        "layout": {"height": max(280, 24 * len(signed) + 70), "margin": {"l": 300, "r": 16, "t": 8, "b": 40},
                   "xaxis": {"title": {"text": "effect size in the top performers' favour (standard deviations)"},
                             "zeroline": True, "gridcolor": "#e5e7eb"}},
    }


@router.get("/coaching/gap", response_class=HTMLResponse)
def gap_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep,
             as_of: Annotated[date | None, Query()] = None) -> HTMLResponse:
    report = coaching_gap.performance_gap(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of),
                                          cache=open_cache(engine, views.orgs))
    behaviours = [m for m in report.metrics if m["kind"] == "behaviour"]
    outcomes = [m for m in report.metrics if m["kind"] == "outcome"]
    return _render(request, user, "coaching_gap.html", "Coaching · top performers", report=report,
                   behaviours=behaviours, outcomes=outcomes, as_of=as_of,
                   may_adopt=coaching_access.may_adopt(user.scope),
                   figure=_effect_chart(report.metrics))


@router.post("/coaching/checklist/{item_key}/adopt", response_model=None)
def adopt(user: PageWriter, engine: EngineDep, item_key: Annotated[str, Path(min_length=1, max_length=64)]) -> Response:
    require(user, Action.MANAGE_SETTINGS)
    coaching_gap.adopt_item(engine, scope=user.scope, item_key=item_key[:64])
    return RedirectResponse("/coaching/gap#checklist", status_code=303)


def _ramp_chart(report: coaching_ramp.RampReport) -> dict[str, Any]:
    months = [n["month"] for n in report.norm]
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": months, "y": [n["pipeline_index_p75"] for n in report.norm],
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": months, "y": [n["pipeline_index_p25"] for n in report.norm],
         "fill": "tonexty", "fillcolor": "rgba(30,64,175,0.12)", "line": {"width": 0},
         "name": "cohort, middle half"},
        {"type": "scatter", "mode": "lines+markers", "x": months,
         "y": [n["pipeline_index_median"] for n in report.norm],
         "name": "cohort median", "line": {"color": "#1e40af", "width": 3}},
    ]
    for hire in report.new_hires:
        points = [c for c in report.curves if c["rep_id"] == hire["rep_id"] and c["observed"]]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": hire["name"],
                       "x": [c["month"] for c in points], "y": [c["pipeline_index"] for c in points],
                       "line": {"dash": "dot" if hire["behind"] else "solid",
                                "color": "#b91c1c" if hire["behind"] else "#0f766e"}})
    return {"data": traces, "layout": {
        "height": 360, "margin": {"l": 56, "r": 16, "t": 8, "b": 48}, "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"title": {"text": "month of tenure (30 days)"}, "dtick": 1, "gridcolor": "#e5e7eb"},
        "yaxis": {"title": {"text": "pipeline built ÷ a ramped rep's pace"}, "gridcolor": "#e5e7eb",
                  "rangemode": "tozero"}}}


@router.get("/coaching/ramp", response_class=HTMLResponse)
def ramp_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep,
              as_of: Annotated[date | None, Query()] = None) -> HTMLResponse:
    report = coaching_ramp.new_hire_ramp(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of),
                                         cache=open_cache(engine, views.orgs))
    return _render(request, user, "coaching_ramp.html", "Coaching · new-hire ramp", report=report, as_of=as_of,
                   figure=_ramp_chart(report))


@router.get("/coaching/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep,
                 manager: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                 as_of: Annotated[date | None, Query()] = None) -> HTMLResponse:
    report = coaching_reviews.review_agenda(engine, scope=user.scope, manager_id=manager,
                                            as_of=hygiene.end_of_day(as_of), cache=open_cache(engine, views.orgs))
    coachable = {rep["id"] for rep in coaching_access.coachable_reps(engine, scope=user.scope)}
    return _render(request, user, "coaching_reviews.html", "Coaching · opportunity reviews", report=report,
                   coachable=coachable, today=report.as_of.date(), as_of=as_of)


@router.post("/coaching/reviews", response_model=None)
def record_review(user: PageWriter, engine: EngineDep, deal_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                  note: Annotated[str, Form(max_length=4000)], next_step: Annotated[str, Form(max_length=4000)] = "",
                  due_on: Annotated[str, Form(max_length=10)] = "", manager: Annotated[str, Form(max_length=20)] = "",
                  ) -> Response:
    require(user, Action.COACH)
    due = _day(due_on)
    coaching_reviews.record_review(engine, scope=user.scope, deal_id=deal_id, note=note, next_step=next_step or None,
                           due_on=due)
    back = f"/coaching/reviews?manager={int(manager)}" if manager.isdigit() else "/coaching/reviews"
    return RedirectResponse(f"{back}#deal-{deal_id}", status_code=303)


@router.post("/coaching/commitments/{commitment_id}", response_model=None)
def update_commitment(user: PageWriter, engine: EngineDep, commitment_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                      done: Annotated[str, Form(max_length=5)] = "",
                      follow_up: Annotated[str, Form(max_length=4000)] = "",
                      back: Annotated[str, Form(max_length=200)] = "/coaching/plans") -> Response:
    require(user, Action.FOLLOW_UP)
    flag = {"true": True, "false": False}.get(done)
    coaching_commitments.update_commitment(engine, scope=user.scope, commitment_id=commitment_id, done=flag,
                               follow_up=follow_up or None)
    return RedirectResponse(back if back.startswith("/coaching/") else "/coaching/plans", status_code=303)


@router.get("/coaching/plans", response_class=HTMLResponse)
def plans_page(request: Request, user: PageUser, engine: EngineDep) -> HTMLResponse:
    plans = coaching_plans.list_plans(engine, scope=user.scope)
    reps = coaching_access.coachable_reps(engine, scope=user.scope)
    return _render(request, user, "coaching_plans.html", "Coaching · 1:1 plans", plans=plans, reps=reps)


@router.post("/coaching/plans", response_model=None)
def create_plan(user: PageWriter, engine: EngineDep, rep_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                title: Annotated[str, Form(max_length=200)], review_on: Annotated[str, Form(max_length=10)] = "",
                commitment: Annotated[str, Form(max_length=4000)] = "",
                due_on: Annotated[str, Form(max_length=10)] = "") -> Response:
    require(user, Action.COACH)
    first = [{"text": commitment, "due_on": _day(due_on)}] if commitment.strip() else []
    plan = coaching_plans.create_plan(engine, scope=user.scope, rep_id=rep_id, title=title, review_on=_day(review_on),
                                commitments=first)
    return RedirectResponse(f"/coaching/plans/{plan['id']}", status_code=303)


@router.get("/coaching/plans/{plan_id}", response_class=HTMLResponse)
def plan_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep, plan_id: PlanId) -> HTMLResponse:
    plan = coaching_plans.plan_detail(engine, scope=user.scope, plan_id=plan_id, cache=open_cache(engine, views.orgs))
    return _render(request, user, "coaching_plan.html", f"Coaching · {plan['title']}", plan=plan,
                   may_update=coaching_access.may_follow_up(user.scope, plan["rep_id"]))


@router.post("/coaching/plans/{plan_id}/commitments", response_model=None)
def add_commitment(user: PageWriter, engine: EngineDep, plan_id: PlanId,
                   text: Annotated[str, Form(max_length=4000)],
                   due_on: Annotated[str, Form(max_length=10)] = "", skill: Annotated[str, Form(max_length=64)] = "",
                   ) -> Response:
    require(user, Action.COACH)
    coaching_plans.add_plan_commitment(engine, scope=user.scope, plan_id=plan_id, text=text, due_on=_day(due_on),
                                 skill=skill or None)
    return RedirectResponse(f"/coaching/plans/{plan_id}#commitments", status_code=303)


@router.post("/coaching/plans/{plan_id}/notes", response_model=None)
def add_note(user: PageWriter, engine: EngineDep, plan_id: PlanId,
             body: Annotated[str, Form(max_length=4000)]) -> Response:
    require(user, Action.COACH)
    coaching_plans.add_one_on_one_note(engine, scope=user.scope, plan_id=plan_id, body=body)
    return RedirectResponse(f"/coaching/plans/{plan_id}#notes", status_code=303)


@router.post("/coaching/plans/{plan_id}/close", response_model=None)
def close_plan(user: PageWriter, engine: EngineDep, plan_id: PlanId,
               outcome: Annotated[str, Form(max_length=4000)] = "") -> Response:
    require(user, Action.COACH)
    coaching_plans.close_plan(engine, scope=user.scope, plan_id=plan_id, outcome=outcome or None)
    return RedirectResponse(f"/coaching/plans/{plan_id}", status_code=303)


def _day(text: str) -> date | None:
    from closewise.errors import InvalidInput

    value = text.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date like 2026-12-31", where="date") from None
