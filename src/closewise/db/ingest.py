"""The SQL behind imports: look up existing records by their upsert key, insert and update in bulk."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from closewise.db import tables

KEYED_TABLES: dict[str, sa.Table] = {
    "opportunities": tables.opportunities,
    "accounts": tables.accounts,
    "activities": tables.activities,
    "leads": tables.leads,
    "contacts": tables.contacts,
}

# Stay well below SQLite's bound-parameter limit when looking records up by key.
LOOKUP_CHUNK = 2_000


def existing_by_key(
    connection: Connection, *, table: sa.Table, source: str, external_ids: Sequence[str], columns: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """{external_id: {column: value}} for the records of `source` already stored."""
    found: dict[str, dict[str, Any]] = {}
    names = ["id", "external_id", *columns]
    selected = [table.c[name] for name in names]
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = list(external_ids[start : start + LOOKUP_CHUNK])
        query = sa.select(*selected).where(table.c.source == source, table.c.external_id.in_(chunk))
        for row in connection.execute(query):
            record = dict(zip(names, row, strict=True))
            found[record["external_id"]] = record
    return found


def insert_returning_ids(connection: Connection, *, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows and return their new ids in the same order."""
    if not rows:
        return []
    # executemany needs one set of keys: a column some rows lack is NULL for them.
    names = list(dict.fromkeys(name for row in rows for name in row))
    uniform = [{name: row.get(name) for name in names} for row in rows]
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [int(row[0]) for row in connection.execute(statement, uniform)]


def insert_keyed(connection: Connection, *, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows that all carry `source` and `external_id`; return their new ids in the same order.

    On PostgreSQL the rows go in with one COPY and the ids are looked up by key afterwards: INSERT ...
    RETURNING in parameter order costs about a millisecond a row there.
    """
    if not rows or connection.dialect.name != "postgresql":
        return insert_returning_ids(connection, table=table, rows=rows)
    fast_insert(connection, table=table, rows=rows)
    ids: dict[tuple[str, str], int] = {}
    for source in {str(row["source"]) for row in rows}:
        keys = [str(row["external_id"]) for row in rows if row["source"] == source]
        ids.update(((source, key), identifier) for key, identifier in
                   ids_by_key(connection, table=table, source=source, external_ids=keys).items())
    return [ids[(str(row["source"]), str(row["external_id"]))] for row in rows]


def update_by_id(connection: Connection, *, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update each row (a mapping with `id` and the columns to set); rows may set different columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(sorted(name for name in row if name != "id"))
        by_columns.setdefault(columns, []).append({"_id": row["id"], **{name: row[name] for name in columns}})
    for columns, group in by_columns.items():
        statement = (
            table.update()
            .where(table.c.id == sa.bindparam("_id"))
            .values({name: sa.bindparam(name) for name in columns})
        )
        connection.execute(statement, group)


def insert_changes(connection: Connection, *, rows: Sequence[Mapping[str, Any]]) -> None:
    fast_insert(connection, table=tables.opportunity_changes, rows=rows)


def changes_for(
    connection: Connection, *, opportunity_ids: Iterable[int], sources: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Existing change rows of some opportunities (to avoid writing the same change twice)."""
    table = tables.opportunity_changes
    ids = list(opportunity_ids)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), LOOKUP_CHUNK):
        query = sa.select(
            table.c.opportunity_id, table.c.field, table.c.changed_at, table.c.old_value, table.c.new_value
        ).where(table.c.opportunity_id.in_(ids[start : start + LOOKUP_CHUNK]))
        if sources is not None:
            query = query.where(table.c.source.in_(list(sources)))
        rows.extend(dict(row) for row in connection.execute(query).mappings())
    return rows


def user_directory(connection: Connection) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]]]:
    """Every user (id, email, name) and every external id (source, external_id, user_id)."""
    people = [dict(row) for row in connection.execute(sa.select(tables.users.c.id, tables.users.c.email,
                                                                 tables.users.c.name)).mappings()]
    ids = [
        (row.source, row.external_id, int(row.user_id))
        for row in connection.execute(sa.select(tables.user_external_ids))
    ]
    return people, ids


