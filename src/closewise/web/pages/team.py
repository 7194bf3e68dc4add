"""The Team page: rep scorecards for the reps the user sees, as of a day, with a team filter, two sortable tables
(results, then pipeline and process; sorted on the server, so they work without JavaScript and keep their order
in the address) and charts where a picture reads faster than the table: attainment, win rate against
attainment, each rep's quarters (a heatmap; bars for a single rep), stage conversion by stage, activity mix."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from closewise.services import hygiene, team
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import EngineDep, PageUser
from closewise.web.render import money, page, percent

router = APIRouter(include_in_schema=False)

# (sort key, header, numeric): the table's columns in order.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("name", "Rep", False),
    ("quota", "Quota", True),
    ("won_quarter", "Won QTD", True),
    ("attainment", "Attainment", True),
    ("pipeline_quarter", "Pipeline this qtr", True),
    ("coverage", "Coverage", True),
    ("won_12m", "Won 12 mo", True),
    ("win_rate", "Win rate", True),
    ("average_won", "Avg deal", True),
    ("median_cycle_days", "Cycle (days)", True),
    ("activities_30d", "Activities 30d", True),
    ("findings", "Findings", True),
    ("slipped_deals_90d", "Slipped 90d", True),
)
PROCESS_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("name", "Rep", False),
    ("created_quarter", "Created QTD", True),
    ("stage_conversion", "Stage conversion", True),
    ("slip_rate", "Slip rate", True),
    ("forecast_mape", "Forecast error", True),
    ("forecast_bias", "Forecast bias", True),
    ("activities_30d", "Activity mix 30d", True),
)
SORTS = tuple(dict.fromkeys(key for key, _, _ in (*COLUMNS, *PROCESS_COLUMNS)))
MIX = (("calls_30d", "Calls", "#1e40af"), ("emails_30d", "Emails", "#0f766e"),
       ("meetings_30d", "Meetings", "#b45309"), ("tasks_30d", "Tasks", "#7c3aed"),
       ("other_activities_30d", "Other", "#9ca3af"))
_PALETTE = ("#1e40af", "#0f766e", "#b45309", "#7c3aed", "#be123c", "#0369a1", "#4d7c0f")


def _sorted(cards: list[team.Scorecard], key: str, descending: bool) -> list[team.Scorecard]:
    """Sorted by `key`, empty values last whichever the direction."""
    present = [card for card in cards if getattr(card, key) is not None]
    missing = [card for card in cards if getattr(card, key) is None]
    present.sort(key=lambda card: (getattr(card, key), card.name) if key != "name" else card.name.lower(),
                 reverse=descending)
    return present + missing


def _attainment_chart(report: team.TeamReport) -> dict[str, Any]:
    cards = sorted((c for c in report.reps if c.attainment is not None), key=lambda c: c.attainment or 0.0)
    colors = ["#15803d" if (c.attainment or 0) >= 1 else "#d97706" if (c.attainment or 0) >= 0.5 else "#b91c1c"
              for c in cards]
    return {
        "data": [{
            "type": "bar", "orientation": "h", "y": [c.name for c in cards], "x": [c.attainment for c in cards],
            "customdata": [[c.won_quarter, c.quota] for c in cards], "marker": {"color": colors},
            "hovertemplate": "%{y}: %{x:.0%} of quota<br>won %{customdata[0]:,.0f} of %{customdata[1]:,.0f} "
                             + report.currency + "<extra></extra>",
        }],
        "layout": {
            "height": max(260, 26 * len(cards) + 70), "margin": {"l": 120, "r": 16, "t": 8, "b": 40},
            "xaxis": {"tickformat": ".0%", "rangemode": "tozero", "gridcolor": "#e5e7eb",
                      "title": {"text": f"attainment, {report.quarter} to date"}},
            "shapes": [{"type": "line", "x0": 1, "x1": 1, "yref": "paper", "y0": 0, "y1": 1,
                        "line": {"color": "#111827", "dash": "dot", "width": 1}}],
        },
    }


def _scatter_chart(report: team.TeamReport) -> dict[str, Any]:
    """Win rate against attainment, a bubble per rep sized by this quarter's pipeline, one color per team."""
    traces: list[dict[str, Any]] = []
    teams = sorted({card.team or "No team" for card in report.reps})
    biggest = max((card.pipeline_quarter for card in report.reps), default=0.0) or 1.0
    labelled = len(report.reps) <= 12  # names on the bubbles while they stay legible; hover always has them
    for index, name in enumerate(teams):
        cards = [c for c in report.reps if (c.team or "No team") == name and c.win_rate is not None
                 and c.attainment is not None]
        traces.append({
            "type": "scatter", "mode": "markers+text" if labelled else "markers", "name": name,
            "x": [c.win_rate for c in cards], "y": [c.attainment for c in cards],
            "text": [c.name.split(" ")[0] if labelled else "" for c in cards], "textposition": "top center",
            "textfont": {"size": 10, "color": "#374151"},
            "customdata": [[c.name, c.pipeline_quarter, c.won_12m_count, c.closed_12m] for c in cards],
            "marker": {"size": [12 + 30 * (c.pipeline_quarter / biggest) for c in cards],
                       "color": _PALETTE[index % len(_PALETTE)], "opacity": 0.75,
                       "line": {"color": "#ffffff", "width": 1}},
            "hovertemplate": "%{customdata[0]}<br>win rate %{x:.0%} (%{customdata[2]} of %{customdata[3]})"
                             "<br>attainment %{y:.0%}<br>pipeline this quarter %{customdata[1]:,.0f} "
                             + report.currency + "<extra></extra>",
        })
    return {
        "data": traces,
        "layout": {
            "height": 360, "margin": {"l": 56, "r": 16, "t": 8, "b": 48},
            "xaxis": {"tickformat": ".0%", "title": {"text": "win rate, trailing 12 months"}, "gridcolor": "#e5e7eb",
                      "rangemode": "tozero"},
            "yaxis": {"tickformat": ".0%", "title": {"text": "attainment this quarter"}, "gridcolor": "#e5e7eb",
                      "rangemode": "tozero"},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def _trend_chart(report: team.TeamReport) -> dict[str, Any]:
    """Each rep's quarters at a glance: a heatmap of attainment (bookings when no rep has a quota) with the team
    on top; for a single rep, their bookings per quarter as bars against quota and forecast call."""
    if len(report.reps) == 1:
        return _single_trend(report.reps[0], report.currency)
    cards = [*sorted(report.reps, key=lambda c: c.name, reverse=True), report.total]  # drawn bottom up
    by_quota = any(q.attainment is not None for c in report.reps for q in c.trend)
    z = [[(q.attainment if by_quota else q.won) for q in c.trend] for c in cards]
    text = [[money(q.won, compact=True) if q.won else "" for q in c.trend] for c in cards]
    return {
        "data": [{
            "type": "heatmap", "x": report.quarters, "y": [c.name for c in cards], "z": z, "text": text,
            "texttemplate": "%{text}", "textfont": {"size": 10}, "xgap": 2, "ygap": 2,
            "colorscale": [[0, "#fee2e2"], [0.4, "#fde68a"], [0.8, "#bbf7d0"], [1, "#15803d"]] if by_quota
            else [[0, "#eff6ff"], [1, "#1e40af"]],
            "zmin": 0, **({"zmax": 1.25} if by_quota else {}),
            "colorbar": {"tickformat": ".0%" if by_quota else ",.0f", "thickness": 10,
                         "title": {"text": "attainment" if by_quota else report.currency}},
            "customdata": [[[q.won, q.quota, q.win_rate, q.created, q.call] for q in c.trend] for c in cards],
            "hovertemplate": "%{y}, %{x}<br>won %{customdata[0]:,.0f} of quota %{customdata[1]:,.0f}"
                             "<br>win rate %{customdata[2]:.0%} · created %{customdata[3]:,.0f}"
                             "<br>forecast call %{customdata[4]:,.0f}<extra></extra>",
        }],
        "layout": {"height": max(240, 24 * len(cards) + 80), "margin": {"l": 150, "r": 16, "t": 8, "b": 40},
                   "xaxis": {"side": "bottom", "type": "category"}, "yaxis": {"type": "category"}},
    }


def _single_trend(card: team.Scorecard, currency: str) -> dict[str, Any]:
    quarters = [q.quarter for q in card.trend]
    return {
        "data": [
            {"type": "bar", "name": "won", "x": quarters, "y": [q.won for q in card.trend],
             "marker": {"color": ["#93c5fd" if q.partial else "#1e40af" for q in card.trend]},
             "hovertemplate": "%{x}: won %{y:,.0f} " + currency + "<extra></extra>"},
            {"type": "scatter", "mode": "markers", "name": "quota", "x": quarters, "y": [q.quota for q in card.trend],
             "marker": {"symbol": "line-ew-open", "size": 28, "color": "#111827", "line": {"width": 2}}},
            {"type": "scatter", "mode": "markers", "name": "forecast call", "x": quarters,
             "y": [q.call for q in card.trend], "marker": {"symbol": "diamond", "size": 9, "color": "#b45309"}},
        ],
        "layout": {"height": 280, "margin": {"l": 64, "r": 16, "t": 8, "b": 40}, "barmode": "overlay",
                   "legend": {"orientation": "h", "y": -0.2},
                   "yaxis": {"title": {"text": currency}, "rangemode": "tozero", "gridcolor": "#e5e7eb"}},
    }


def _stage_chart(report: team.TeamReport) -> dict[str, Any]:
    """Stage conversion per rep and stage (trailing year): where in the funnel each rep's deals stop."""
    if len(report.reps) == 1:
        return _single_stages(report.reps[0])
    cards = [*sorted(report.reps, key=lambda c: c.name, reverse=True), report.total]  # the total on top
    stages = [st.name for st in cards[0].stages]
    return {
        "data": [{
            "type": "heatmap", "x": stages, "y": [c.name for c in cards], "xgap": 2, "ygap": 2,
            "z": [[st.conversion_rate for st in c.stages] for c in cards],
            "text": [[percent(st.conversion_rate) if st.conversion_rate is not None else "" for st in c.stages]
                     for c in cards],
            "texttemplate": "%{text}", "textfont": {"size": 10}, "zmin": 0, "zmax": 1,
            "colorscale": [[0, "#fee2e2"], [0.5, "#fde68a"], [1, "#15803d"]],
            "colorbar": {"tickformat": ".0%", "thickness": 10},
            "customdata": [[[st.entered, st.advanced, st.pending] for st in c.stages] for c in cards],
            "hovertemplate": "%{y}, %{x}: %{z:.0%} moved on<br>%{customdata[1]} of %{customdata[0]} entered, "
                             "%{customdata[2]} still undecided<extra></extra>",
        }],
        "layout": {"height": max(260, 24 * len(cards) + 110), "margin": {"l": 150, "r": 16, "t": 8, "b": 90},
                   "xaxis": {"type": "category", "tickangle": -35}, "yaxis": {"type": "category"}},
    }


def _single_stages(card: team.Scorecard) -> dict[str, Any]:
    return {
        "data": [{"type": "bar", "x": [st.name for st in card.stages], "y": [st.conversion_rate for st in card.stages],
                  "text": [percent(st.conversion_rate) if st.conversion_rate is not None else "" for st in card.stages],
                  "textposition": "outside", "marker": {"color": "#0f766e"},
                  "customdata": [[st.entered, st.advanced, st.pending] for st in card.stages],
                  "hovertemplate": "%{x}: %{y:.0%} moved on<br>%{customdata[1]} of %{customdata[0]} entered, "
                                   "%{customdata[2]} still undecided<extra></extra>"}],
        "layout": {"height": 280, "margin": {"l": 56, "r": 16, "t": 16, "b": 70},
                   "yaxis": {"tickformat": ".0%", "range": [0, 1.1], "gridcolor": "#e5e7eb"},
                   "xaxis": {"type": "category", "tickangle": -25}},
    }


def _mix_chart(report: team.TeamReport) -> dict[str, Any]:
    """Completed activities in the last 30 days per rep, stacked by type."""
    cards = sorted(report.reps, key=lambda c: (c.activities_30d, c.name))
    return {
        "data": [{"type": "bar", "orientation": "h", "name": label, "y": [c.name for c in cards],
                  "x": [getattr(c, key) for c in cards], "marker": {"color": color},
                  "hovertemplate": "%{y}: %{x} " + label.lower() + "<extra></extra>"} for key, label, color in MIX],
        "layout": {"barmode": "stack", "height": max(240, 22 * len(cards) + 90),
                   "margin": {"l": 120, "r": 16, "t": 8, "b": 40},
                   "legend": {"orientation": "h", "y": -0.15, "traceorder": "normal"},
                   "xaxis": {"title": {"text": "completed activities, last 30 days"}, "gridcolor": "#e5e7eb"}},
    }


@router.get("/team", response_class=HTMLResponse)
def team_page(
    request: Request,
    user: PageUser,
    engine: EngineDep,
    views: ViewsDep,
    as_of: Annotated[date | None, Query()] = None,
    team_id: Annotated[int | None, Query(alias="team", ge=1, le=2**63 - 1)] = None,
    sort: Annotated[str, Query(max_length=32)] = "attainment",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> HTMLResponse:
    sort = sort if sort in SORTS else "attainment"
    report = team.team_scorecards(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of), team_id=team_id,
                                  cache=open_cache(engine, views.orgs))
    cards = _sorted(report.reps, sort, order == "desc")
    many = len(report.reps) > 1
    return page(request, "team.html", user, title="Team", report=report, cards=cards, columns=COLUMNS,
                process_columns=PROCESS_COLUMNS, mix=MIX, sort=sort, order=order, as_of=as_of, team_id=team_id,
                attainment_figure=_attainment_chart(report), scatter_figure=_scatter_chart(report),
                trend_figure=_trend_chart(report) if report.reps else None,
                stage_figure=_stage_chart(report) if report.reps else None,
                mix_figure=_mix_chart(report) if many else None)
