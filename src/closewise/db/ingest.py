"""The SQL behind imports: look up existing records by their upsert key, insert and update in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables
from closewise.db.bulk_write import fast_insert

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


def has_changes(connection: Connection, *, source: str) -> bool:
    """Whether any change row of an opportunity of `source` is stored."""
    changes, opportunities = tables.opportunity_changes, tables.opportunities
    query = sa.select(sa.exists().where(changes.c.opportunity_id == opportunities.c.id,
                                        opportunities.c.source == source))
    return bool(connection.execute(query).scalar_one())


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
