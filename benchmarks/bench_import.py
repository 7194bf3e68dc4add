"""Import speed and memory: a synthetic Salesforce Data Export of N opportunities and ~5N history rows.

    python benchmarks/bench_import.py [--opportunities 1000000] [--db URL] [--keep DIR]

Writes the export to a temporary folder, imports it into a new database (SQLite file by default; pass a
PostgreSQL server URL to create and drop a temporary database there) and prints opportunity rows/s,
history rows, total time and peak RSS, and per step its wall and CPU time (CPU is steadier on a shared
machine), the peak RSS so far and the load average; on PostgreSQL also the server's CPU for the database.
A step's time runs from the previous step's last progress report.

Latest (2026-11-23), the whole 1M + 5M import on the idle machine (docs/importing.md, "Speed"):

    SQLite      opportunities 15.0 s = 66,773 rows/s; history 69.0 s = 72,447 rows/s; whole import 86.3 s
                (69,477 rows/s overall); peak RSS 958 MiB
    PostgreSQL  opportunities 18.0 s = 55,586 rows/s; history 62.3 s = 80,227 rows/s; whole import 85.6 s
                (70,067 rows/s overall), server CPU 60.4 s; peak RSS 1,164 MiB

Before this work (quiet machine): SQLite opportunities 38.7 s = 25,852 rows/s, whole import 285.2 s,
peak RSS 1,304 MiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.demo.salesforce_export import write_export
from closewise.ingest.report import EntityCounts, ImportReport
from closewise.ingest.salesforce import import_salesforce_export


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _in_child(function: Any, *args: Any) -> Any:
    """Run `function(*args)` in a fresh process: the import's peak RSS must not include the export
    generator's (or anything this driver allocated)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _write(folder: Path, opportunities: int) -> dict[str, int]:
    return write_export(folder, opportunities=opportunities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--db", help="PostgreSQL server URL (default: a temporary SQLite file)")
    parser.add_argument("--keep", type=Path, help="reuse / keep the generated export in this folder")
    parser.add_argument("--stop-after-opportunities", action="store_true",
                        help="stop the import when the opportunity step is done (history is still in the export, "
                             "so the opportunity step does exactly the work it does in the whole import)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary) / "export"
        if not (folder / "Opportunity.csv").exists():
            started = time.perf_counter()
            counts = _in_child(_write, folder, args.opportunities)
            print(f"wrote export: {counts} in {time.perf_counter() - started:.1f} s", flush=True)
        admin = None
        if args.db:
            name = f"closewise_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.db).execution_options(isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.make_url(args.db).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{Path(temporary) / 'bench.db'}"
        try:
            result: Result = _in_child(_import, url, folder, Path(temporary) / "errors",
                                       args.stop_after_opportunities)
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                admin.dispose()
    backend = "PostgreSQL" if args.db else "SQLite"
    steps = result.steps
    opp_seconds = steps["Opportunity"].wall if "Opportunity" in steps else result.wall
    history_seconds = sum(step.wall for name, step in steps.items() if name.startswith("OpportunityHistory"))
    print(f"backend: {backend}; load average at the end {_load()}")
    if result.server_cpu is not None:
        print(f"PostgreSQL server CPU (this database's connections): {result.server_cpu:.1f} s")
    print(f"opportunities: {result.opportunities:,} in {opp_seconds:.1f} s = "
          f"{result.opportunities / opp_seconds:,.0f} rows/s")
    if result.history_rows:
        print(f"history rows: {result.history_rows:,} ({result.change_rows:,} change-log rows) in "
              f"{history_seconds:.1f} s = {result.history_rows / history_seconds:,.0f} rows/s")
    print(f"whole import {result.wall:.1f} s wall, {result.cpu:.1f} s CPU "
          f"({(result.opportunities + result.history_rows) / result.wall:,.0f} rows/s overall)")
    print(f"peak RSS of the importing process: {result.peak_mib:,.0f} MiB (its child processes: "
          f"{result.children_peak_mib:,.0f} MiB)")
    for step, figures in steps.items():
        print(f"  {step}: {figures.wall:.1f} s wall, {figures.cpu:.1f} s CPU, peak RSS so far "
              f"{figures.peak_mib:,.0f} MiB, load average {figures.load}")


@dataclass
class Step:
    wall: float = 0.0
    cpu: float = 0.0
    peak_mib: float = 0.0
    load: str = ""


@dataclass
class Result:
    opportunities: int
    history_rows: int
    change_rows: int
    wall: float
    cpu: float
    peak_mib: float
    children_peak_mib: float
    steps: dict[str, Step]
    server_cpu: float | None


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


class _Stop(Exception):
    """Raised from the progress callback to end the import after the opportunity step."""


def _import(url: str, folder: Path, errors: Path, stop_after_opportunities: bool = False) -> Result:
    """Import the export into `url` (in a process of its own: see `_in_child`)."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        steps: dict[str, Step] = {}
        started, cpu_started = time.perf_counter(), time.process_time()
        # A step runs from the previous step's last progress report (opening and sampling its file included).
        clock: dict[str, Any] = {"step": "", "start": (started, cpu_started), "last": (started, cpu_started)}

        def progress(step: str, done: int, total: int) -> None:
            if stop_after_opportunities and step.startswith("OpportunityHistory"):
                raise _Stop
            now = (time.perf_counter(), time.process_time())
            if step != clock["step"]:
                clock.update(step=step, start=clock["last"])
            clock["last"] = now
            steps[step] = Step(now[0] - clock["start"][0], now[1] - clock["start"][1], peak_mib(), _load())

        try:
            report = import_salesforce_export(engine, folder, errors_dir=errors, progress=progress)
        except _Stop:
            report = _stopped_report(engine)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        history = report.entities.get("opportunity_changes")
        with engine.connect() as connection:
            change_rows = int(connection.execute(sa.text("SELECT count(*) FROM opportunity_changes")).scalar_one())
        server = _server_cpu(engine) if engine.dialect.name == "postgresql" else None
        return Result(
            opportunities=report.entities["opportunities"].inserted,
            history_rows=history.read if history is not None else 0, change_rows=change_rows,
            wall=elapsed, cpu=cpu, peak_mib=peak_mib(), children_peak_mib=peak_mib(resource.RUSAGE_CHILDREN),
            steps=steps, server_cpu=server,
        )
    finally:
        engine.dispose()


def _stopped_report(engine: Engine) -> ImportReport:
    """The counts of an import stopped after its opportunity step (the run records none)."""
    report = ImportReport(run_id=0)
    with engine.connect() as connection:
        stored = int(connection.execute(sa.text("SELECT count(*) FROM opportunities")).scalar_one())
    report.entities["opportunities"] = EntityCounts(read=stored, inserted=stored)
    return report


def _server_cpu(engine: Engine) -> float:
    """CPU seconds of the PostgreSQL backends serving this database (a local server: read from /proc)."""
    with engine.connect() as connection:
        pids = connection.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        total = 0.0
        for (pid,) in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


if __name__ == "__main__":
    main()
