"""Bulk writes for generated or imported data: ids, counts and multi-row inserts with SQLAlchemy Core.

Rows carry their own ids (so rows written in one batch can reference rows of another without a round
trip); on PostgreSQL the id sequences are moved past them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def last_ids(connection: Connection, tables: Iterable[sa.Table]) -> dict[str, int]:
    """The highest id in each table (0 when empty)."""
    return {
        table.name: int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one())
        for table in tables
    }


def count_rows(connection: Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    for condition in where:
        query = query.where(condition)
    return int(connection.execute(query).scalar_one())


def existing_values(connection: Connection, column: sa.Column[Any]) -> set[Any]:
    return set(connection.execute(sa.select(column).distinct()).scalars())


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """One executemany of `rows` (all with the same keys) into `table`; returns the number written.

    Values go through each column type's bind processor, as `connection.execute(table.insert(), rows)`
    would do, but a column at a time rather than a row at a time: per-row parameter handling is most of the
    cost of a million-row insert on SQLite.
    """
    if not rows:
        return 0
    dialect = connection.dialect
    placeholder = _PLACEHOLDERS.get(dialect.paramstyle)
    if placeholder is None:
        connection.execute(table.insert(), list(rows))
        return len(rows)
    keys = list(rows[0])
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(table.c[key].name) for key in keys)}) "
        f"VALUES ({', '.join(placeholder for _ in keys)})"
    )
    columns: list[list[Any]] = []
    for key in keys:
        values = [row[key] for row in rows]
        process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append([process(value) for value in values] if process is not None else values)
    connection.exec_driver_sql(statement, list(zip(*columns, strict=True)))
    return len(rows)


def advance_id_sequences(connection: Connection, tables: Iterable[sa.Table]) -> None:
    """After inserting explicit ids, make PostgreSQL's serial sequences continue after the largest one
    (SQLite needs nothing: its rowids follow the maximum)."""
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        connection.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table.name}"), false)'
            ),
            {"name": table.name},
        )


@contextmanager
def bulk_loading(connection: Connection) -> Iterator[Connection]:
    """Settings for writing millions of generated rows on SQLite: foreign keys are not checked row by row
    (the generator numbers every row itself; the demo's tests check the references with
    `PRAGMA foreign_key_check`, and PostgreSQL enforces them always) and a larger page cache (128 MiB)
    keeps index updates in memory. Restored when the block ends, before the connection returns to the pool.
    """
    if connection.dialect.name != "sqlite":
        yield connection
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.exec_driver_sql("PRAGMA cache_size=-131072")
    try:
        yield connection
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA cache_size=-2000")
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def foreign_key_violations(connection: Connection) -> int:
    """Rows whose references point nowhere (SQLite only; PostgreSQL refuses them on insert)."""
    if connection.dialect.name != "sqlite":
        return 0
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
