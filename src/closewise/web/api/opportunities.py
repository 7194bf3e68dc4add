"""`/api/opportunities`: the deals the caller sees (list, one, its change log and activities) and edits.

Every read is scoped by `services.deals`: a deal outside the caller's visibility answers 404 with the same body
as a missing one. Edits need the `edit_deal` permission on top (403 for a viewer).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from closewise.services import deals
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["opportunities"])

Status = Literal["open", "won", "lost", "no_decision"]
MAX_ID = 2**63 - 1
DealId = Annotated[int, Path(ge=1, le=MAX_ID, description="The opportunity's id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    404: {"description": "no such opportunity, or one outside the caller's visibility (the same answer)"},
    422: {"description": "a parameter that cannot be understood (`where` names it)"},
}


class Reason(BaseModel):
    feature: str = Field(description="The model feature behind the reason, e.g. `days_since_activity`.")
    contribution: float = Field(description="Signed contribution to the win probability's log-odds: negative "
                                            "lowers the chance of winning (a risk), positive raises it.")
    text: str = Field(description="The reason in words.")


class Opportunity(BaseModel):
    id: int = Field(description="Closewise's id of the opportunity.")
    external_id: str = Field(description="The id in the source system (with `source`, the import key).")
    source: str = Field(description="Where the opportunity came from (salesforce, hubspot, a mapping's source…).")
    name: str
    owner_id: int | None = Field(description="The id of the owning user.")
    owner_name: str | None = Field(description="The owner's name.")
    account_id: int | None
    account_name: str | None = Field(description="The account's name.")
    pipeline: str = Field(description="The playbook pipeline the stage belongs to.")
    stage: str = Field(description="The stage key (see `GET /api/playbook/stages`).")
    stage_name: str | None = Field(description="The stage's name in the playbook.")
    status: Status = Field(description="open, won, lost or no_decision.")
    amount: float | None = Field(description="The amount in the record's currency.")
    currency: str = Field(description="ISO 4217 code of `amount`.")
    close_date: date | None = Field(description="Expected (open) or actual (closed) close date.")
    created_at: str | None = Field(description="When the opportunity was created (ISO 8601, UTC).")
    closed_at: str | None = Field(description="When it was closed (ISO 8601, UTC), null while open.")
    forecast_category: str | None = Field(description="pipeline, best_case, commit, closed or omitted.")
    probability: float | None = Field(description="The probability entered in the CRM, in percent (0-100).")
    next_step: str | None
    type: str | None
    lead_source: str | None
    win_probability: float | None = Field(
        description="The deal model's probability (0-1) that the deal is won, from the stored scores "
                    "(`closewise score`); null when unscored (closed deals, or nothing scored yet).")
    win_probability_source: Literal["model"] | None = Field(description="`model` when scored, else null.")
    p_close_in_period: float | None = Field(
        description="The model's probability (0-1) that the deal is won inside the fiscal quarter it was scored "
                    "for; null when unscored.")
    scored_at: str | None = Field(description="The moment the stored score describes (ISO 8601, UTC).")
    reasons: list[Reason] = Field(description="The strongest signed reasons behind `win_probability`.")


class OpportunityPage(BaseModel):
    items: list[Opportunity] = Field(description="One page of the matching opportunities.")
    total: int = Field(description="How many opportunities match, over every page.")


class Criterion(BaseModel):
    key: str = Field(description="The criterion's key in the playbook.")
    label: str
    kind: str = Field(description="checkbox, field or evidence.")
    done: bool = Field(description="Whether the deal's latest check of the criterion says it holds.")


class OpportunityDetail(Opportunity):
    exit_criteria: list[Criterion] = Field(description="The exit criteria of the deal's current stage.")


class Change(BaseModel):
    id: int
    field: str = Field(description="stage, status, amount, close_date, forecast_category, owner_id, probability, "
                                   "next_step or currency.")
    old_value: str | None = Field(description="The value before, as text (ISO dates, decimal numbers).")
    new_value: str | None = Field(description="The value after, as text.")
    changed_at: str = Field(description="When (ISO 8601, UTC).")
    changed_by: int | None = Field(description="The id of the user who changed it, when known.")
    changed_by_name: str | None
    source: str = Field(description="created, import, history, app, demo or sweep.")
    reason: str | None = Field(description="The reason given with an edit in the app.")


class Activity(BaseModel):
    id: int
    type: str = Field(description="call, email, meeting or task.")
    subject: str | None
    occurred_at: str = Field(description="When (ISO 8601, UTC).")
    completed: bool
    owner_id: int | None
    owner_name: str | None


class OpportunityEdit(BaseModel):
    """The fields to change; leave a field out to keep it. `next_step: ""` clears the next step."""

    model_config = ConfigDict(extra="forbid")

    stage: str | None = Field(default=None, description="A stage key of the deal's pipeline.")
    amount: float | None = Field(default=None, description="The new amount (at least 0) in the deal's currency.")
    close_date: date | None = Field(default=None, description="The new expected close date (YYYY-MM-DD).")
    next_step: str | None = Field(default=None, max_length=2000, description="The next step (empty clears it).")
    forecast_category: Literal["pipeline", "best_case", "commit", "omitted"] | None = Field(
        default=None, description="The rep's forecast call for the deal.")
    override_reason: str | None = Field(default=None, max_length=2000,
                                        description="Why: kept with every change-log row this edit writes.")


@router.get("/opportunities", response_model=OpportunityPage, responses={
    401: _ERRORS[401], 422: {"description": "a filter value that cannot be understood (`where` names it)"}})
def list_opportunities(
    user: ApiUser,
    engine: EngineDep,
    status: Annotated[Status | None, Query(description="Only deals with this status.")] = None,
    owner_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this owner's deals.")] = None,
    stage: Annotated[str | None, Query(max_length=64, description="Only deals in this stage (a stage key).")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the deal's or its account's name.")] = None,
    close_from: Annotated[date | None, Query(description="Close date on or after.")] = None,
    close_to: Annotated[date | None, Query(description="Close date on or before.")] = None,
    min_amount: Annotated[float | None, Query(ge=0, description="Amount at least (record currency).")] = None,
    sort: Annotated[str, Query(max_length=40, description=f"One of {', '.join(deals.SORTS)}; "
                                                          "prefix `-` for descending.")] = "close_date",
    limit: Annotated[int, Query(ge=1, le=deals.MAX_PAGE, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="How many matching deals to skip.")] = 0,
) -> OpportunityPage:
    """The opportunities the caller sees, filtered, sorted and paged, with the deal model's win probability."""
    key, descending = deals.parse_sort(sort)
    filters = deals.DealFilter(status=status, owner_id=owner_id, stage=stage or None, search=q or None,
                               close_from=close_from, close_to=close_to, min_amount=min_amount, sort=key,
                               descending=descending, limit=limit, offset=offset)
    items, total = deals.list_deals(engine, scope=user.scope, filters=filters)
    return OpportunityPage(items=[Opportunity.model_validate(item) for item in items], total=total)


