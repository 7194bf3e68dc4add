"""Import speed and memory: a synthetic Salesforce Data Export of N opportunities and ~5N history rows.

    python benchmarks/bench_import.py [--opportunities 1000000] [--db URL] [--keep DIR]

Writes the export to a temporary folder, imports it into a new database (SQLite file by default; pass a
PostgreSQL server URL to create and drop a temporary database there) and prints opportunity rows/s,
history rows/s, total time and peak RSS. A step's time runs from the previous step's last progress report.

Measured on the 2-core development machine, 1M opportunities + 4,997,941 history rows. Figures are noisy:
the machine is shared with other work, and during the latest run its load average stayed at 6-10 (other
test suites and benchmarks), so every step took two to three times its time on an idle machine (the
history *read* step, whose code did not change, took 105 s against 47 s before).

Before the Polars reader, Parquet spooling of history and frame-based history loading (machine less busy):

    SQLite      opportunities 39.1 s = 25,560 rows/s; history read 46.9 s, load 247.3 s;
                whole import 335.9 s (17,856 rows/s overall); peak RSS 3,229 MiB
    PostgreSQL  opportunities 39.4 s = 25,383 rows/s; history read 42.5 s, load 305.8 s; accounts 115.8 s;
                whole import 504.0 s (11,900 rows/s overall); peak RSS 3,185 MiB

Latest, SQLite on a quiet machine (load average ~3 falling to 0.4; 2026-11-22):

    SQLite      opportunities 38.7 s = 25,852 rows/s; history read 52.5 s, load 191.6 s;
                accounts 2.2 s; whole import 285.2 s (21,034 rows/s overall); peak RSS 1,304 MiB

Under load (load average 6-10 throughout, same code):

    SQLite      opportunities 88.5 s = 11,299 rows/s; history read 105.3 s, load 365.1 s (13,700 rows/s);
                accounts 5.7 s; whole import 565.0 s (10,616 rows/s overall); peak RSS 2,066 MiB
    PostgreSQL  opportunities 75.2 s = 13,302 rows/s; history read 60.1 s, load 568.8 s (8,790 rows/s);
                accounts 198.2 s; whole import 903.2 s (6,641 rows/s overall); peak RSS 1,159 MiB

At 200k opportunities on a quieter machine (load ~3), with the history changes but before the Polars
reader: opportunities 5.7 s = 35,000 rows/s, history load 28.2 s for 999,632 rows (was 48.1 s), peak RSS
772 MiB (was 1,383 MiB). Neither target (50,000 opportunity
rows/s, peak RSS under 1.5 GiB) is shown met yet; the opportunity step alone peaks at 1,132 MiB at 1M
(its whole file is held as one Polars frame of text columns while it loads). PostgreSQL stays under
1.5 GiB while SQLite does not: a likely cause is `db.ingest.tune_for_import`'s 256 MiB page cache, which
stays with every pooled SQLite connection it was set on (not yet measured).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.demo.salesforce_export import write_export
from closewise.ingest.salesforce import import_salesforce_export


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
        engine = make_engine(url)
        upgrade(engine)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        # A step runs from the previous step's last progress report (opening and sampling its file included).
        clock: dict[str, Any] = {"step": "", "start": started, "last": started}

        def progress(step: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if step != clock["step"]:
                clock.update(step=step, start=clock["last"])
            clock["last"] = now
            timings[step] = now - float(clock["start"])

        report = import_salesforce_export(engine, folder, errors_dir=Path(temporary) / "errors", progress=progress)
        elapsed = time.perf_counter() - started
        engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
    opps = report.entities["opportunities"]
    history = report.entities["opportunity_changes"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "PostgreSQL" if args.db else "SQLite"
    opp_seconds = timings.get("Opportunity", elapsed)
    print(f"backend: {backend}")
    print(f"opportunities: {opps.inserted:,} in {opp_seconds:.1f} s = {opps.inserted / opp_seconds:,.0f} rows/s")
    print(f"history rows: {history.read:,}; whole import {elapsed:.1f} s "
          f"({(opps.read + history.read) / elapsed:,.0f} rows/s overall)")
    print(f"peak RSS: {peak_mib:,.0f} MiB")
    for step, seconds in timings.items():
        print(f"  {step}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
