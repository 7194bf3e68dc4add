"""Backtests: the forecast of each past period made on its first day, against what it booked and the baselines.

For every period P of a kind (month, quarter) starting in [start, end], as of `P.start` 00:00 UTC, with only
what was known then (the deal models and new business trained on earlier history, the latent period effect
calibrated on the periods that had ended by then, each forecast at its own first day):

- the forecast's P10, P50, P90 and mean, and its CRPS against the actual;
- the actual: the amount won inside P, as known at its end;
- the baselines a sales leader has today (`ml.baselines`): the 3-month run rate, the CRM's
  probability-weighted pipeline and the commit call.

The summary scores the P50 by its mean absolute percentage error and mean signed percentage error (bias),
the P10-P90 interval by how often it held the actual (coverage, 80% when calibrated), the distribution by
the CRPS (Gneiting and Raftery 2007; also divided by the actual), the deal probabilities of being won
inside the period by the Brier score and the AUC, and the baselines by their MAPE and bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from closewise.analytics import schema as s
from closewise.domain.periods import Period, PeriodKind
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput
from closewise.ml.baselines import BASELINE_NAMES, baselines
from closewise.ml.forecaster import ForecastFrames, PeriodForecaster, PeriodInputs, won_in_period
from closewise.ml.metrics import bias, brier_score, calibration_table, crps_samples, interval_coverage, mape, roc_auc


@dataclass(frozen=True)
class BacktestRow:
    period: Period
    as_of: datetime
    actual: float
    p10: float
    p50: float
    p90: float
    expected: float
    crps: float
    baselines: dict[str, float]
    deal_p: tuple[float, ...]  # p_close_in_period of the deals open at as_of
    deal_won: tuple[bool, ...]  # won inside the period

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period.label, "as_of": self.as_of.isoformat(), "period_start": self.period.start,
            "period_end": self.period.last_day, "actual": self.actual, "p10": self.p10, "p50": self.p50,
            "p90": self.p90, "expected": self.expected, "crps": self.crps, "baselines": dict(self.baselines),
        }


@dataclass(frozen=True)
class BacktestResult:
    kind: PeriodKind
    rows: tuple[BacktestRow, ...]
    scorer: str
    calibration: dict[str, float | int]  # of the last row

    def summary(self) -> dict[str, Any]:
        return summarise(self.rows)


def baselines_at(frames: ForecastFrames, period: Period, as_of: datetime) -> dict[str, float]:
    """Run rate, CRM-weighted pipeline and commit for `period` as known at `as_of` (`ml.baselines`)."""
    stages = getattr(frames, "stages", None)
    return baselines(frames.timeline, period=period, as_of=as_of, rates=frames.rates,
                     corporate=frames.corporate_currency, stages=stages).as_dict()


def run_backtest(
    frames: ForecastFrames,
    *,
    kind: PeriodKind,
    start: date,
    end: date,
    known_at: datetime,
    forecaster: PeriodForecaster | None = None,
    on_period: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """One row per period of `kind` starting in [start, end]; every such period must have ended by
    `known_at` (the data's present). `on_period(done, total)` reports progress."""
    if kind is PeriodKind.YEAR:
        raise InvalidInput("backtests run over months or quarters", where="--period-type")
    if start > end:
        raise InvalidInput(f"--start {start} is after --end {end}")
    targets = frames.calendar.periods_between(start, end, kind)
    if not targets:
        raise InvalidInput(f"no {kind.value} starts between {start} and {end}")
    unfinished = [p for p in targets if midnight(p.end) > naive_utc(known_at)]
    if unfinished:
        raise InvalidInput(f"{unfinished[0].label} has not ended yet; backtest periods that ended "
                           f"(end the range before {unfinished[0].start})", where="--end")
    forecaster = forecaster or PeriodForecaster()
    warmup: list[Period] = []
    current = targets[0]
    for _ in range(forecaster.calibration_periods):
        current = frames.calendar.previous(current)
        warmup.insert(0, current)
    total = len(warmup) + len(targets)
    ledger: list[tuple[PeriodInputs, float]] = []
    rows: list[BacktestRow] = []
    calibration: dict[str, float | int] = {}
    for done, period in enumerate([*warmup, *targets], start=1):
        as_of = midnight(period.start)
        inputs = forecaster.prepare(frames, period, as_of, reasons=False)
        final = won_in_period(frames, period, midnight(period.end) - timedelta(microseconds=1))
        actual = float(final["won"].sum())  # `actual_of`, whose rows give the deals won as well
        if period in targets:
            history = [(i, a) for i, a in ledger if midnight(i.period.end) <= as_of][-forecaster.calibration_periods:]
            result = forecaster.forecast(frames, period, as_of, history=history, inputs=inputs)
            won_ids = {int(i) for i in final[s.ID]}
            rows.append(BacktestRow(
                period, as_of, actual, result.quantile(0.1), result.quantile(0.5), result.quantile(0.9),
                result.expected, crps_samples(actual, result.samples), baselines_at(frames, period, as_of),
                tuple(inputs.deals["p_close_in_period"].to_list()),
                tuple(i in won_ids for i in inputs.deals[s.ID].to_list()),
            ))
            calibration = result.calibration.to_dict()
        ledger.append((inputs, actual))
        if on_period is not None:
            on_period(done, total)
    return BacktestResult(kind, tuple(rows), ledger[-1][0].scorer if ledger else "", calibration)


def _clean(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def summarise(rows: Sequence[BacktestRow]) -> dict[str, Any]:
    """P50 MAPE and bias, P10-P90 coverage, CRPS, deal Brier, AUC and calibration, and the baselines' MAPE and
    bias (`ml.metrics`)."""
    actual = [r.actual for r in rows]
    scored = [r for r in rows if r.actual > 0]
    baseline_scores: dict[str, dict[str, float | None]] = {
        name: {"mape": _clean(mape(actual, [r.baselines[name] for r in rows])),
               "bias": _clean(bias(actual, [r.baselines[name] for r in rows]))}
        for name in BASELINE_NAMES
    }
    mapes = {k: v["mape"] for k, v in baseline_scores.items() if v["mape"] is not None}
    best = min(mapes, key=lambda k: mapes[k]) if mapes else None
    p50_mape = _clean(mape(actual, [r.p50 for r in rows]))
    p = np.array([x for r in rows for x in r.deal_p], dtype=np.float64)
    y = np.array([x for r in rows for x in r.deal_won], dtype=np.bool_)
    best_mape = mapes[best] if best is not None else None
    return {
        "periods": len(rows),
        "p50_mape": p50_mape,
        "p50_bias": _clean(bias(actual, [r.p50 for r in rows])),
        "coverage_p10_p90": _clean(interval_coverage(actual, [r.p10 for r in rows], [r.p90 for r in rows])),
        "crps": float(np.mean([r.crps for r in rows])) if rows else None,
        "crps_relative": float(np.mean([r.crps / r.actual for r in scored])) if scored else None,
        "deal_brier": brier_score(p, y),
        "deal_auc": roc_auc(p, y),
        "deals_scored": int(p.size),
        "deal_calibration": calibration_table(p, y).to_dicts(),
        "baselines": baseline_scores,
        "best_baseline": best,
        "p50_mape_vs_best_baseline": p50_mape / best_mape if p50_mape is not None and best_mape else None,
    }
