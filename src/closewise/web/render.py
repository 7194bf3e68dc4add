"""Server-rendered pages: the Jinja2 environment, the navigation, and `page()` which every page route ends with."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from closewise.domain.enums import Role
from closewise.domain.scope import Action
from closewise.services.auth import Principal

TEMPLATES = Path(__file__).parent / "templates"

# (path, label, who sees the link): the pages of the app, in menu order.
NAVIGATION: tuple[tuple[str, str, frozenset[Role] | None], ...] = (
    ("/forecast", "Forecast", None),
    ("/call", "Call", frozenset({Role.ADMIN, Role.LEADER, Role.MANAGER, Role.REP})),
    ("/pipeline", "Pipeline", None),
    ("/hygiene", "Hygiene", None),
    ("/deals", "Deals", None),
    ("/leads", "Leads", None),
    ("/playbook", "Playbook", None),
    ("/proposals", "Proposals", None),
    ("/team", "Team", frozenset({Role.ADMIN, Role.LEADER, Role.MANAGER, Role.VIEWER})),
    ("/coaching", "Coaching", None),
    ("/imports", "Imports", frozenset({Role.ADMIN})),
    ("/settings", "Settings", frozenset({Role.ADMIN, Role.LEADER})),
)


def money(value: Any, currency: str | None = None, *, compact: bool = False) -> str:
    """`1234567.8` → `1,234,568` (or `1.23M` compact), with the currency code after when given."""
    if value is None:
        return "—"
    number = float(value)
    if compact and abs(number) >= 1_000_000:
        text = f"{number / 1_000_000:,.2f}M"
    elif compact and abs(number) >= 10_000:
        text = f"{number / 1_000:,.0f}k"
    else:
        text = f"{number:,.0f}"
    return f"{text} {currency}" if currency else text


def percent(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{float(value) * 100:.{digits}f}%"


def day(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def chart_json(figure: dict[str, Any]) -> Markup:
    """A Plotly figure for `<script type="application/json" data-chart>`: `</` is escaped so the JSON cannot end
    the script element, whatever the data holds."""
    text = json.dumps(figure, default=str, separators=(",", ":")).replace("</", "<\\/")
    return Markup(text)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters["money"] = money
    env.filters["percent"] = percent
    env.filters["day"] = day
    env.filters["chart_json"] = chart_json
    return templates


def nav_for(user: Principal) -> list[tuple[str, str]]:
    role = user.scope.role
    return [(path, label) for path, label, roles in NAVIGATION if roles is None or role in roles]


def page(request: Request, template: str, user: Principal | None, *, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    base = {
        "title": title,
        "user": user,
        "nav": nav_for(user) if user else [],
        "current": request.url.path,
        "csrf_token": user.csrf_token if user else context.pop("csrf_token", None),
        "can": (lambda action: user.scope.may(Action(action))) if user else (lambda action: False),
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
