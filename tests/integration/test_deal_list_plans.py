"""The deal list's queries use the indexes migration 0008 adds, and `closewise serve` gives SQLite's planner
statistics when it has none or the table has changed size a lot (`db.engine.refresh_planner_statistics`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from closewise.db import deals as queries
from closewise.db.engine import refresh_planner_statistics
from closewise.db.tables import opportunities
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.domain.timeutil import utcnow
from closewise.services.users import add_user


def _add_deals(engine: Engine, count: int, *, owners: list[int], start: int = 0) -> None:
    now = utcnow()
    rows = [{"source": "test", "external_id": f"d{start + i}", "name": f"Deal {start + i:05d}",
             "owner_id": owners[i % len(owners)], "stage": ("discovery", "proposal")[i % 2],
             "status": ("open", "won", "lost")[i % 3], "amount": 1000 + i, "currency": "USD",
             "close_date": date(2026, 1, 1) + timedelta(days=i % 365), "created_at": now}
            for i in range(count)]
    with engine.begin() as connection:
        connection.execute(opportunities.insert(), rows)


@pytest.fixture
def owners(engine: Engine) -> list[int]:
    boss = add_user(engine, email="mia.manager@example.com", role="manager")
    reps = [add_user(engine, email=f"rep{i}@example.com", role="rep", manager_email="mia.manager@example.com")
            for i in range(3)]
    others = [add_user(engine, email=f"other{i}@example.com", role="rep") for i in range(6)]
    return [boss.id, *(r.id for r in reps), *(o.id for o in others)]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, object]]]:
    seen: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _plans(engine: Engine, statements: list[tuple[str, object]]) -> list[str]:
    statements = list(statements)  # the EXPLAINs below are recorded too
    with engine.connect() as connection:
        return [" | ".join(str(row[3]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in statements]  # type: ignore[arg-type]


@pytest.mark.sqlite_only
def test_a_managers_count_uses_the_owner_status_index(engine: Engine, owners: list[int],
                                                              statements: list[tuple[str, object]]) -> None:
    _add_deals(engine, 2000, owners=owners)
    team = frozenset(owners[:4])
    scope = Scope(user_id=owners[0], role=Role.MANAGER, owner_ids=team)
    with engine.connect() as connection:
        statements.clear()
        items, total = queries.list_deals(connection, scope=scope,
                                          filters=queries.DealFilter(status="open", limit=20))
    count = _plans(engine, statements)[-1]
    # The page may walk (status, close_date) in order instead: both avoid reading the whole org.
    assert "ix_opportunities_owner_status_close_date" in count
    # The same answer as counting by hand: every third deal is open, owners take turns.
    assert total == sum(1 for i in range(2000) if i % 3 == 0 and owners[i % len(owners)] in team)
    assert len(items) == 20


@pytest.mark.sqlite_only
def test_the_whole_org_by_name_reads_the_name_index(engine: Engine, owners: list[int],
                                                   statements: list[tuple[str, object]]) -> None:
    _add_deals(engine, 1500, owners=owners)
    scope = Scope(user_id=owners[0], role=Role.ADMIN, owner_ids=None)
    with engine.connect() as connection:
        statements.clear()
        items, _ = queries.list_deals(connection, scope=scope, filters=queries.DealFilter(sort="name", limit=5))
    assert "ix_opportunities_name" in _plans(engine, statements)[0]
    assert [item["name"] for item in items] == [f"Deal {i:05d}" for i in range(5)]


@pytest.mark.sqlite_only
def test_statistics_are_taken_when_missing_and_when_the_table_has_changed_size(engine: Engine,
                                                                               owners: list[int]) -> None:
    _add_deals(engine, 600, owners=owners)
    assert not refresh_planner_statistics(engine)  # small: any plan is quick
    _add_deals(engine, 600, owners=owners, start=600)
    assert refresh_planner_statistics(engine)  # 1,200 deals and no statistics
    assert not refresh_planner_statistics(engine)  # taken at this size
    _add_deals(engine, 1300, owners=owners, start=1200)
    assert refresh_planner_statistics(engine)  # more than twice the size they were taken at
    with engine.connect() as connection:
        stat = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_opportunities_owner_status_close_date'").scalar_one()
    assert int(str(stat).split()[0]) == 2500


def test_postgresql_keeps_its_own_statistics(engine: Engine, owners: list[int]) -> None:
    _add_deals(engine, 1200, owners=owners)
    assert refresh_planner_statistics(engine) is (engine.dialect.name == "sqlite")
