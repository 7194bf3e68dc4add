"""A seeded demo org in a database of its own (SQLite, or a fresh PostgreSQL database when
CLOSEWISE_TEST_DATABASE_URL names a server), for module-scoped fixtures of tests that read it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.services.demo import DemoSummary, build_demo

DEMO_TODAY = date(2026, 11, 22)


@contextmanager
def demo_database(folder: Path, *, seed: int = 7, today: date = DEMO_TODAY) -> Iterator[tuple[str, DemoSummary]]:
    """The URL of a database holding the demo org, and the build's summary; dropped afterwards."""
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT") if server else None
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{folder / 'demo.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        summary = build_demo(engine, seed=seed, today=today)
        engine.dispose()
        yield url, summary
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
