"""Create or upgrade a database to the newest schema with Alembic."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from closewise.errors import DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; returns (revision before, revision after)."""
    try:
        before = current_revision(engine)
        command.upgrade(alembic_config(engine), "head")
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot open the database: {exc.orig}") from exc
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Fail with a clear message when the database is missing or behind the code."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" and not Path(database).exists():
        raise DatabaseError(f"no database at {database}: run `closewise init` first")
    try:
        revision = current_revision(engine)
    except sa.exc.OperationalError as exc:
        first_line = str(exc.orig).strip().splitlines()[0]
        raise DatabaseError(f"cannot open the database: {first_line}") from exc
    if revision is None:
        raise DatabaseError("the database is not initialised: run `closewise init` first")
    if revision != head_revision():
        raise DatabaseError("the database schema is older than this Closewise: run `closewise init`")
