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
interpolated from a fixed grid of `u` values (`U_GRID`). `prepare` computes those grid sums once per
outcome (`PreparedOutcome`), so calibration, which simulates every past period at every candidate scale,
never touches the small deals again, and 100,000 deals cost well under a second per simulation.

Breakdowns (`simulate_groups`): per owner, every deal drawn exactly, with the same period effect draws as
`simulate` for the same `random_state`, so an owner's range moves with the org's.

Calibrated deal probabilities (`calibrated_probability`): `E_u[expit(logit p + u)]`, the probability a deal
is won inside the period once the period effect is averaged out (Gauss-Hermite quadrature), so the
deals' expectations add up to the forecast's expected total.

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
IntArray = np.ndarray[Any, np.dtype[np.int64]]

DEFAULT_SCALE: Final = 0.6  # log-odds sd before any backtest; roughly what calibrated demo backtests find
# Finer near 0: with many deals a month the total is tight and a step of 0.1 in the effect's sd moves the
# interval's width a lot (on the 100,000-deal demo org P10-P90 spans about +-8.5% of the P50 at 0.1, +-13% at
# 0.2), so the CRPS can pick the width between them.
SCALE_GRID: Final = (*(round(0.025 * k, 3) for k in range(0, 8)), *(round(0.05 * k, 2) for k in range(4, 10)),
                     *(round(0.1 * k, 1) for k in range(5, 21)))
NEW_BUSINESS_RHO: Final = 0.5
# Period effects the simulation can meet: |shift| <= 4 (implied_shift's range) plus 2 sd of 4 at most.
U_GRID: Final = np.linspace(-12.0, 12.0, 97)
_CHUNK: Final = 250
_LOGIT_BIN: Final = 0.02
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)


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


@dataclass(frozen=True)
class PreparedOutcome:
    """An `Outcome` ready to simulate: its largest deals one by one, the rest as grid sums over `U_GRID`."""

    outcome: Outcome
    logit: FloatArray  # the exactly drawn deals, largest amount first
    amount: FloatArray
    rest_mean: FloatArray  # conditional mean of the other deals' total at each U_GRID value (empty: none)
    rest_sd: FloatArray

    @property
    def has_rest(self) -> bool:
        return self.rest_mean.size > 0

    def expected(self, u: float) -> float:
        """The expected total of the open deals when the period effect is `u`."""
        value = float(_expit(self.logit + u) @ self.amount)
        return value + float(np.interp(u, U_GRID, self.rest_mean)) if self.has_rest else value


def _expit(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: FloatArray = np.log(q / (1 - q))
    return out


def prepare(outcome: Outcome, *, exact_deals: int = 1500) -> PreparedOutcome:
    """Keep the `exact_deals` largest live deals one by one and sum the rest's conditional mean and variance
    on `U_GRID` (done once, whatever the calibration). The rest are first pooled by log-odds, to within
    `_LOGIT_BIN`: pooling deals of equal log-odds is exact, and within a bin of 0.02 the error is far below
    the Monte Carlo error."""
    live = (outcome.p > 0) & (outcome.amount > 0)
    p, amount = outcome.p[live], outcome.amount[live]
    exact = min(exact_deals, p.size)
    if exact < p.size:
        top = np.argpartition(-amount, exact - 1)[:exact] if exact else np.zeros(0, dtype=np.int64)
        rest = np.ones(p.size, dtype=bool)
        rest[top] = False
    else:
        top, rest = np.arange(p.size), np.zeros(p.size, dtype=bool)
    top = top[np.argsort(-amount[top], kind="stable")]
    logit = _logit(p)
    mean, sd = np.zeros(0), np.zeros(0)
    if rest.any():
        keys, index = np.unique(np.round(logit[rest] / _LOGIT_BIN), return_inverse=True)
        pooled = np.bincount(index, weights=amount[rest], minlength=keys.size)
        squared = np.bincount(index, weights=amount[rest] ** 2, minlength=keys.size)
        q = _expit(keys[:, None] * _LOGIT_BIN + U_GRID[None, :])
        mean = pooled @ q
        sd = np.sqrt(np.maximum(squared @ (q * (1 - q)), 0.0))
    return PreparedOutcome(outcome, logit[top], amount[top], mean, sd)


def _prepared(outcome: Outcome | PreparedOutcome, exact_deals: int) -> PreparedOutcome:
    return outcome if isinstance(outcome, PreparedOutcome) else prepare(outcome, exact_deals=exact_deals)


@dataclass(frozen=True)
class _Draws:
    """The random numbers of one simulation, kept so the same draws can be replayed at any calibration
    (common random numbers: candidate scales are compared on equal terms)."""

    z: FloatArray
    thresholds: FloatArray  # per exact deal and draw: win iff u > threshold (logit(U) - logit p)
    rest: FloatArray
    new_business: FloatArray

    @classmethod
    def of(cls, prepared: PreparedOutcome, n_sims: int, random_state: int) -> _Draws:
        rng = np.random.default_rng(random_state)
        z = rng.standard_normal(n_sims)
        pieces = [_logit(rng.random((min(first + _CHUNK, prepared.logit.size) - first, n_sims)))
                  - prepared.logit[first:first + _CHUNK, None] for first in range(0, prepared.logit.size, _CHUNK)]
        thresholds = np.concatenate(pieces) if pieces else np.zeros((0, n_sims))
        rest = rng.standard_normal(n_sims) if prepared.has_rest else np.zeros(n_sims)
        driver = (NEW_BUSINESS_RHO * z + math.sqrt(1 - NEW_BUSINESS_RHO**2) * rng.standard_normal(n_sims)
                  if prepared.outcome.new_business_mean > 0 else np.zeros(n_sims))
        return cls(z, thresholds, rest, driver)

    def totals(self, prepared: PreparedOutcome, calibration: Calibration) -> FloatArray:
        outcome = prepared.outcome
        u = calibration.shift + calibration.scale * self.z
        total = np.full(self.z.size, outcome.closed_won)
        for first in range(0, prepared.logit.size, _CHUNK):
            total += prepared.amount[first:first + _CHUNK] @ (self.thresholds[first:first + _CHUNK] < u[None, :])
        if prepared.has_rest:
            m = np.interp(u, U_GRID, prepared.rest_mean)
            sd = np.interp(u, U_GRID, prepared.rest_sd)
            total += np.maximum(m + sd * self.rest, 0.0)
        if outcome.new_business_mean > 0:
            cv2 = (outcome.new_business_sd / outcome.new_business_mean) ** 2
            sigma = math.sqrt(math.log1p(cv2))
            total += outcome.new_business_mean * np.exp(sigma * self.new_business - sigma * sigma / 2)
        return total


def simulate(outcome: Outcome | PreparedOutcome, calibration: Calibration, *, n_sims: int = 4000,
             random_state: int = 0, exact_deals: int = 1500) -> FloatArray:
    """`n_sims` draws of the period's total (see the module header). A `PreparedOutcome` keeps its own split
    between exact and approximated deals (`exact_deals` is then ignored)."""
    prepared = _prepared(outcome, exact_deals)
    return _Draws.of(prepared, n_sims, random_state).totals(prepared, calibration)


def period_effects(calibration: Calibration, *, n_sims: int, random_state: int) -> FloatArray:
    """The period effect `u` of each draw of `simulate(..., n_sims=n_sims, random_state=random_state)`."""
    z = np.random.default_rng(random_state).standard_normal(n_sims)
    out: FloatArray = calibration.shift + calibration.scale * z
    return out


def simulate_groups(p: FloatArray, amount: FloatArray, groups: IntArray, n_groups: int, calibration: Calibration, *,
                    n_sims: int = 4000, random_state: int = 0) -> FloatArray:
    """`(n_groups, n_sims)` draws of each group's total from its open deals (deal i in group `groups[i]`),
    every deal drawn exactly, with the period effects of `simulate` at the same `random_state`."""
    u = period_effects(calibration, n_sims=n_sims, random_state=random_state)
    out = np.zeros((n_groups, n_sims))
    live = (p > 0) & (amount > 0)
    order = np.argsort(groups[live], kind="stable")
    logit, value, group = _logit(p[live][order]), amount[live][order], groups[live][order]
    rng = np.random.default_rng([random_state, 1])
    for first in range(0, logit.size, _CHUNK):
        last = min(first + _CHUNK, logit.size)
        wins = rng.random((last - first, n_sims)) < _expit(logit[first:last, None] + u[None, :])
        chunk = group[first:last]
        starts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])
        out[chunk[starts]] += np.add.reduceat(value[first:last, None] * wins, starts, axis=0)
    return out


