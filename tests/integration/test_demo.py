"""`build_demo` writes a consistent, deterministic org into a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import bulk, tables
from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.domain.changes import decode, encode
from closewise.domain.enums import ChangeField
from closewise.domain.timeutil import as_utc
from closewise.errors import Conflict, InvalidInput
from closewise.services.demo import DEMO_PASSWORD, build_demo
from closewise.services.passwords import verify_password

TODAY = date(2026, 5, 15)
MIDNIGHT = datetime(2026, 5, 15, tzinfo=UTC)


@pytest.fixture
def other_engine(tmp_path: Path) -> Iterator[Engine]:
    """A second migrated, empty database beside the `engine` fixture's."""
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    if not server:
        engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(sa.make_url(server).set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    order = table.c.id if "id" in table.c else next(iter(table.primary_key.columns))
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table).order_by(order))]


def test_default_org_meets_the_minimums_and_refuses_a_second_build(engine: Engine) -> None:
    progress: list[tuple[str, int, int]] = []
    summary = build_demo(engine, seed=7, today=TODAY, progress=lambda *step: progress.append(step))
    counts = summary.counts
    assert counts["opportunities"] >= 1_000 and counts["opportunity_changes"] >= 5_000
    assert counts["users"] >= 20 and counts["activities"] >= 1_000 and counts["leads"] >= 500
    with engine.connect() as connection:
        for name in ("opportunities", "opportunity_changes", "users", "activities", "leads"):
            stored = connection.execute(sa.select(sa.func.count()).select_from(tables.metadata.tables[name]))
            assert stored.scalar_one() == counts[name]
        stages = connection.execute(sa.select(tables.stages.c.key).order_by(tables.stages.c.order)).scalars()
        assert next(iter(stages)) == "prospecting"
        assert connection.execute(sa.select(sa.func.count()).select_from(tables.exit_criteria)).scalar_one() >= 12
        quarters = set(connection.execute(sa.select(tables.quotas.c.period).distinct()).scalars())
        assert {summary.current_quarter, summary.first_quarter} <= quarters and len(quarters) >= 8
    assert {step for step, _, _ in progress} >= {"people", "opportunities", "forecasts"}
    assert {login.role for login in summary.logins} == {"leader", "admin", "manager", "rep"}
    users = {u["email"]: u for u in _rows(engine, tables.users)}
    for login in summary.logins:
        assert verify_password(users[login.email]["password_hash"], DEMO_PASSWORD)

    with pytest.raises(Conflict, match="already holds"):
        build_demo(engine, seed=7, today=TODAY)
    # Explicit ids were written: the database's own id sequence must still hand out a fresh one.
    with engine.begin() as connection:
        connection.execute(tables.teams.insert().values(name="A team added later"))


def test_change_log_agrees_with_the_current_rows(engine: Engine) -> None:
    build_demo(engine, seed=5, opportunities=600, today=TODAY)
    with engine.connect() as connection:
        # SQLite writes the demo with row-by-row foreign key checks off: check every reference now.
        assert bulk.foreign_key_violations(connection) == 0
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    opportunities = {row["id"]: row for row in _rows(engine, tables.opportunities)}
    history: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for change in sorted(_rows(engine, tables.opportunity_changes), key=lambda c: (as_utc(c["changed_at"]), c["id"])):
        history[(change["opportunity_id"], change["field"])].append(change)
        assert as_utc(change["changed_at"]) < MIDNIGHT
        assert as_utc(change["changed_at"]) >= as_utc(opportunities[change["opportunity_id"]]["created_at"])
        assert change["source"] == "demo"
        assert change["changed_by"] == opportunities[change["opportunity_id"]]["owner_id"]
    for (deal, name), changes in history.items():
        field = ChangeField(name)
        for previous, change in itertools.pairwise(changes):
            assert change["old_value"] == previous["new_value"]
            assert as_utc(change["changed_at"]) > as_utc(previous["changed_at"])
        assert changes[-1]["new_value"] == encode(field, opportunities[deal][name]), (deal, name)
        assert changes[0]["old_value"] != changes[0]["new_value"]
        decode(field, changes[-1]["new_value"])

    for opportunity in opportunities.values():
        closed = opportunity["status"] != "open"
        assert (opportunity["closed_at"] is not None) == closed
        if opportunity["status"] == "won":
            assert opportunity["forecast_category"] == "closed" and opportunity["probability"] == 100.0
        elif closed:
            assert opportunity["forecast_category"] == "omitted"
        if closed:
            status = history[(opportunity["id"], "status")]
            assert [c["new_value"] for c in status] == [opportunity["status"]]
            assert as_utc(status[0]["changed_at"]) == as_utc(opportunity["closed_at"])
            assert opportunity["close_date"] == as_utc(opportunity["closed_at"]).date()
            assert as_utc(opportunity["closed_at"]) < MIDNIGHT
        else:
            assert not history[(opportunity["id"], "status")]
    for activity in _rows(engine, tables.activities):
        if activity["completed"]:
            assert as_utc(activity["occurred_at"]) < MIDNIGHT


def test_same_seed_and_day_give_the_same_org(engine: Engine, other_engine: Engine) -> None:
    build_demo(engine, seed=3, opportunities=400, today=TODAY)
    build_demo(other_engine, seed=3, opportunities=400, today=TODAY)
    for table in tables.metadata.sorted_tables:
        first, second = _rows(engine, table), _rows(other_engine, table)
        if table is tables.users:
            # argon2 salts every hash; the hashes differ while the password they check is the same.
            for rows in (first, second):
                for row in rows:
                    row["password_hash"] = verify_password(row["password_hash"], DEMO_PASSWORD)
        assert first == second, table.name


def test_a_longer_history_spreads_the_deals_over_more_quarters(engine: Engine) -> None:
    """`history_quarters=12`: deals created from the first of the twelve quarters (2023-07-01, since 2026-05-15
    is in the quarter starting 2026-04-01 and the calendar starts fiscal years in January) up to today, quotas for
    each of the twelve, and the change log still agreeing with the rows' creation dates."""
    summary = build_demo(engine, seed=5, opportunities=600, today=TODAY, history_quarters=12)
    assert summary.first_quarter == "2023-Q3" and summary.current_quarter == "2026-Q2"
    with engine.connect() as connection:
        first, last = connection.execute(sa.select(sa.func.min(tables.opportunities.c.created_at),
                                                   sa.func.max(tables.opportunities.c.created_at))).one()
        quota_starts = set(connection.execute(sa.select(tables.quotas.c.period_start).distinct()).scalars())
        assert bulk.foreign_key_violations(connection) == 0
    assert date(2023, 7, 1) <= as_utc(first).date() < date(2023, 10, 1)  # the first quarter is used
    assert as_utc(last) < MIDNIGHT
    assert {date(2023, 7, 1), date(2026, 4, 1)} <= quota_starts


def test_a_history_outside_four_to_twenty_quarters_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="4 to 20 quarters") as refused:
        build_demo(engine, seed=5, opportunities=100, today=TODAY, history_quarters=3)
    assert refused.value.where == "--history-quarters"
    with engine.connect() as connection:
        assert bulk.count_rows(connection, tables.opportunities) == 0