def insert_external_ids(connection: Connection, *, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        connection.execute(tables.user_external_ids.insert(), list(rows))


def account_directory(connection: Connection) -> list[tuple[str, str, str, int]]:
    """(source, external_id, name, id) of every account."""
    table = tables.accounts
    query = sa.select(table.c.source, table.c.external_id, table.c.name, table.c.id)
    return [(row[0], row[1], row[2], int(row[3])) for row in connection.execute(query)]


def stage_directory(connection: Connection, *, pipeline: str) -> list[dict[str, Any]]:
    table = tables.stages
    query = sa.select(table).where(table.c.pipeline == pipeline).order_by(table.c.order)
    return [dict(row) for row in connection.execute(query).mappings()]


def insert_stage(connection: Connection, *, row: Mapping[str, Any]) -> int:
    return insert_returning_ids(connection, table=tables.stages, rows=[row])[0]


def currency_codes(connection: Connection) -> set[str]:
    return {str(code).upper() for (code,) in connection.execute(sa.select(tables.currency_rates.c.currency).distinct())}


def start_import_run(connection: Connection, *, kind: str, path: str, started_at: datetime) -> int:
    values = {"kind": kind, "path": path, "started_at": started_at, "status": "running"}
    return insert_returning_ids(connection, table=tables.import_runs, rows=[values])[0]


def finish_import_run(
    connection: Connection, *, run_id: int, status: str, finished_at: datetime, counts: Mapping[str, Any],
    errors_file: str | None,
) -> None:
    table = tables.import_runs
    connection.execute(
        table.update().where(table.c.id == run_id).values(
            status=status, finished_at=finished_at, counts=dict(counts), errors_file=errors_file
        )
    )


def mark_interrupted_runs(connection: Connection, *, kind: str, path: str) -> int:
    """Runs of the same import still marked running were killed; say so before running it again."""
    table = tables.import_runs
    result = connection.execute(
        table.update()
        .where(table.c.status == "running", table.c.kind == kind, table.c.path == path)
        .values(status="interrupted")
    )
    return int(result.rowcount or 0)


def opportunity_keys(connection: Connection, *, source: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    """id, external_id, created_at and `columns` of every opportunity of `source`."""
    table = tables.opportunities
    query = sa.select(table.c.id, table.c.external_id, table.c.created_at, *(table.c[c] for c in columns)).where(
        table.c.source == source
    )
    return [dict(row) for row in connection.execute(query).mappings()]


OPPORTUNITY_DTYPES: dict[str, pl.DataType] = {
    "id": pl.Int64(), "external_id": pl.String(), "stage": pl.String(), "status": pl.String(),
    "amount": pl.Float64(), "close_date": pl.Date(), "probability": pl.Float64(), "forecast_category": pl.String(),
}


def opportunity_frame(connection: Connection, *, source: str, columns: Sequence[str]) -> pl.DataFrame:
    """id, external_id and `columns` (of OPPORTUNITY_DTYPES) of every opportunity of `source`, as one frame
    built a block of rows at a time (a million opportunities as dicts would take a gigabyte)."""
    table = tables.opportunities
    names = ["id", "external_id", *columns]
    schema = {name: OPPORTUNITY_DTYPES[name] for name in names}
    query = sa.select(*(table.c[name] for name in names)).where(table.c.source == source)
    result = connection.execute(query)
    frames = [pl.DataFrame(schema=schema)]
    while block := result.fetchmany(100_000):
        frames.append(pl.DataFrame([tuple(row) for row in block], schema=schema, orient="row"))
    return pl.concat(frames, rechunk=True)


# --- users, teams, quotas and currency rates (the entity loaders) ------------------------------------------


def user_external_ids_by_user(connection: Connection, *, source: str) -> dict[int, set[str]]:
    """{user_id: its external ids in `source`}: tells a namesake apart from the same person."""
    table = tables.user_external_ids
    found: dict[int, set[str]] = {}
    query = sa.select(table.c.user_id, table.c.external_id).where(table.c.source == source)
    for user_id, external_id in connection.execute(query):
        found.setdefault(int(user_id), set()).add(str(external_id))
    return found


def users_by_id(
    connection: Connection, *, user_ids: Sequence[int], columns: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """{id: {column: value}} of some users."""
    table = tables.users
    ids = sorted(set(user_ids))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        query = sa.select(table.c.id, *(table.c[name] for name in columns)).where(
            table.c.id.in_(ids[start : start + LOOKUP_CHUNK])
        )
        for row in connection.execute(query).mappings():
            found[int(row["id"])] = dict(row)
    return found


def team_directory(connection: Connection) -> dict[str, int]:
    """{team name: id} of every team."""
    table = tables.teams
    return {str(name): int(team_id) for team_id, name in connection.execute(sa.select(table.c.id, table.c.name))}


def quotas_for_periods(connection: Connection, *, periods: Sequence[str]) -> list[dict[str, Any]]:
    """Every stored quota of the given period labels."""
    table = tables.quotas
    labels = sorted(set(periods))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(labels), LOOKUP_CHUNK):
        query = sa.select(table).where(table.c.period.in_(labels[start : start + LOOKUP_CHUNK]))
        rows.extend(dict(row) for row in connection.execute(query).mappings())
    return rows


def currency_rates_for(connection: Connection, *, currencies: Sequence[str]) -> list[dict[str, Any]]:
    """Every stored rate (static and dated) of the given currency codes."""
    table = tables.currency_rates
    codes = sorted(set(currencies))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(codes), LOOKUP_CHUNK):
        query = sa.select(table).where(table.c.currency.in_(codes[start : start + LOOKUP_CHUNK]))
        rows.extend(dict(row) for row in connection.execute(query).mappings())
    return rows


# -- fast bulk writes -------------------------------------------------------------------------------------
# SQLAlchemy's executemany spends ~15 µs a row binding parameters, and INSERT ... RETURNING runs row by row
# on SQLite. Imports write millions of rows, so they go to the driver directly: one executemany with
# values already in SQLite's storage format, or one COPY on PostgreSQL. Values must be plain Python
# (str, int, float, bool, date, aware-UTC datetime, dict for JSON, None).


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


def ids_by_key(connection: Connection, *, table: sa.Table, source: str, external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = list(external_ids[start : start + LOOKUP_CHUNK])
        query = sa.select(table.c.external_id, table.c.id).where(table.c.source == source,
                                                                  table.c.external_id.in_(chunk))
        found.update((key, int(identifier)) for key, identifier in connection.execute(query))
    return found


def known_keys(connection: Connection, *, table: sa.Table, source: str) -> set[str]:
    """Every external id of `source` already stored (to skip look-ups for rows that are surely new)."""
    query = sa.select(table.c.external_id).where(table.c.source == source)
    return {key for (key,) in connection.execute(query)}


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
    stored = frame.with_columns(
        [pl.col(name).dt.strftime("%Y-%m-%d %H:%M:%S%.6f") for name, dtype in frame.schema.items()
         if dtype == pl.Datetime]
        + [pl.col(name).dt.strftime("%Y-%m-%d") for name, dtype in frame.schema.items() if dtype == pl.Date]
        + [pl.col(name).cast(pl.Int64) for name, dtype in frame.schema.items() if dtype == pl.Boolean]
    )
    marks = ", ".join("?" for _ in names)
    cursor = raw.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', stored.iter_rows())
    finally:
        cursor.close()
    return frame.height


# -- SQLite bulk loading -------------------------------------------------------------------------------
# Keeping a secondary index up to date row by row costs SQLite about as much as writing the rows; building
# it afterwards from the sorted column costs a fraction of that. An import that at least doubles a table
# therefore drops the table's plain (non-unique) indexes that its loading does not read while it loads,
# and builds them again at the end.
# The unique (source, external_id) index, which the upsert relies on, always stays. A killed import
# leaves the indexes missing until `restore_indexes` (run when any import starts) builds them again;
# queries stay correct meanwhile, only slower.

BULK_TABLES = (tables.opportunities, tables.opportunity_changes)


def _plain_indexes(table: sa.Table) -> list[sa.Index]:
    return sorted((index for index in table.indexes if not index.unique), key=lambda index: str(index.name))


def table_rows(connection: Connection, *, table: sa.Table) -> int:
    return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@contextmanager
def plain_indexes_deferred(engine: Engine, *, table: sa.Table, rows: int, keep: Sequence[str] = ()) -> Iterator[None]:
    """Load `rows` new rows into `table` without its plain indexes (those named in `keep` stay) when they at
    least double it (SQLite only; elsewhere nothing changes), and build them again at the end."""
    dropped: list[sa.Index] = []
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite" and rows > table_rows(connection, table=table):
            dropped = [index for index in _plain_indexes(table) if index.name not in keep]
            for index in dropped:
                index.drop(connection, checkfirst=True)
    try:
        yield
    finally:
        if dropped:
            with engine.begin() as connection:
                for index in dropped:
                    index.create(connection, checkfirst=True)


def restore_indexes(connection: Connection) -> None:
    """Build any index of the bulk-loaded tables that an interrupted import left dropped (SQLite only)."""
    if connection.dialect.name != "sqlite":
        return
    for table in BULK_TABLES:
        for index in _plain_indexes(table):
            index.create(connection, checkfirst=True)


IMPORT_CACHE_KIB = 64 * 1024


def tune_for_import(connection: Connection) -> None:
    """A bigger page cache for the connection writing an import (SQLite's default is 2 MiB), so the pages a
    50,000-row batch touches stay in memory. It stays with the pooled connection: 64 MiB, not more (at
    1,000,000 opportunities 256 MiB was no faster)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
