"""`/api/coaching/...`: the performance gap and its checklist, the new-hire ramp, opportunity reviews, 1:1
coaching plans. Reads are scoped like every report (a rep sees their own, a manager their subtree, a leader and
an admin everyone); writes are authorised by the role's actions (`services.coaching_access`): `coach` (managers
and up) for the reps they see, `follow_up` for a rep's own commitments, `manage_settings` (leaders and admins) to
adopt checklist items into the playbook."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from closewise.domain.scope import Action
from closewise.services import (
    coaching_commitments,
    coaching_gap,
    coaching_plans,
    coaching_ramp,
    coaching_reviews,
    hygiene,
)
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["coaching"])

MAX_ID = 2**63 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    404: {"description": "not found among the records the caller sees"},
    422: {"description": "a value that cannot be used (`where` names it)"},
}
_WRITE: dict[int | str, dict[str, Any]] = {**_READ, 403: {"description": "the caller's role may not do this"},
                                           409: {"description": "conflicts with the current state"}}
AsOf = Annotated[date | None, Query(description="As of the end of this day (default: now).")]


class Performer(BaseModel):
    id: int = Field(description="The rep's user id.")
    user_id: int
    name: str
    bookings: float = Field(description="Won amount in the window, corporate currency.")
    won_deals: int
    closed_deals: int
    quota: float | None = Field(description="Quota over the window (prorated by day).")
    attainment: float | None
    rank: int | None
    top: bool


class RankedRep(BaseModel):
    user_id: int
    name: str
    hire_date: str | None
    bookings: float
    won_deals: int
    closed_deals: int
    quota: float | None
    attainment: float | None
    eligible: bool
    note: str | None = Field(description="Why a rep is not ranked.")
    rank: int | None
    top: bool


class Metric(BaseModel):
    metric: str = Field(description="The measure's key.")
    label: str
    kind: str = Field(description="behaviour, or outcome (context only: never a checklist item).")
    stage: str | None
    unit: str
    better: str = Field(description="higher or lower.")
    summary: str = Field(description="How `top` and `rest` summarise the deals: median or mean.")
    top: float | None = Field(description="Top performers' level.")
    rest: float | None = Field(description="The other eligible reps' level.")
    difference: float | None
    ratio: float | None
    adjusted_difference: float | None = Field(description="Top minus rest within segment × deal-size strata "
                                                          "(on log(1+y) when `transform` is log1p).")
    effect_size: float | None = Field(description="adjusted_difference ÷ within-strata standard deviation.")
    p_value: float | None = Field(description="Two-sided, from permuting the top-performer label among reps of "
                                              "the same segment.")
    q_value: float | None = Field(description="Benjamini–Hochberg over all measures.")
    significant: bool
    favours_top: bool | None
    testable: bool
    top_deals: int
    rest_deals: int
    top_reps: int
    rest_reps: int
    transform: str | None


class ChecklistItem(BaseModel):
    key: str = Field(description="The exit criterion key the item becomes when adopted.")
    stage: str
    stage_name: str
    metric: str
    label: str
    threshold: float | None
    top: float | None
    rest: float | None
    effect_size: float | None
    p_value: float | None
    q_value: float | None
    evidence: str
    adds_criterion: bool = Field(description="False when it enforces exit criteria the playbook already has.")
    adopted: bool


class Adopted(BaseModel):
    id: int
    item_key: str
    stage: str
    label: str
    metric: str
    threshold: float | None
    adopted_at: str
    adopted_by: str | None
    evidence: dict[str, Any] | None
    effect: dict[str, Any] = Field(description="The behaviour on deals opened in the 90 days before the adoption "
                                               "(`before`) and since (`after`).")
    deals_ticked: int


class Gap(BaseModel):
    as_of: str
    window_days: int
    currency: str
    rule: str = Field(description="How top performers are chosen, in words.")
    ranked_by: str = Field(description="attainment (bookings ÷ quota) or bookings.")
    controls: list[str] = Field(description="What the comparison is adjusted for.")
    deals: int
    leads: int
    alpha: float
    top_performers: list[Performer]
    reps: list[RankedRep]
    metrics: list[Metric]
    checklist: list[ChecklistItem]
    adopted: list[Adopted]


@router.get("/coaching/gap", response_model=Gap, responses=_READ)
def gap(user: ApiUser, engine: EngineDep, views: ViewsDep, as_of: AsOf = None,
        window_days: Annotated[int, Query(ge=30, le=1098, description="Look-back window in days.")] = 365) -> Gap:
    """Top performers among the reps the caller sees, how their behaviour differs from the rest (effect sizes,
    permutation tests controlling for segment and deal size), and the checklist it suggests."""
    report = coaching_gap.performance_gap(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of),
                                          window_days=window_days, cache=open_cache(engine, views.orgs))
    return Gap.model_validate(report.to_dict())


class AdoptOut(ChecklistItem):
    id: int
    adopted_at: str


@router.post("/coaching/checklist/{item_key}/adopt", response_model=AdoptOut, status_code=201, responses=_WRITE)
def adopt(user: ApiUser, engine: EngineDep,
          item_key: Annotated[str, Path(min_length=1, max_length=64)]) -> AdoptOut:
    """Adopt a proposed checklist item into the playbook (leaders and admins)."""
    require(user, Action.MANAGE_SETTINGS)
    return AdoptOut.model_validate(coaching_gap.adopt_item(engine, scope=user.scope, item_key=item_key))


class Ramp(BaseModel):
    as_of: str
    currency: str
    data_start: str | None
    month_days: int = Field(description="A tenure month is this many days.")
    behind_ratio: float
    cohort: list[dict[str, Any]] = Field(description="The cohort reps the caller sees.")
    norm: list[dict[str, Any]] = Field(description="Per tenure month: reps in the norm, median/p25/p75 of each "
                                                   "metric, share that reached each milestone.")
    curves: list[dict[str, Any]] = Field(description="Per rep the caller sees and tenure month: cumulative figures.")
    new_hires: list[dict[str, Any]] = Field(description="Each new hire against the norm: status (behind, on_track, "
                                                        "too_early, no_cohort), reasons, lagging behaviours.")


@router.get("/coaching/ramp", response_model=Ramp, responses=_READ)
def ramp(user: ApiUser, engine: EngineDep, views: ViewsDep, as_of: AsOf = None) -> Ramp:
    """New hires the caller sees against the cohort norm at the same month of tenure."""
    report = coaching_ramp.new_hire_ramp(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of),
                                         cache=open_cache(engine, views.orgs))
    return Ramp.model_validate(report.to_dict())


class Reviews(BaseModel):
    as_of: str
    currency: str
    manager_id: int | None
    managers: list[dict[str, Any]]
    items: list[dict[str, Any]] = Field(description="Deals worth reviewing: reasons, detail, questions to ask.")
    next_steps: list[dict[str, Any]] = Field(description="Next steps agreed in reviews, with follow-up status.")
    notes: list[dict[str, Any]]


@router.get("/coaching/reviews", response_model=Reviews, responses=_READ)
def reviews(user: ApiUser, engine: EngineDep, views: ViewsDep, as_of: AsOf = None,
            manager_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="That manager's team only.")] = None,
            limit: Annotated[int, Query(ge=1, le=100)] = 15) -> Reviews:
    """The opportunity review agenda (kept apart from the forecast call)."""
    report = coaching_reviews.review_agenda(engine, scope=user.scope, manager_id=manager_id,
                                            as_of=hygiene.end_of_day(as_of), limit=limit,
                                            cache=open_cache(engine, views.orgs))
    return Reviews.model_validate(report.to_dict())


class ReviewIn(BaseModel):
    deal_id: int = Field(ge=1, le=MAX_ID)
    note: str = Field(min_length=1, max_length=4000)
    next_step: str | None = Field(default=None, max_length=4000)
    due_on: date | None = None


class ReviewOut(BaseModel):
    note_id: int
    commitment_id: int | None
    rep_id: int
    opportunity_id: int


@router.post("/coaching/reviews", response_model=ReviewOut, status_code=201, responses=_WRITE)
def record_review(user: ApiUser, engine: EngineDep, body: ReviewIn) -> ReviewOut:
    """Record a review note on a deal and the next step agreed (managers and up, on deals they see)."""
    require(user, Action.COACH)
    return ReviewOut.model_validate(coaching_reviews.record_review(
        engine, scope=user.scope, deal_id=body.deal_id, note=body.note, next_step=body.next_step, due_on=body.due_on))


class CommitmentPatch(BaseModel):
    done: bool | None = None
    follow_up: str | None = Field(default=None, max_length=4000)


class Commitment(BaseModel):
    id: int
    plan_id: int | None
    rep_id: int
    rep_name: str | None
    opportunity_id: int | None
    kind: str
    text: str
    skill: str | None
    due_on: str | None
    created_at: str
    done_at: str | None
    follow_up: str | None
    status: str | None = None


@router.patch("/coaching/commitments/{commitment_id}", response_model=Commitment, responses=_WRITE)
def update_commitment(user: ApiUser, engine: EngineDep, commitment_id: IdPath, body: CommitmentPatch) -> Commitment:
    """Mark a commitment done or open, and/or record its follow-up (its rep, or a coach who sees them)."""
    require(user, Action.FOLLOW_UP)
    return Commitment.model_validate(coaching_commitments.update_commitment(
        engine, scope=user.scope, commitment_id=commitment_id, done=body.done, follow_up=body.follow_up))


class PlanSummary(BaseModel):
    id: int
    rep_id: int
    rep_name: str | None
    author_name: str | None
    title: str
    skills: list[dict[str, Any]]
    starts_on: str
    review_on: str | None
    status: str
    commitments: int
    done: int
    overdue: int


class Plan(BaseModel):
    id: int
    rep_id: int
    rep_name: str | None
    author_name: str | None
    title: str
    skills: list[dict[str, Any]] = Field(description="metric, label, unit, better, summary, target.")
    baseline: dict[str, Any] | None
    starts_on: str
    review_on: str | None
    status: str
    closed_at: str | None
    outcome: str | None
    commitments: list[Commitment]
    progress: list[dict[str, Any]] = Field(description="Per skill: before, after, deal counts, improved.")
    notes: list[dict[str, Any]]
    editable: bool


@router.get("/coaching/plans", response_model=list[PlanSummary], responses=_READ)
def plans(user: ApiUser, engine: EngineDep,
          rep_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> list[PlanSummary]:
    """1:1 coaching plans of the reps the caller sees."""
    return [PlanSummary.model_validate(p) for p in coaching_plans.list_plans(engine, scope=user.scope, rep_id=rep_id)]


class CommitmentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    due_on: date | None = None
    skill: str | None = Field(default=None, max_length=64)


class PlanIn(BaseModel):
    rep_id: int = Field(ge=1, le=MAX_ID)
    title: str = Field(min_length=1, max_length=200)
    skills: list[str] | None = Field(default=None, description="Gap metric keys (default: the suggested ones).")
    review_on: date | None = None
    commitments: list[CommitmentIn] = Field(default_factory=list)


@router.post("/coaching/plans", response_model=Plan, status_code=201, responses=_WRITE)
def create_plan(user: ApiUser, engine: EngineDep, body: PlanIn) -> Plan:
    """Start a 1:1 plan for a rep (managers and up, for reps they see)."""
    require(user, Action.COACH)
    return Plan.model_validate(coaching_plans.create_plan(
        engine, scope=user.scope, rep_id=body.rep_id, title=body.title, skills=body.skills, review_on=body.review_on,
        commitments=[c.model_dump() for c in body.commitments]))


@router.get("/coaching/plans/{plan_id}", response_model=Plan, responses=_READ)
def plan(user: ApiUser, engine: EngineDep, views: ViewsDep, plan_id: IdPath) -> Plan:
    """A plan with its commitments, 1:1 notes and the before/after of its skills."""
    return Plan.model_validate(coaching_plans.plan_detail(engine, scope=user.scope, plan_id=plan_id,
                                                          cache=open_cache(engine, views.orgs)))


@router.post("/coaching/plans/{plan_id}/commitments", response_model=Commitment, status_code=201,
             responses=_WRITE)
def add_commitment(user: ApiUser, engine: EngineDep, plan_id: IdPath, body: CommitmentIn) -> Commitment:
    require(user, Action.COACH)
    return Commitment.model_validate(coaching_plans.add_plan_commitment(
        engine, scope=user.scope, plan_id=plan_id, text=body.text, due_on=body.due_on, skill=body.skill))


class NoteIn(BaseModel):
    body: str = Field(min_length=1, max_length=4000)
    skill: str | None = Field(default=None, max_length=64)


class NoteOut(BaseModel):
    id: int
    rep_id: int
    body: str
    skill: str | None
    created_at: str


@router.post("/coaching/plans/{plan_id}/notes", response_model=NoteOut, status_code=201, responses=_WRITE)
def add_note(user: ApiUser, engine: EngineDep, plan_id: IdPath, body: NoteIn) -> NoteOut:
    """A 1:1 follow-up note on the plan's rep."""
    require(user, Action.COACH)
    return NoteOut.model_validate(coaching_plans.add_one_on_one_note(engine, scope=user.scope, plan_id=plan_id,
                                                               body=body.body, skill=body.skill))


class CloseIn(BaseModel):
    outcome: str | None = Field(default=None, max_length=4000)


@router.post("/coaching/plans/{plan_id}/close", response_model=Plan, responses=_WRITE)
def close(user: ApiUser, engine: EngineDep, plan_id: IdPath, body: CloseIn) -> Plan:
    require(user, Action.COACH)
    return Plan.model_validate(coaching_plans.close_plan(engine, scope=user.scope, plan_id=plan_id,
                                                         outcome=body.outcome))


class Skill(BaseModel):
    metric: str
    label: str
    unit: str
    better: str
    summary: str
    current: float | None
    target: float | None
    rest: float | None
    gap: float
    deals: int


@router.get("/coaching/reps/{rep_id}/skills", response_model=list[Skill], responses=_READ)
def skills(user: ApiUser, engine: EngineDep, rep_id: IdPath, as_of: AsOf = None) -> list[Skill]:
    """The skills the gap analysis suggests for a rep: where they are furthest from the top performers."""
    found = coaching_plans.suggested_skills(engine, scope=user.scope, rep_id=rep_id, as_of=hygiene.end_of_day(as_of))
    return [Skill.model_validate(s) for s in found]

