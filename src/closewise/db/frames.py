"""Opportunities and their change log as Polars frames (`closewise.analytics.schema`), for the analytics.

Millions of rows, so the work is kept off Python's per-value path (measured on SQLite, 1.2M changes:
through SQLAlchemy result rows ~4 s, through the driver's cursor ~2 s):

- the query is built with SQLAlchemy Core, then run on the driver's own cursor (a server-side, named
  cursor on PostgreSQL, so rows stream instead of landing in client memory at once) and fetched in batches,
  each batch becoming a frame at once;
- values a driver would convert one by one are converted by Polars or the server: on SQLite, timestamps and
  dates arrive as text and are parsed vectorised; on PostgreSQL `timezone('UTC', ...)` turns each timestamp
  into a naive UTC value whatever the session's zone; amounts are cast to floating point in SQL (psycopg
  would hand out `Decimal`s);
- no ORDER BY: the rows are sorted by Polars once loaded.

Measured on SQLite (a shared 2-vCPU container): 1M opportunities load in ~4.8 s, 6.1M changes in ~16.5 s,
peak RSS 1.8 GiB.

Timestamps come out as naive `Datetime("us")` holding UTC (SQLite stores the UTC wall time without a zone;
an offset written by hand into SQLite is honoured).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.analytics import schema as s
from closewise.db import tables
from closewise.errors import DatabaseError

BATCH_ROWS: Final = 100_000

# How a column is read: as it comes, as text to parse (SQLite) or converted in SQL.
_STRAIGHT, _TIMESTAMP, _DATE, _FLOAT = "straight", "timestamp", "date", "float"


def load_opportunities(connection: Connection) -> pl.DataFrame:
    """Every opportunity's current state, one row each, sorted by `id` (analytics.schema opportunities)."""
    kinds = {
        s.ID: _STRAIGHT,
        s.OWNER_ID: _STRAIGHT,
        s.ACCOUNT_ID: _STRAIGHT,
        s.STAGE: _STRAIGHT,
        s.STATUS: _STRAIGHT,
        s.AMOUNT: _FLOAT,
        s.CURRENCY: _STRAIGHT,
        s.CLOSE_DATE: _DATE,
        s.FORECAST_CATEGORY: _STRAIGHT,
        s.PROBABILITY: _FLOAT,
        s.NEXT_STEP: _STRAIGHT,
        s.CREATED_AT: _TIMESTAMP,
        s.CLOSED_AT: _TIMESTAMP,
    }
    return _load(connection, tables.opportunities, kinds, s.OPPORTUNITY_SCHEMA).sort(s.ID)


def load_changes(connection: Connection) -> pl.DataFrame:
    """The whole change log (analytics.schema changes) in the order it was written: by `changed_at`, then
    by row id, which is how changes at one instant are ordered."""
    kinds = {
        "id": _STRAIGHT,
        s.OPPORTUNITY_ID: _STRAIGHT,
        s.FIELD: _STRAIGHT,
        s.OLD_VALUE: _STRAIGHT,
        s.NEW_VALUE: _STRAIGHT,
        s.CHANGED_AT: _TIMESTAMP,
    }
    frame = _load(connection, tables.opportunity_changes, kinds, {"id": pl.Int64(), **s.CHANGE_SCHEMA})
    return frame.sort(s.CHANGED_AT, "id").drop("id")


def load_activities(connection: Connection) -> pl.DataFrame:
    """Activities on opportunities (for recency, mix and engagement), sorted by opportunity and time."""
    kinds = {
        "opportunity_id": _STRAIGHT,
        "owner_id": _STRAIGHT,
        "type": _STRAIGHT,
        "occurred_at": _TIMESTAMP,
        "completed": _STRAIGHT,
        "contact_id": _STRAIGHT,
    }
    dtypes = {"opportunity_id": pl.Int64(), "owner_id": pl.Int64(), "type": pl.String(),
              "occurred_at": s.TIMESTAMP, "completed": pl.Boolean(), "contact_id": pl.Int64()}
    frame = _load(connection, tables.activities, kinds, dtypes)
    return frame.filter(pl.col("opportunity_id").is_not_null()).sort("opportunity_id", "occurred_at")


