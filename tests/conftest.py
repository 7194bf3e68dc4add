"""Shared fixtures. Every database test runs on SQLite, or on PostgreSQL when
CLOSEWISE_TEST_DATABASE_URL names a server (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres):
each test then gets a fresh database of its own, created and dropped here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _postgres_server_url() -> str | None:
    return os.environ.get("CLOSEWISE_TEST_DATABASE_URL") or None


@pytest.fixture
def new_database_url(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of URLs of new, empty databases (not yet migrated), all dropped after the test."""
    server = _postgres_server_url()
    created: list[str] = []

    def make() -> str:
        name = f"closewise_test_{uuid.uuid4().hex[:12]}"
        if server is None:
            return f"sqlite:///{tmp_path / (name + '.db')}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return sa.make_url(server).set(database=name).render_as_string(hide_password=False)

    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT") if server else None
    try:
        yield make
    finally:
        if admin is not None:
            with admin.connect() as connection:
                for name in created:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture
def database_url(new_database_url: Callable[[], str]) -> str:
    """The URL of a new, empty database (not yet migrated)."""
    return new_database_url()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated, empty database."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
