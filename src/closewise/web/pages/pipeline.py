"""The Pipeline page: do we have enough? The pipeline of a period by stage and by expected close month,
coverage of the target with the gap and the pipeline still needed by stage, and the waterfall of how the
pipeline moved between two days — all on the deals the user may see (`services.pipeline_view`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from closewise.domain.timeutil import utcnow
from closewise.errors import InvalidInput
from closewise.services.forecast_view import period_choices
from closewise.services.pipeline_view import parse_day, pipeline_document, waterfall_document, waterfall_window
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser
from closewise.web.pages.forecast import BLUE, GREEN, GREY, LIGHT_BLUE, RED, scope_label
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

Text = Annotated[str | None, Query(max_length=40)]


@router.get("/pipeline", response_class=HTMLResponse)
def pipeline_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep, period: Text = None,
                  start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
                  end: Annotated[str | None, Query(alias="to", max_length=40)] = None) -> HTMLResponse:
    today = utcnow().date()
    _, org = views.orgs.org(engine)
    choices = period_choices(org.calendar, today)
    chosen = (period or "").strip() or choices[2][0]
    stage_names = dict(zip(org.stages["key"].to_list(), org.stages["name"].to_list(), strict=True))
    context: dict[str, Any] = {"choices": choices, "period": chosen, "scope_label": scope_label(user.scope),
                               "error": None, "doc": None, "waterfall": None, "stage_names": stage_names,
                               "waterfall_error": None}
    try:
        document = pipeline_document(engine, views.orgs, user.scope, period=chosen)
    except InvalidInput as exc:
        context["error"] = f"{exc.where}: {exc.message}" if exc.where else exc.message
        return page(request, "pipeline.html", user, title="Pipeline", status_code=422, **context)
    default_from, default_to = waterfall_window(date.fromisoformat(document["period_start"]), today)
    context.update(doc=document, stage_chart=stage_figure(document), month_chart=month_figure(document),
                   start=(start or "").strip() or default_from.isoformat(),
                   end=(end or "").strip() or default_to.isoformat())
    try:
        flows = waterfall_document(engine, views.orgs, user.scope, start=parse_day(start, "from"),
                                   end=parse_day(end, "to"), period=document["period"])
        context.update(waterfall=flows, waterfall_chart=waterfall_figure(flows), start=flows["from"][:10],
                       end=flows["to"][:10])
    except InvalidInput as exc:
        context["waterfall_error"] = f"{exc.where}: {exc.message}" if exc.where else exc.message
    return page(request, "pipeline.html", user, title="Pipeline", **context)


def stage_figure(document: dict[str, Any]) -> dict[str, Any]:
    """Open pipeline of the period by stage, in playbook order: amount and CRM-weighted amount, deal counts."""
    groups = document["by_stage"]
    labels = [g["label"] for g in groups]
    currency = document["currency"]
    return {
        "data": [
            {"type": "bar", "x": labels, "y": [g["total"] for g in groups], "name": "Amount",
             "marker": {"color": BLUE}, "text": [f"{g['count']} deals" for g in groups], "textposition": "outside",
             "cliponaxis": False, "hovertemplate": f"%{{x}}: %{{y:,.0f}} {currency} (%{{text}})<extra></extra>"},
            {"type": "bar", "x": labels, "y": [g["weighted"] for g in groups], "name": "CRM weighted",
             "marker": {"color": LIGHT_BLUE, "line": {"color": BLUE, "width": 1}},
             "hovertemplate": f"%{{x}}: %{{y:,.0f}} {currency} weighted<extra></extra>"},
        ],
        "layout": {"height": 320, "barmode": "group", "legend": {"orientation": "h", "y": -0.2},
                   "yaxis": {"tickformat": "~s", "title": {"text": currency}, "gridcolor": "#eef0f5"},
                   "margin": {"l": 64, "r": 16, "t": 28, "b": 56}},
    }


def month_figure(document: dict[str, Any]) -> dict[str, Any]:
    """Every open deal by expected close month: past months (overdue) in red, the period's months in blue."""
    groups = document["by_close_month"]
    start, end = document["period_start"][:7], document["period_end"][:7]
    colors = [RED if g["overdue"] else BLUE if start <= g["key"] <= end else "#93a3c8" for g in groups]
    currency = document["currency"]
    return {
        "data": [{"type": "bar", "x": [g["label"] if g["key"] != "none" else "No date" for g in groups],
                  "y": [g["total"] for g in groups], "marker": {"color": colors},
                  "customdata": [g["count"] for g in groups], "name": "Open pipeline",
                  "hovertemplate": f"%{{x}}: %{{y:,.0f}} {currency}, %{{customdata}} deals<extra></extra>"}],
        # automargin: the slanted month labels get the room they need (the last one was cut at the right edge).
        "layout": {"height": 320, "showlegend": False,
                   "xaxis": {"type": "category", "tickangle": -45, "automargin": True},
                   "yaxis": {"tickformat": "~s", "title": {"text": currency}, "gridcolor": "#eef0f5"},
                   "margin": {"l": 64, "r": 28, "t": 16, "b": 56}},
    }


def waterfall_figure(document: dict[str, Any]) -> dict[str, Any]:
    """From the pipeline at the start to the pipeline at the end, one bar per flow (Plotly's waterfall trace)."""
    steps = document["steps"]
    labels = ["Start", *(s["label"] for s in steps), "End"]
    values = [document["start_value"], *(s["value"] for s in steps), document["end_value"]]
    currency = document["currency"]
    return {
        "data": [{"type": "waterfall", "x": labels, "y": values,
                  "measure": ["absolute", *("relative" for _ in steps), "total"],
                  "increasing": {"marker": {"color": GREEN}}, "decreasing": {"marker": {"color": RED}},
                  "totals": {"marker": {"color": BLUE}}, "connector": {"line": {"color": GREY, "width": 1}},
                  "hovertemplate": f"%{{x}}: %{{y:,.0f}} {currency}<extra></extra>"}],
        "layout": {"height": 340, "showlegend": False,
                   "yaxis": {"tickformat": "~s", "title": {"text": currency}, "gridcolor": "#eef0f5"},
                   "margin": {"l": 64, "r": 16, "t": 16, "b": 56}},
    }
