"""The smoothed stage/owner win rate: the deal model used when history is too thin to boost.

What it estimates: P(won | stage, owner) from the training examples, as

    logit p = logit(r_stage) + (logit(owner_win_rate) - mean of logit(owner_win_rate) over training)

where `r_stage = (wins in the stage + m * r) / (examples in the stage + m)` is each stage's win rate shrunk
toward the overall rate `r` with `m = prior_strength` pseudo-examples: the posterior mean under a Beta prior
centred on `r`, i.e. empirical Bayes for binomial rates (Efron & Morris 1975; Casella 1985, "An
introduction to empirical Bayes data analysis"). The owner's term uses the `owner_win_rate` feature, itself
already shrunk toward the org (`ml.features`), so an owner with few closed deals moves nothing. It is the
same team-level fallback Odoo's lead scoring uses, with the smoothing made explicit.

Its signed contributions (`contributions`: the stage term against the overall rate, the owner term) explain
a fallback score the way LightGBM's SHAP values explain a boosted one.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from closewise.errors import InvalidInput
from closewise.ml.design import as_frame, binary_target

_EPS = 1e-4


def logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(clipped / (1 - clipped)), dtype=np.float64)


def expit(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


class StageRateModel:
    """Empirical-Bayes win rate by `group` column (default the stage), adjusted by the owner's rate.

    Hyper-parameters: `group` (column), `adjust` (a smoothed-rate column, or None), `prior_strength`
    (pseudo-examples toward the overall rate), `random_state` (unused: the estimate is deterministic; kept
    for the shared estimator contract).
    """

    def __init__(
        self,
        *,
        group: str = "stage_order",
        adjust: str | None = "owner_win_rate",
        prior_strength: float = 20.0,
        random_state: int | None = None,
    ) -> None:
        self.group = group
        self.adjust = adjust
        self.prior_strength = prior_strength
        self.random_state = random_state

    def fit(self, x: pl.DataFrame | np.ndarray, y: np.ndarray | pl.Series) -> StageRateModel:
        frame = as_frame(x)
        target = binary_target(y, frame.height)
        if self.prior_strength < 0:
            raise InvalidInput(f"prior_strength must be >= 0, not {self.prior_strength}")
        # Half a pseudo-win and half a pseudo-loss keep the rate inside (0, 1) even on one-class data.
        self.base_rate_ = float((target.sum() + 0.5) / (target.size + 1.0))
        self.rates_: dict[float, float] = {}
        if self.group in frame.columns:
            keys = frame[self.group].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
            for key in np.unique(keys[np.isfinite(keys)]):
                mine = target[keys == key]
                self.rates_[float(key)] = float(
                    (mine.sum() + self.prior_strength * self.base_rate_) / (mine.size + self.prior_strength)
                )
        self.adjust_centre_ = 0.0
        if self.adjust is not None and self.adjust in frame.columns and frame.height:
            values = _column(frame, self.adjust)
            finite = values[np.isfinite(values)]
            self.adjust_centre_ = float(logit(finite).mean()) if finite.size else 0.0
        self.n_features_in_ = frame.width
        return self

    def contributions(self, x: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Per row, the log-odds terms (stage, owner) around the base log-odds: (terms, base, names)."""
        frame = as_frame(x)
        base = float(logit(np.array([self.base_rate_]))[0])
        stage_term = np.zeros(frame.height)
        if self.group in frame.columns:
            keys = _column(frame, self.group)
            rates = np.array(
                [self.rates_.get(float(k), self.base_rate_) if np.isfinite(k) else self.base_rate_ for k in keys]
            )
            stage_term = logit(rates) - base
        owner_term = np.zeros(frame.height)
        if self.adjust is not None and self.adjust in frame.columns:
            values = _column(frame, self.adjust)
            owner_term = np.where(np.isfinite(values), logit(np.nan_to_num(values, nan=0.5)) - self.adjust_centre_, 0.0)
        names = [self.group, self.adjust or "owner"]
        return np.column_stack([stage_term, owner_term]), np.full(frame.height, base), names

    def predict_proba(self, x: pl.DataFrame | np.ndarray) -> np.ndarray:
        terms, base, _ = self.contributions(x)
        p = expit(base + terms.sum(axis=1))
        return np.column_stack([1 - p, p])


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return np.asarray(frame[name].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy(), dtype=np.float64)
