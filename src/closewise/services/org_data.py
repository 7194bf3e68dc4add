"""Everything the pipeline analytics read about an org, loaded once as frames.

Analytics functions are pure (frames in, frames out); this is the one place that reads them from the
database. Opportunities carry the attributes analyses group by: the account's segment and the owner's
team and manager. Every report service takes an optional `org`, so several reports on one org read it (and
build its timeline) once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.snapshots import build_timeline
from closewise.db import frames, org_frames
from closewise.db.org_settings import read_settings
from closewise.domain.periods import FiscalCalendar
from closewise.domain.scope import Scope


@dataclass(frozen=True)
class OrgData:
    opportunities: pl.DataFrame  # current rows + segment, team_id, manager_id
    changes: pl.DataFrame
    activities: pl.DataFrame
    users: pl.DataFrame
    teams: pl.DataFrame
    stages: pl.DataFrame
    rates: pl.DataFrame
    corporate_currency: str
    calendar: FiscalCalendar

    @cached_property
    def timeline(self) -> pl.DataFrame:
        """State intervals of every opportunity (analytics.snapshots), with segment and team carried."""
        return build_timeline(self.opportunities, self.changes)


def org_or_load(engine: Engine, org: OrgData | None, *, activities: bool = True) -> OrgData:
    """`org` when the caller already read it (several reports on one org share one read and one timeline),
    else the org read from `engine`. A shared `org` must have been loaded with activities if `activities`."""
    return org if org is not None else load_org(engine, activities=activities)


def load_org(engine: Engine, *, activities: bool = True) -> OrgData:
    with engine.connect() as connection:
        opportunities = frames.load_opportunities(connection)
        changes = frames.load_changes(connection)
        activity = frames.load_activities(connection) if activities else pl.DataFrame(
            schema={"opportunity_id": pl.Int64, "owner_id": pl.Int64, "type": pl.String,
                    "occurred_at": pl.Datetime("us"), "completed": pl.Boolean, "contact_id": pl.Int64})
        users = org_frames.load_users(connection)
        teams = org_frames.load_teams(connection)
        stages = org_frames.load_stages(connection)
        accounts = org_frames.load_accounts(connection)
        rates = org_frames.load_rates(connection)
        settings = read_settings(connection)
    enriched = (
        opportunities.join(accounts.select(pl.col("id").alias("account_id"), "segment"), on="account_id", how="left")
        .join(users.select(pl.col("id").alias("owner_id"), "team_id", "manager_id"), on="owner_id", how="left")
        .with_columns(pl.col("segment").fill_null("unknown"))
    )
    calendar = FiscalCalendar(start_month=int(settings["fiscal_year_start_month"]),
                              name_by_end=settings["fiscal_year_name_by_end"] == "1")
    return OrgData(enriched, changes, activity, users, teams, stages, rates, settings["corporate_currency"],
                   calendar)


def scoped(org: OrgData, scope: Scope) -> OrgData:
    """The part of `org` a user may see: the deals of the owners in `scope` (by current owner), their change
    log and activities, and those users. Every frame-based report a signed-in user asks for is computed on this
    (models may still be trained on the whole org: training data is not shown to anyone)."""
    if scope.everything:
        return org
    owners = sorted(scope.owner_ids or ())
    deals = org.opportunities.filter(pl.col("owner_id").is_in(owners))
    ids = deals["id"]
    activities = org.activities.filter(
        pl.col("opportunity_id").is_in(ids.implode()) | pl.col("owner_id").is_in(owners))
    return replace(org, opportunities=deals, changes=org.changes.filter(pl.col("opportunity_id").is_in(ids.implode())),
                   activities=activities, users=org.users.filter(pl.col("id").is_in(owners)))
