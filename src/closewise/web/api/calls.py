"""The forecast call through the API: submit your call, adjust a report's, the roll-up of a team with the
model beside it, and the accuracy of past calls. Scoped: a manager sees their own subtree; writes need
`submit_forecast` (adjustments: managers and above, of their own reports only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from closewise.services import forecast_call
from closewise.services.forecast_view import Pending
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["forecast call"])
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "no or expired bearer token"},
                                            422: {"description": "a bad period or amount; `where` names it"}}
Period = Annotated[str, Query(min_length=4, max_length=16, description="2026-Q4, 2026-11 or 2026.")]


class CallIn(BaseModel):
    period: str = Field(min_length=4, max_length=16, description="2026-Q4, 2026-11 or 2026.")
    commit: float = Field(ge=0, le=1e15)
    best_case: float = Field(ge=0, le=1e15, description="At least the commit.")
    notes: str | None = Field(default=None, max_length=4000)


class AdjustmentIn(BaseModel):
    subject_id: int = Field(ge=1, le=2**63 - 1, description="The report whose number is replaced.")
    period: str = Field(min_length=4, max_length=16)
    commit: float = Field(ge=0, le=1e15)
    best_case: float = Field(ge=0, le=1e15)
    note: str = Field(min_length=1, max_length=4000, description="Why the number is adjusted.")


class Receipt(BaseModel):
    id: int
    user_id: int
    period: str
    commit: float
    best_case: float
    kind: str
    subject_id: int | None


@router.post("/calls", response_model=Receipt, status_code=201,
             responses={**_ERRORS, 403: {"description": "a viewer cannot submit"}})
def submit(body: CallIn, user: ApiUser, engine: EngineDep) -> Any:
    """Submit your own call for a period (every call is kept; the latest counts)."""
    return vars(forecast_call.submit(engine, scope=user.scope, period=body.period, commit=body.commit,
                                     best_case=body.best_case, notes=body.notes))


@router.post("/calls/adjustments", response_model=Receipt, status_code=201, responses={
    **_ERRORS, 403: {"description": "only managers and above adjust"},
    404: {"description": "the subject does not report to the caller"}})
def adjust(body: AdjustmentIn, user: ApiUser, engine: EngineDep) -> Any:
    """Replace a report's number in your roll-up, with a note."""
    return vars(forecast_call.adjust(engine, scope=user.scope, subject_id=body.subject_id, period=body.period,
                                     commit=body.commit, best_case=body.best_case, note=body.note))


@router.get("/calls/rollup", responses={**_ERRORS, 404: {"description": "the manager is outside the caller's scope"},
                                        200: {"description": "DESIGN.md's roll-up: team_commit, team_best_case, "
                                                             "by_user, model (null while it is computed)"}})
def rollup(period: Period, user: ApiUser, engine: EngineDep, views: ViewsDep,
           manager_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> dict[str, Any]:
    """The calls of a team rolled up through the hierarchy, with the model's P10/P50/P90 for the same team."""
    computed = views.org_forecast(engine, user.scope, period=period)
    forecast = None if isinstance(computed, Pending) else computed.forecast
    report = forecast_call.rollup_report(engine, scope=user.scope, period=period, manager_id=manager_id,
                                         forecast=forecast)
    report["model_status"] = "computing" if isinstance(computed, Pending) else "ready"
    return report


@router.get("/calls/accuracy", responses={**_ERRORS, 200: {"description": "calls of ended periods and track records"}})
def accuracy(user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Every call of an ended period against what the caller's team won, and each person's track record."""
    return forecast_call.accuracy_report(engine, scope=user.scope)
