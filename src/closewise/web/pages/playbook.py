"""The Playbook page: do the gates matter (win rates of deals leaving each stage with criteria met vs not),
who must re-qualify which deals, and the playbook itself as YAML (editable by admins and leaders)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from closewise.domain.scope import Action
from closewise.errors import CloseWiseError
from closewise.services import playbook
from closewise.web.deps import EngineDep, PageUser, PageWriter, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)


def _figure(stages: list[dict[str, Any]]) -> dict[str, Any]:
    names = [row["stage"].capitalize() for row in stages]

    def rates(key: str) -> list[float | None]:
        return [None if row[key] is None else round(row[key] * 100, 1) for row in stages]

    return {
        "data": [
            {"type": "bar", "name": "left with criteria met", "x": names, "y": rates("met_win_rate"),
             "marker": {"color": "#1e40af"}, "hovertemplate": "%{y:.0f}% won<extra>criteria met</extra>"},
            {"type": "bar", "name": "left without them", "x": names, "y": rates("unmet_win_rate"),
             "marker": {"color": "#f59e0b"}, "hovertemplate": "%{y:.0f}% won<extra>criteria not met</extra>"},
        ],
        "layout": {"barmode": "group", "yaxis": {"title": {"text": "win rate of closed deals (%)"},
                                                 "rangemode": "tozero"},
                   "legend": {"orientation": "h", "y": 1.12}, "height": 340},
    }


def _render(request: Request, engine: Any, user: Any, *, message: str | None = None, error: str | None = None,
            yaml_text: str | None = None, status_code: int = 200) -> HTMLResponse:
    effect = playbook.gate_analysis(engine, scope=user.scope)
    stages = effect.stages.to_dicts()
    due = playbook.requalification_due(engine, scope=user.scope)
    flagged = playbook.advanced_without_criteria(engine, scope=user.scope)
    return page(request, "playbook.html", user, title="Playbook", status_code=status_code, stages=stages,
                groups=effect.groups.to_dicts(), criteria=effect.criteria.to_dicts(), figure=_figure(stages),
                due=due, flagged=flagged, overdue=sum(1 for row in due if row["status"] == "overdue"),
                definition=playbook.current_playbook(engine),
                yaml_text=yaml_text if yaml_text is not None else playbook.export_playbook(engine),
                message=message, error=error)


@router.get("/playbook", response_class=HTMLResponse)
def playbook_page(request: Request, user: PageUser, engine: EngineDep) -> HTMLResponse:
    return _render(request, engine, user)


@router.post("/playbook", response_class=HTMLResponse)
def save_playbook(request: Request, user: PageWriter, engine: EngineDep,
                  yaml_text: Annotated[str, Form()] = "") -> HTMLResponse:
    require(user, Action.MANAGE_SETTINGS)
    try:
        saved = playbook.import_playbook(engine, text=yaml_text, source="the playbook", actor_id=user.user_id)
    except CloseWiseError as exc:
        return _render(request, engine, user, error=str(exc), yaml_text=yaml_text, status_code=422)
    return _render(request, engine, user, message=f"Saved: {len(saved.stages)} stages, "
                                                  f"{sum(len(s.exit_criteria) for s in saved.stages)} exit criteria.")
