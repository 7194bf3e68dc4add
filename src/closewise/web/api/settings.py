"""`/api/settings` (fiscal calendar, corporate currency), `/api/currency-rates` and `/api/quotas`.

Everyone signed in reads the calendar, the currency and the rates (every page needs them); quotas follow the
caller's scope (a rep sees their own, a team's quota only those who see everything). Writes need
`manage_settings` (admin, leader).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from closewise.db.org_settings import RateRow
from closewise.db.quotas import QuotaRow
from closewise.domain.scope import Action
from closewise.services import settings as settings_service
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["settings"])

MAX_ID = 2**63 - 1
QuotaId = Annotated[int, Path(ge=1, le=MAX_ID, description="The quota's id.")]

_401: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired token"},
    422: {"description": "a value that cannot be used (`where` names it)"},
}
_WRITE: dict[int | str, dict[str, Any]] = {**_401, 400: {"description": "the body is not JSON"},
                                           403: {"description": "the role may not manage settings"}}


class OrgSettingsOut(BaseModel):
    corporate_currency: str
    fiscal_year_start_month: int
    fiscal_year_name_by_end: bool
    current_quarter: str
    current_quarter_start: date
    current_quarter_end: date
    current_year: str

    @classmethod
    def of(cls, found: settings_service.OrgSettings) -> OrgSettingsOut:
        return cls(corporate_currency=found.corporate_currency,
                   fiscal_year_start_month=found.fiscal_year_start_month,
                   fiscal_year_name_by_end=found.fiscal_year_name_by_end, current_quarter=found.current_quarter,
                   current_quarter_start=found.current_quarter_start, current_quarter_end=found.current_quarter_end,
                   current_year=found.current_year)


class OrgSettingsPatch(BaseModel):
    corporate_currency: str | None = Field(default=None, description="ISO 4217 code; every rate is re-expressed")
    fiscal_year_start_month: int | None = Field(default=None, ge=1, le=12)
    fiscal_year_name_by_end: bool | None = Field(default=None,
                                                 description="name a fiscal year by the calendar year it ends in")


class RateOut(BaseModel):
    id: int
    currency: str
    rate: float = Field(description="units of the currency per one unit of the corporate currency")
    start_date: date | None = Field(description="null: the static rate, used where no dated rate applies")

    @classmethod
    def of(cls, found: RateRow) -> RateOut:
        return cls(id=found.id, currency=found.currency, rate=found.rate, start_date=found.start_date)


class RateIn(BaseModel):
    currency: str = Field(max_length=8)
    rate: float = Field(gt=0, allow_inf_nan=False)
    start_date: date | None = None


class QuotaOut(BaseModel):
    id: int
    user_id: int | None
    user_name: str | None
    team_id: int | None
    team_name: str | None
    period: str
    period_start: date
    period_end: date
    amount: float
    currency: str

    @classmethod
    def of(cls, found: QuotaRow) -> QuotaOut:
        return cls(id=found.id, user_id=found.user_id, user_name=found.user_name, team_id=found.team_id,
                   team_name=found.team_name, period=found.period, period_start=found.period_start,
                   period_end=found.period_end, amount=found.amount, currency=found.currency)


class QuotaIn(BaseModel):
    user_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    team_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    period: str = Field(max_length=16, description="2026-05, 2026-Q2 or 2026 (fiscal)")
    amount: float = Field(ge=0, allow_inf_nan=False)
    currency: str | None = Field(default=None, max_length=8, description="default: the corporate currency")


class QuotaPatch(BaseModel):
    period: str | None = Field(default=None, max_length=16)
    amount: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    currency: str | None = Field(default=None, max_length=8)


@router.get("/settings", response_model=OrgSettingsOut, responses=_401)
def read_settings(user: ApiUser, engine: EngineDep) -> OrgSettingsOut:
    """The fiscal calendar and the corporate currency, with the current fiscal quarter and year."""
    return OrgSettingsOut.of(settings_service.read_org_settings(engine))


@router.patch("/settings", response_model=OrgSettingsOut,
              responses={**_WRITE, 409: {"description": "no rate for the new corporate currency"}})
def change_settings(body: OrgSettingsPatch, user: ApiUser, engine: EngineDep) -> OrgSettingsOut:
    """Change the fiscal year's start month, how fiscal years are named, or the corporate currency."""
    require(user, Action.MANAGE_SETTINGS)
    return OrgSettingsOut.of(settings_service.update_org_settings(
        engine, user.scope, corporate_currency=body.corporate_currency,
        fiscal_year_start_month=body.fiscal_year_start_month, fiscal_year_name_by_end=body.fiscal_year_name_by_end))


