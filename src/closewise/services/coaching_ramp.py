"""The new-hire ramp as a signed-in user sees it: cohort curves by month of tenure (`coaching.ramp`) and each
new hire the user sees against the cohort norm, flagged when behind, with the behaviours they lag in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.coaching import ramp as ramp_rules
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.services.coaching_data import (
    CoachingData,
    everyone,
    json_row,
    json_safe,
    load,
    quarterly_quotas,
    reps_in_sight,
)
from closewise.services.report_cache import ReportCache


@dataclass(frozen=True)
class RampReport:
    as_of: datetime
    currency: str
    data_start: date | None
    cohort: list[dict[str, Any]]
    norm: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    new_hires: list[dict[str, Any]]
    options: ramp_rules.RampOptions

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "currency": self.currency,
                "data_start": self.data_start.isoformat() if self.data_start else None,
                "month_days": ramp_rules.MONTH_DAYS, "behind_ratio": self.options.behind_ratio,
                "cohort": self.cohort, "norm": self.norm, "curves": self.curves, "new_hires": self.new_hires}


def new_hire_ramp(engine: Engine, *, scope: Scope, as_of: datetime | None = None,
                  options: ramp_rules.RampOptions | None = None, data: CoachingData | None = None,
                  cache: ReportCache | None = None) -> RampReport:
    """Cohort curves by month of tenure and each new hire the user sees against the cohort norm. The norm is the
    org's cohort (every rep whose first months the data shows): a manager's own few hires are no norm; only
    aggregates of it are shown, never another team's reps by name. With a `cache` (`services.report_cache`) the
    report is kept there."""
    if cache is not None and data is None:
        return cache.remember_as_of("ramp", (scope.owner_ids, options), as_of, lambda: _ramp(
            engine, scope, load(engine, scope=scope, as_of=as_of, cache=cache), options, cache))
    return _ramp(engine, scope, data or load(engine, scope=scope, as_of=as_of), options, None)


def _ramp(engine: Engine, scope: Scope, data: CoachingData, options: ramp_rules.RampOptions | None,
          cache: ReportCache | None) -> RampReport:
    opts = options or ramp_rules.RampOptions()
    whole = data if scope.everything else load(engine, scope=everyone(scope), as_of=data.at, org=data.org,
                                                cache=cache)
    reps = _rep_segments(whole, whole.org.users.filter(pl.col("role") == Role.REP.value, pl.col("active")))
    start = ramp_rules.first_deal_at(whole.deals)
    if start is None:
        return RampReport(as_of=data.at, currency=data.org.corporate_currency, data_start=None, cohort=[], norm=[],
                          curves=[], new_hires=[], options=opts)
    quotas = quarterly_quotas(engine, whole, (start - timedelta(days=400)).date())
    curves = ramp_rules.ramp_curves(reps, whole.deals, whole.org.activities, quotas, as_of=data.at, data_start=start,
                                    months=opts.months)
    behaviours = whole.behaviours.join(reps.select(pl.col("id").alias("owner_id"), "hire_date"), on="owner_id",
                                       how="left")
    result = ramp_rules.assess(reps, curves, behaviours, as_of=data.at, data_start=start, options=opts)
    names = dict(zip(reps["id"].to_list(), reps["name"].to_list(), strict=True))
    seen = {int(i) for i in reps_in_sight(data)["id"].to_list()}
    visible_curves = curves.filter(pl.col("rep_id").is_in(sorted(seen)))
    return RampReport(
        as_of=data.at, currency=data.org.corporate_currency, data_start=result.data_start,
        cohort=[{"rep_id": r, "name": names.get(r)} for r in result.cohort if r in seen],
        norm=[json_row(row) for row in result.norm.iter_rows(named=True)],
        curves=[json_row(row) for row in visible_curves.iter_rows(named=True)],
        new_hires=[json_safe(h) for h in result.new_hires if h["rep_id"] in seen], options=opts)


def _rep_segments(data: CoachingData, reps: pl.DataFrame) -> pl.DataFrame:
    """`reps` with `segment`: the segment most of the rep's deals are in (else their team's reps' segment)."""
    by_rep = (data.org.opportunities.group_by("owner_id", "segment").agg(pl.len().alias("_n"))
              .sort(["owner_id", "_n", "segment"], descending=[False, True, False])
              .group_by("owner_id", maintain_order=True).first().select(pl.col("owner_id").alias("id"), "segment"))
    by_team = (data.org.opportunities.filter(pl.col("team_id").is_not_null()).group_by("team_id", "segment")
               .agg(pl.len().alias("_n")).sort(["team_id", "_n", "segment"], descending=[False, True, False])
               .group_by("team_id", maintain_order=True).first().select("team_id", pl.col("segment").alias("_ts")))
    return (reps.join(by_rep, on="id", how="left").join(by_team, on="team_id", how="left")
            .with_columns(pl.coalesce("segment", "_ts", pl.lit("unknown")).alias("segment")).drop("_ts"))
