"""The Forecast page: will we hit the number? KPI cards, the outcome range against the target, the owners and
deals behind it, the baselines beside the model and its track record.

The forecast and the track record are computed in the background (`services.forecast_view`); until they are
ready their sections show a progress bar that htmx polls (`/forecast/body`, `/forecast/track`), each answering
the finished section when it is done.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from closewise.domain.scope import Scope
from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError, InvalidInput
from closewise.services.auth import Principal
from closewise.services.forecast_view import ForecastFailed, Pending, period_choices
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser
from closewise.web.render import money, page

router = APIRouter(include_in_schema=False)

PeriodQuery = Annotated[str | None, Query(max_length=32)]
AsOfQuery = Annotated[str | None, Query(max_length=40)]

BLUE, LIGHT_BLUE, GREY = "#1e40af", "rgba(30,64,175,0.14)", "#6b7280"
RED, GREEN, AMBER = "#b91c1c", "#15803d", "#b45309"


@router.get("/forecast", response_class=HTMLResponse)
def forecast_page(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep,
                  period: PeriodQuery = None, as_of: AsOfQuery = None) -> HTMLResponse:
    today = utcnow().date()
    _, org = views.orgs.org(engine)
    choices = period_choices(org.calendar, today)
    chosen = (period or "").strip() or choices[2][0]
    query = urlencode({"period": chosen, **({"as_of": as_of} if as_of else {})})
    context: dict[str, Any] = {"choices": choices, "period": chosen, "as_of": as_of or "", "query": query,
                               "scope_label": scope_label(user.scope), "error": None, "body": None, "track": None}
    status = 200
    try:
        context["body"] = _body(views.forecast(engine, user.scope, period=chosen, as_of=as_of), user)
    except InvalidInput as exc:
        context["error"], status = f"{exc.where}: {exc.message}" if exc.where else exc.message, 422
    except ForecastFailed as exc:
        context["error"] = exc.message
    if context["error"] is None:
        context["track"] = _track(views.track_record(engine, user.scope))
    return page(request, "forecast.html", user, title="Forecast", status_code=status, **context)


@router.get("/forecast/body", response_class=HTMLResponse)
def forecast_body(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep,
                  period: PeriodQuery = None, as_of: AsOfQuery = None) -> HTMLResponse:
    """The forecast section (or its progress while computing), for htmx to swap in."""
    chosen = (period or "").strip()
    query = urlencode({"period": chosen, **({"as_of": as_of} if as_of else {})})
    try:
        body = _body(views.forecast(engine, user.scope, period=chosen, as_of=as_of), user)
    except CloseWiseError as exc:  # shown in place (htmx swaps only 2xx answers), and the polling stops
        return page(request, "partials/error.html", user, title="Forecast", message=exc.message)
    return page(request, "partials/forecast_body.html", user, title="Forecast", body=body, query=query)


@router.get("/forecast/track", response_class=HTMLResponse)
def forecast_track(request: Request, user: PageUser, engine: EngineDep, views: ViewsDep) -> HTMLResponse:
    """The track-record section (or its progress), for htmx to swap in."""
    try:
        track = _track(views.track_record(engine, user.scope))
    except CloseWiseError as exc:
        return page(request, "partials/error.html", user, title="Forecast", message=exc.message)
    return page(request, "partials/forecast_track.html", user, title="Forecast", track=track)


def scope_label(scope: Scope) -> str:
    if scope.owner_ids is None:
        return "the whole organisation"
    if scope.owner_ids == frozenset({scope.user_id}):
        return "your deals"
    return f"your team ({len(scope.owner_ids)} people)"


# --- the forecast section ----------------------------------------------------------------------------------


def _body(document: dict[str, Any] | Pending, user: Principal) -> dict[str, Any]:
    if isinstance(document, Pending):
        return {"pending": document}
    probability = document["probability_of_target"]
    tone = None if probability is None else "good" if probability >= 0.7 else "warn" if probability >= 0.4 else "bad"
    owners = document["by_owner"]
    return {
        "pending": None,
        "doc": document,
        "tone": tone,
        "outcome_chart": outcome_figure(document),
        "owners_chart": owners_figure(document) if len(owners) > 1 else None,
        "baselines": _baseline_rows(document),
        "mine_only": user.scope.owner_ids == frozenset({user.user_id}),
    }


def _baseline_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    p50 = document["p50"]
    rows = [{"name": "Closewise model (P50)", "value": p50, "note": f"P10-P90 {money(document['p10'])} to "
                                                                     f"{money(document['p90'])}", "model": True}]
    notes = {"run_rate_3": ("Run rate (last 3 months)", "average monthly bookings carried over the period"),
             "crm_weighted": ("CRM weighted pipeline", "closed won + amount x CRM probability"),
             "commit": ("Commit", "closed won + deals in the commit category")}
    for key, (name, note) in notes.items():
        rows.append({"name": name, "value": document["baselines"][key], "note": note, "model": False,
                     "difference": document["baselines"][key] - p50})
    return rows


def outcome_figure(document: dict[str, Any]) -> dict[str, Any]:
    """The chance of booking at least X, for every X (1 - CDF of the simulated outcome), with the P10-P90 band,
    the P50, closed won and the target marked."""
    currency = document["currency"]
    # Closed won is certain and nothing above the top percentile was drawn: the curve runs from 100% to 0%.
    values = [document["closed_won"], *document["percentiles"], document["percentiles"][-1]]
    chance = [1.0, *(1 - (k + 1) / 100 for k in range(len(values) - 2)), 0.0]
    shapes: list[dict[str, Any]] = [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": document["p10"], "x1": document["p90"], "y0": 0,
         "y1": 1, "fillcolor": LIGHT_BLUE, "line": {"width": 0}, "layer": "below"},
    ]
    annotations: list[dict[str, Any]] = []
    if document["p90"] > document["p10"]:
        annotations.append({"x": (document["p10"] + document["p90"]) / 2, "y": 1.1, "xref": "x", "yref": "paper",
                            "showarrow": False, "text": "80% range (P10-P90)", "font": {"color": BLUE, "size": 11}})
    # (label, x, colour, dash, height of the label): closed won's label sits lower, clear of the P50's.
    marks = [("Closed won", document["closed_won"], GREY, "dot", 0.84), ("P50", document["p50"], BLUE, "solid", 0.95)]
    if document["target"] is not None:
        marks.append(("Target", document["target"], RED, "dash", 0.95))
    for label, x, color, dash, height in marks:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 0.92,
                       "line": {"color": color, "width": 2, "dash": dash}})
        annotations.append({"x": x, "y": height, "xref": "x", "yref": "paper", "showarrow": False,
                            "text": f"{label} {money(x, compact=True)}", "font": {"color": color, "size": 11},
                            "xanchor": "left" if label == "Target" else "right"})
    return {
        "data": [{"type": "scatter", "mode": "lines", "x": values, "y": chance, "name": "Chance of at least",
                  "line": {"color": BLUE, "width": 3},
                  "hovertemplate": f"%{{y:.0%}} chance of at least %{{x:,.0f}} {currency}<extra></extra>"}],
        "layout": {"height": 340, "showlegend": False, "shapes": shapes, "annotations": annotations,
                   "xaxis": {"title": {"text": f"Bookings in {document['period']} ({currency})"}, "tickformat": "~s",
                             "zeroline": False, "gridcolor": "#eef0f5"},
                   "yaxis": {"title": {"text": "Chance of at least"}, "tickformat": ".0%", "range": [0, 1.05],
                             "gridcolor": "#eef0f5"},
                   "margin": {"l": 64, "r": 24, "t": 40, "b": 56}},
    }


def owners_figure(document: dict[str, Any]) -> dict[str, Any]:
    """Each owner's P10-P90 range and P50, with their quota."""
    owners = list(reversed(document["by_owner"][:20]))
    names = [o["name"] or f"#{o['owner_id']}" for o in owners]
    currency = document["currency"]
    data: list[dict[str, Any]] = [
        {"type": "bar", "orientation": "h", "y": names, "x": [(o["p90"] or 0) - (o["p10"] or 0) for o in owners],
         "base": [o["p10"] or 0 for o in owners], "name": "P10-P90", "marker": {"color": LIGHT_BLUE,
                                                                                  "line": {"color": BLUE, "width": 1}},
         "hovertemplate": f"%{{base:,.0f}} to %{{x:,.0f}} more {currency}<extra>P10-P90</extra>"},
        {"type": "scatter", "mode": "markers", "y": names, "x": [o["p50"] for o in owners], "name": "P50",
         "marker": {"color": BLUE, "size": 9}, "hovertemplate": f"P50 %{{x:,.0f}} {currency}<extra></extra>"},
    ]
    if any(o["target"] is not None for o in owners):
        data.append({"type": "scatter", "mode": "markers", "y": names, "x": [o["target"] for o in owners],
                     "name": "Quota", "marker": {"color": RED, "symbol": "line-ns-open", "size": 16,
                                                 "line": {"width": 3, "color": RED}},
                     "hovertemplate": f"quota %{{x:,.0f}} {currency}<extra></extra>"})
    return {"data": data,
            "layout": {"height": max(240, 28 * len(owners) + 80), "barmode": "overlay",
                       "legend": {"orientation": "h", "y": -0.12},
                       "xaxis": {"tickformat": "~s", "gridcolor": "#eef0f5"},
                       "yaxis": {"automargin": True}, "margin": {"l": 8, "r": 16, "t": 8, "b": 40}}}


