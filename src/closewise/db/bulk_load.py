"""Loading a table in bulk: its upkeep (secondary indexes, and on PostgreSQL its foreign keys) deferred
while the rows go in, and done once at the end.

Keeping a secondary index up to date row by row costs about as much as writing the rows; building it
afterwards from the sorted column costs a fraction of that. On PostgreSQL a foreign key costs more still: each
inserted row runs a look-up of the row it refers to and locks it (`FOR KEY SHARE`), which writes to the
referenced table's pages; checking a million rows at once when the key is added back is one join. Measured on
the 2-core machine (load ~12), 1,000,000 opportunities: 95 s with every index and key kept, 67 s without the
keys, 38 s without the nine plain indexes; built afterwards, the indexes took 15-17 s and the keys 1.5 s.

So an import that at least doubles a table drops the table's plain (non-unique) indexes that its loading does
not read (and, on PostgreSQL, the table's own foreign keys) while it loads, and builds them again at the end.
The unique (source, external_id) index, which the upsert relies on, always stays.

A killed import leaves them missing until `restore_upkeep` (run when any import starts) builds them again;
queries stay correct meanwhile, only slower. What a foreign key would have done meanwhile is done before it is
added back: a reference to a row deleted during the load is cleared (`ON DELETE SET NULL`) or its row deleted
(`ON DELETE CASCADE`), so adding the key cannot fail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from closewise.db import tables

BULK_TABLES = (tables.opportunities, tables.opportunity_changes)
# Memory PostgreSQL may use to sort each index it builds again (its default, 64 MiB, spills a million-row sort
# of text to disk). Server memory, for this transaction only.
INDEX_BUILD_MEMORY = "256MB"
INDEX_BUILDERS = 2
# SQLite sorts an index being built in memory up to the page cache's size: with the import's 64 MiB cache the nine
# opportunity indexes of a million rows took 6.7-7.2 s of CPU, with SQLite's default 2 MiB (short sorted runs,
# merged) 4.7 s.
INDEX_BUILD_CACHE_KIB = 2_000
IMPORT_CACHE_KIB = 64 * 1024


def plain_indexes(table: sa.Table) -> list[sa.Index]:
    return sorted((index for index in table.indexes if not index.unique), key=lambda index: str(index.name))


def foreign_keys(table: sa.Table) -> list[sa.ForeignKeyConstraint]:
    return sorted(table.foreign_key_constraints, key=lambda key: str(key.name))


def holds_fewer_than(connection: Connection, *, table: sa.Table, rows: int) -> bool:
    """Whether `table` holds fewer than `rows` rows (counting no further than needed to know)."""
    present = sa.select(sa.literal(1)).select_from(table).limit(rows).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(present)).scalar_one()) < rows


@contextmanager
def upkeep_deferred(engine: Engine, *, table: sa.Table, rows: int, keep: Sequence[str] = ()) -> Iterator[bool]:
    """Load `rows` new rows into `table` without its plain indexes (those named in `keep` stay) and, on
    PostgreSQL, its foreign keys, when they at least double it; build them again at the end (also when the
    load fails). Yields whether they were dropped."""
    indexes: list[sa.Index] = []
    keys: list[sa.ForeignKeyConstraint] = []
    with engine.begin() as connection:
        if rows > 0 and holds_fewer_than(connection, table=table, rows=rows):  # `rows` at least double it
            indexes = [index for index in plain_indexes(table) if index.name not in keep]
            keys = foreign_keys(table) if connection.dialect.name == "postgresql" else []
            present = _present_keys(connection, table)
            for key in keys:
                if key.name in present:
                    connection.execute(sa.schema.DropConstraint(key))
            for index in indexes:
                index.drop(connection, checkfirst=True)
    try:
        yield bool(indexes or keys)
    finally:
        if indexes or keys:
            _rebuild(engine, table, indexes, keys)


@contextmanager
def indexes_deferred_for_update(engine: Engine, *, table: sa.Table, rows: int) -> Iterator[bool]:
    """Update `rows` rows of `table` without its plain indexes when they are at least half of it (PostgreSQL
    only: an update there writes a new version of the row and an entry in every index; SQLite updates a row in
    place and touches only the indexes of the columns that change). Built again at the end."""
    indexes: list[sa.Index] = []
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql" and rows > 0 \
                and holds_fewer_than(connection, table=table, rows=2 * rows + 1):  # `rows` are at least half
            indexes = plain_indexes(table)
            for index in indexes:
                index.drop(connection, checkfirst=True)
    try:
        yield bool(indexes)
    finally:
        if indexes:
            _rebuild(engine, table, indexes, [])


def restore_upkeep(connection: Connection) -> None:
    """Build any index or foreign key of the bulk-loaded tables that an interrupted import left dropped."""
    for table in BULK_TABLES:
        keys = foreign_keys(table) if connection.dialect.name == "postgresql" else []
        present = _present_indexes(connection, table)
        missing = [index for index in plain_indexes(table) if index.name not in present]
        if missing or keys:
            _build(connection, table, missing, keys)


def _present_indexes(connection: Connection, table: sa.Table) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(connection).get_indexes(table.name)}


def _present_keys(connection: Connection, table: sa.Table) -> set[str]:
    if connection.dialect.name != "postgresql":
        return {str(key.name) for key in foreign_keys(table)}
    query = sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:name AS regclass) AND contype = 'f'")
    return {str(name) for (name,) in connection.execute(query, {"name": table.name})}


def _rebuild(engine: Engine, table: sa.Table, indexes: list[sa.Index], keys: list[sa.ForeignKeyConstraint]) -> None:
    """`_build` at the end of a load. PostgreSQL builds the indexes over `INDEX_BUILDERS` connections at once:
    one build sorts mostly in a single process, and the nine opportunity indexes of a million rows took 4.3-4.5 s
    from two sessions against 5.3-6.5 s from one (load 5). Each index is its own transaction; a kill in between
    leaves the rest to `restore_upkeep`."""
    with engine.begin() as connection:
        parallel = connection.dialect.name == "postgresql" and len(indexes) > 1
        _build(connection, table, [] if parallel else indexes, keys)
    if not parallel:
        return

    def build(index: sa.Index) -> None:
        with engine.begin() as connection:
            _build(connection, table, [index], [])

    with ThreadPoolExecutor(max_workers=INDEX_BUILDERS) as pool:
        for done in [pool.submit(build, index) for index in indexes]:
            done.result()


def _build(connection: Connection, table: sa.Table, indexes: list[sa.Index],
           keys: list[sa.ForeignKeyConstraint]) -> None:
    """Add back the missing foreign keys (after doing what they would have done meanwhile), then the indexes."""
    if connection.dialect.name == "sqlite" and indexes:
        connection.exec_driver_sql(f"PRAGMA cache_size = -{INDEX_BUILD_CACHE_KIB}")
        connection.exec_driver_sql("PRAGMA mmap_size = 0")  # see tune_for_import
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        present = _present_keys(connection, table)
        for key in keys:
            if key.name in present:
                continue
            # Adding the key checks every row (one join); only when that fails is there anything to settle, which
            # takes another pass (each pass over 13.6 million change rows takes seconds).
            try:
                with connection.begin_nested():
                    connection.execute(sa.schema.AddConstraint(key))
            except sa.exc.IntegrityError:
                _settle_dangling(connection, table, key)
                connection.execute(sa.schema.AddConstraint(key))
    for index in indexes:
        index.create(connection, checkfirst=True)


def _settle_dangling(connection: Connection, table: sa.Table, key: sa.ForeignKeyConstraint) -> None:
    """Apply the key's ON DELETE rule to rows whose referenced row was deleted while the key was missing."""
    (column,) = key.columns
    (element,) = key.elements
    target = element.column
    missing = sa.and_(column.isnot(None), ~sa.exists().where(target == column))
    if (key.ondelete or "").upper() == "CASCADE":
        connection.execute(table.delete().where(missing))
    else:
        connection.execute(table.update().where(missing).values({column.name: None}))


def tune_for_import(connection: Connection) -> None:
    """Settings of the transaction (or SQLite connection) writing an import's batch.

    SQLite: a bigger page cache (its default is 2 MiB), so the pages a 50,000-row batch touches stay in memory.
    It stays with the pooled connection: 64 MiB, not more (at 1,000,000 opportunities 256 MiB was no faster).
    No memory map: the pages it maps count in the importing process's resident memory (250 MiB of the 1.3 GiB
    peak of the 1M + 5M benchmark) and writing gains nothing from it.
    PostgreSQL: the commit does not wait for its WAL to reach the disk (`synchronous_commit = off`, this
    transaction only). A server crash may lose the last batches committed, never part of one, and running the
    import again loads them: the same guarantee as a killed import.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
        connection.exec_driver_sql("PRAGMA mmap_size = 0")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
