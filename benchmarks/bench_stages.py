"""Speed of the stage analytics (analytics/history.py, stages.py, cycle.py, slippage.py) on 1M opportunities.

    python benchmarks/bench_stages.py [--opportunities N] [--seed S] [--db URL]

Without `--db`, synthesises the frames as benchmarks/bench_snapshots.py does (N opportunities over three
years, ~6 logged changes each, 60% closed; random stages, so paths jump about, which only makes the work
larger) plus a random segment per deal. With `--db URL` (a built demo org, e.g. `closewise demo
--opportunities 1000000`), reads the org with `services.org_data.load_org` instead (the read is timed
apart). Then times each analytic at one as-of date, and all of them together the way `services.stages`
runs them (deal outcomes and stage visits computed once and shared), printing wall and CPU time and the
peak RSS.

Figures on the development container (2 vCPU shared with other jobs, which were busy: wall time ran 1.5-2.5x
the CPU time; polars 2.1), synthetic frames, N = 1,000,000 (6,098,896 changes), as of two years into the three
(665,857 deals existing, 1,204,950 stage visits):

    synthesise 1,000,000 opportunities                 25 s wall  14.1 s CPU  (not part of the analytics)
    deal_outcomes (status, closed_at, owner, amount)  3.2 s wall   1.8 s CPU
    stage_visits                                      2.6 s wall   1.3 s CPU
    stage_conversion (shared visits)                  0.4 s wall   0.2 s CPU
    time_in_stage (shared visits)                     0.5 s wall   0.4 s CPU
    sales_cycle by segment / by owner                 0.06 s each
    velocity by owner + org                           0.4 s wall   0.2 s CPU
    slippage by owner + org                           0.8 s wall   0.6 s CPU
    all of the above, as the service runs them       6.9 s wall   4.5 s CPU   (peak RSS 3.6 GiB, set by
                                                                               the synthesis)

So the stage analytics take about 4.5 s of CPU of the "all analytics on 1M under 10 s" budget. They do not
need the as-of timeline (`build_timeline`, ~10 s): they read only the stage, status, close date, owner and
amount changes straight from the log. Deal outcomes are the largest part and are shared by all of them.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from bench_snapshots import START, synthesise
from measure import timed

from closewise.analytics import history
from closewise.analytics.cycle import sales_cycle, velocity
from closewise.analytics.slippage import slippage
from closewise.analytics.stages import stage_conversion, time_in_stage

STAGES = pl.DataFrame(
    {"key": ["prospecting", "qualification", "discovery", "proposal", "negotiation"], "order": [1, 2, 3, 4, 5]}
)
RATES = pl.DataFrame(schema={"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", help="read a built org from this database instead of synthesising one")
    args = parser.parse_args(argv)

    if args.db:
        from closewise.db.engine import make_engine
        from closewise.services.org_data import load_org

        org = timed("load_org (read, not analytics)", lambda: load_org(make_engine(args.db), activities=False))
        opportunities, changes, stages, rates = org.opportunities, org.changes, org.stages, org.rates
        latest = org.opportunities["created_at"].max()
        assert isinstance(latest, datetime), "the org holds no opportunity"
        as_of = latest
        corporate = org.corporate_currency
    else:
        opportunities, changes = timed(
            f"synthesise {args.opportunities:,} opportunities", lambda: synthesise(args.opportunities, args.seed)
        )
        rng = np.random.default_rng(args.seed)
        segments = np.array(["smb", "mid_market", "enterprise"])[rng.integers(0, 3, opportunities.height)]
        opportunities = opportunities.with_columns(pl.Series("segment", segments))
        stages, rates, corporate = STAGES, RATES, "USD"
        as_of = START + timedelta(days=730)
    print(f"  {opportunities.height:,} opportunities, {changes.height:,} changes, as of {as_of}", flush=True)

    deals = timed("deal_outcomes", lambda: history.deal_outcomes(opportunities, changes, as_of=as_of))
    visits = timed(
        "stage_visits", lambda: history.stage_visits(opportunities, changes, stages, as_of=as_of, deals=deals)
    )
    print(f"  {deals.height:,} deals, {visits.height:,} visits", flush=True)
    timed("stage_conversion", lambda: stage_conversion(opportunities, changes, stages, as_of=as_of, visits=visits))
    timed("time_in_stage", lambda: time_in_stage(opportunities, changes, stages, as_of=as_of, visits=visits))
    for group in ("segment", "owner_id"):

        def cycle_by(by: str = group) -> pl.DataFrame:
            return sales_cycle(opportunities, changes, as_of=as_of, by=by, deals=deals)

        timed(f"sales_cycle by {group}", cycle_by)

    def both_velocity() -> None:
        for by in ("owner_id", None):
            velocity(opportunities, changes, rates, as_of=as_of, corporate=corporate, by=by, deals=deals)

    def both_slippage() -> None:
        for by in ("owner_id", None):
            slippage(opportunities, changes, as_of=as_of, by=by, deals=deals)

    timed("velocity by owner + org", both_velocity)
    timed("slippage by owner + org", both_slippage)

    def everything() -> None:
        shared = history.deal_outcomes(opportunities, changes, as_of=as_of)
        shared_visits = history.stage_visits(opportunities, changes, stages, as_of=as_of, deals=shared)
        stage_conversion(opportunities, changes, stages, as_of=as_of, visits=shared_visits)
        time_in_stage(opportunities, changes, stages, as_of=as_of, visits=shared_visits)
        for by in ("segment", "owner_id", None):
            sales_cycle(opportunities, changes, as_of=as_of, by=by, deals=shared)
        for by in ("owner_id", None):
            velocity(opportunities, changes, rates, as_of=as_of, corporate=corporate, by=by, deals=shared)
            slippage(opportunities, changes, as_of=as_of, by=by, deals=shared)

    timed("all stage analytics, as the service runs them", everything)


if __name__ == "__main__":
    main()
