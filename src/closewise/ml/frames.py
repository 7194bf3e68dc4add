"""The frames the deal-level models read, gathered in one value so `ml/` never imports `services/`.

`OrgFrames` holds the same frames as `services.org_data.OrgData` (opportunities enriched with `segment`,
`team_id`; the change log; activities; the playbook's stages; currency rates and the corporate currency),
plus the optional exit-criteria checks that `OrgData` does not load. Build it from an `OrgData` (or anything
shaped like one, `OrgLike`) with `OrgFrames.of(org)`, or field by field in tests.

Criteria checks, when given, have the columns `opportunity_id`, `criterion_key`, `stage` (the key of the
stage the criterion belongs to), `done` (bool) and `checked_at` (naive UTC); stage criteria counts come from
`exit_criteria` (`stage`, `criterion_key`) when given, else from the keys seen in the checks.

An `OrgFrames` also keeps the deal features it has computed, per as-of date and sample rate (`feature_cache`, filled by
`ml.features.features_at`): features at a date depend only on what was known then, so every model fitted on
the same frames (a forecast and its calibration, a backtest) computes each date once. `derived` keeps the
date-independent pieces those features are read from (running totals over the change log and activities).
`OrgFrames.of` reuses the org's timeline when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Final, Protocol

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline, snapshot
from closewise.domain.periods import FiscalCalendar
from closewise.domain.timeutil import naive_utc

CRITERIA_SCHEMA: Final = {
    "opportunity_id": pl.Int64(),
    "criterion_key": pl.String(),
    "stage": pl.String(),
    "done": pl.Boolean(),
    "checked_at": s.TIMESTAMP,
}
ACTIVITY_COLUMNS: Final = ("opportunity_id", "type", "occurred_at", "contact_id")


class OrgLike(Protocol):
    """What `OrgFrames.of` reads: `services.org_data.OrgData` satisfies it."""

    @property
    def opportunities(self) -> pl.DataFrame: ...
    @property
    def changes(self) -> pl.DataFrame: ...
    @property
    def activities(self) -> pl.DataFrame: ...
    @property
    def stages(self) -> pl.DataFrame: ...
    @property
    def rates(self) -> pl.DataFrame: ...
    @property
    def corporate_currency(self) -> str: ...


@dataclass(frozen=True)
class OrgFrames:
    opportunities: pl.DataFrame
    changes: pl.DataFrame
    activities: pl.DataFrame
    stages: pl.DataFrame
    rates: pl.DataFrame
    corporate_currency: str
    criteria_checks: pl.DataFrame | None = None
    exit_criteria: pl.DataFrame | None = field(default=None)
    feature_cache: dict[tuple[datetime, float], pl.DataFrame] = field(default_factory=dict, compare=False,
                                                                      repr=False)
    fiscal_start_month: int = 1  # where fiscal quarters begin (`domain.periods.FiscalCalendar.start_month`)
    derived: dict[str, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        org: OrgLike,
        *,
        criteria_checks: pl.DataFrame | None = None,
        exit_criteria: pl.DataFrame | None = None,
    ) -> OrgFrames:
        frames = cls(
            org.opportunities,
            org.changes,
            org.activities,
            org.stages,
            org.rates,
            org.corporate_currency,
            criteria_checks,
            exit_criteria,
        )
        calendar = getattr(org, "calendar", None)
        if isinstance(calendar, FiscalCalendar):
            frames = replace(frames, fiscal_start_month=calendar.start_month)
        timeline = getattr(org, "timeline", None)
        if isinstance(timeline, pl.DataFrame):
            frames.__dict__["timeline"] = timeline  # the cached_property's slot: built once per org
        return frames

    @cached_property
    def timeline(self) -> pl.DataFrame:
        return build_timeline(self.opportunities, self.changes)

    def known_at(self, as_of: datetime) -> OrgFrames:
        """These frames as they would have been read at `as_of`: deals rolled back to their state then, the
        log, activities and checks cut at `as_of`. Features at `as_of` must not change (tests use it)."""
        at = naive_utc(as_of)
        opportunities = snapshot(self.timeline, at).drop(s.VALID_FROM).select(self.opportunities.columns)
        checks = self.criteria_checks
        return OrgFrames(
            opportunities,
            self.changes.filter(pl.col(s.CHANGED_AT) <= at),
            self.activities.filter(pl.col("occurred_at") <= at),
            self.stages,
            self.rates,
            self.corporate_currency,
            None if checks is None else checks.filter(pl.col("checked_at") <= at),
            self.exit_criteria,
            fiscal_start_month=self.fiscal_start_month,
        )