def load_criteria_checks(connection: Connection) -> pl.DataFrame:
    """Every exit-criterion check (`opportunity_id`, `criterion_key`, `done`, `checked_at`), in the table's
    order, as `db.playbook.load_checks` reads them, through the batch path above (6.5M checks of the
    1M-deal demo: ~32 s CPU one row at a time)."""
    kinds = {"opportunity_id": _STRAIGHT, "criterion_key": _STRAIGHT, "done": _STRAIGHT, "checked_at": _TIMESTAMP}
    dtypes = {"opportunity_id": pl.Int64(), "criterion_key": pl.String(), "done": pl.Boolean(),
              "checked_at": s.TIMESTAMP}
    return _load(connection, tables.criteria_checks, kinds, dtypes)


def _load(
    connection: Connection, table: sa.Table, kinds: Mapping[str, str], dtypes: Mapping[str, pl.DataType]
) -> pl.DataFrame:
    sqlite = connection.dialect.name == "sqlite"
    query = sa.select(*(_fetch(table.c[name], kind, sqlite=sqlite).label(name) for name, kind in kinds.items()))
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    # SQLite hands timestamps and dates out as text, parsed below.
    schema = {
        name: pl.String() if sqlite and kind in (_TIMESTAMP, _DATE) else dtypes[name] for name, kind in kinds.items()
    }
    batches = [pl.DataFrame(rows, schema=schema, orient="row") for rows in _batches(connection, sql)]
    frame = pl.concat(batches, how="vertical") if batches else pl.DataFrame(schema=schema)
    return _parse_sqlite_text(frame, table.name, kinds) if sqlite else frame


def _batches(connection: Connection, sql: str) -> Iterator[list[Any]]:
    driver = connection.connection.driver_connection
    if driver is None:
        raise DatabaseError("the database connection is closed")
    # A named cursor is PostgreSQL's server-side cursor; it needs a transaction, so an autocommit connection
    # falls back to a client-side one. SQLite's cursor already steps through the file.
    server_side = connection.dialect.name == "postgresql" and not getattr(driver, "autocommit", False)
    cursor = driver.cursor(name="closewise_frames") if server_side else driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield rows
    finally:
        cursor.close()


def _fetch(column: sa.Column[Any], kind: str, *, sqlite: bool) -> sa.ColumnElement[Any]:
    if kind == _FLOAT:
        return sa.cast(column, sa.Float())
    if kind == _TIMESTAMP and not sqlite:
        return sa.func.timezone("UTC", column)
    return column


def _parse_sqlite_text(frame: pl.DataFrame, table: str, kinds: Mapping[str, str]) -> pl.DataFrame:
    for name, kind in kinds.items():
        if kind not in (_TIMESTAMP, _DATE):
            continue
        parsed = frame.select(_timestamp(name) if kind == _TIMESTAMP else _date(name)).to_series()
        unreadable = frame[name].is_not_null() & parsed.is_null()
        if unreadable.any():
            text = frame[name].filter(unreadable)[0]
            raise DatabaseError(f"cannot read {text!r} as a {kind}", where=f"{table}.{name}")
        frame = frame.with_columns(parsed)
    return frame


def _timestamp(name: str) -> pl.Expr:
    """SQLite text to naive UTC: `2024-03-31 09:30:00.000000` as SQLAlchemy writes it, or ISO 8601 with an
    optional offset (then converted to UTC), or a bare date (midnight)."""
    text = pl.col(name).str.strip_chars().str.replace("T", " ", literal=True)
    return pl.coalesce(
        text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", strict=False, time_unit="us").dt.replace_time_zone(None),
        text.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us"),
    ).alias(name)


def _date(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias(name)
