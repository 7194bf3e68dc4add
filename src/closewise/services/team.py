"""Rep scorecards as a signed-in user sees them (`/team`, `GET /api/team`).

The figures are `closewise.analytics.team`'s, as of a moment (default now) and from what was known then: the
quarter's attainment and coverage, the trailing year's wins, pipeline created, stage conversion, slippage,
forecast accuracy, hygiene and activity mix, and each rep's trend over the last quarters. They are computed on
the part of the org the user may see (`services.org_data.scoped`): a manager gets their team's reps, a rep
only themselves, a leader and an admin everyone, optionally one team; the forecast calls scored are those of
the reps listed. The hygiene findings counted per rep are the org's (thresholds learned from every deal, as on
the hygiene page), cut to the same deals.

The web passes the app's cache (`services.report_cache`): the org is read once per data stamp and the report kept
per (stamps, scope, moment, team), so a second look costs nothing and any write shows at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics import team as analytics
from closewise.analytics.rep_trend import QUARTER_QUOTA_SCHEMA, trend_quarters
from closewise.db.quotas import load_quotas_within
from closewise.db.submissions import load_submissions
from closewise.domain.enums import Role
from closewise.domain.periods import Period, PeriodKind
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import NotFound
from closewise.services.hygiene import open_findings
from closewise.services.org_data import OrgData, load_org, scoped
from closewise.services.report_cache import ReportCache


@dataclass(frozen=True)
class StageConversion:
    """One playbook stage of a rep's (or the total's) trailing-year cohort (`analytics.rep_cohort`)."""

    stage: str
    name: str
    order: int
    entered: int
    advanced: int
    pending: int
    conversion_rate: float | None


@dataclass(frozen=True)
class TrendQuarter:
    """One fiscal quarter of a rep's (or the total's) record (`analytics.rep_trend`)."""

    quarter: str
    quarter_start: date
    quarter_end: date
    partial: bool
    quota: float | None
    won: float
    won_count: int
    attainment: float | None
    closed_count: int
    win_rate: float | None
    average_won: float | None
    created: float
    created_count: int
    call: float | None
    call_actual: float | None
    call_error: float | None


@dataclass(frozen=True)
class Scorecard:
    """One rep's figures (`analytics.team` explains each); `user_id` is None on the total row."""

    user_id: int | None
    name: str
    team_id: int | None
    team: str | None
    quota: float | None
    won_quarter: float
    won_quarter_count: int
    attainment: float | None
    won_12m: float
    won_12m_count: int
    closed_12m: int
    win_rate: float | None
    average_won: float | None
    median_cycle_days: float | None
    open_pipeline: float
    open_deals: int
    pipeline_quarter: float
    remaining_quota: float | None
    coverage: float | None
    created_quarter: float
    created_quarter_count: int
    stage_decided: int
    stage_advanced: int
    stage_conversion: float | None
    deals_12m: int
    pushed_deals_12m: int
    slip_rate: float | None
    forecast_calls: int
    forecast_mape: float | None
    forecast_bias: float | None
    forecast_label: str | None
    activities_30d: int
    calls_30d: int
    emails_30d: int
    meetings_30d: int
    tasks_30d: int
    other_activities_30d: int
    findings: int
    flagged_deals: int
    slipped_deals_90d: int
    stages: list[StageConversion]
    trend: list[TrendQuarter]


@dataclass(frozen=True)
class TeamReport:
    as_of: datetime
    quarter: str
    quarter_start: date
    quarter_end: date  # inclusive
    currency: str
    team_id: int | None  # the filter asked for
    teams: list[tuple[int, str]]  # the teams of the reps in sight, for the filter
    quarters: list[str]  # the trend's quarters, oldest first
    reps: list[Scorecard]
    total: Scorecard


_NESTED = {"stages", "trend"}
_METRICS = tuple(f.name for f in fields(Scorecard) if f.name not in {"user_id", "name", "team_id", "team", *_NESTED})


def team_scorecards(
    engine: Engine,
    *,
    scope: Scope,
    as_of: datetime | None = None,
    team_id: int | None = None,
    windows: analytics.ScorecardWindows | None = None,
    cache: ReportCache | None = None,
) -> TeamReport:
    """The scorecards of the active reps `scope` sees (hired by `as_of`), by name, and their total. `team_id`:
    only that team's reps; a team with none of them in sight is `NotFound`. With a `cache`, the org is its and
    the report is kept there."""
    if cache is None:
        whole = load_org(engine)
        return _scorecards(engine, whole, scoped(whole, scope), scope=scope, as_of=as_of, team_id=team_id,
                           windows=windows)
    return cache.remember_as_of("team", (scope.owner_ids, team_id, windows), as_of, lambda: _scorecards(
        engine, cache.org, cache.scoped(scope), scope=scope, as_of=as_of, team_id=team_id, windows=windows))


