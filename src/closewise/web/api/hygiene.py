"""`/api/hygiene`: the open deals with findings the caller sees, snoozing a finding, and the sweep of dead
deals (preview, confirm exactly the previewed deals, undo).

Reads are cut to the caller's scope by `services.hygiene`; a deal outside it answers 404 as a missing one.
Snoozing needs `snooze_finding`, sweeping and undoing `sweep_deals` (403 otherwise); the signed-in user is
the actor written to the change and audit logs.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from closewise.domain.scope import Action
from closewise.services import hygiene as service
from closewise.services import hygiene_sweep
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["hygiene"])

MAX_ID = 2**63 - 1
DealId = Annotated[int, Field(ge=1, le=MAX_ID)]
_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    422: {"description": "a value that cannot be used (`where` names it)"},
}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_READ,
    403: {"description": "the caller's role may not do this"},
}
_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "the body is not JSON"}}


class Reason(BaseModel):
    code: str = Field(description="The finding: " + ", ".join(service.CODES) + ".")
    detail: str = Field(description="The finding in words, with the numbers behind it.")


class FlaggedDeal(BaseModel):
    id: int
    external_id: str
    name: str
    owner_id: int | None = Field(description="The deal's owner on the review's date.")
    stage: str
    close_date: date | None = Field(description="The expected close date on the review's date.")
    amount: float | None = Field(description="The amount in the corporate currency.")
    currency: str = Field(description="The corporate currency.")
    record_amount: float | None = Field(description="The amount in the record's currency.")
    record_currency: str
    reasons: list[Reason]


class Review(BaseModel):
    as_of: datetime = Field(description="The moment reviewed (UTC).")
    deals: list[FlaggedDeal] = Field(description="Open deals with at least one unsnoozed finding, by id.")


class SnoozeRequest(BaseModel):
    opportunity_id: DealId
    code: str = Field(max_length=32, description="The finding to hide: " + ", ".join(service.CODES) + ".")
    until: date = Field(description="The resume date: the finding shows again on it. After today.")
    reason: str = Field(min_length=1, max_length=2000, description="Why the finding is snoozed.")


class Snoozed(BaseModel):
    id: int
    opportunity_id: int
    code: str
    reason: str
    until: date
    created_by: int | None
    created_at: datetime


class SweepConfirm(BaseModel):
    ids: list[DealId] = Field(max_length=10_000, description="The ids the preview listed. Only these are swept; "
                                                              "any no longer dead (or not visible) is skipped.")
    reason: str | None = Field(default=None, max_length=500, description="Why, added to the change log.")


class Sweep(BaseModel):
    as_of: datetime
    confirmed: bool = Field(description="False for a preview (nothing written).")
    sweep_id: str | None = Field(description="Set when a confirmed sweep closed deals; undo with it.")
    deals: list[FlaggedDeal] = Field(description="Previewed: the dead deals; confirmed: the deals closed.")
    total_amount: float = Field(description="Their amount in the corporate currency.")
    skipped: list[int] = Field(description="Ids asked for but no longer dead, open or visible: left alone.")


class UndoSkip(BaseModel):
    id: int
    reason: str


class Undone(BaseModel):
    sweep_id: str
    restored: list[int]
    skipped: list[UndoSkip]


def _deal(deal: service.FlaggedDeal) -> FlaggedDeal:
    return FlaggedDeal(
        id=deal.id, external_id=deal.external_id, name=deal.name, owner_id=deal.owner_id, stage=deal.stage,
        close_date=deal.close_date, amount=deal.amount, currency=deal.currency, record_amount=deal.record_amount,
        record_currency=deal.record_currency, reasons=[Reason(code=r.code, detail=r.detail) for r in deal.reasons])


def _sweep(result: hygiene_sweep.SweepResult) -> Sweep:
    return Sweep(as_of=result.as_of, confirmed=result.confirmed, sweep_id=result.sweep_id,
                 deals=[_deal(deal) for deal in result.deals],
                 total_amount=round(sum(deal.amount or 0.0 for deal in result.deals), 2), skipped=result.skipped)


@router.get("/hygiene", response_model=Review, responses=_READ)
def hygiene(
    user: ApiUser,
    engine: EngineDep,
    views: ViewsDep,
    as_of: Annotated[date | None, Query(description="Review as of the end of this day (default: now).")] = None,
) -> Review:
    """The open deals the caller sees with at least one unsnoozed finding (aged, stuck, past close date, pushed,
    idle, no next step, amount swings, not requalified)."""
    result = service.review(engine, as_of=service.end_of_day(as_of), scope=user.scope,
                            cache=open_cache(engine, views.orgs))
    return Review(as_of=result.as_of, deals=[_deal(deal) for deal in result.deals])


@router.post("/hygiene/snooze", response_model=Snoozed, status_code=201,
             responses={**_WRITE, **_BODY,
                        404: {"description": "no such opportunity, or one outside the caller's visibility"}})
def snooze(body: SnoozeRequest, user: ApiUser, engine: EngineDep) -> Snoozed:
    """Hide one finding of one deal until a resume date."""
    require(user, Action.SNOOZE_FINDING)
    made = service.snooze(engine, opportunity_id=body.opportunity_id, code=body.code, until=body.until,
                          reason=body.reason, scope=user.scope, user_id=user.user_id)
    return Snoozed(id=made.id, opportunity_id=made.opportunity_id, code=made.code, reason=made.reason,
                   until=made.until, created_by=made.created_by, created_at=made.created_at)


@router.post("/hygiene/sweep/preview", response_model=Sweep, responses=_WRITE)
def sweep_preview(user: ApiUser, engine: EngineDep, views: ViewsDep) -> Sweep:
    """The dead deals (aged or stuck, and idle) the caller sees that a sweep would close as no decision now.
    Nothing is written; confirm with their ids."""
    require(user, Action.SWEEP_DEALS)
    return _sweep(hygiene_sweep.preview_sweep(engine, scope=user.scope, cache=open_cache(engine, views.orgs)))


@router.post("/hygiene/sweep/confirm", response_model=Sweep, responses={**_WRITE, **_BODY})
def sweep_confirm(body: SweepConfirm, user: ApiUser, engine: EngineDep) -> Sweep:
    """Close the previewed deals that are still dead as no decision, with change-log and audit rows naming the
    caller. Returns the sweep id to undo it with."""
    require(user, Action.SWEEP_DEALS)
    reason = (body.reason or "").strip() or None
    return _sweep(hygiene_sweep.confirm_sweep(engine, scope=user.scope, ids=body.ids, reason=reason,
                                              user_id=user.user_id))


@router.post("/hygiene/sweep/{sweep_id}/undo", response_model=Undone,
             responses={**_WRITE, 404: {"description": "no such sweep, or none of its deals is visible"},
                        409: {"description": "the sweep was already undone"}})
def sweep_undo(
    sweep_id: Annotated[str, Path(min_length=1, max_length=64, description="The id a confirmed sweep returned.")],
    user: ApiUser,
    engine: EngineDep,
) -> Undone:
    """Reopen the deals of a sweep the caller sees, as they were before it; deals changed since are skipped."""
    require(user, Action.SWEEP_DEALS)
    result = hygiene_sweep.undo_sweep(engine, sweep_id=sweep_id, scope=user.scope, user_id=user.user_id)
    return Undone(sweep_id=result.sweep_id, restored=result.restored,
                  skipped=[UndoSkip(id=int(item["id"]), reason=str(item["reason"])) for item in result.skipped])
