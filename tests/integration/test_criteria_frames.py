"""`db.frames.load_criteria_checks` (the batch reader the forecast's exit-criteria features use) gives the same
frame as `db.playbook.load_checks` (one row at a time), on SQLite or PostgreSQL, time zones and row order included."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from polars.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from closewise.db import tables
from closewise.db.frames import load_criteria_checks
from closewise.db.playbook import load_checks


def test_batch_reader_matches_the_row_reader(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(tables.opportunities), [
            {"id": k, "source": "test", "external_id": f"o{k}", "name": f"Deal {k}", "currency": "EUR",
             "stage": "discovery", "status": "open", "created_at": datetime(2024, 1, 1, tzinfo=UTC)}
            for k in (1, 2)])
        connection.execute(sa.insert(tables.criteria_checks), [
            {"opportunity_id": 2, "criterion_key": "budget", "done": True,
             "checked_at": datetime(2024, 2, 1, 9, 30, 0, 123456, tzinfo=UTC)},
            {"opportunity_id": 1, "criterion_key": "budget", "done": False,
             "checked_at": datetime(2024, 2, 1, 9, 30, tzinfo=UTC)},
            {"opportunity_id": 1, "criterion_key": "champion", "done": True,
             "checked_at": datetime(2024, 2, 1, 9, 30, tzinfo=UTC)},
            {"opportunity_id": 1, "criterion_key": "budget", "done": True,
             "checked_at": datetime(2024, 3, 1, tzinfo=UTC)},
        ])
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TIME ZONE 'America/New_York'")  # both must still read UTC
        rows, batch = load_checks(connection), load_criteria_checks(connection)
    assert batch.height == 4
    assert batch["checked_at"].to_list()[:2] == [datetime(2024, 2, 1, 9, 30, 0, 123456), datetime(2024, 2, 1, 9, 30)]
    assert_frame_equal(batch, rows)
