"""The team and coaching reports kept between requests, in the app's `OrgCache` (`services.org_cache`): no
second cache, the same org read once per data stamp, and documents dropped with it.

The org cache's `data_stamp` moves with the deals, their change log and activities. These reports read more:
users and the hierarchy, quotas, forecast calls, hygiene snoozes, exit-criteria ticks, qualification answers,
contacts and leads, coaching records, deal scores, the playbook and settings. So a report's key adds
`side_stamp`: the highest id of each of those tables and of the audit log — edits in place (a user's role or
manager, a quota, a setting, the playbook, a commitment's follow-up) are all audited, so they move it too — and
the number of snoozes. Users are also part of the cached org itself (names, hierarchy, teams on the deals); when
they differ from the stored ones the org is read again (`open_cache`) under a stamp that names them, and once more
by the next caller asking under the plain data stamp — twice per users change, which is rare.

Only finished reports are kept (tens of kilobytes on the demo); the frames they are computed from, about the size
of the deals they cover, are not, so a busy cache of large orgs stays small.

A report as of now is kept for the minute (`remember_as_of`: computed at the moment it is built; in a new minute
the last minute's is answered while one background thread computes this one's, `OrgCache.remember_now`), like
the pipeline page's; a report as of a past day is kept until the data changes. Each key names the scope's owners
(and what else the report depends on), so no one is served another scope's figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import tables
from closewise.db.org_frames import load_users
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.services.org_cache import OrgCache, data_stamp
from closewise.services.org_data import OrgData

T = TypeVar("T")

_SIDE_TABLES: Final = (
    tables.audit_log, tables.users, tables.teams, tables.quotas, tables.hygiene_snoozes, tables.criteria_checks,
    tables.qualification_answers, tables.forecast_submissions, tables.coaching_notes, tables.coaching_commitments,
    tables.coaching_plans, tables.coaching_adoptions, tables.contacts, tables.leads, tables.lead_events,
    tables.deal_score_history, tables.currency_rates, tables.import_runs, tables.stages, tables.exit_criteria,
    tables.accounts,
)


def side_stamp(engine: Engine) -> str:
    """What changes when anything these reports read beside the org's deals changes (see the module header), in
    one round trip."""
    highest = [sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)).scalar_subquery() for table in _SIDE_TABLES]
    snoozes = sa.select(sa.func.count()).select_from(tables.hygiene_snoozes).scalar_subquery()
    with engine.connect() as connection:
        row = connection.execute(sa.select(*highest, snoozes)).one()
    return "-".join(str(value) for value in row)


@dataclass(frozen=True)
class ReportCache:
    """One request's view of the cache: the org as read for the current stamps, and `remember` keyed by them."""

    orgs: OrgCache
    stamp: str
    side: str
    org: OrgData

    def remember(self, kind: str, key: tuple[Hashable, ...], build: Callable[[], T]) -> T:
        """`build()`, kept under (`kind`, the stamps, `key`) until the data changes; `key` must name everything
        else the result depends on (the scope's owners, the moment, the options)."""
        value: T = self.orgs.remember((kind, self.stamp, self.side, *key), build)
        return value

    def remember_as_of(self, kind: str, key: tuple[Hashable, ...], as_of: datetime | None,
                       build: Callable[[], T]) -> T:
        """`remember` for a report as of `as_of`; as of now (None) the minute's report, the last minute's while
        this one's is built in the background. `build` reads the clock itself when `as_of` is None."""
        if as_of is not None:
            return self.remember(kind, (*key, moment_key(as_of)), build)
        value: T = self.orgs.remember_now((kind, self.stamp, self.side, *key), moment_key(None)[1],
                                          lambda _minute: build())
        return value

    def scoped(self, scope: Scope) -> OrgData:
        """The part of the org `scope` sees (`services.org_data.scoped`), kept so its timeline is built once."""
        return self.orgs.scoped(self.stamp, self.org, scope)


def open_cache(engine: Engine, orgs: OrgCache) -> ReportCache:
    """The org for the current data (read again if its users changed since it was read) and the stamps."""
    side = side_stamp(engine)
    stamp, org = orgs.org(engine)
    with engine.connect() as connection:
        users = load_users(connection)
    if not users.equals(org.users):
        digest = hashlib.sha256(users.write_csv().encode()).hexdigest()[:16]
        stamp, org = orgs.org(engine, stamp=f"{data_stamp(engine)}:users-{digest}")
    return ReportCache(orgs=orgs, stamp=stamp, side=side, org=org)


def moment_key(as_of: datetime | None) -> tuple[str, Any]:
    """How a report's moment enters its key: a given moment as itself, now as the current minute."""
    if as_of is None:
        return ("now", utcnow().replace(second=0, microsecond=0))
    return ("at", as_utc(as_of))
