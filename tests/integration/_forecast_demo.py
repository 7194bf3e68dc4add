"""One demo org (seed 7, today 2026-11-22) per test module, in SQLite or a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tests.demo_org import demo_database as shared_demo_database

TODAY = date(2026, 11, 22)


def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One demo org (see tests/demo_org.py)."""
    with shared_demo_database(tmp_path_factory.mktemp("forecast"), today=TODAY) as (url, _):
        yield url


