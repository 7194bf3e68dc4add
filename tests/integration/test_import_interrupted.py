"""An import killed with SIGKILL leaves a consistent database, and running it again completes it: the end
state equals that of an import that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.demo.salesforce_export import write_export
from closewise.ingest.salesforce import import_salesforce_export

OPPORTUNITIES = 15_000
BATCH = 5_000
RUN_WITH_BATCH = ("from closewise.ingest import fastpath; "
                  f"fastpath.BATCH = fastpath.CHUNK = {BATCH}; from closewise.cli.app import main")


def _state(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[str]]:
    engine = make_engine(url)
    o, c, r = tables.opportunities, tables.opportunity_changes, tables.import_runs
    with engine.connect() as connection:
        deals = [tuple(row) for row in connection.execute(
            sa.select(o.c.external_id, o.c.stage, o.c.status, o.c.amount, o.c.close_date, o.c.probability,
                      o.c.forecast_category).order_by(o.c.external_id))]
        changes = [tuple(row) for row in connection.execute(
            sa.select(o.c.external_id, c.c.field, c.c.old_value, c.c.new_value, c.c.changed_at)
            .join(o, o.c.id == c.c.opportunity_id)
            .order_by(o.c.external_id, c.c.changed_at, c.c.field))]
        runs = [str(status) for (status,) in connection.execute(sa.select(r.c.status).order_by(r.c.id))]
    engine.dispose()
    return deals, changes, runs


def _upkeep(url: str) -> set[str]:
    """The names of the indexes and foreign keys of the tables an import loads in bulk."""
    engine = make_engine(url)
    inspector = sa.inspect(engine)
    names = {index["name"] for table in ("opportunities", "opportunity_changes")
             for index in inspector.get_indexes(table)}
    if engine.dialect.name == "postgresql":  # SQLite keeps its foreign keys (and names none)
        names |= {key["name"] for table in ("opportunities", "opportunity_changes")
                  for key in inspector.get_foreign_keys(table)}
    engine.dispose()
    return {str(name) for name in names}


@pytest.mark.slow
def test_killed_import_is_consistent_and_resumes(database_url: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    write_export(export, opportunities=OPPORTUNITIES, seed=3)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Opportunity files load in transactions of `fastpath.BATCH` rows (50,000); 5,000 here, so that the kill
    # lands in the middle of the opportunities of a small export.
    command = [sys.executable, "-c", f"{RUN_WITH_BATCH}; main()", "--db", database_url, "import", "salesforce",
               str(export), "--errors-dir", str(tmp_path / "errors")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = make_engine(database_url)
    deadline = time.monotonic() + 120
    stored = 0
    try:
        # Kill it once some batches are committed but well before the end.
        while time.monotonic() < deadline and process.poll() is None:
            with probe.connect() as connection:
                stored = int(connection.execute(sa.select(sa.func.count()).select_from(tables.opportunities))
                             .scalar_one())
            if stored >= BATCH:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        probe.dispose()
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert stored > 0

    # Consistent: whole batches only (BATCH rows a transaction), every stored opportunity fully formed.
    deals, _, runs = _state(database_url)
    assert runs == ["running"]
    assert len(deals) % BATCH == 0
    assert all(row[1] is not None and row[2] is not None for row in deals)
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        engine.dispose()

    # Running it again completes the work.
    engine = make_engine(database_url)
    report = import_salesforce_export(engine, export, errors_dir=tmp_path / "errors")
    engine.dispose()
    assert any("did not finish" in note for note in report.notes)
    resumed_deals, resumed_changes, resumed_runs = _state(database_url)
    assert resumed_runs == ["interrupted", "done"]

    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    clean = make_engine(clean_url)
    upgrade(clean)
    import_salesforce_export(clean, export, errors_dir=tmp_path / "errors-clean")
    clean.dispose()
    clean_deals, clean_changes, _ = _state(clean_url)
    assert len(resumed_deals) == OPPORTUNITIES
    assert resumed_deals == clean_deals
    # The indexes (and on PostgreSQL the foreign keys) a bulk load drops while it loads are there again.
    expected = {str(index.name) for table in (tables.opportunities, tables.opportunity_changes)
                for index in table.indexes}
    if database_url.startswith("postgresql"):
        expected |= {str(key.name) for table in (tables.opportunities, tables.opportunity_changes)
                     for key in table.foreign_key_constraints}
    assert expected <= _upkeep(database_url)
    normalise = [(*row[:4], row[4].replace(tzinfo=None)) for row in resumed_changes]  # type: ignore[union-attr]
    assert normalise == [(*row[:4], row[4].replace(tzinfo=None)) for row in clean_changes]  # type: ignore[union-attr]