@router.get("/currency-rates", response_model=list[RateOut], responses=_401)
def list_rates(user: ApiUser, engine: EngineDep) -> list[RateOut]:
    """Every conversion rate to the corporate currency: static rates and dated ones."""
    return [RateOut.of(rate) for rate in settings_service.list_rates(engine)]


@router.post("/currency-rates", response_model=RateOut, status_code=201,
             responses={**_WRITE, 200: {"model": RateOut, "description": "a rate stored for that day was replaced"}})
def add_rate(body: RateIn, user: ApiUser, engine: EngineDep, response: Response) -> RateOut:
    """Add a rate from `start_date` (or the static rate); one already stored for that currency and day is
    replaced (answered with 200)."""
    require(user, Action.MANAGE_SETTINGS)
    stored, created = settings_service.set_rate(engine, user.scope, currency=body.currency, rate=body.rate,
                                                start_date=body.start_date)
    if not created:
        response.status_code = 200
    return RateOut.of(stored)


@router.get("/quotas", response_model=list[QuotaOut], responses=_401)
def list_quotas(user: ApiUser, engine: EngineDep,
                period: Annotated[str | None, Query(max_length=16, description="2026-Q2, 2026-05 or 2026")] = None,
                user_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this user's.")] = None,
                ) -> list[QuotaOut]:
    """The quotas the caller sees, newest period first; `period` (2026-Q2, 2026-05, 2026) and `user_id` narrow
    the list."""
    return [QuotaOut.of(q) for q in settings_service.list_quotas(engine, user.scope, period=period, user_id=user_id)]


@router.get("/quotas/{quota_id}", response_model=QuotaOut,
            responses={**_401, 404: {"description": "no such quota, or outside the caller's scope"}})
def get_quota(quota_id: QuotaId, user: ApiUser, engine: EngineDep) -> QuotaOut:
    return QuotaOut.of(settings_service.get_quota(engine, user.scope, quota_id))


@router.post("/quotas", response_model=QuotaOut, status_code=201,
             responses={**_WRITE, 409: {"description": "a quota for that user or team and period exists"}})
def add_quota(body: QuotaIn, user: ApiUser, engine: EngineDep) -> QuotaOut:
    """Add the quota of one user or one team for a fiscal month, quarter or year."""
    require(user, Action.MANAGE_SETTINGS)
    return QuotaOut.of(settings_service.create_quota(engine, user.scope, period=body.period, amount=body.amount,
                                                     user_id=body.user_id, team_id=body.team_id,
                                                     currency=body.currency))


@router.patch("/quotas/{quota_id}", response_model=QuotaOut,
              responses={**_WRITE, 404: {"description": "no such quota"},
                         409: {"description": "that user or team already has a quota for the new period"}})
def change_quota(quota_id: QuotaId, body: QuotaPatch, user: ApiUser, engine: EngineDep) -> QuotaOut:
    require(user, Action.MANAGE_SETTINGS)
    return QuotaOut.of(settings_service.change_quota(engine, user.scope, quota_id, amount=body.amount,
                                                     currency=body.currency, period=body.period))


@router.delete("/quotas/{quota_id}", status_code=204, responses={**_WRITE, 404: {"description": "no such quota"}})
def delete_quota(quota_id: QuotaId, user: ApiUser, engine: EngineDep) -> Response:
    require(user, Action.MANAGE_SETTINGS)
    settings_service.delete_quota(engine, user.scope, quota_id)
    return Response(status_code=204)