# --- the track record --------------------------------------------------------------------------------------


def _track(document: dict[str, Any] | Pending) -> dict[str, Any]:
    if isinstance(document, Pending):
        return {"pending": document}
    summary = document["summary"]
    names = {"run_rate_3": "Run rate (3 months)", "crm_weighted": "CRM weighted", "commit": "Commit"}
    scores = [{"name": "Closewise model (P50)", "mape": summary["p50_mape"], "bias": summary["p50_bias"],
               "model": True}]
    scores += [{"name": names[key], "mape": value["mape"], "bias": value["bias"], "model": False}
               for key, value in summary["baselines"].items()]
    ranked = sorted((s for s in scores if s["mape"] is not None), key=lambda s: s["mape"])
    best = ranked[0]["name"] if ranked else None
    return {"pending": None, "doc": document, "scores": scores, "best": best, "chart": track_figure(document)}


def track_figure(document: dict[str, Any]) -> dict[str, Any]:
    """Past months: the P10-P90 band and P50 made on each month's first day, what was booked, and the baselines."""
    rows = document["rows"]
    months = [r["period"] for r in rows]
    currency = document["currency"]
    money_hover = f"%{{y:,.0f}} {currency}"
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "x": months, "y": [r["p90"] for r in rows], "name": "P90",
             "line": {"width": 0}, "showlegend": False, "hovertemplate": f"P90 {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "x": months, "y": [r["p10"] for r in rows], "name": "P10-P90",
             "fill": "tonexty", "fillcolor": LIGHT_BLUE, "line": {"width": 0},
             "hovertemplate": f"P10 {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "lines+markers", "x": months, "y": [r["p50"] for r in rows],
             "name": "Model P50", "line": {"color": BLUE, "width": 2}, "marker": {"size": 6},
             "hovertemplate": f"P50 {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "markers", "x": months, "y": [r["actual"] for r in rows], "name": "Actual",
             "marker": {"color": "#111827", "size": 10, "symbol": "diamond"},
             "hovertemplate": f"booked {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "x": months, "y": [r["baselines"]["run_rate_3"] for r in rows],
             "name": "Run rate", "line": {"color": AMBER, "dash": "dot", "width": 1.5},
             "hovertemplate": f"run rate {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "x": months, "y": [r["baselines"]["crm_weighted"] for r in rows],
             "name": "CRM weighted", "line": {"color": GREEN, "dash": "dot", "width": 1.5}, "visible": "legendonly",
             "hovertemplate": f"CRM weighted {money_hover}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "x": months, "y": [r["baselines"]["commit"] for r in rows],
             "name": "Commit", "line": {"color": GREY, "dash": "dot", "width": 1.5}, "visible": "legendonly",
             "hovertemplate": f"commit {money_hover}<extra></extra>"},
        ],
        "layout": {"height": 340, "legend": {"orientation": "h", "y": -0.18},
                   "xaxis": {"type": "category", "gridcolor": "#eef0f5"},
                   "yaxis": {"tickformat": "~s", "title": {"text": currency}, "gridcolor": "#eef0f5",
                             "rangemode": "tozero"},
                   "margin": {"l": 64, "r": 16, "t": 16, "b": 48}},
    }
