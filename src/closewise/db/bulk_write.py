"""Writing many rows at once without per-row SQLAlchemy work: one executemany on SQLite, one COPY on
PostgreSQL.

SQLAlchemy's executemany spends ~15 µs a row binding parameters, and INSERT ... RETURNING runs row by row
on SQLite. Imports write millions of rows, so they go to the driver directly, with values already in the
storage format the column expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

# `fast_insert` takes rows of plain Python values: str, int, float, bool, date, aware-UTC datetime, dict for
# JSON, None. `insert_frame` takes a Polars frame.


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy stores SQLite datetimes as naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff`; keep to it.
    if value is None:
        return None
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _boolean(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _converters(table: sa.Table, names: list[str], dialect: str) -> list[Callable[[Any], Any] | None]:
    """One converter per column from its SQL type (None: the driver takes the value as it is)."""
    converters: list[Callable[[Any], Any] | None] = []
    for name in names:
        kind = table.c[name].type
        if isinstance(kind, sa.JSON):
            converters.append(_json_text)
        elif dialect != "sqlite":
            converters.append(None)
        elif isinstance(kind, sa.DateTime):
            converters.append(_sqlite_datetime)
        elif isinstance(kind, sa.Date):
            converters.append(_iso_date)
        elif isinstance(kind, sa.Boolean):
            converters.append(_boolean)
        else:
            converters.append(None)
    return converters


def _tuples(rows: Sequence[Mapping[str, Any]], names: list[str],
            converters: list[Callable[[Any], Any] | None]) -> list[tuple[Any, ...]]:
    # Column by column: one comprehension per column is several times faster than a generator per row.
    columns = []
    for name, convert in zip(names, converters, strict=True):
        values = [row.get(name) for row in rows]
        columns.append(values if convert is None else [convert(value) for value in values])
    return list(zip(*columns, strict=True))


def fast_insert(connection: Connection, *, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows (any keys; a missing key is NULL) without per-row SQLAlchemy work; returns the count."""
    if not rows:
        return 0
    names = list(dict.fromkeys(name for row in rows for name in row))
    quoted = ", ".join(f'"{name}"' for name in names)
    raw = connection.connection.driver_connection
    assert raw is not None
    dialect = connection.dialect.name
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in names)
        cursor = raw.cursor()
        try:
            cursor.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})',
                               _tuples(rows, names, _converters(table, names, dialect)))
        finally:
            cursor.close()
        return len(rows)
    if dialect == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
            for values in _tuples(rows, names, _converters(table, names, dialect)):
                copy.write_row(values)
        keep_statistics(connection, table=table)
        return len(rows)
    connection.execute(table.insert(), [{name: row.get(name) for name in names} for row in rows])
    return len(rows)


def keep_statistics(connection: Connection, *, table: sa.Table) -> None:
    """Analyze a PostgreSQL table an import is filling once the planner's statistics no longer describe it.

    Look-ups by key (`source = ? AND external_id IN (...)`) are planned from the table's statistics. A table
    filled since its last ANALYZE (autovacuum may be off, or not have run yet) looks empty to the planner,
    which then scans it whole for every look-up: the 100,000 accounts of a Salesforce export took minutes
    to load that way. So after a bulk write, a table never analyzed with rows in it, or grown more than
    fourfold since, is analyzed (a sample of at most 30,000 rows: well under a second).
    """
    if connection.dialect.name != "postgresql":
        return
    query = sa.text("SELECT reltuples, relpages, pg_relation_size(oid) / current_setting('block_size')::int "
                    "FROM pg_class WHERE oid = CAST(:name AS regclass)")
    row = connection.execute(query, {"name": table.name}).one()
    known_rows, known_pages, pages = float(row[0]), int(row[1]), int(row[2])
    if known_rows <= 0 or pages > 4 * known_pages:
        connection.exec_driver_sql(f'ANALYZE "{table.name}"')


