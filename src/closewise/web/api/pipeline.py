"""`GET /api/pipeline` (by stage, by expected close month, coverage of the target and the gap) and
`GET /api/pipeline/waterfall`, for the deals the caller may see (`services.pipeline_view`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from closewise.services.pipeline_view import pipeline_document, waterfall_document
from closewise.web.api.forecast import PERIOD_PATTERN, AsOfParam, PeriodParam, TargetParam, ViewsDep
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["pipeline"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired token"},
    422: {"description": "a parameter is wrong (`where` names it)"},
}


class PipelineGroup(BaseModel):
    key: str
    label: str
    count: int
    total: float = Field(description="open amount, corporate currency")
    weighted: float = Field(description="total weighted by the CRM probability")


class CloseMonth(PipelineGroup):
    overdue: bool = Field(description="the month is over: these deals' close dates have passed")


class StageCoverage(BaseModel):
    stage: str
    open_deals: int
    open_pipeline: float
    conversion: float | None
    observed_conversion: float | None
    history_deals: int
    expected: float
    pipeline_needed: float | None = Field(description="pipeline of this stage that would close the remaining gap")


class Coverage(BaseModel):
    """`closewise coverage` for the caller's deals and target (`analytics.coverage`)."""

    period: str
    as_of: str
    days_left: float
    target: float
    closed_won: float
    gap: float
    open_deals: int
    open_pipeline: float
    overall_conversion: float | None
    expected_from_pipeline: float
    expected_from_pipeline_sd: float
    remaining_gap: float
    coverage_ratio: float | None
    required_coverage_ratio: float | None
    required_coverage_for_mix: float | None
    pipeline_needed: float | None
    typical_other_bookings: float
    by_stage: list[StageCoverage]
    create_by: str | None
    create_by_latest: str | None
    status: str
    verdict: str


class Pipeline(BaseModel):
    """The open pipeline expected to close in `period`, for the deals the caller sees."""

    period: str
    period_start: str
    period_end: str
    as_of: str
    currency: str
    count: int
    total: float
    weighted: float
    closed_won: float
    target: float | None
    target_source: str | None = Field(description="`quota`, `given` (the `target` parameter) or null")
    gap: float | None = Field(description="target minus closed won (0 once reached)")
    coverage_ratio: float | None
    by_stage: list[PipelineGroup]
    by_close_month: list[CloseMonth] = Field(description="every open deal, by expected close month")
    coverage: Coverage | None
    coverage_note: str | None = Field(description="why coverage is null")


class WaterfallStep(BaseModel):
    flow: str
    label: str
    value: float = Field(description="signed: what the flow added to (or took from) the pipeline")
    deals: int


class Waterfall(BaseModel):
    """start + created + increased - decreased - won - lost - no_decision + pulled_in - pushed_out = end."""

    model_config = {"populate_by_name": True}

    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    period: dict[str, str] | None
    currency: str
    start_value: float
    end_value: float
    flows: dict[str, float]
    deal_counts: dict[str, int]
    steps: list[WaterfallStep]


@router.get("/pipeline", response_model=Pipeline, responses=_ERRORS)
def get_pipeline(
    user: ApiUser,
    engine: EngineDep,
    views: ViewsDep,
    period: PeriodParam,
    as_of: AsOfParam = None,
    target: TargetParam = None,
) -> Pipeline:
    """The caller's pipeline of `period` by stage and by close month, closed won, target, gap and coverage."""
    return Pipeline.model_validate(
        pipeline_document(engine, views.orgs, user.scope, period=period, as_of=as_of.isoformat() if as_of else None,
                          target=target))


@router.get("/pipeline/waterfall", response_model=Waterfall, response_model_by_alias=True, responses=_ERRORS)
def get_waterfall(
    user: ApiUser,
    engine: EngineDep,
    views: ViewsDep,
    start: Annotated[date | None, Query(alias="from", description="first day (default: the period's first day once "
                                                                  "it has begun, else 30 days ago)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (default: today)")] = None,
    period: Annotated[str | None, Query(max_length=16, pattern=PERIOD_PATTERN,
                                        description="only deals expected to close in this period")] = None,
) -> Waterfall:
    """How the caller's pipeline moved from the start of one day to the end of another (in either order):
    created, increased, decreased, won, lost, no decision, pulled in and pushed out."""
    return Waterfall.model_validate(
        waterfall_document(engine, views.orgs, user.scope, start=start, end=end, period=period))
