"""The issue's accuracy target on monthly backtests, checked on a demo org large enough to reach it.

    python benchmarks/bench_accuracy.py --db /tmp/f5/d100k.db      # an org built once, see below
    python benchmarks/bench_accuracy.py --opportunities 100000     # build it first (several minutes)

Target (issue 5): on monthly backtests, the P50's error (MAPE) at most half of the best baseline's, and the
P10-P90 interval holding the actual 75-85% of the time. The 2,500-deal demo cannot reach the first: a demo
month books ~25 wins of very unequal size and even an oracle of the generator misses by 0.63x the best
baseline in expectation (`bench_backtest.py --oracle`, docs/forecasting.md). A 100,000-deal demo org has the
same generator with 40 times the deals, so the noise of which deals land inside a month is several times
smaller and the target is a test of the models, not of luck. Too slow for CI (building the org takes minutes,
the backtest ~2 minutes CPU), so it is a benchmark, not a test.

Runs the twelve monthly backtests 2025-11 to 2026-10 exactly as `closewise backtest` does (models and
calibration from earlier history only, each forecast as of the month's first day), prints each month's P50
error and whether P10-P90 held the actual, the summary beside the baselines, and whether each target is met.
Exit status 1 when the P50 target is missed. Build the org once with
`closewise --db /tmp/f5/d100k.db demo --opportunities 100000 --today 2026-11-22 --no-serve`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime

from measure import demo_database, timed

from closewise.domain.periods import PeriodKind
from closewise.ml.backtest import run_backtest
from closewise.ml.forecaster import PeriodForecaster
from closewise.services.forecast import with_criteria
from closewise.services.org_data import load_org

TODAY = date(2026, 11, 22)
P50_TARGET = 0.5  # at most this times the best baseline's MAPE
COVERAGE_TARGET = (0.75, 0.85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL or SQLite path (default: build a demo org)")
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--history-quarters", type=int, default=8,
                        help="quarters of history of the demo org built (without --db)")
    parser.add_argument("--start", default="2025-11-01")
    parser.add_argument("--end", default="2026-10-01")
    args = parser.parse_args()
    engine = demo_database(args.db, opportunities=args.opportunities, today=TODAY, name="accuracy.db",
                           history_quarters=args.history_quarters)
    org = timed("load org", lambda: load_org(engine))
    forecaster = with_criteria(engine, PeriodForecaster())
    result = timed("backtest, 12 monthly periods", lambda: run_backtest(
        org, kind=PeriodKind.MONTH, start=date.fromisoformat(args.start), end=date.fromisoformat(args.end),
        known_at=datetime(TODAY.year, TODAY.month, TODAY.day), forecaster=forecaster))

    print(f"\n{'month':<8} {'actual':>14} {'P50':>14} {'P50 error':>10}  P10-P90 held")
    for row in result.rows:
        error = row.p50 / row.actual - 1 if row.actual else float("nan")
        held = "yes" if row.p10 <= row.actual <= row.p90 else "no"
        print(f"{row.period.label:<8} {row.actual:14,.0f} {row.p50:14,.0f} {error:+10.1%}  {held}")
    summary = result.summary()
    best = summary["best_baseline"]
    print(f"\nP50 MAPE {summary['p50_mape']:.2%}, bias {summary['p50_bias']:+.2%}; "
          f"CRPS {summary['crps_relative']:.2%} of the actual; deals won inside the month: "
          f"Brier {summary['deal_brier']:.3f}, AUC {summary['deal_auc']:.3f}")
    for name, scores in summary["baselines"].items():
        print(f"  baseline {name:<13} MAPE {scores['mape']:.2%}, bias {scores['bias']:+.2%}")
    ratio, coverage = summary["p50_mape_vs_best_baseline"], summary["coverage_p10_p90"]
    p50_met = ratio <= P50_TARGET
    coverage_met = COVERAGE_TARGET[0] <= coverage <= COVERAGE_TARGET[1]
    print(f"P50 MAPE vs best baseline ({best}): {ratio:.3f}x, target <= {P50_TARGET}: "
          f"{'met' if p50_met else 'NOT met'}")
    print(f"P10-P90 coverage {coverage:.0%} ({round(coverage * len(result.rows))} of {len(result.rows)}), target "
          f"{COVERAGE_TARGET[0]:.0%}-{COVERAGE_TARGET[1]:.0%}: {'met' if coverage_met else 'NOT met'}")
    sys.exit(0 if p50_met else 1)


if __name__ == "__main__":
    main()
