"""Rep scorecards as a signed-in user sees them (`/team`, `GET /api/team`).

The figures are `closewise.analytics.team`'s, as of a moment (default now) and from what was known then. They
are computed on the part of the org the user may see (`services.org_data.scoped`): a manager gets their
team's reps, a rep only themselves, a leader and an admin everyone, optionally one team. The hygiene
findings counted per rep are the org's (thresholds learned from every deal, as on the hygiene page), cut to
the same deals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics import team as analytics
from closewise.db.quotas import load_quotas_within
from closewise.domain.enums import Role
from closewise.domain.periods import PeriodKind
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import NotFound
from closewise.services.hygiene import open_findings
from closewise.services.org_data import load_org, scoped


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
    activities_30d: int
    findings: int
    flagged_deals: int
    slipped_deals_90d: int


@dataclass(frozen=True)
class TeamReport:
    as_of: datetime
    quarter: str
    quarter_start: date
    quarter_end: date  # inclusive
    currency: str
    team_id: int | None  # the filter asked for
    teams: list[tuple[int, str]]  # the teams of the reps in sight, for the filter
    reps: list[Scorecard]
    total: Scorecard


_METRICS = tuple(f.name for f in fields(Scorecard) if f.name not in {"user_id", "name", "team_id", "team"})


def team_scorecards(
    engine: Engine,
    *,
    scope: Scope,
    as_of: datetime | None = None,
    team_id: int | None = None,
    windows: analytics.ScorecardWindows | None = None,
) -> TeamReport:
    """The scorecards of the active reps `scope` sees (hired by `as_of`), by name, and their total. `team_id`:
    only that team's reps; a team with none of them in sight is `NotFound`."""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org = load_org(engine)
    mine = scoped(org, scope)
    quarter = org.calendar.period_containing(at.date(), PeriodKind.QUARTER)
    team_names = dict(zip(org.teams["id"].to_list(), org.teams["name"].to_list(), strict=True))
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
        quotas = load_quotas_within(connection, start=quarter.start, last_day=quarter.last_day)
    found = open_findings(engine, as_of=at, org=org)
    inputs = analytics.ScorecardInputs(
        timeline=mine.timeline, changes=mine.changes, activities=mine.activities,
        findings=found.filter(pl.col("id").is_in(mine.opportunities["id"].implode())),
        quotas=analytics.quarter_quotas(quotas, quarter, org.rates, corporate=org.corporate_currency),
        rates=org.rates, corporate=org.corporate_currency)
    table = analytics.rep_scorecards(inputs, reps=reps["id"], as_of=at, quarter=quarter, windows=windows)
    total = analytics.team_total(inputs, reps=reps["id"], as_of=at, quarter=quarter, windows=windows)
    people = reps.select("id", "name", "team_id").rename({"id": "user_id"})
    rows = [
        _card(row, name=row["name"], team_id=row["team_id"],
              team=team_names.get(row["team_id"]) if row["team_id"] is not None else None)
        for row in people.join(table, on="user_id", how="left", maintain_order="left").iter_rows(named=True)
    ]
    team_label = team_names.get(team_id) if team_id is not None else None
    return TeamReport(
        as_of=at, quarter=quarter.label, quarter_start=quarter.start, quarter_end=quarter.last_day,
        currency=org.corporate_currency, team_id=team_id, teams=teams, reps=rows,
        total=_card(total, name=f"{team_label or 'All'} ({len(rows)} reps)", team_id=team_id, team=team_label),
    )


def _card(row: dict[str, Any], *, name: str, team_id: int | None, team: str | None) -> Scorecard:
    return Scorecard(user_id=row["user_id"], name=name, team_id=team_id, team=team,
                     **{metric: row[metric] for metric in _METRICS})
