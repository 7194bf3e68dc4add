"""`/api/leads`: the funnel, speed to lead, the response-time effect, lead quality, nurture, the leads themselves,
sales' verdicts (accept, reject with a recycle reason, return from nurture) and routing.

Reads cover the leads the caller sees (a rep their own, a manager their subtree's, a leader or admin all);
a lead outside that answers 404 exactly like a missing one. Verdicts need `edit_deal` (a viewer gets 403);
routing and its rules need `manage_settings` (admin, leader), who also see the unassigned leads routing fills.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, BeforeValidator, Field

from closewise.domain.scope import Action
from closewise.domain.timeutil import as_utc, parse_as_of
from closewise.services import lead_routing, lead_verdicts
from closewise.services import leads as service
from closewise.web.deps import ApiUser, EngineDep, require

# Frames hold naive UTC datetimes; the API writes them with their offset, as RFC 3339 (OpenAPI `date-time`) asks.
Moment = Annotated[datetime, BeforeValidator(lambda value: as_utc(value) if isinstance(value, datetime) else value)]

router = APIRouter(tags=["leads"])

MAX_ID = 2**63 - 1
LeadId = Annotated[int, Path(ge=1, le=MAX_ID, description="The lead's id.")]
Reason = Literal["no_budget", "no_authority", "timing", "not_a_fit", "no_response", "competitor", "other"]
LeadStatusName = Literal["new", "working", "accepted", "rejected", "recycled", "converted"]
_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    422: {"description": "a parameter that cannot be used (`where` names it)"},
}
_ONE: dict[int | str, dict[str, Any]] = {
    **_READ, 404: {"description": "no such lead, or one outside the caller's visibility (the same answer)"}}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_ONE, 403: {"description": "the caller's role may not do this"},
    409: {"description": "the lead's status does not allow it (e.g. accepting a converted lead)"}}


class Stage(BaseModel):
    leads: int
    accepted: int = Field(description="Accepted by sales, or further along.")
    opportunities: int = Field(description="Became an opportunity.")
    won: int = Field(description="Their opportunity was won.")
    acceptance_rate: float | None
    opportunity_rate: float | None = Field(description="Opportunities / accepted.")
    win_rate: float | None = Field(description="Won / opportunities.")
    conversion_rate: float | None = Field(description="Won / leads.")
    days_to_accept: float | None = Field(description="Median days from the lead's creation to acceptance.")
    days_to_opportunity: float | None = Field(description="Median days from creation to the opportunity.")
    days_to_win: float | None = Field(description="Median days from creation to the win.")
    revenue: float = Field(description="Won amount in the corporate currency.")
    revenue_per_lead: float | None
    average_deal: float | None


class SourceStage(Stage):
    source: str = Field(description="The lead source (`(none)` when the lead has none).")


class CampaignStage(Stage):
    campaign: str
    source: str | None = Field(description="The campaign's most common lead source.")


class Funnel(Stage):
    currency: str = Field(description="The corporate currency of `revenue`.")
    by_source: list[SourceStage]
    by_campaign: list[CampaignStage]


class LeadItem(BaseModel):
    id: int
    external_id: str
    name: str | None
    company: str | None
    source: str | None
    campaign: str | None
    owner_id: int | None
    owner: str | None = Field(description="The owner's name.")
    status: LeadStatusName
    created_at: Moment
    first_touch_at: Moment | None = Field(description="The first touch (from the lead or its activities).")
    due_at: Moment | None = Field(default=None, description="When the SLA's working time runs out.")
    state: Literal["met", "late", "overdue", "pending"] | None = Field(default=None, description="SLA state.")
    zone: str | None = Field(default=None, description="The time zone the lead's business hours are counted in.")
    business_minutes: float | None = Field(default=None, description="Working minutes to the first touch "
                                                                     "(to now while untouched).")
    response_minutes: float | None = Field(default=None, description="Calendar minutes to the first touch.")
    minutes_over: float | None = Field(default=None, description="Working minutes past the SLA.")


class ListedLead(LeadItem):
    reason: Reason | None = Field(description="The recycle reason of a rejected or recycled lead.")
    re_engage_at: date | None
    recycled_count: int = Field(description="Times the lead came back from nurture.")


class LeadPage(BaseModel):
    items: list[ListedLead]
    total: int


class Policy(BaseModel):
    minutes: int = Field(description="Working minutes allowed from creation to the first touch.")
    business_hours: str = Field(description="Like `Mon-Fri 09:00-17:00`.")
    timezone: str = Field(description="The org's time zone (leads without one, or every lead with clock org).")
    clock: Literal["lead", "org"] = Field(description="Whose time zone the business hours are in.")
    description: str


class SlaStats(BaseModel):
    leads: int
    touched: int
    met: int
    late: int
    overdue: int
    pending: int
    breaches: int
    open_breaches: int = Field(description="Untouched leads past the SLA that are still new or working.")
    median_business_minutes: float | None
    p90_business_minutes: float | None
    median_response_minutes: float | None
    met_rate: float | None = Field(description="Met / (met + late + overdue).")


class OwnerSla(SlaStats):
    owner_id: int | None
    owner: str | None


class SourceSla(SlaStats):
    source: str | None


class Escalation(BaseModel):
    manager_id: int | None = Field(description="Who the breaches go to: the owner's manager (null: unassigned).")
    manager: str | None
    breaches: int
    owners: list[str]
    leads: list[LeadItem]


class Sla(BaseModel):
    as_of: Moment
    days: int | None = Field(description="The window: leads created in the last `days` days (null: all).")
    policy: Policy
    summary: SlaStats
    by_owner: list[OwnerSla]
    by_source: list[SourceSla]
    breaches_total: int
    breaches: list[LeadItem] = Field(description="Late or overdue leads, untouched ones first, worst first.")
    escalations: list[Escalation]


class Bucket(BaseModel):
    bucket: str = Field(description="< 1 h, 1-24 h, 1-3 days, > 3 days or never touched.")
    leads: int
    converted: int
    rate: float | None
    low: float | None = Field(description="95% Wilson interval, low end.")
    high: float | None
    expected: float | None = Field(description="The conversion the bucket's source mix alone predicts.")
    vs_expected: float | None
    lift: float | None = Field(description="Rate over the slowest touched bucket's.")


class ResponseEffect(BaseModel):
    as_of: Moment
    min_age_days: int
    leads: int
    buckets: list[Bucket]
    hour_vs_day: float | None = Field(description="Conversion within an hour over within a day.")
    hour_vs_later: float | None = Field(description="Conversion within an hour over after a day.")


class Quality(Stage):
    source: str
    rejected_share: float | None
    recycled_share: float | None
    came_back: int | None
    top_reason: str | None
    quality_index: float | None = Field(description="Conversion over the overall conversion (1 = average).")
    sla_met_rate: float | None = None
    median_business_minutes: float | None = None


class NurtureLead(LeadItem):
    reason: Reason | None
    re_engage_at: date | None
    rejected_at: Moment | None
    recycled_count: int
    days_left: int | None = None
    due: bool | None = None


class ReasonCount(BaseModel):
    reason: str
    rejected: int
    recycled: int
    total: int
    share: float | None


class ComeBacks(BaseModel):
    came_back: int
    converted: int
    conversion_rate: float | None
    working: int
    accepted: int
    turned_down_again: int


class Recycle(BaseModel):
    today: date
    in_nurture: int
    due: int
    nurture: list[NurtureLead]
    reasons: list[ReasonCount]
    come_backs: ComeBacks
    came_back: list[NurtureLead]


class Event(BaseModel):
    kind: str = Field(description="created, assigned, first_touch, accepted, rejected, recycled, returned, "
                                  "converted.")
    occurred_at: Moment
    owner_id: int | None
    user_id: int | None
    user: str | None = Field(description="Who did it (events made in the app).")
    reason: str | None
    re_engage_at: date | None
    origin: str = Field(description="record (the lead's fields), activity, or app.")


class LeadDetail(LeadItem):
    country: str | None
    timezone: str | None
    accepted_at: Moment | None
    rejected_at: Moment | None
    reason: Reason | None
    re_engage_at: date | None
    recycled_count: int
    converted_at: Moment | None
    converted_opportunity_id: int | None
    events: list[Event]


class Verdict(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class Rejection(BaseModel):
    reason: Reason
    re_engage_at: date | None = Field(default=None, description="Back to nurture until then (after today).")
    nurture: bool | None = Field(default=None, description="Back to nurture (true) or closed (false); default: "
                                                           "no_budget, timing and no_response go back to nurture.")
    note: str | None = Field(default=None, max_length=2000)


class RoutedLead(BaseModel):
    lead_id: int
    name: str | None
    company: str | None
    source: str | None
    country: str | None
    owner_id: int | None
    owner: str | None
    rule: str | None
    reason: str


class Routing(BaseModel):
    dry_run: bool
    routed: list[RoutedLead]
    unrouted: list[RoutedLead]


class Rule(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    method: Literal["round_robin", "territory", "capacity"] = "round_robin"
    members: list[str] = Field(min_length=1, description="Members' emails.")
    countries: list[str] = Field(default_factory=list, description="Matches these countries (empty: any).")
    sources: list[str] = Field(default_factory=list, description="Matches these lead sources (empty: any).")
    max_open: int | None = Field(default=None, ge=1, description="Cap on a member's open leads.")
    active: bool = True


class Rules(BaseModel):
    rules: list[Rule] = Field(max_length=200)


_AS_OF = Query(description="As of the end of this day (default: now).")


def _moment(as_of: date | None) -> datetime:
    return parse_as_of(as_of.isoformat() if as_of else None)


@router.get("/leads", response_model=LeadPage, responses=_READ)
def leads_list(
    user: ApiUser, engine: EngineDep,
    status: Annotated[LeadStatusName | None, Query()] = None,
    source: Annotated[str | None, Query(max_length=120)] = None,
    owner_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The leads the caller sees, newest first."""
    return service.list_leads(engine, user.scope, status=status, source=source, owner_id=owner_id, limit=limit,
                              offset=offset)


