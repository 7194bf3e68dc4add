"""The migrated schema is exactly the tables the code declares (no drift between the two)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from closewise.db.migrate import current_revision, head_revision, upgrade
from closewise.db.tables import metadata


def test_migrations_match_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    before, after = upgrade(engine)
    assert before == after == head_revision()
