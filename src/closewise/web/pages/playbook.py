"""The Playbook page: do the gates matter (win rates of deals leaving each stage with criteria met vs not),
who must re-qualify which deals, and the playbook itself as YAML (editable by admins and leaders).

`?as_of=2026-10-31` shows the evidence as known at the end of that day (the re-qualification list, the gate
analysis and the flags alike, as `GET /api/playbook/requalification?as_of=` answers them); `?owner=` narrows the
re-qualification list to one rep. The YAML is always the playbook as it is now."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from closewise.domain.scope import Action
from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError, InvalidInput
from closewise.services import deals, hygiene, playbook
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


MAX_DUE_ROWS = 500  # the whole list for a team; an org-wide list past this is narrowed by owner


def _render(request: Request, engine: Any, user: Any, *, as_of: date | None = None, owner: int | None = None,
            message: str | None = None, error: str | None = None, yaml_text: str | None = None,
            status_code: int = 200) -> HTMLResponse:
    moment = hygiene.end_of_day(as_of)
    effect = playbook.gate_analysis(engine, scope=user.scope, as_of=moment)
    stages = effect.stages.to_dicts()
    due = playbook.requalification_due(engine, scope=user.scope, as_of=moment, owner_id=owner)
    flagged = playbook.advanced_without_criteria(engine, scope=user.scope, as_of=moment)
    owners = deals.owner_choices(engine, scope=user.scope)
    return page(request, "playbook.html", user, title="Playbook", status_code=status_code, stages=stages,
                groups=effect.groups.to_dicts(), criteria=effect.criteria.to_dicts(), figure=_figure(stages),
                due=due, due_rows=MAX_DUE_ROWS, flagged=flagged,
                overdue=sum(1 for row in due if row["status"] == "overdue"),
                as_of=as_of, shown_day=(as_of or utcnow().date()).isoformat(), owners=owners, owner=owner,
                owner_name=next((o["name"] for o in owners if o["id"] == owner), None),
                definition=playbook.current_playbook(engine),
                yaml_text=yaml_text if yaml_text is not None else playbook.export_playbook(engine),
                message=message, error=error)


def _day(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text[:40]!r} is not a date like 2026-11-22", where="as_of") from None


def _owner(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or not 1 <= int(text) < 2**63:
        raise InvalidInput(f"{text[:40]!r} is not a user id", where="owner")
    return int(text)


@router.get("/playbook", response_class=HTMLResponse)
def playbook_page(request: Request, user: PageUser, engine: EngineDep,
                  as_of: Annotated[str, Query(max_length=40)] = "",
                  owner: Annotated[str, Query(max_length=40)] = "") -> HTMLResponse:
    """The form's empty fields arrive as empty strings (everyone, today), so they are read here, not by FastAPI."""
    return _render(request, engine, user, as_of=_day(as_of), owner=_owner(owner))


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