@router.get("/opportunities/{opportunity_id}", response_model=OpportunityDetail, responses=_ERRORS)
def get_opportunity(opportunity_id: DealId, user: ApiUser, engine: EngineDep) -> OpportunityDetail:
    """One opportunity, with the exit criteria of its stage."""
    return OpportunityDetail.model_validate(deals.get_deal(engine, scope=user.scope, deal_id=opportunity_id))


@router.patch("/opportunities/{opportunity_id}", response_model=OpportunityDetail, responses={
    **_ERRORS,
    400: {"description": "the body is not JSON"},
    403: {"description": "the caller's role may not edit deals (a viewer)"},
    409: {"description": "the deal is closed"},
    422: {"description": "a value that cannot be used, or nothing that changes (the body names the field)"},
})
def edit_opportunity(opportunity_id: DealId, edit: OpportunityEdit, user: ApiUser,
                     engine: EngineDep) -> OpportunityDetail:
    """Change an open deal's stage, amount, close date, next step or forecast category. Each changed field writes
    one change-log row with the editor and `override_reason`."""
    changed = deals.edit_deal(engine, scope=user.scope, deal_id=opportunity_id, edit=deals.DealEdit(
        stage=edit.stage, amount=edit.amount, close_date=edit.close_date, next_step=edit.next_step,
        forecast_category=edit.forecast_category, override_reason=edit.override_reason))
    return OpportunityDetail.model_validate(changed)


@router.get("/opportunities/{opportunity_id}/changes", response_model=list[Change], responses=_ERRORS)
def opportunity_changes(opportunity_id: DealId, user: ApiUser, engine: EngineDep) -> list[Change]:
    """The opportunity's change log, oldest first."""
    return [Change.model_validate(row)
            for row in deals.deal_changes(engine, scope=user.scope, deal_id=opportunity_id)]


@router.get("/opportunities/{opportunity_id}/activities", response_model=list[Activity], responses=_ERRORS)
def opportunity_activities(opportunity_id: DealId, user: ApiUser, engine: EngineDep) -> list[Activity]:
    """The opportunity's activities (calls, emails, meetings, tasks), newest first."""
    return [Activity.model_validate(row)
            for row in deals.deal_activities(engine, scope=user.scope, deal_id=opportunity_id)]
