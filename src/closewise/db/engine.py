"""Engines for SQLite (the default, one file) and PostgreSQL (teams)."""

from __future__ import annotations

import logging
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from closewise.errors import DatabaseError

log = logging.getLogger("closewise.db")

# The web server answers each request on one of anyio's 40 worker threads, and each thread holds a connection
# while it queries. SQLAlchemy's default pool keeps 5 and closes every connection beyond them when it is
# returned, so under load most requests opened a fresh connection: a new SQLite connection starts with an empty
# page cache, and a new PostgreSQL connection costs a round of authentication. 16 kept (and 16 more at peaks)
# covers a server's concurrent requests; two workers stay well inside PostgreSQL's default 100 connections.
POOL_SIZE: Final = 16
POOL_OVERFLOW: Final = 16
# Reads through a shared memory map instead of copying pages into each connection's private cache (2 MiB by
# default), so every pooled connection sees a warm database; the map only reserves address space.
SQLITE_MMAP_BYTES: Final = 256 * 1024 * 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while an import writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(f"cannot read the database URL {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(f"unknown database kind {backend!r}: give a SQLite file path or a postgresql:// URL")
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            engine = sa.create_engine(parsed)  # one in-memory database per connection: a pool would not share it
        else:
            engine = sa.create_engine(parsed, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)


def refresh_planner_statistics(engine: Engine) -> bool:
    """Give SQLite's query planner the opportunities table's statistics (`ANALYZE`) when it has none or they were
    taken at less than half or more than twice today's size; True when it ran.

    Without them SQLite guesses how selective each index is, and on the 100,000-opportunity demo org it picked
    the status index and a sort over tens of thousands of rows for lists that an index on the sort key answers
    at once. ANALYZE reads every index (about 1 s per 100,000 deals), so it runs only when the table has changed
    that much. PostgreSQL keeps its own statistics (autovacuum). A database busy with an import is left alone:
    the next start tries again."""
    if engine.dialect.name != "sqlite":
        return False
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA busy_timeout=1000")
            try:
                rows = int(connection.exec_driver_sql("SELECT count(*) FROM opportunities").scalar_one())
                if rows < 1000:
                    return False  # small enough that any plan is quick
                analysed = _analysed_rows(connection)
                if analysed is not None and analysed / 2 <= rows <= analysed * 2:
                    return False
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
                log.info("refreshed the query planner's statistics (%s opportunities)", rows)
                return True
            finally:
                connection.exec_driver_sql("PRAGMA busy_timeout=30000")
    except sa.exc.OperationalError as exc:
        log.warning("could not refresh the query planner's statistics: %s", exc)
        return False


def _analysed_rows(connection: sa.Connection) -> int | None:
    """The opportunities row count the last ANALYZE saw, None when there are no statistics."""
    exists = connection.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").scalar_one()
    if not exists:
        return None
    stat = connection.exec_driver_sql(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'opportunities' AND stat IS NOT NULL LIMIT 1").scalar()
    return int(str(stat).split()[0]) if stat else None
