"""Speed of `closewise coverage` (analytics/coverage.py) on a million opportunities.

    python benchmarks/bench_coverage.py [--opportunities N] [--period 2024-Q3] [--as-of 2024-08-15] [--seed S]
    python benchmarks/bench_coverage.py --db URL --period P --as-of DATE   # an existing org, e.g. a 1M demo

Without `--db`, synthesises N opportunities with about six logged changes each (the generator of
bench_snapshots.py: created over 2022-2024, close dates over four years, 60% closed) plus a random segment,
builds the timeline once (the as-of engine every pipeline analytic shares; timed apart), then times the
coverage answer: the snapshot at as_of, the pipeline of the comparable moments of 8 past quarters (three
each) with their outcomes, the won cycles, and the report. Each step prints wall and CPU time and peak RSS.

Figures on the development container (2 vCPU shared with other jobs, which were busy: wall time ran at 2-3x
CPU time; polars 2.1), N = 1,000,000, period 2024-Q3 as of 2024-08-15 (46 days left): 6,098,896 changes,
7,098,895 state rows, 27,667 open deals in the quarter, 154,872 past deal-periods learned from.

    synthesise 1,000,000 opportunities                38.2 s wall, 16.1 s CPU
    build_timeline (shared by every analytic)         31.3 s wall, 12.3 s CPU  (~10 s on a quiet machine,
                                                                               see bench_snapshots.py)
    coverage, first call                               4.9 s wall,  1.9 s CPU
    coverage, again (3 runs)                           4.3-5.7 s wall, 1.85-1.9 s CPU
    peak RSS                                           3.6 GiB (set by the synthesis)
    100,000 opportunities: coverage 0.25 s wall, 0.17 s CPU

(Since then the open pipeline at an instant, with its values, is memoised per timeline (analytics.pipeline):
the repeats skip that part, ~0.25 s CPU at N = 1,000,000; the first call pays it. bench_analytics.py has
current figures.)

So the coverage answer itself costs ~2 s of CPU on a million deals, inside the 10 s budget of issue 4 once
the timeline (shared by every pipeline analytic) is built; reading the org from the database is the larger
cost (closewise.db.frames: ~21 s for 1M opportunities and 6.1M changes on SQLite).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from measure import timed

from closewise.analytics.coverage import CoverageReport, coverage
from closewise.analytics.snapshots import build_timeline
from closewise.domain.periods import FiscalCalendar
from closewise.domain.timeutil import parse_as_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_snapshots import synthesise

SEGMENTS = np.array(["smb", "mid_market", "enterprise"])
STAGES = ["prospecting", "qualification", "discovery", "proposal", "negotiation"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--period", default="2024-Q3")
    parser.add_argument("--as-of", default="2024-08-15")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default=None, help="measure on an existing database instead")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    as_of: datetime = parse_as_of(args.as_of)
    if args.db:
        from closewise.db.engine import make_engine
        from closewise.services.org_data import load_org

        engine = make_engine(args.db)
        org = timed("load_org", lambda: load_org(engine, activities=False))
        timeline = timed("build_timeline (shared by every analytic)", lambda: org.timeline)
        calendar, rates, corporate = org.calendar, org.rates, org.corporate_currency
        stages = org.stages["key"].to_list()
    else:
        opportunities, changes = timed(
            f"synthesise {args.opportunities:,} opportunities", lambda: synthesise(args.opportunities, args.seed)
        )
        rng = np.random.default_rng(args.seed + 1)
        opportunities = opportunities.with_columns(
            pl.Series("segment", SEGMENTS[rng.integers(0, 3, opportunities.height)])
        )
        print(f"  {changes.height:,} changes", flush=True)
        timeline = timed("build_timeline (shared by every analytic)", lambda: build_timeline(opportunities, changes))
        print(f"  {timeline.height:,} state rows", flush=True)
        calendar, corporate, stages = FiscalCalendar(), "USD", STAGES
        rates = pl.DataFrame(schema={"currency": pl.String, "rate": pl.Float64, "start_date": pl.Date})
    period = calendar.parse(args.period)

    def ask() -> CoverageReport:
        return coverage(
            timeline,
            period=period,
            as_of=as_of,
            target=1e9,
            calendar=calendar,
            rates=rates,
            corporate=corporate,
            stage_order=stages,
        )

    report = timed("coverage, first call", ask)
    for i in range(args.repeat):
        timed(f"coverage, again ({i + 1})", ask)
    print(
        f"  {report.open_deals:,} open deals in {report.period}, {report.history_deals:,} past deal-periods, "
        f"conversion {report.overall_conversion}",
        flush=True,
    )
    print(f"  {report.verdict}", flush=True)


if __name__ == "__main__":
    main()
