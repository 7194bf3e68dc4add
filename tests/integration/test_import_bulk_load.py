"""Bulk loading a table without its upkeep: plain indexes (and on PostgreSQL foreign keys) are dropped while a
load at least doubles the table and built again after it, and what a missing foreign key failed to do meanwhile
is done before it comes back."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import bulk_load, bulk_write, tables

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _upkeep(engine: Engine, table: sa.Table) -> set[str]:
    inspector = sa.inspect(engine)
    names = {str(index["name"]) for index in inspector.get_indexes(table.name)}
    if engine.dialect.name == "postgresql":
        names |= {str(key["name"]) for key in inspector.get_foreign_keys(table.name)}
    return names


def _expected(engine: Engine, table: sa.Table) -> set[str]:
    names = {str(index.name) for index in table.indexes if not index.unique}
    if engine.dialect.name == "postgresql":
        names |= {str(key.name) for key in table.foreign_key_constraints}
    return names


def _opportunity(connection: sa.Connection, key: str, account_id: int | None) -> int:
    values = {"source": "test", "external_id": key, "name": key, "stage": "s", "status": "open", "currency": "USD",
              "created_at": NOW, "account_id": account_id, "pipeline": "default"}
    return int(connection.execute(tables.opportunities.insert().values(values).returning(tables.opportunities.c.id))
               .scalar_one())


def test_a_load_that_doubles_the_table_goes_without_upkeep_and_gets_it_back(engine: Engine) -> None:
    table = tables.opportunities
    expected = _expected(engine, table)
    assert expected <= _upkeep(engine, table)
    with bulk_load.upkeep_deferred(engine, table=table, rows=10) as deferred:
        assert deferred
        assert not expected & _upkeep(engine, table)
        # The unique key the upsert relies on stays.
        unique = {str(item["name"]) for item in sa.inspect(engine).get_unique_constraints(table.name)}
        assert "uq_opportunities_source_external_id" in unique
    assert expected <= _upkeep(engine, table)


def test_a_load_smaller_than_the_table_keeps_the_upkeep(engine: Engine) -> None:
    with engine.begin() as connection:
        for number in range(3):
            _opportunity(connection, f"o{number}", None)
    with bulk_load.upkeep_deferred(engine, table=tables.opportunities, rows=3) as deferred:
        assert not deferred
        assert _expected(engine, tables.opportunities) <= _upkeep(engine, tables.opportunities)
    with bulk_load.upkeep_deferred(engine, table=tables.opportunities, rows=4) as deferred:
        assert deferred


def test_a_killed_load_gets_its_upkeep_back_when_the_next_import_starts(engine: Engine) -> None:
    table = tables.opportunity_changes
    load = bulk_load.upkeep_deferred(engine, table=table, rows=1)
    load.__enter__()  # and never leaves, as when the process is killed
    assert not _expected(engine, table) & _upkeep(engine, table)
    with engine.begin() as connection:
        bulk_load.restore_upkeep(connection)
    assert _expected(engine, table) <= _upkeep(engine, table)
    load.__exit__(None, None, None)  # the abandoned load, finished here so that it does not run at garbage collection
    assert _expected(engine, table) <= _upkeep(engine, table)


def test_what_a_missing_foreign_key_would_have_done_is_done_before_it_returns(engine: Engine) -> None:
    """A referenced row deleted during the load: SET NULL clears the reference, CASCADE deletes the row. (SQLite
    keeps its foreign keys, which do the same at once.)"""
    accounts, opportunities, changes = tables.accounts, tables.opportunities, tables.opportunity_changes
    with engine.begin() as connection:
        gone, kept = (int(connection.execute(accounts.insert().values(
            source="test", external_id=key, name=key, created_at=NOW).returning(accounts.c.id)).scalar_one())
            for key in ("gone", "kept"))
    with bulk_load.upkeep_deferred(engine, table=opportunities, rows=2), engine.begin() as connection:
        orphaned = _opportunity(connection, "orphaned", gone)
        linked = _opportunity(connection, "linked", kept)
        connection.execute(accounts.delete().where(accounts.c.id == gone))
    with engine.connect() as connection:
        owners = dict(connection.execute(sa.select(opportunities.c.id, opportunities.c.account_id)).all())
    assert owners == {orphaned: None, linked: kept}

    with bulk_load.upkeep_deferred(engine, table=changes, rows=2), engine.begin() as connection:
        connection.execute(changes.insert(), [
            {"opportunity_id": opportunity, "field": "stage", "changed_at": NOW, "source": "history"}
            for opportunity in (orphaned, linked)
        ])
        connection.execute(opportunities.delete().where(opportunities.c.id == orphaned))
    with engine.connect() as connection:
        assert connection.execute(sa.select(changes.c.opportunity_id)).scalars().all() == [linked]


def test_updating_half_the_table_goes_without_its_indexes_on_postgresql(engine: Engine) -> None:
    """PostgreSQL writes an entry in every index for each row an UPDATE touches; SQLite only in the indexes of
    the columns that change, so it keeps them."""
    opportunities = tables.opportunities
    with engine.begin() as connection:
        ids = [_opportunity(connection, f"o{number}", None) for number in range(4)]
    with bulk_load.indexes_deferred_for_update(engine, table=opportunities, rows=1) as deferred:
        assert not deferred
    with bulk_load.indexes_deferred_for_update(engine, table=opportunities, rows=2) as deferred:
        assert deferred is (engine.dialect.name == "postgresql")
        with engine.begin() as connection:
            updated = bulk_write.update_frame(connection, table=opportunities,
                                              frame=pl.DataFrame({"id": ids[:2], "stage": ["won over", "it's \"x\""]}))
    assert updated == 2
    assert _expected(engine, opportunities) <= _upkeep(engine, opportunities)
    with engine.connect() as connection:
        stages = dict(connection.execute(sa.select(opportunities.c.id, opportunities.c.stage)).all())
    assert stages == {ids[0]: "won over", ids[1]: "it's \"x\"", ids[2]: "s", ids[3]: "s"}
