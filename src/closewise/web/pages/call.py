"""The Forecast call page: your call for the period, your team's calls rolled up with the model's range for
the same people, who has not called, the deals behind the gap, categories and everyone's track record; and
the printable call pack. Only forecast matters: deal coaching lives in opportunity reviews."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from closewise.domain.periods import PeriodKind
from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError
from closewise.services import forecast_call
from closewise.services.auth import Principal
from closewise.services.forecast_view import Pending
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser, PageWriter
from closewise.web.render import page

router = APIRouter(include_in_schema=False)


def _default_period(engine: Any, views: Any) -> str:
    _, org = views.orgs.org(engine)
    return str(org.calendar.period_containing(utcnow().date(), PeriodKind.QUARTER).label)


def _context(engine: Any, views: Any, user: Principal, period: str | None, manager_id: int | None) -> dict[str, Any]:
    label = period or _default_period(engine, views)
    computed = views.org_forecast(engine, user.scope, period=label)
    pending = computed if isinstance(computed, Pending) else None
    report = forecast_call.rollup_report(engine, scope=user.scope, period=label, manager_id=manager_id,
                                         forecast=None if pending else computed.forecast)
    accuracy = forecast_call.accuracy_report(engine, scope=user.scope)
    mine = next((row for row in report["by_user"] if row["user_id"] == user.user_id), None)
    return {"report": report, "pending": pending, "accuracy": accuracy, "period": report["period"],
            "my_call": report["manager_call"] if mine is None else mine["submitted"],
            "figure": _figure(report), "today": date.today().isoformat()}


def _figure(report: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in report["by_user"]]
    names = [r["name"] or str(r["user_id"]) for r in rows]
    data: list[dict[str, Any]] = [
        {"type": "bar", "name": "commit (counts)", "x": names, "y": [r["commit"] for r in rows],
         "marker": {"color": "#1e40af"}},
        {"type": "bar", "name": "best case", "x": names, "y": [r["best_case"] - r["commit"] for r in rows],
         "marker": {"color": "#93c5fd"}},
    ]
    with_model = [r for r in rows if r["model"]]
    if with_model:
        data.append({"type": "scatter", "mode": "markers", "name": "model P50 (P10–P90)",
                     "x": [r["name"] or str(r["user_id"]) for r in with_model],
                     "y": [r["model"]["p50"] for r in with_model],
                     "error_y": {"type": "data", "symmetric": False,
                                 "array": [r["model"]["p90"] - r["model"]["p50"] for r in with_model],
                                 "arrayminus": [r["model"]["p50"] - r["model"]["p10"] for r in with_model],
                                 "color": "#b45309"},
                     "marker": {"color": "#b45309", "size": 11, "symbol": "diamond"}})
    return {"data": data, "layout": {"barmode": "stack", "height": 340, "legend": {"orientation": "h", "y": 1.15},
                                     "yaxis": {"title": {"text": report["currency"]}, "tickformat": ",.0f"}}}


@router.get("/call", response_class=HTMLResponse)
def call_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep, period: str | None = None,
              manager_id: int | None = None) -> HTMLResponse:
    return page(request, "call.html", user, title="Forecast call",
                **_context(engine, views, user, period, manager_id))


@router.get("/call/pack", response_class=HTMLResponse)
def call_pack(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep, period: str | None = None,
              manager_id: int | None = None) -> HTMLResponse:
    return page(request, "call_pack.html", user, title="Forecast call pack",
                **_context(engine, views, user, period, manager_id))


@router.post("/call/submit", response_class=HTMLResponse)
def submit_call(request: Request, user: PageWriter, engine: EngineDep, views: ViewsDep,
                period: Annotated[str, Form()], commit: Annotated[float, Form()],
                best_case: Annotated[float, Form()], notes: Annotated[str, Form()] = "") -> HTMLResponse:
    message, error = None, None
    try:
        receipt = forecast_call.submit(engine, scope=user.scope, period=period, commit=commit, best_case=best_case,
                                       notes=notes)
        message = f"Your {receipt.period} call is in: commit {receipt.commit:,.0f}, best case {receipt.best_case:,.0f}."
    except CloseWiseError as exc:
        error = str(exc)
    return page(request, "call.html", user, title="Forecast call", message=message, error=error,
                status_code=422 if error else 200, **_context(engine, views, user, period, None))


@router.post("/call/adjust", response_class=HTMLResponse)
def adjust_call(request: Request, user: PageWriter, engine: EngineDep, views: ViewsDep,
                period: Annotated[str, Form()], subject_id: Annotated[int, Form()], commit: Annotated[float, Form()],
                best_case: Annotated[float, Form()], note: Annotated[str, Form()] = "") -> HTMLResponse:
    message, error = None, None
    try:
        forecast_call.adjust(engine, scope=user.scope, subject_id=subject_id, period=period, commit=commit,
                             best_case=best_case, note=note)
        message = "Adjustment recorded."
    except CloseWiseError as exc:
        error = str(exc)
    return page(request, "call.html", user, title="Forecast call", message=message, error=error,
                status_code=422 if error else 200, **_context(engine, views, user, period, None))
