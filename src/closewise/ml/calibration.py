"""Turning a classifier's raw scores into probabilities that mean what they say, on held-out examples.

Two maps from a raw log-odds score to a probability, fitted on examples the classifier did not learn from:

- `sigmoid`: Platt scaling (Platt 1999, "Probabilistic outputs for support vector machines"): a logistic
  regression on the score, two parameters, safe on small calibration sets;
- `isotonic`: isotonic regression (Zadrozny & Elkan 2002, "Transforming classifier scores into accurate
  multiclass probability estimates"): any non-decreasing step map, better with many examples, prone to
  over-fit with few; clipped away from exact 0 and 1.

Both are monotone, so the ranking (AUC) of the scores is kept. scikit-learn's `CalibratedClassifierCV`
does the same with cross-validation folds; deal examples are time-ordered and repeat a deal across dates,
so the held-out set is chosen by the caller (the latest deals, `ml.boosting`) instead of random folds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from closewise.errors import InvalidInput

Method = Literal["sigmoid", "isotonic"]
_FLOOR = 1e-3


class ScoreCalibrator:
    """A monotone map from raw scores (log-odds) to probabilities, fitted on held-out (score, label) pairs."""

    def __init__(self, method: Method = "sigmoid") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
        if self.method not in ("sigmoid", "isotonic"):
            raise InvalidInput(f"calibration must be 'sigmoid' or 'isotonic', not {self.method!r}")
        x = np.asarray(scores, dtype=np.float64).ravel()
        target = np.asarray(y, dtype=np.float64).ravel()
        if self.method == "isotonic":
            self.map_: IsotonicRegression | LogisticRegression = IsotonicRegression(
                y_min=_FLOOR, y_max=1 - _FLOOR, out_of_bounds="clip"
            ).fit(x, target)
        else:
            self.map_ = LogisticRegression(C=1e4).fit(x.reshape(-1, 1), target.astype(np.int64))
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        x = np.asarray(scores, dtype=np.float64).ravel()
        if isinstance(self.map_, IsotonicRegression):
            p = self.map_.predict(x)
        else:
            p = self.map_.predict_proba(x.reshape(-1, 1))[:, 1]
        return np.asarray(np.clip(p, _FLOOR, 1 - _FLOOR), dtype=np.float64)
