"""`GET /api/forecast` and `GET /api/forecast/track-record`: the caller's forecast and its track record.

Both are computed in the background the first time they are asked for (about 10-15 s for a forecast of the
demo org, longer for the track record); until then they answer 202 with the progress and a `Retry-After`
header, and the same request repeated answers 200 when the result is ready (`services.forecast_view`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from closewise.services.forecast_view import ForecastViews, Pending
from closewise.web.deps import ApiUser, EngineDep

router = APIRouter(tags=["forecast"])

RETRY_AFTER_SECONDS = 2
# A month (2026-11), a fiscal quarter (2026-Q4, FY2026Q4) or a fiscal year (2026), 1970 to 2099.
_YEAR = "(19[7-9][0-9]|20[0-9][0-9])"
PERIOD_PATTERN = rf"^(([Ff][Yy])?{_YEAR}(-?[Qq][1-4])?|{_YEAR}-(0?[1-9]|1[0-2]))$"
PeriodParam = Annotated[str, Query(max_length=16, pattern=PERIOD_PATTERN, examples=["2026-Q4"],
                                   description="a month (`2026-11`), a fiscal quarter (`2026-Q4`) or a fiscal year "
                                               "(`2026`)")]
AsOfParam = Annotated[date | None, Query(description="forecast as known at the end of this day (default: now)")]
TargetParam = Annotated[float | None, Query(gt=0, allow_inf_nan=False,
                                            description="default: the caller's quota for the period")]


async def forecast_views(request: Request) -> ForecastViews:
    """The app's forecasts and their cache (one per app, made by `create_app`)."""
    views: ForecastViews = request.app.state.forecast_views
    return views


ViewsDep = Annotated[ForecastViews, Depends(forecast_views)]


class Computing(BaseModel):
    status: str = Field(default="computing", description="always `computing`: ask again after `Retry-After` seconds")
    kind: str = Field(description="what is being computed: `forecast` or `track record`")
    message: str = Field(description="what the computation is doing now")
    progress: float | None = Field(description="how far it is, 0 to 1 (null: unknown)")


class OwnerForecast(BaseModel):
    owner_id: int | None
    name: str | None
    team_id: int | None
    team: str | None
    closed_won: float
    open_deals: int
    pipeline: float
    expected: float
    p10: float | None
    p50: float | None
    p90: float | None
    target: float | None = Field(description="the owner's own quota for the period")
    probability_of_target: float | None


class TeamForecast(BaseModel):
    team_id: int | None
    team: str | None
    closed_won: float
    open_deals: int
    pipeline: float
    expected: float
    p10: float | None
    p50: float | None
    p90: float | None


class DealForecast(BaseModel):
    id: int
    external_id: str
    name: str
    owner_id: int | None
    owner: str | None
    stage: str | None
    close_date: str | None
    forecast_category: str | None
    amount: float = Field(description="corporate currency")
    p_win: float | None = Field(description="probability of being won at all")
    p_close_in_period: float | None = Field(description="calibrated probability of being won inside the period")
    expected: float = Field(description="p_close_in_period x amount")
    reasons: list[str]


class Baselines(BaseModel):
    run_rate_3: float
    crm_weighted: float
    commit: float


class Forecast(BaseModel):
    """DESIGN.md's forecast document, for the deals the caller may see (all amounts in `currency`)."""

    period: str
    period_start: str
    period_end: str
    as_of: str
    ended: bool
    currency: str
    closed_won: float
    p10: float
    p50: float
    p90: float
    expected: float
    target: float | None
    target_source: str | None = Field(description="`quota`, `given` (the `target` parameter) or null")
    probability_of_target: float | None
    gap_to_target: float | None = Field(description="target minus closed won (0 once reached)")
    open_deals: int
    pipeline: float
    new_business: dict[str, float] | None = Field(
        description="bookings expected from deals not created yet (only for those who see everything)")
    calibration: dict[str, float]
    percentiles: list[float] = Field(description="the 1st to 99th percentiles of the simulated outcome")
    baselines: Baselines
    by_owner: list[OwnerForecast]
    by_team: list[TeamForecast]
    deals: list[DealForecast] = Field(description="the open deals adding most to the forecast, largest first")


class BacktestMonth(BaseModel):
    period: str
    as_of: str
    period_start: str
    period_end: str
    actual: float
    p10: float
    p50: float
    p90: float
    expected: float
    crps: float
    baselines: Baselines


class ErrorScore(BaseModel):
    mape: float | None
    bias: float | None


class TrackSummary(BaseModel):
    periods: int
    p50_mape: float | None
    p50_bias: float | None
    coverage_p10_p90: float | None = Field(description="share of months whose actual fell in P10-P90 (0.8 ideal)")
    crps: float | None
    crps_relative: float | None
    baselines: dict[str, ErrorScore]
    best_baseline: str | None
    p50_mape_vs_best_baseline: float | None


class TrackRecord(BaseModel):
    """Forecasts of past months made on each month's first day with what was known then, for the caller's deals."""

    currency: str
    rows: list[BacktestMonth]
    summary: TrackSummary


_COMPUTING: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Computing,
        "description": "Still computing: repeat the request after `Retry-After` seconds.",
        "headers": {"Retry-After": {"description": "seconds to wait before asking again",
                                    "schema": {"type": "integer"}}},
    },
    400: {"description": "the computation failed (the detail says why)"},
    401: {"description": "no or expired token"},
    422: {"description": "a parameter is wrong (`where` names it)"},
}


def computing(pending: Pending) -> JSONResponse:
    body = Computing(kind=pending.kind, message=pending.message, progress=pending.fraction)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/forecast", response_model=Forecast, responses=_COMPUTING)
def get_forecast(
    user: ApiUser,
    engine: EngineDep,
    views: ViewsDep,
    period: PeriodParam,
    as_of: AsOfParam = None,
    target: TargetParam = None,
) -> Forecast | JSONResponse:
    """The forecast of `period` for the deals the caller sees: closed won, P10/P50/P90, expected, the target
    and the probability of reaching it, by owner, by team, the deals driving it and the baselines."""
    document = views.forecast(engine, user.scope, period=period, as_of=as_of.isoformat() if as_of else None,
                              target=target)
    if isinstance(document, Pending):
        return computing(document)
    return Forecast.model_validate(document)


@router.get("/forecast/track-record", response_model=TrackRecord, responses=_COMPUTING)
def get_track_record(user: ApiUser, engine: EngineDep, views: ViewsDep) -> TrackRecord | JSONResponse:
    """How the model's forecasts of the last months, made on each month's first day, compared with what the
    caller's deals booked, beside the run rate, CRM-weighted and commit baselines."""
    document = views.track_record(engine, user.scope)
    if isinstance(document, Pending):
        return computing(document)
    return TrackRecord.model_validate(document)
