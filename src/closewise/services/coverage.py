"""Coverage of a period's target (`closewise coverage`): read the org, default the target to its quotas, and
ask `analytics.coverage` with what was known at `as_of`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from closewise.analytics.coverage import CoverageReport, CoverageSettings, coverage
from closewise.analytics.targets import target_from_quotas
from closewise.db.quotas import load_quotas_within
from closewise.domain.timeutil import utcnow
from closewise.errors import InvalidInput
from closewise.services.org_data import OrgData, org_or_load


def coverage_report(
    engine: Engine,
    *,
    period: str,
    target: float | None = None,
    as_of: datetime | None = None,
    settings: CoverageSettings | None = None,
    org: OrgData | None = None,
) -> CoverageReport:
    """Coverage of `target` (default: the sum of the period's quotas, counted once) in `period` at `as_of`
    (default: now). `org`: the org already read, to share between reports (read from `engine` when None)."""
    org = org_or_load(engine, org, activities=False)
    span = org.calendar.parse(period)
    if target is None:
        with engine.connect() as connection:
            quotas = load_quotas_within(connection, start=span.start, last_day=span.last_day)
        found = target_from_quotas(quotas, org.users, span, org.rates, corporate=org.corporate_currency)
        if found is None:
            raise InvalidInput(f"no quota is stored for {span.label}; give the target with --target AMOUNT")
        target = found.amount
    return coverage(
        org.timeline,
        period=span,
        as_of=as_of or utcnow(),
        target=target,
        calendar=org.calendar,
        rates=org.rates,
        corporate=org.corporate_currency,
        stage_order=org.stages["key"].to_list(),
        settings=settings,
    )
