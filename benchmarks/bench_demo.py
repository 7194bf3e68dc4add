"""Build the demo org at scale and print the elapsed time and peak memory.

    python benchmarks/bench_demo.py [--opportunities N] [--db URL] [--seed N]

Without `--db` the org goes into a new SQLite file in a temporary directory (removed afterwards).
The peak memory is the process's maximum resident set size (`resource.getrusage`, ru_maxrss).

Measured (2 vCPU, 23 GiB RAM, SQLite on local disk, Python 3.11), 1,000,000 opportunities:
    425 s elapsed (78k rows/s), peak RSS 802 MiB, a 4.7 GiB database holding 33.0M rows: 13.1M opportunity
    changes, 6.6M activities, 6.5M criteria checks, 2.2M qualification answers, 2.2M contacts, 600k leads,
    400k accounts, 412k forecast submissions, 5,057 users. Writing dominates: generating alone takes ~10% of it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.services.demo import build_demo


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLAlchemy URL of an empty database (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", help="the day the history ends on (default: today)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        last_step = [""]

        def report(step: str, done: int, total: int) -> None:
            if step != last_step[0]:
                print(f"{time.perf_counter() - started:8.1f}s  {step}", file=sys.stderr, flush=True)
                last_step[0] = step

        started = time.perf_counter()
        today = date.fromisoformat(args.today) if args.today else None
        summary = build_demo(engine, seed=args.seed, opportunities=args.opportunities, today=today, progress=report)
        elapsed = time.perf_counter() - started
        engine.dispose()
        size = Path(folder, "bench.db").stat().st_size / 2**30 if not args.db else float("nan")

    rows = sum(summary.counts.values())
    print(f"opportunities: {summary.counts['opportunities']:,}")
    print(f"rows written:  {rows:,}  ({', '.join(f'{k} {v:,}' for k, v in summary.counts.items())})")
    print(f"elapsed:       {elapsed:.1f} s  ({rows / elapsed:,.0f} rows/s)")
    print(f"peak RSS:      {_peak_rss_mib():,.0f} MiB")
    if not args.db:
        print(f"database file: {size:.2f} GiB")


if __name__ == "__main__":
    main()
