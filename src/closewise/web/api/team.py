"""`GET /api/team`: rep scorecards for the reps the caller sees (a manager their team, a rep themselves, a
leader and an admin everyone), as of a day, optionally one team."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from closewise.services import hygiene, team
from closewise.services.report_cache import open_cache
from closewise.web.api.forecast import ViewsDep
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["team"])

MAX_ID = 2**63 - 1
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired bearer token"},
    404: {"description": "no such team among the reps the caller sees"},
    422: {"description": "a value that cannot be used (`where` names it)"},
}


class StageConversion(BaseModel):
    stage: str = Field(description="The playbook stage's key.")
    name: str
    order: int
    entered: int = Field(description="Deals opened in the trailing 12 months that entered the stage.")
    advanced: int = Field(description="Of them, those that reached a later stage or were won.")
    pending: int = Field(description="Of them, those still open and not past the stage (undecided).")
    conversion_rate: float | None = Field(description="advanced ÷ (entered − pending).")


class TrendQuarter(BaseModel):
    quarter: str = Field(description="Fiscal quarter, e.g. 2026-Q3.")
    quarter_start: date
    quarter_end: date = Field(description="The quarter's last day.")
    partial: bool = Field(description="True for the quarter holding `as_of`: figures to date.")
    quota: float | None
    won: float = Field(description="Won inside the quarter (bookings).")
    won_count: int
    attainment: float | None = Field(description="won ÷ quota.")
    closed_count: int = Field(description="Won, lost or no decision inside the quarter.")
    win_rate: float | None = Field(description="won_count ÷ closed_count.")
    average_won: float | None
    created: float = Field(description="Pipeline created: the amount of the deals opened inside the quarter.")
    created_count: int
    call: float | None = Field(description="The final forecast commit for the quarter (ended quarters).")
    call_actual: float | None = Field(description="What was won in it, as known at its end.")
    call_error: float | None = Field(description="(call − call_actual) ÷ call_actual.")


class Scorecard(BaseModel):
    user_id: int | None = Field(description="The rep's user id (null on the total).")
    name: str
    team_id: int | None
    team: str | None
    quota: float | None = Field(description="Quota for the quarter holding `as_of`.")
    won_quarter: float = Field(description="Won this quarter, up to `as_of`.")
    won_quarter_count: int
    attainment: float | None = Field(description="won_quarter ÷ quota (0-1+).")
    won_12m: float = Field(description="Won in the 365 days before `as_of`.")
    won_12m_count: int
    closed_12m: int = Field(description="Won, lost or no decision in the 365 days before `as_of`.")
    win_rate: float | None = Field(description="won_12m_count ÷ closed_12m.")
    average_won: float | None = Field(description="Average won deal size over the trailing 12 months.")
    median_cycle_days: float | None = Field(description="Median days from creation to win, trailing 12 months.")
    open_pipeline: float = Field(description="Every open deal's amount at `as_of`.")
    open_deals: int
    pipeline_quarter: float = Field(description="Open deals expected to close this quarter.")
    remaining_quota: float | None = Field(description="max(quota − won_quarter, 0).")
    coverage: float | None = Field(description="pipeline_quarter ÷ remaining_quota.")
    created_quarter: float = Field(description="Pipeline created: deals opened this quarter, up to `as_of`.")
    created_quarter_count: int
    stage_decided: int = Field(description="Stage entries of deals opened in the trailing 12 months, decided by "
                                           "`as_of` (moved on, or closed there).")
    stage_advanced: int = Field(description="Of them, those that moved on.")
    stage_conversion: float | None = Field(description="stage_advanced ÷ stage_decided, over all stages.")
    deals_12m: int = Field(description="Deals opened in the trailing 12 months.")
    pushed_deals_12m: int = Field(description="Of them, those whose close date was pushed out while open.")
    slip_rate: float | None = Field(description="pushed_deals_12m ÷ deals_12m.")
    forecast_calls: int = Field(description="Forecast calls scored: periods ended in the trailing 12 months in "
                                            "which something was won.")
    forecast_mape: float | None = Field(description="Mean absolute percentage error of the final commit.")
    forecast_bias: float | None = Field(description="Median signed percentage error (positive: called high).")
    forecast_label: str | None = Field(description="sandbagger, happy_ears or accurate.")
    activities_30d: int = Field(description="Completed activities on deals in the 30 days before `as_of`.")
    calls_30d: int = Field(description="Activity mix: calls among them.")
    emails_30d: int
    meetings_30d: int
    tasks_30d: int
    other_activities_30d: int = Field(description="Any other type; the five add up to activities_30d.")
    findings: int = Field(description="Unsnoozed hygiene findings on the rep's open deals.")
    flagged_deals: int = Field(description="Open deals with at least one finding.")
    slipped_deals_90d: int = Field(description="Deals whose close date was pushed out in the last 90 days.")
    stages: list[StageConversion] = Field(description="Stage conversion per playbook stage, trailing 12 months.")
    trend: list[TrendQuarter] = Field(description="The last quarters, oldest first, the current one to date.")


class TeamOption(BaseModel):
    id: int
    name: str


class Team(BaseModel):
    as_of: datetime
    quarter: str = Field(description="The fiscal quarter holding `as_of`, e.g. 2026-Q4.")
    quarter_start: date
    quarter_end: date = Field(description="The quarter's last day.")
    currency: str = Field(description="The corporate currency of every amount.")
    team_id: int | None = Field(description="The team filter applied.")
    teams: list[TeamOption] = Field(description="The teams of the reps in sight.")
    quarters: list[str] = Field(description="The trend's quarters, oldest first.")
    reps: list[Scorecard]
    total: Scorecard = Field(description="The reps listed, taken together.")


@router.get("/team", response_model=Team, responses=_RESPONSES)
def team_scorecards(
    user: ApiUser,
    engine: EngineDep,
    views: ViewsDep,
    as_of: Annotated[date | None, Query(description="As of the end of this day (default: now).")] = None,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this team's reps.")] = None,
) -> Team:
    """Rep scorecards: quota attainment, wins, win rate, deal size, cycle, pipeline coverage, pipeline created,
    stage conversion, slippage, forecast accuracy, activity mix, hygiene and the trend over quarters, computed
    from what was known at `as_of`."""
    report = team.team_scorecards(engine, scope=user.scope, as_of=hygiene.end_of_day(as_of), team_id=team_id,
                                  cache=open_cache(engine, views.orgs))
    return Team(
        as_of=report.as_of, quarter=report.quarter, quarter_start=report.quarter_start,
        quarter_end=report.quarter_end, currency=report.currency, team_id=report.team_id,
        teams=[TeamOption(id=i, name=n) for i, n in report.teams], quarters=report.quarters,
        reps=[_card(card) for card in report.reps], total=_card(report.total))


def _card(card: team.Scorecard) -> Scorecard:
    return Scorecard.model_validate(asdict(card))
