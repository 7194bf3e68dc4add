"""`/api/playbook/stages`: the playbook's stages with their exit criteria (read only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from closewise.services import playbook_view
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["playbook"])


class ExitCriterion(BaseModel):
    key: str = Field(description="Unique across the playbook; deal checks name their criterion by it.")
    label: str = Field(description="What must hold before a deal leaves the stage.")
    kind: str = Field(description="checkbox (a person ticks it), field (a deal field must be filled) or evidence "
                                  "(an activity or qualification answer must exist).")


class Stage(BaseModel):
    key: str = Field(description="The stage key deals carry in `stage`.")
    name: str
    order: int = Field(description="Position in the pipeline, first stage lowest.")
    default_probability: float = Field(description="The CRM probability (percent, 0-100) a deal takes on "
                                                   "entering the stage.")
    forecast_category: str = Field(description="The forecast category a deal takes on entering the stage.")
    days_to_rot: int | None = Field(description="Days in the stage after which a deal is stale.")
    requalify_days: int | None = Field(description="How often the deal's qualification should be reviewed.")
    guidance: str | None = Field(description="What the rep should do in this stage.")
    required_fields: list[str] | None = Field(description="Deal fields that must be filled in this stage.")
    exit_criteria: list[ExitCriterion] = Field(description="The stage's exit criteria, in order.")
    requires_passing_proposal: bool = Field(description="Whether a deal leaves the stage only once its latest "
                                                        "proposal passes its quality checks.")


@router.get("/playbook/stages", response_model=list[Stage],
            responses={401: {"description": "no or expired bearer token"},
                       404: {"description": "no such pipeline"},
                       422: {"description": "a parameter that cannot be understood (`where` names it)"}})
def playbook_stages(
    user: ApiUser,
    engine: EngineDep,
    pipeline: Annotated[str, Query(min_length=1, max_length=64, description="The pipeline (default: `default`).")]
    = playbook_view.DEFAULT_PIPELINE,
) -> list[Stage]:
    """The stages of a pipeline in order, each with its exit criteria."""
    return [Stage.model_validate(stage) for stage in playbook_view.stages(engine, pipeline=pipeline)]