@router.get("/leads/funnel", response_model=Funnel, responses=_READ)
def leads_funnel(user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Lead → accepted → opportunity → won over the caller's leads: overall, by source and by campaign."""
    return service.funnel(engine, user.scope)


@router.get("/leads/sla", response_model=Sla, responses=_READ)
def leads_sla(
    user: ApiUser, engine: EngineDep, as_of: Annotated[date | None, _AS_OF] = None,
    days: Annotated[int | None, Query(ge=1, le=3660, description="Leads created in the last N days; "
                                                                 "omit for 90, 3660 for about all.")] = None,
) -> dict[str, Any]:
    """Speed to lead against the SLA (business hours), by owner and source, breaches, escalations per manager."""
    return service.sla(engine, user.scope, as_of=_moment(as_of), days=days or service.DEFAULT_DAYS)


@router.get("/leads/response-effect", response_model=ResponseEffect, responses=_READ)
def leads_response_effect(
    user: ApiUser, engine: EngineDep, as_of: Annotated[date | None, _AS_OF] = None,
    min_age_days: Annotated[int, Query(ge=0, le=365)] = 30,
) -> dict[str, Any]:
    """Conversion by time to first touch, with 95% intervals, from the caller's leads."""
    return service.response_effect(engine, user.scope, as_of=_moment(as_of), min_age_days=min_age_days)


@router.get("/leads/quality", response_model=list[Quality], responses=_READ)
def leads_quality(user: ApiUser, engine: EngineDep) -> list[dict[str, Any]]:
    """Lead quality by source, for marketing."""
    return service.quality(engine, user.scope)


@router.get("/leads/recycle", response_model=Recycle, responses=_READ)
def leads_recycle(user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Leads in nurture (due first), the reasons, and the come-backs."""
    return service.recycle(engine, user.scope)


@router.post("/leads/route", response_model=Routing, responses={**_READ, 403: _WRITE[403]})
def leads_route(user: ApiUser, engine: EngineDep,
                dry_run: Annotated[bool, Query(description="Show the assignments; write nothing.")] = False
                ) -> dict[str, Any]:
    """Assign new unassigned leads by the routing rules (the active reps in turn when none match)."""
    require(user, Action.MANAGE_SETTINGS)
    return lead_routing.route(engine, dry_run=dry_run, user_id=user.user_id)


@router.get("/leads/routing-rules", response_model=Rules, responses={**_READ, 403: _WRITE[403]})
def leads_rules(user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """The routing rules, in the order they are tried."""
    require(user, Action.MANAGE_SETTINGS)
    return {"rules": lead_routing.rules(engine)}


@router.put("/leads/routing-rules", response_model=Rules, responses={**_READ, 403: _WRITE[403]})
def leads_set_rules(body: Rules, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Replace the routing rules (round-robin places are kept for rules of the same name)."""
    require(user, Action.MANAGE_SETTINGS)
    text = yaml.safe_dump({"rules": [rule.model_dump() for rule in body.rules]})
    return {"rules": lead_routing.set_rules(engine, text)}


@router.get("/leads/{lead_id}", response_model=LeadDetail, responses=_ONE)
def leads_one(lead_id: LeadId, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """One lead, its SLA state and its history."""
    return service.lead_detail(engine, lead_id=lead_id, scope=user.scope)


@router.post("/leads/{lead_id}/accept", response_model=LeadDetail, responses=_WRITE)
def leads_accept(lead_id: LeadId, user: ApiUser, engine: EngineDep, body: Verdict | None = None) -> dict[str, Any]:
    """Sales accepts the lead (from new, working, or back from nurture)."""
    require(user, Action.EDIT_DEAL)
    return lead_verdicts.accept(engine, lead_id=lead_id, scope=user.scope, user_id=user.user_id,
                                note=body.note if body else None)


@router.post("/leads/{lead_id}/reject", response_model=LeadDetail, responses=_WRITE)
def leads_reject(lead_id: LeadId, body: Rejection, user: ApiUser, engine: EngineDep) -> dict[str, Any]:
    """Sales rejects the lead with a recycle reason; it goes back to nurture with a re-engage date or closes."""
    require(user, Action.EDIT_DEAL)
    return lead_verdicts.reject(engine, lead_id=lead_id, reason=body.reason, scope=user.scope, user_id=user.user_id,
                                re_engage_at=body.re_engage_at, nurture=body.nurture, note=body.note)


@router.post("/leads/{lead_id}/return", response_model=LeadDetail, responses=_WRITE)
def leads_return(lead_id: LeadId, user: ApiUser, engine: EngineDep, body: Verdict | None = None) -> dict[str, Any]:
    """A recycled or rejected lead came back: working again, its come-back counted."""
    require(user, Action.EDIT_DEAL)
    return lead_verdicts.give_back(engine, lead_id=lead_id, scope=user.scope, user_id=user.user_id,
                                   note=body.note if body else None)
