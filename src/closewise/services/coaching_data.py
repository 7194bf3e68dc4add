"""What every coaching report reads (`CoachingData`), loaded once per user's scope and moment, and the small
helpers the coaching services share: the reps in sight, quotas over a window, JSON-safe rows.

Reads are computed on the part of the org the user sees (`services.org_data.scoped`): a rep gets their own
deals, a manager their subtree's, a leader and an admin everyone's. Some reports compare with the whole org
(the gap's benchmark, the ramp's cohort norm); they load it with `everyone(scope)` and show only aggregates of
it, never another team's reps by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.analytics.team import quarter_quotas
from closewise.coaching.behaviours import VALUE, BehaviourInputs, deal_behaviours
from closewise.db import coaching as store
from closewise.db import playbook as playbook_store
from closewise.db.quotas import load_quotas_within
from closewise.domain.enums import Role
from closewise.domain.periods import PeriodKind
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.playbook.default import Playbook
from closewise.services.org_data import OrgData, load_org, scoped
from closewise.services.report_cache import ReportCache

_QUOTA_SCHEMA = {"user_id": pl.Int64(), "quota": pl.Float64()}


@dataclass(frozen=True)
class CoachingData:
    """What every coaching report reads, for one user's scope, as at one moment."""

    at: datetime  # naive UTC
    org: OrgData  # the whole org (names, hierarchy)
    mine: OrgData  # the part the user sees
    deals: pl.DataFrame  # snapshot at `at` of the visible deals, with `value` in the corporate currency
    behaviours: pl.DataFrame
    leads: pl.DataFrame  # visible leads
    playbook: Playbook
    checks: pl.DataFrame  # criteria checks of the visible deals
    answers: pl.DataFrame  # qualification answers of the visible deals


def moment(as_of: datetime | None) -> datetime:
    """`as_of` (default now) as naive UTC, the way the coaching frames hold time."""
    return naive_utc(as_utc(as_of) if as_of is not None else utcnow())


def everyone(scope: Scope) -> Scope:
    """A scope over the whole org for the user of `scope`: for benchmarks and norms the user is shown only
    aggregates of (never to authorise anything)."""
    return Scope(user_id=scope.user_id, role=Role.ADMIN, owner_ids=None)


def load(engine: Engine, *, scope: Scope, as_of: datetime | None = None, org: OrgData | None = None,
         cache: ReportCache | None = None) -> CoachingData:
    """What the coaching reports read for `scope` at `as_of` (default now). `org`: the org already read; with a
    `cache` (`services.report_cache`), the org and the scoped view it keeps. The result itself is not kept: it
    is about the size of the deals it covers, and the reports computed from it are kept instead."""
    if cache is not None:
        return _load(engine, scope, as_of, cache.org, cache.scoped(scope))
    whole = org if org is not None else load_org(engine)
    return _load(engine, scope, as_of, whole, scoped(whole, scope))


def _load(engine: Engine, scope: Scope, as_of: datetime | None, whole: OrgData, mine: OrgData) -> CoachingData:
    at = moment(as_of)
    with engine.connect() as connection:
        playbook = playbook_store.load_playbook(connection)
        checks = playbook_store.load_checks(connection)
        answers = playbook_store.load_answers(connection)
        contacts = store.load_contacts(connection)
        leads = scope.filter_frame(store.load_leads(connection))
    state = snapshot(mine.timeline, at).filter(pl.col("created_at") <= at)
    deals = to_corporate(state, whole.rates, corporate=whole.corporate_currency, on="created_at", into=VALUE)
    deals = deals.with_columns(pl.col(VALUE).fill_null(0.0))
    ids = deals["id"].implode()
    checks = checks.filter(pl.col("opportunity_id").is_in(ids))
    answers = answers.filter(pl.col("opportunity_id").is_in(ids))
    inputs = BehaviourInputs(deals=deals, changes=mine.changes, activities=mine.activities, contacts=contacts,
                             checks=checks, answers=answers, leads=leads, playbook=playbook)
    behaviours = deal_behaviours(inputs, as_of=at)
    return CoachingData(at=at, org=whole, mine=mine, deals=deals, behaviours=behaviours, leads=leads,
                        playbook=playbook, checks=checks, answers=answers)


def reps_in_sight(data: CoachingData) -> pl.DataFrame:
    """The active reps among the users `data` was loaded for."""
    return data.mine.users.filter(pl.col("role") == Role.REP.value, pl.col("active"))


def window_quotas(engine: Engine, data: CoachingData, *, since: datetime) -> pl.DataFrame:
    """Each user's quota over `(since, at]`, prorated by days from the quarters it overlaps: `user_id`, `quota`."""
    calendar = data.org.calendar
    quarters = calendar.periods_between(since.date(), data.at.date(), PeriodKind.QUARTER)
    if not quarters:
        return pl.DataFrame(schema=_QUOTA_SCHEMA)
    with engine.connect() as connection:
        rows = load_quotas_within(connection, start=quarters[0].start, last_day=quarters[-1].last_day)
    parts = []
    for quarter in quarters:
        first = max(quarter.start, since.date() + timedelta(days=1))
        last = min(quarter.last_day, data.at.date())
        share = ((last - first).days + 1) / quarter.days
        if share <= 0:
            continue
        per = quarter_quotas(rows, quarter, data.org.rates, corporate=data.org.corporate_currency)
        parts.append(per.with_columns(pl.col("quota") * share))
    if not parts:
        return pl.DataFrame(schema=_QUOTA_SCHEMA)
    return pl.concat(parts).group_by("user_id").agg(pl.col("quota").sum())


def quarterly_quotas(engine: Engine, data: CoachingData, start: date) -> pl.DataFrame:
    """Every user's quota per quarter from `start` to the quarter holding `at`: `user_id`, `period_start`,
    `period_end`, `quota` (corporate currency)."""
    calendar = data.org.calendar
    quarters = calendar.periods_between(start, data.at.date(), PeriodKind.QUARTER)
    schema = {"user_id": pl.Int64(), "period_start": pl.Date(), "period_end": pl.Date(), "quota": pl.Float64()}
    if not quarters:
        return pl.DataFrame(schema=schema)
    with engine.connect() as connection:
        rows = load_quotas_within(connection, start=quarters[0].start, last_day=quarters[-1].last_day)
    parts = [quarter_quotas(rows, q, data.org.rates, corporate=data.org.corporate_currency)
             .with_columns(pl.lit(q.start).alias("period_start"), pl.lit(q.last_day).alias("period_end"))
             for q in quarters]
    return pl.concat(parts).select(list(schema)) if parts else pl.DataFrame(schema=schema)


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row JSON-safe: NaN and infinities become None, dates text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def json_safe(value: Any) -> Any:
    """`json_row` all the way down, through nested dicts and lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def json_dict(value: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = json_safe(value)
    return cleaned
