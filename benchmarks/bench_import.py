"""Import speed and memory: a synthetic Salesforce Data Export of N opportunities and ~5N history rows.

    python benchmarks/bench_import.py [--opportunities 1000000] [--db URL] [--keep DIR]

Writes the export to a temporary folder, imports it into a new database (SQLite file by default; pass a
PostgreSQL server URL to create and drop a temporary database there) and prints opportunity rows/s,
history rows, total time and peak RSS, and per step its wall and CPU time (CPU is steadier on a shared
machine), the peak RSS so far and the load average; on PostgreSQL also the server's CPU for the database.
A step's time runs from the previous step's last progress report.

Latest (2026-11-22), users + accounts + 1M opportunities of the export, the machine shared with other
test suites and benchmarks (load average 9-18, so wall times are two to four times an idle machine's;
see docs/importing.md, "Speed"):

    SQLite      before: opportunities 225.0 s = 4,444 rows/s, 52.9 s CPU, peak 1,135 MiB (load 16-18)
                now:    opportunities  35.4 s = 28,234 rows/s, 22.6 s CPU (6 indexes rebuilt included),
                        peak 850 MiB (load 11)
    PostgreSQL  now:    opportunities 111.4 s = 8,976 rows/s, 11.2 s CPU, server CPU 50.6 s for the run;
                        accounts 16.8 s (was 198 s); peak 893 MiB (load 9-12)

Earlier, the whole 1M + 5M import on a quiet machine (load ~3 falling to 0.4), before this work:

    SQLite      opportunities 38.7 s = 25,852 rows/s; history read 52.5 s, load 191.6 s;
                accounts 2.2 s; whole import 285.2 s (21,034 rows/s overall); peak RSS 1,304 MiB
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.demo.salesforce_export import write_export
from closewise.ingest.report import ImportReport
from closewise.ingest.salesforce import import_salesforce_export


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--db", help="PostgreSQL server URL (default: a temporary SQLite file)")
    parser.add_argument("--keep", type=Path, help="reuse / keep the generated export in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary) / "export"
        if not (folder / "Opportunity.csv").exists():
            started = time.perf_counter()
            counts = write_export(folder, opportunities=args.opportunities)
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
            report, elapsed, cpu, steps = _import(url, folder, Path(temporary) / "errors")
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                admin.dispose()
    opps = report.entities["opportunities"]
    history = report.entities.get("opportunity_changes")
    history_rows = history.read if history is not None else 0
    backend = "PostgreSQL" if args.db else "SQLite"
    opp_seconds = steps["Opportunity"].wall if "Opportunity" in steps else elapsed
    print(f"backend: {backend}; load average at the end {_load()}")
    print(f"opportunities: {opps.inserted:,} in {opp_seconds:.1f} s = {opps.inserted / opp_seconds:,.0f} rows/s")
    print(f"history rows: {history_rows:,}; whole import {elapsed:.1f} s wall, {cpu:.1f} s CPU "
          f"({(opps.read + history_rows) / elapsed:,.0f} rows/s overall)")
    print(f"peak RSS: {peak_mib():,.0f} MiB")
    for step, figures in steps.items():
        print(f"  {step}: {figures.wall:.1f} s wall, {figures.cpu:.1f} s CPU, peak RSS so far "
              f"{figures.peak_mib:,.0f} MiB, load average {figures.load}")


@dataclass
class Step:
    wall: float = 0.0
    cpu: float = 0.0
    peak_mib: float = 0.0
    load: str = ""


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import(url: str, folder: Path, errors: Path) -> tuple[ImportReport, float, float, dict[str, Step]]:
    """Import the export into `url`; the report, wall and CPU seconds, and each step's figures."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        steps: dict[str, Step] = {}
        started, cpu_started = time.perf_counter(), time.process_time()
        # A step runs from the previous step's last progress report (opening and sampling its file included).
        clock: dict[str, Any] = {"step": "", "start": (started, cpu_started), "last": (started, cpu_started)}

        def progress(step: str, done: int, total: int) -> None:
            now = (time.perf_counter(), time.process_time())
            if step != clock["step"]:
                clock.update(step=step, start=clock["last"])
            clock["last"] = now
            steps[step] = Step(now[0] - clock["start"][0], now[1] - clock["start"][1], peak_mib(), _load())

        report = import_salesforce_export(engine, folder, errors_dir=errors, progress=progress)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if engine.dialect.name == "postgresql":
            print(f"PostgreSQL server CPU (this database's connections): {_server_cpu(engine):.1f} s", flush=True)
        return report, elapsed, cpu, steps
    finally:
        engine.dispose()


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