def _scorecards(engine: Engine, whole: OrgData, mine: OrgData, *, scope: Scope, as_of: datetime | None,
                team_id: int | None, windows: analytics.ScorecardWindows | None) -> TeamReport:
    at = as_utc(as_of) if as_of is not None else utcnow()
    spans = windows or analytics.ScorecardWindows()
    quarter = whole.calendar.period_containing(at.date(), PeriodKind.QUARTER)
    quarters = trend_quarters(whole.calendar, at, spans.trend_quarters)
    team_names = dict(zip(whole.teams["id"].to_list(), whole.teams["name"].to_list(), strict=True))
    reps = mine.users.filter(
        pl.col("role") == Role.REP.value, pl.col("active"),
        pl.col("hire_date").is_null() | (pl.col("hire_date") <= at.date()),
    ).sort("name", "id")
    teams = sorted({(int(t), team_names.get(int(t), f"team {t}")) for t in reps["team_id"].drop_nulls().to_list()},
                   key=lambda item: item[1])
    if team_id is not None:
        if team_id not in {t for t, _ in teams}:
            raise NotFound(f"no team with id {team_id}", where="team")
        reps = reps.filter(pl.col("team_id") == team_id)
    with engine.connect() as connection:
        quotas = load_quotas_within(connection, start=quarters[0].start, last_day=quarters[-1].last_day)
        submissions = scope.filter_frame(load_submissions(connection), "user_id")
    found = open_findings(engine, as_of=at, org=whole)
    rates, corporate = whole.rates, whole.corporate_currency
    inputs = analytics.ScorecardInputs(
        opportunities=mine.opportunities, timeline=mine.timeline, changes=mine.changes, stages=whole.stages,
        activities=mine.activities, findings=found.filter(pl.col("id").is_in(mine.opportunities["id"].implode())),
        quotas=analytics.quarter_quotas(quotas, quarter, rates, corporate=corporate),
        trend_quotas=_trend_quotas(quotas, quarters, rates, corporate),
        submissions=submissions, rates=rates, corporate=corporate, calendar=whole.calendar)
    result = analytics.scorecards(inputs, reps=reps["id"], as_of=at, quarter=quarter, windows=spans)
    stage_names = dict(zip(whole.stages["key"].to_list(), whole.stages["name"].to_list(), strict=True))
    stages = _by_rep(result.stages, lambda row: StageConversion(name=stage_names.get(row["stage"], row["stage"]),
                                                                 **row))
    trend = _by_rep(result.trend, lambda row: TrendQuarter(**row))
    people = reps.select("id", "name", "team_id").rename({"id": "user_id"})
    rows = [
        _card(row, name=row["name"], team_id=row["team_id"],
              team=team_names.get(row["team_id"]) if row["team_id"] is not None else None,
              stages=stages.get(row["user_id"], []), trend=trend.get(row["user_id"], []))
        for row in people.join(result.reps, on="user_id", how="left", maintain_order="left").iter_rows(named=True)
    ]
    team_label = team_names.get(team_id) if team_id is not None else None
    return TeamReport(
        as_of=at, quarter=quarter.label, quarter_start=quarter.start, quarter_end=quarter.last_day,
        currency=corporate, team_id=team_id, teams=teams, quarters=[q.label for q in quarters], reps=rows,
        total=_card(result.total, name=f"{team_label or 'All'} ({len(rows)} reps)", team_id=team_id,
                    team=team_label, stages=stages.get(None, []), trend=trend.get(None, [])),
    )


def _trend_quotas(quotas: pl.DataFrame, quarters: list[Period], rates: pl.DataFrame, corporate: str) -> pl.DataFrame:
    parts = [analytics.quarter_quotas(quotas, q, rates, corporate=corporate)
             .select("user_id", pl.lit(q.start).alias("period_start"), "quota") for q in quarters]
    return pl.concat(parts) if parts else pl.DataFrame(schema=QUARTER_QUOTA_SCHEMA)


def _by_rep(frame: pl.DataFrame, make: Any) -> dict[int | None, list[Any]]:
    """`frame`'s rows grouped by `user_id` (None: the total's), each made into `make(row without user_id)`."""
    out: dict[int | None, list[Any]] = {}
    for row in frame.iter_rows(named=True):
        owner = row.pop("user_id")
        out.setdefault(owner, []).append(make(row))
    return out


def _card(row: dict[str, Any], *, name: str, team_id: int | None, team: str | None,
          stages: list[StageConversion], trend: list[TrendQuarter]) -> Scorecard:
    return Scorecard(user_id=row["user_id"], name=name, team_id=team_id, team=team, stages=stages, trend=trend,
                     **{metric: row[metric] for metric in _METRICS})
