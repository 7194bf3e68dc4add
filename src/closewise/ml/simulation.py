"""The period outcome as a distribution: correlated deal wins plus new business, and its calibration.

What it simulates (corporate currency): `closed won so far + sum_i B_i a_i + N`, where deal i is won
inside the period (`B_i = 1`) with probability `p_i`, `a_i` its expected amount if won, and `N` the new
business (`ml.newbusiness`). Wins in one period are not independent: a good or bad month moves every deal
together (a market, a quarter-end push, a team's focus), and an independent Monte Carlo gives intervals far
too narrow (on a real org the 80% interval held the actual about 40% of the time). So the deals share one
latent period effect `u ~ N(shift, scale^2)` on the log-odds scale, `P(B_i = 1 | u) = expit(logit p_i + u)`:
a random-intercept (random-effects) logistic model, equivalently a one-factor Gaussian copula of the deal
outcomes (Vasicek, "Probability of loss on loan portfolio", KMV 1987; Li, "On default correlation: a copula
function approach", J. Fixed Income 9(4), 2000). New business is lognormal with its mean and spread, its
normal driver correlated `rho` with `u`.

How: given `u`, the `exact_deals` largest deals are drawn as Bernoulli variables; the rest (each small
against the total) by the normal approximation of their sum (Lindeberg), its conditional mean and variance
interpolated from a grid of `u` values, so 100,000 deals cost a few seconds.

Calibration (`calibrate`): `shift` and `scale` are learned from the org's own backtests, forecasts made at the
same point of past periods with only what was known then. `shift` is the mean implied effect (the `u` at
which the expected outcome equals the actual; recent backtests weigh more, half-life 4 periods), shrunk
toward 0 by `n / (n + 2)`; it corrects a systematic
bias of the deal probabilities. `scale` minimises the mean CRPS of those forecasts, each divided by its
actual (CRPS is a strictly proper score: Gneiting and Raftery, "Strictly proper scoring rules, prediction,
and estimation", JASA 102(477), 2007), which is what makes P10-P90 hold the actual about 80% of the time
when the model's shape is right. With fewer than `min_points` backtests the scale is `DEFAULT_SCALE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from closewise.ml.metrics import crps_samples

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

DEFAULT_SCALE: Final = 0.6  # log-odds sd before any backtest; roughly what calibrated demo backtests find
SCALE_GRID: Final = tuple(round(0.1 * k, 1) for k in range(0, 21))
NEW_BUSINESS_RHO: Final = 0.5


@dataclass(frozen=True)
class Calibration:
    shift: float = 0.0
    scale: float = DEFAULT_SCALE
    points: int = 0  # backtests it was learned from

    def to_dict(self) -> dict[str, float | int]:
        return {"shift": self.shift, "scale": self.scale, "backtests": self.points}


@dataclass(frozen=True)
class Outcome:
    """The inputs of one period's simulation."""

    closed_won: float
    p: FloatArray  # per open deal: probability of being won inside the period
    amount: FloatArray  # per open deal: expected amount if won
    new_business_mean: float
    new_business_sd: float

    @property
    def expected_deals(self) -> float:
        return float(self.p @ self.amount)


def _expit(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: FloatArray = np.log(q / (1 - q))
    return out


def simulate(outcome: Outcome, calibration: Calibration, *, n_sims: int = 4000, random_state: int = 0,
             exact_deals: int = 1500) -> FloatArray:
    """`n_sims` draws of the period's total (see the module header)."""
    rng = np.random.default_rng(random_state)
    z = rng.standard_normal(n_sims)
    u = calibration.shift + calibration.scale * z
    total = np.full(n_sims, outcome.closed_won)
    live = (outcome.p > 0) & (outcome.amount > 0)
    p, amount = outcome.p[live], outcome.amount[live]
    if p.size:
        order = np.argsort(-amount, kind="stable")
        logit = _logit(p[order])
        amount = amount[order]
        exact = min(exact_deals, p.size)
        for first in range(0, exact, 250):
            last = min(first + 250, exact)
            probability = _expit(logit[first:last, None] + u[None, :])
            wins = rng.random(probability.shape) < probability
            total += amount[first:last] @ wins
        if exact < p.size:
            rest_logit, rest_amount = logit[exact:], amount[exact:]
            grid = np.linspace(u.min(), u.max(), 33) if u.max() > u.min() else u[:1]
            mean = np.empty(grid.size)
            variance = np.empty(grid.size)
            for k, g in enumerate(grid):
                q = _expit(rest_logit + g)
                mean[k] = q @ rest_amount
                variance[k] = (q * (1 - q)) @ (rest_amount * rest_amount)
            m = np.interp(u, grid, mean)
            v = np.interp(u, grid, variance)
            total += np.maximum(m + np.sqrt(v) * rng.standard_normal(n_sims), 0.0)
    if outcome.new_business_mean > 0:
        cv2 = (outcome.new_business_sd / outcome.new_business_mean) ** 2
        sigma = math.sqrt(math.log1p(cv2))
        driver = NEW_BUSINESS_RHO * z + math.sqrt(1 - NEW_BUSINESS_RHO**2) * rng.standard_normal(n_sims)
        total += outcome.new_business_mean * np.exp(sigma * driver - sigma * sigma / 2)
    return total


def implied_shift(outcome: Outcome, actual: float) -> float:
    """The period effect `u` at which the expected outcome equals `actual` (bisection, within +-4)."""
    needed = actual - outcome.closed_won - outcome.new_business_mean
    logit = _logit(outcome.p)

    def expected(u: float) -> float:
        return float(_expit(logit + u) @ outcome.amount)

    lo, hi = -4.0, 4.0
    if needed <= expected(lo):
        return lo
    if needed >= expected(hi):
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < needed else (lo, mid)
    return (lo + hi) / 2


def calibrate(points: Sequence[tuple[Outcome, float]], *, min_points: int = 4, n_sims: int = 1000,
              random_state: int = 0, fit_shift: bool = True) -> Calibration:
    """Shift and scale of the period effect from past (forecast inputs, actual) pairs; see the header."""
    usable = [(o, a) for o, a in points if a > 0 and o.p.size]
    if len(usable) < min_points:
        return Calibration()
    n = len(usable)
    # Recent backtests weigh more (half-life 4 periods): the org and its models change.
    weights = 0.5 ** (np.arange(n)[::-1] / 4.0)
    implied = np.array([implied_shift(o, a) for o, a in usable])
    shift = float(weights @ implied / weights.sum()) * n / (n + 2) if fit_shift else 0.0
    best_scale, best_score = DEFAULT_SCALE, math.inf
    for scale in SCALE_GRID:
        trial = Calibration(shift, scale, n)
        score = float(np.mean([crps_samples(a, simulate(o, trial, n_sims=n_sims, random_state=random_state + k,
                                                                exact_deals=300)) / a
                               for k, (o, a) in enumerate(usable)]))
        if score < best_score - 1e-12:
            best_scale, best_score = scale, score
    return Calibration(shift, best_scale, n)
