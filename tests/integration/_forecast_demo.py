"""One demo org (seed 7, today 2026-11-22) per test module, in SQLite or a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.cli import app as cli_app
from closewise.cli import forecast_commands
from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.services.demo import build_demo

TODAY = date(2026, 11, 22)


def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    admin: Engine | None = None
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    if server:
        admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('forecast')) / 'demo.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        build_demo(engine, seed=7, today=TODAY)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def register_commands() -> None:
    """The commands, whether or not the application has them wired in yet."""
    names = {command.name for command in cli_app.app.registered_commands}
    if "forecast" not in names:
        forecast_commands.register(cli_app.app)
