"""The Team page: rep scorecards for the reps the user sees, as of a day, with a team filter, a sortable table
(sorted on the server, so it works without JavaScript and keeps its order in the address) and two charts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from closewise.services import hygiene, team
from closewise.web.deps import EngineDep, PageUser
from closewise.web.render import page

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
SORTS = tuple(key for key, _, _ in COLUMNS)
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


@router.get("/team", response_class=HTMLResponse)
def team_page(
    request: Request,
    user: PageUser,
    engine: EngineDep,
    as_of: Annotated[date | None, Query()] = None,
    team_id: Annotated[int | None, Query(alias="team", ge=1, le=2**63 - 1)] = None,
    sort: Annotated[str, Query(max_length=32)] = "attainment",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> HTMLResponse:
    sort = sort if sort in SORTS else "attainment"
    report = team.team_scorecards(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of), team_id=team_id)
    cards = _sorted(report.reps, sort, order == "desc")
    return page(request, "team.html", user, title="Team", report=report, cards=cards, columns=COLUMNS, sort=sort,
                order=order, as_of=as_of, team_id=team_id,
                attainment_figure=_attainment_chart(report), scatter_figure=_scatter_chart(report))
