"""The issue's accuracy target on monthly backtests, checked on demo orgs large enough to reach it.

    python benchmarks/bench_accuracy.py --db /tmp/f5/d100k.db      # an org built once, see below
    python benchmarks/bench_accuracy.py --opportunities 100000     # build it first (several minutes)
    python benchmarks/bench_accuracy.py --db y7.db --db y11.db --db y3.db --start 2024-11-01   # pooled

Target (issue 5): on monthly backtests, the P50's error (MAPE) at most half of the best baseline's, and the
P10-P90 interval holding the actual 75-85% of the time. The 2,500-deal demo cannot reach the first: a demo
month books ~25 wins of very unequal size and even an oracle of the generator misses by 0.63x the best
baseline in expectation (`bench_backtest.py --oracle`, docs/forecasting.md). A 100,000-deal demo org has the
same generator with 40 times the deals, so the noise of which deals land inside a month is several times
smaller and the target is a test of the models, not of luck. Too slow for CI (building an org takes minutes,
a backtest a few minutes CPU), so it is a benchmark, not a test.

The interval target is a rate, and twelve months measure a rate poorly: an interval that holds the actual
exactly 80% of the time lands 9 or 10 of 12 (75-85%) with probability 0.52 only. So several orgs (`--db`
repeated, or `--seed` repeated to build them) and longer ranges are pooled: the pooled share held, its 90%
Clopper-Pearson interval, and the chance that a perfectly calibrated 80% interval would land in 75-85% over
that many months are printed.

Runs the monthly backtests of each org exactly as `closewise backtest` does (models and calibration from
earlier history only, each forecast as of the month's first day), prints each month's P50 error and whether
P10-P90 held the actual, the summary beside the baselines, and whether each target is met (the P50 per org,
the interval pooled). Exit status 1 when a target is missed. Build an org once with
`closewise --db /tmp/f5/d100k.db demo --opportunities 100000 --today 2026-11-22 --no-serve`.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import date, datetime

from measure import demo_database, timed
from scipy.stats import beta

from closewise.domain.periods import PeriodKind
from closewise.ml.backtest import BacktestResult, run_backtest
from closewise.ml.forecaster import PeriodForecaster
from closewise.services.forecast import with_criteria
from closewise.services.org_data import load_org

TODAY = date(2026, 11, 22)
P50_TARGET = 0.5  # at most this times the best baseline's MAPE
COVERAGE_TARGET = (0.75, 0.85)
NOMINAL = 0.8  # P10-P90


def chance_in_target(months: int, rate: float = NOMINAL) -> float:
    """P(share held in COVERAGE_TARGET) over `months` independent months when each is held with `rate`."""
    low, high = COVERAGE_TARGET
    return sum(math.comb(months, k) * rate**k * (1 - rate) ** (months - k) for k in range(months + 1)
               if low - 1e-9 <= k / months <= high + 1e-9)


def clopper_pearson(held: int, months: int, level: float = 0.9) -> tuple[float, float]:
    """The exact binomial confidence interval of the share held."""
    alpha = (1 - level) / 2
    low = float(beta.ppf(alpha, held, months - held + 1)) if held > 0 else 0.0
    high = float(beta.ppf(1 - alpha, held + 1, months - held)) if held < months else 1.0
    return low, high


def report(label: str, result: BacktestResult) -> tuple[bool, int]:
    """Print one org's months and summary; (P50 target met, months held)."""
    print(f"\n== {label}\n{'month':<8} {'actual':>14} {'P50':>14} {'P50 error':>10}  P10-P90 held")
    held = 0
    for row in result.rows:
        error = row.p50 / row.actual - 1 if row.actual else float("nan")
        inside = row.p10 <= row.actual <= row.p90
        held += inside
        print(f"{row.period.label:<8} {row.actual:14,.0f} {row.p50:14,.0f} {error:+10.1%}  {'yes' if inside else 'no'}")
    summary = result.summary()
    print(f"P50 MAPE {summary['p50_mape']:.2%}, bias {summary['p50_bias']:+.2%}; "
          f"CRPS {summary['crps_relative']:.2%} of the actual; deals won inside the month: "
          f"Brier {summary['deal_brier']:.3f}, AUC {summary['deal_auc']:.3f}")
    for name, scores in summary["baselines"].items():
        print(f"  baseline {name:<13} MAPE {scores['mape']:.2%}, bias {scores['bias']:+.2%}")
    ratio, months = summary["p50_mape_vs_best_baseline"], len(result.rows)
    p50_met = ratio <= P50_TARGET
    print(f"P50 MAPE vs best baseline ({summary['best_baseline']}): {ratio:.3f}x, target <= {P50_TARGET}: "
          f"{'met' if p50_met else 'NOT met'}")
    print(f"P10-P90 held {held} of {months} ({held / months:.0%}); a calibrated 80% interval lands in "
          f"{COVERAGE_TARGET[0]:.0%}-{COVERAGE_TARGET[1]:.0%} over {months} months with probability "
          f"{chance_in_target(months):.2f}")
    return p50_met, held


def backtest(db: str | None, seed: int, args: argparse.Namespace) -> BacktestResult:
    """The monthly backtests of one org (built first when `db` is None)."""
    engine = demo_database(db, opportunities=args.opportunities, today=TODAY, name=f"accuracy-{seed}.db",
                           history_quarters=args.history_quarters, seed=seed)
    org = timed("load org", lambda: load_org(engine))
    forecaster = with_criteria(engine, PeriodForecaster())
    return timed(f"backtest, monthly {args.start} to {args.end}", lambda: run_backtest(
        org, kind=PeriodKind.MONTH, start=date.fromisoformat(args.start), end=date.fromisoformat(args.end),
        known_at=datetime(TODAY.year, TODAY.month, TODAY.day), forecaster=forecaster))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", default=[],
                        help="database URL or SQLite path; repeat to pool orgs (default: build demo orgs)")
    parser.add_argument("--seed", type=int, action="append", default=[],
                        help="seed of a demo org to build (without --db; repeat to pool; default 7)")
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--history-quarters", type=int, default=8,
                        help="quarters of history of the demo orgs built (without --db)")
    parser.add_argument("--start", default="2025-11-01")
    parser.add_argument("--end", default="2026-10-01")
    args = parser.parse_args()
    orgs = [(db, 0) for db in args.db] or [(None, seed) for seed in args.seed or [7]]
    outcomes: list[tuple[bool, int, int]] = []
    for db, seed in orgs:
        result = backtest(db, seed, args)
        p50_met, held = report(db or f"demo org, seed {seed}", result)
        outcomes.append((p50_met, held, len(result.rows)))

    held, months = sum(h for _, h, _ in outcomes), sum(n for _, _, n in outcomes)
    coverage = held / months
    low, high = clopper_pearson(held, months)
    coverage_met = COVERAGE_TARGET[0] <= coverage <= COVERAGE_TARGET[1]
    p50_met = all(met for met, _, _ in outcomes)
    print(f"\n== {len(outcomes)} org(s), {months} months")
    print(f"P50 target met on {sum(met for met, _, _ in outcomes)} of {len(outcomes)} org(s)")
    print(f"P10-P90 held {held} of {months}: {coverage:.1%} (90% interval {low:.1%}-{high:.1%}), target "
          f"{COVERAGE_TARGET[0]:.0%}-{COVERAGE_TARGET[1]:.0%}: {'met' if coverage_met else 'NOT met'}; a "
          f"calibrated 80% interval lands in the target over {months} months with probability "
          f"{chance_in_target(months):.2f}")
    sys.exit(0 if p50_met and coverage_met else 1)


if __name__ == "__main__":
    main()
