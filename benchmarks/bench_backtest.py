"""A 12-period monthly backtest of a large org: `python benchmarks/bench_backtest.py --db URL_OR_PATH
[--start DATE --end DATE]` on an existing database (e.g. one built by `closewise demo --opportunities
1000000`), or `--opportunities N` to build a demo org of N deals into a temporary SQLite file first.

Times loading the org, then the backtest (12 periods plus the 12 earlier ones its calibration needs, each a
deal-model fit and a simulation), and prints the summary.

Measured (2-vCPU machine): the 2,500-deal demo, 12 months, ~35 s with the LightGBM deal models (~5 s with
the interim stage-rate scorer). The 1,000,000-opportunity org has not been measured yet (target: < 10 min).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date, datetime
from pathlib import Path

from measure import timed

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.domain.periods import PeriodKind
from closewise.ml.backtest import run_backtest
from closewise.services.demo import build_demo
from closewise.services.org_data import load_org

TODAY = date(2026, 11, 22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="database URL or SQLite path (default: build a demo org)")
    parser.add_argument("--opportunities", type=int, default=2_500)
    parser.add_argument("--start", default="2025-11-01")
    parser.add_argument("--end", default="2026-10-01")
    args = parser.parse_args()
    url = args.db
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        timed(f"build demo ({args.opportunities:,} deals)",
              lambda: build_demo(engine, seed=7, today=TODAY, opportunities=args.opportunities))
    elif "://" not in url:
        url = f"sqlite:///{url}"
    engine = make_engine(url)
    org = timed("load org", lambda: load_org(engine, activities=True))
    timed("timeline", lambda: org.timeline)
    result = timed("backtest, 12 monthly periods", lambda: run_backtest(
        org, kind=PeriodKind.MONTH, start=date.fromisoformat(args.start), end=date.fromisoformat(args.end),
        known_at=datetime(TODAY.year, TODAY.month, TODAY.day)))
    summary = {k: v for k, v in result.summary().items() if k != "deal_calibration"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