def _sqlite_storage(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame's values in SQLite's storage format, as SQLAlchemy writes them (datetimes and dates as text,
    booleans as 0/1)."""
    return frame.with_columns(
        [pl.col(name).dt.strftime("%Y-%m-%d %H:%M:%S%.6f") for name, dtype in frame.schema.items()
         if dtype == pl.Datetime]
        + [pl.col(name).dt.strftime("%Y-%m-%d") for name, dtype in frame.schema.items() if dtype == pl.Date]
        + [pl.col(name).cast(pl.Int64) for name, dtype in frame.schema.items() if dtype == pl.Boolean]
    )


def insert_frame(connection: Connection, *, table: sa.Table, frame: pl.DataFrame) -> int:
    """Insert a frame whose columns are named after `table`'s, typed as Polars (datetimes naive UTC, JSON
    columns as their text); one executemany on SQLite, one CSV COPY on PostgreSQL. Returns the count."""
    if frame.is_empty():
        return 0
    # A column NULL in every row is left out (it is NULL all the same): binding the values is most of what
    # an insert costs SQLite, and a CRM export often leaves a third of the columns empty.
    frame = frame.select(name for name in frame.columns if frame.get_column(name).null_count() < frame.height
                         or table.c[name].server_default is not None)
    names = frame.columns
    quoted = ", ".join(f'"{name}"' for name in names)
    raw = connection.connection.driver_connection
    assert raw is not None
    dialect = connection.dialect.name
    if dialect == "postgresql":
        text = frame.write_csv(include_header=False, quote_style="non_numeric", date_format="%Y-%m-%d",
                               datetime_format="%Y-%m-%d %H:%M:%S%.6f+00:00", null_value="")
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT csv)') as copy:
            copy.write(text.encode("utf-8"))
        keep_statistics(connection, table=table)
        return frame.height
    if dialect != "sqlite":
        connection.execute(table.insert(), frame.to_dicts())
        return frame.height
    stored = _sqlite_storage(frame)
    # A column holding one value in every row is written into the statement instead of bound row by row (an
    # import's source, run, pipeline, time...).
    constants = {name: _sqlite_literal(stored.get_column(name)) for name in names}
    bound = [name for name in names if constants[name] is None]
    values = ", ".join(constants[name] or "?" for name in names)
    cursor = raw.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({values})',
                           stored.select(bound).iter_rows() if bound else ([()] * stored.height))
    finally:
        cursor.close()
    return frame.height


def _sqlite_literal(column: pl.Series) -> str | None:
    """The SQL literal of the one value of a column that holds the same text or integer in every row, else None."""
    if column.len() < 2 or column.null_count() or column.dtype not in (pl.String, pl.Int64, pl.Int32):
        return None
    first = column[0]
    if not (column == first).all():
        return None
    if isinstance(first, str):
        return None if "\x00" in first else "'" + first.replace("'", "''") + "'"
    return str(int(first))


def update_frame(connection: Connection, *, table: sa.Table, frame: pl.DataFrame) -> int:
    """Set the columns of `frame` (named after `table`'s, typed as for `insert_frame`) on the rows whose `id`
    it gives: one executemany on SQLite; on PostgreSQL one COPY into a temporary table and one UPDATE ... FROM
    (row by row it costs a round trip and a statement each). Returns the count."""
    if frame.is_empty():
        return 0
    names = [name for name in frame.columns if name != "id"]
    raw = connection.connection.driver_connection
    assert raw is not None
    if connection.dialect.name == "postgresql":
        staging = f"_closewise_update_{table.name}"
        quoted = ", ".join(f'"{name}"' for name in ["id", *names])
        connection.exec_driver_sql(f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '
                                   f'SELECT {quoted} FROM "{table.name}" WITH NO DATA')
        text = frame.select("id", *names).write_csv(include_header=False, quote_style="non_numeric",
                                                    date_format="%Y-%m-%d", null_value="",
                                                    datetime_format="%Y-%m-%d %H:%M:%S%.6f+00:00")
        with raw.cursor() as cursor, cursor.copy(f'COPY "{staging}" ({quoted}) FROM STDIN (FORMAT csv)') as copy:
            copy.write(text.encode("utf-8"))
        assignments = ", ".join(f'"{name}" = u."{name}"' for name in names)
        connection.exec_driver_sql(f'UPDATE "{table.name}" AS t SET {assignments} FROM "{staging}" AS u '
                                   "WHERE t.id = u.id")
        connection.exec_driver_sql(f'DROP TABLE "{staging}"')
        return frame.height
    if connection.dialect.name != "sqlite":
        statement = table.update().where(table.c.id == sa.bindparam("_id")).values(
            {name: sa.bindparam(name) for name in names})
        connection.execute(statement, [{"_id": row.pop("id"), **row} for row in frame.to_dicts()])
        return frame.height
    stored = _sqlite_storage(frame.select(*names, "id"))
    assignments = ", ".join(f'"{name}" = ?' for name in names)
    cursor = raw.cursor()
    try:
        cursor.executemany(f'UPDATE "{table.name}" SET {assignments} WHERE id = ?', stored.iter_rows())
    finally:
        cursor.close()
    return frame.height