def calibrated_probability(p: FloatArray, calibration: Calibration) -> FloatArray:
    """`E_u[expit(logit p + u)]` with `u ~ N(shift, scale^2)` (Gauss-Hermite), 0 where `p` is 0."""
    if p.size == 0:
        return np.zeros(0)
    u = calibration.shift + calibration.scale * _HERMITE_NODES
    weights = _HERMITE_WEIGHTS / _HERMITE_WEIGHTS.sum()
    out: FloatArray = _expit(_logit(p)[:, None] + u[None, :]) @ weights
    return np.where(p > 0, out, 0.0)


def implied_shift(outcome: Outcome | PreparedOutcome, actual: float) -> float:
    """The period effect `u` at which the expected outcome equals `actual` (bisection, within +-4)."""
    prepared = _prepared(outcome, 1500)
    needed = actual - prepared.outcome.closed_won - prepared.outcome.new_business_mean
    lo, hi = -4.0, 4.0
    if needed <= prepared.expected(lo):
        return lo
    if needed >= prepared.expected(hi):
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if prepared.expected(mid) < needed else (lo, mid)
    return (lo + hi) / 2


def calibrate(points: Sequence[tuple[Outcome | PreparedOutcome, float]], *, min_points: int = 4,
              n_sims: int = 1000, random_state: int = 0, fit_shift: bool = True) -> Calibration:
    """Shift and scale of the period effect from past (forecast inputs, actual) pairs; see the header.
    Outcomes are best passed prepared (`prepare(outcome, exact_deals=300)`), once per past period."""
    usable = [(_prepared(o, 300), a) for o, a in points if a > 0]
    usable = [(o, a) for o, a in usable if o.outcome.p.size]
    if len(usable) < min_points:
        return Calibration()
    n = len(usable)
    # Recent backtests weigh more (half-life 4 periods): the org and its models change.
    weights = 0.5 ** (np.arange(n)[::-1] / 4.0)
    implied = np.array([implied_shift(o, a) for o, a in usable])
    shift = float(weights @ implied / weights.sum()) * n / (n + 2) if fit_shift else 0.0
    draws = [_Draws.of(o, n_sims, random_state + k) for k, (o, _) in enumerate(usable)]
    best_scale, best_score = DEFAULT_SCALE, math.inf
    for scale in SCALE_GRID:
        trial = Calibration(shift, scale, n)
        scores = [crps_samples(a, d.totals(o, trial)) / a for d, (o, a) in zip(draws, usable, strict=True)]
        score = float(np.mean(scores))
        if score < best_score - 1e-12:
            best_scale, best_score = scale, score
    return Calibration(shift, best_scale, n)
