"""Forecast simulation for a large open pipeline: `python benchmarks/bench_forecast.py [--deals N] [--db PATH]`.

Synthesises N open deals (lognormal amounts, probabilities of closing in the period from a beta law, 2,000
owners in 200 teams) and times what the forecast adds on top of deal scoring: calibrating the period effect on
12 past periods of the same size, simulating 4,000 outcomes of the period, and the owner and team
breakdowns with their P10/P50/P90. With `--db` (a demo org, e.g. `closewise --db /tmp/f5/demo.db demo
--today 2026-11-22 --no-serve`) it also forecasts that org's current quarter and times `restrict` (the scoped
forecast the web app asks for: everyone, one team, one rep), which must stay well under 0.3 s.

Deal scoring is timed by `benchmarks/bench_backtest.py`. Figures and commands: docs/forecasting.md.
"""

from __future__ import annotations

import argparse
from datetime import datetime

import numpy as np
import polars as pl
from measure import timed

from closewise.domain.periods import FiscalCalendar
from closewise.ml.explain import REASON_DTYPE
from closewise.ml.forecaster import PeriodForecast, PeriodForecaster, PeriodInputs, restrict, simulated
from closewise.ml.newbusiness import NewBusinessEstimate
from closewise.ml.simulation import Calibration, Outcome, calibrate, prepare, simulate


def _outcome(n: int, seed: int) -> Outcome:
    rng = np.random.default_rng(seed)
    return Outcome(1e6, rng.beta(0.6, 3.0, n), rng.lognormal(10.5, 1.0, n), 2e5, 1e5)


def _inputs(outcome: Outcome) -> PeriodInputs:
    n = outcome.p.size
    owner = np.random.default_rng(1).integers(0, 2_000, n)
    deals = pl.DataFrame({"id": np.arange(n), "owner_id": owner, "team_id": owner // 10, "p_win": outcome.p,
                          "p_close_in_period": outcome.p, "expected_amount": outcome.p * outcome.amount,
                          "reasons": pl.Series([[]] * n, dtype=REASON_DTYPE), "amount": outcome.amount,
                          "amount_if_won": outcome.amount})
    won = pl.DataFrame({"id": [-1], "owner_id": [0], "team_id": [0], "won": [outcome.closed_won]})
    period = FiscalCalendar().parse("2026-Q4")
    return PeriodInputs(period, datetime(2026, 11, 1), outcome.closed_won, deals,
                        NewBusinessEstimate(outcome.new_business_mean, outcome.new_business_sd, 12), "synthetic", won)


def synthetic(deals: int) -> None:
    outcome = _outcome(deals, 0)
    history = []
    for k in range(12):
        past = _outcome(deals, 100 + k)
        history.append((past, float(simulate(past, Calibration(0.0, 0.5), n_sims=1, random_state=k)[0])))
    prepared = timed(f"prepare 12 past periods of {deals:,} deals (grid sums)",
                     lambda: [(prepare(o, exact_deals=300), a) for o, a in history])
    calibration = timed("calibrate on them (21 scales x 12 x 1,000 draws)", lambda: calibrate(prepared))
    samples = timed(f"simulate {deals:,} open deals x 4,000", lambda: simulate(outcome, calibration))
    p10, p50, p90 = np.quantile(samples, [0.1, 0.5, 0.9])
    print(f"calibration {calibration}; P10 {p10:,.0f}  P50 {p50:,.0f}  P90 {p90:,.0f}")
    forecast = simulated(_inputs(outcome), calibration, target=None, n_sims=4000, random_state=0, owner_targets={},
                         team_targets={})
    timed("by owner (2,000) and team (200), with P10/P50/P90", lambda: forecast.by_team)


def demo(path: str) -> None:
    from closewise.db.engine import make_engine
    from closewise.services.forecast import with_criteria
    from closewise.services.org_data import load_org

    engine = make_engine(f"sqlite:///{path}" if "://" not in path else path)
    org = load_org(engine)
    forecaster = with_criteria(engine, PeriodForecaster())
    quarter = org.calendar.parse("2026-Q4")
    forecast = timed("demo: forecast 2026-Q4 as of 2026-11-21 (models + calibration)",
                     lambda: forecaster.forecast(org, quarter, datetime(2026, 11, 21, 23, 59), target=5e6))
    team = forecast.by_team.row(0, named=True)["team_id"]
    members = forecast.by_owner.filter(pl.col("team_id") == team)["owner_id"].to_list()
    rep = members[0]
    for label, owners in (("everyone", None), (f"team {team} ({len(members)} reps)", members), (f"rep {rep}", [rep])):
        scoped = timed(f"demo: restrict to {label}, breakdowns included",
                       lambda owners=owners: _scoped(forecast, owners))
        print(f"    P10 {scoped.quantile(0.1):,.0f}  P50 {scoped.quantile(0.5):,.0f}  P90 {scoped.quantile(0.9):,.0f}")


def _scoped(forecast: PeriodForecast, owners: list[int] | None) -> PeriodForecast:
    scoped = restrict(forecast, owners, target=None, include_new_business=owners is None)
    scoped.by_team  # noqa: B018 (the breakdowns are computed when first read)
    return scoped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--db", help="a demo org's database: also time its forecast and restrict")
    args = parser.parse_args()
    synthetic(args.deals)
    if args.db:
        demo(args.db)


if __name__ == "__main__":
    main()
