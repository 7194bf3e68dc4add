"""Build the seeded demo org into an empty database (`closewise demo`).

The generator (`closewise.demo`) is pure and yields row batches; this use case checks the database is
empty, seeds the default playbook, org settings and currency rates where missing, then writes the batches
one transaction each, so memory stays bounded at any size and progress can be reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from queue import Full, Queue
from typing import Any, Final

from sqlalchemy.engine import Connection, Engine

from closewise.db import bulk, tables
from closewise.db.org_settings import read_settings
from closewise.demo.generator import Batch, DemoGenerator
from closewise.demo.plan import (
    DEFAULT_OPPORTUNITIES,
    HISTORY_QUARTERS,
    HISTORY_QUARTERS_RANGE,
    SOURCE,
    DemoPlan,
    IdBase,
)
from closewise.demo.reference import ORG_SETTINGS, currency_rate_rows, framework_rows, stage_rows
from closewise.domain.periods import FiscalCalendar
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, InvalidInput
from closewise.playbook.default import DEFAULT_PLAYBOOK
from closewise.services.passwords import hash_password

DEMO_PASSWORD: Final = "closewise-demo"
Progress = Callable[[str, int, int], None]

# Tables the generator numbers rows of; their current maximum ids are where it starts.
_NUMBERED: Final = (
    tables.teams,
    tables.users,
    tables.accounts,
    tables.contacts,
    tables.leads,
    tables.opportunities,
    tables.opportunity_changes,
    tables.activities,
    tables.criteria_checks,
    tables.qualification_answers,
    tables.quotas,
    tables.forecast_submissions,
)
_REFERENCE: Final = (tables.stages, tables.exit_criteria, tables.qualification_frameworks, tables.currency_rates)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    password: str


@dataclass(frozen=True)
class DemoSummary:
    seed: int
    today: date
    current_quarter: str
    first_quarter: str
    counts: dict[str, int]
    logins: list[DemoLogin]
    # Emails of the reps each planted behaviour applies to (docs/demo.md).
    planted: dict[str, list[str]] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # argon2 is slow on purpose: hash the shared demo password once per process.
    return hash_password(DEMO_PASSWORD)


def build_demo(
    engine: Engine,
    *,
    seed: int = 7,
    opportunities: int | None = None,
    today: date | None = None,
    progress: Progress | None = None,
    history_quarters: int = HISTORY_QUARTERS,
) -> DemoSummary:
    """Build the demo org into an empty database: `opportunities` deals (default ~2,500) over `history_quarters`
    fiscal quarters ending with the one holding `today` (a longer history spreads the same deals thinner)."""
    size = DEFAULT_OPPORTUNITIES if opportunities is None else opportunities
    if size < 1:
        raise InvalidInput(f"the demo org needs at least one opportunity, got {size}", where="--opportunities")
    low, high = HISTORY_QUARTERS_RANGE
    if not low <= history_quarters <= high:
        raise InvalidInput(f"the history must be {low} to {high} quarters, got {history_quarters}",
                           where="--history-quarters")
    anchor = today or utcnow().date()
    with engine.begin() as connection:
        held = bulk.count_rows(connection, tables.opportunities)
        if held:
            raise Conflict(f"the database already holds {held:,} opportunities; build the demo into an empty one")
        partial = bulk.count_rows(connection, tables.user_external_ids, tables.user_external_ids.c.source == SOURCE)
        if partial:
            raise Conflict("the database holds part of an earlier demo org; build the demo into an empty one")
        settings = read_settings(connection)
        last = bulk.last_ids(connection, _NUMBERED + _REFERENCE)
    calendar = FiscalCalendar(int(settings["fiscal_year_start_month"]), settings["fiscal_year_name_by_end"] == "1")
    plan = DemoPlan(seed=seed, today=anchor, opportunities=size, ids=IdBase(last), calendar=calendar,
                    history_quarters=history_quarters)
    generator = DemoGenerator(plan, _password_hash())

    with engine.begin() as connection:
        _seed_reference(connection, plan, last)
    with engine.connect() as connection, bulk.bulk_loading(connection):
        for batch in _prefetched(generator.batches()):
            bulk.insert_rows(connection, tables.metadata.tables[batch.table], batch.rows)
            connection.commit()
            if progress is not None:
                progress(batch.step, batch.done, batch.total)
        bulk.advance_id_sequences(connection, _NUMBERED + _REFERENCE)
        connection.commit()

    quarters = plan.quarters
    return DemoSummary(
        seed=seed,
        today=anchor,
        current_quarter=quarters[-1].label,
        first_quarter=quarters[0].label,
        counts={
            name: generator.counts.get(name, 0)
            for name in (
                "opportunities",
                "opportunity_changes",
                "users",
                "accounts",
                "contacts",
                "activities",
                "leads",
                "criteria_checks",
                "qualification_answers",
                "quotas",
                "forecast_submissions",
            )
        },
        logins=[DemoLogin(login.email, login.role, DEMO_PASSWORD) for login in generator.logins],
        planted=generator.planted(),
    )


def _prefetched(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """The batches, generated on a worker thread up to `depth` ahead while the caller writes: numpy and
    the database drivers release the GIL for much of their work, so generating and writing overlap."""
    handoff: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the caller's thread, raised there
            put(("error", exc))

    worker = threading.Thread(target=work, name="demo-generator", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def _seed_reference(connection: Connection, plan: DemoPlan, last: dict[str, int]) -> None:
    """The default playbook, org settings and currency rates, each only where the org has none yet."""
    if not bulk.count_rows(connection, tables.stages):
        stages, criteria = stage_rows(DEFAULT_PLAYBOOK, last["stages"] + 1, last["exit_criteria"] + 1)
        bulk.insert_rows(connection, tables.stages, stages)
        bulk.insert_rows(connection, tables.exit_criteria, criteria)
    known = bulk.existing_values(connection, tables.qualification_frameworks.c.key)
    frameworks = [row for row in framework_rows(DEFAULT_PLAYBOOK, 0) if row["key"] not in known]
    first = last["qualification_frameworks"] + 1
    bulk.insert_rows(connection, tables.qualification_frameworks,
                     [{**row, "id": first + i} for i, row in enumerate(frameworks)])  # fmt: skip
    stored = bulk.existing_values(connection, tables.org_settings.c.key)
    bulk.insert_rows(
        connection,
        tables.org_settings,
        [{"key": key, "value": value} for key, value in ORG_SETTINGS.items() if key not in stored],
    )
    rated = bulk.existing_values(connection, tables.currency_rates.c.currency)
    rates = [row for row in currency_rate_rows(plan, 0) if row["currency"] not in rated]
    first = last["currency_rates"] + 1
    bulk.insert_rows(connection, tables.currency_rates, [{**row, "id": first + i} for i, row in enumerate(rates)])
