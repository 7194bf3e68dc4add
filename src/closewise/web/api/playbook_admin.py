"""The playbook as a whole: `GET /api/playbook` (YAML), `PUT /api/playbook` (replace it from YAML: admin and
leader), `GET /api/playbook/gates` (win and slip rates with criteria met vs not) and
`GET /api/playbook/requalification` (deals due or overdue, scoped to the caller)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from closewise.domain.scope import Action
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput
from closewise.services import playbook
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["playbook"])
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "no or expired bearer token"}}
MAX_YAML = 1_000_000


class StageEffect(BaseModel):
    stage: str
    met_deals: int = Field(description="Closed deals that left the stage with all its criteria met.")
    met_win_rate: float | None
    unmet_deals: int
    unmet_win_rate: float | None
    lift: float | None = Field(description="met_win_rate / unmet_win_rate.")


class GroupEffect(BaseModel):
    group: str = Field(description="criteria met, criteria not met, or advanced by override.")
    deals: int
    closed: int
    won: int
    win_rate: float | None
    slip_rate: float | None


class CriterionEffect(BaseModel):
    stage: str
    criterion: str
    label: str | None
    met_advances: int
    met_win_rate: float | None
    unmet_advances: int
    unmet_win_rate: float | None


class GateEffectOut(BaseModel):
    as_of: str
    stages: list[StageEffect]
    groups: list[GroupEffect]
    criteria: list[CriterionEffect]


class DueDeal(BaseModel):
    id: int
    name: str | None
    owner_id: int | None
    owner: str | None
    stage: str
    last_qualified_at: str | None = Field(description="The latest qualification answer; null: never.")
    cadence_days: int
    due_on: str
    days_overdue: int = Field(description="Days past due (negative: days left).")
    status: str = Field(description="due or overdue.")


class DueList(BaseModel):
    as_of: str
    deals: list[DueDeal]


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/playbook", response_class=PlainTextResponse, responses={
    **_ERRORS, 200: {"content": {"application/yaml": {}}, "description": "The playbook as YAML."}})
def export_yaml(user: ApiUser, engine: EngineDep) -> PlainTextResponse:
    """The playbook (stages, exit criteria, frameworks) as YAML, the format `PUT /api/playbook` takes."""
    del user
    return PlainTextResponse(playbook.export_playbook(engine), media_type="application/yaml")


@router.put("/playbook", response_class=PlainTextResponse, responses={
    **_ERRORS, 403: {"description": "only an admin or a leader changes the playbook"},
    422: {"description": "the YAML is invalid; `where` names the place"},
    200: {"content": {"application/yaml": {}}, "description": "The stored playbook."}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def import_yaml(request: Request, user: ApiUser, engine: EngineDep) -> PlainTextResponse:
    """Replace the playbook from YAML (checked first: nothing changes on an error)."""
    require(user, Action.MANAGE_SETTINGS)
    body = await request.body()
    if len(body) > MAX_YAML:
        raise InvalidInput("the playbook is larger than 1 MB", where="body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the playbook is not UTF-8 text", where="body") from None
    playbook.import_playbook(engine, text=text, source="body", actor_id=user.user_id)
    return PlainTextResponse(playbook.export_playbook(engine), media_type="application/yaml")


class Flagged(BaseModel):
    id: int
    missing: list[str] = Field(description="Keys of the exit criteria missing when the deal left a stage.")


@router.get("/playbook/flags", response_model=list[Flagged], responses=_ERRORS)
def flags(user: ApiUser, engine: EngineDep,
          as_of: date | None = Query(default=None, description="As known at the end of this day.")) -> list[Any]:
    """Open deals the caller sees that reached their stage without the exit criteria of a stage they left
    (imports included: such deals are flagged, never blocked)."""
    return playbook.advanced_without_criteria(engine, scope=user.scope, as_of=parse_as_of(_day(as_of)))


@router.get("/playbook/gates", response_model=GateEffectOut, responses=_ERRORS)
def gates(user: ApiUser, engine: EngineDep,
          as_of: date | None = Query(default=None, description="As known at the end of this day.")) -> dict[str, Any]:
    """Do the gates matter: closed deals leaving each stage with criteria met vs not, over the caller's deals."""
    effect = playbook.gate_analysis(engine, scope=user.scope, as_of=parse_as_of(_day(as_of)))
    return effect.to_dict()


@router.get("/playbook/requalification", response_model=DueList, responses=_ERRORS)
def requalification(user: ApiUser, engine: EngineDep,
                    as_of: date | None = Query(default=None, description="As known at the end of this day."),
                    warn_days: int = Query(default=7, ge=0, le=365)) -> dict[str, Any]:
    """Open deals the caller sees that are due (within `warn_days`) or overdue for re-qualification."""
    moment = parse_as_of(_day(as_of))
    rows = playbook.requalification_due(engine, scope=user.scope, as_of=moment, warn_days=warn_days)
    return {"as_of": moment.isoformat(), "deals": rows}
