"""Gradient-boosted trees with held-out calibration and a fallback for thin history: the shared machinery of
the win and timing models (`ml.win_model`, `ml.timing_model`).

What it estimates: P(y = 1 | x) for a binary label, with LightGBM (Ke et al. 2017, "LightGBM: a highly
efficient gradient boosting decision tree"): shallow trees on the log-loss, categorical features split
natively, missing values routed by learned default branches, optional monotone constraints.

How, in `fit(x, y, groups=, time=)`:

1. Thin history: with fewer than `min_class_count` positives or negatives (counted as distinct `groups`,
   i.e. deals, when given) the boosted model would memorise noise, so the estimator fits only its
   fallback (the subclass's `_make_fallback`, e.g. smoothed stage rates) and says so (`uses_fallback_`).
2. Otherwise the examples are split in time: the groups first seen in the last `calibration_fraction` of
   the distinct `time` values are held out (whole groups, so a deal never sits on both sides); trees are
   grown on the rest, and a monotone calibrator (`ml.calibration`, Platt or isotonic) is fitted on the
   held-out raw scores. With `refit` the trees are then grown again on every example with the same number
   of rounds and the calibrator kept (more recent data, at the price of a slightly optimistic map).
   Without `groups`/`time`, the last rows are held out (rows are taken to be in time order).
3. Explanations: `contributions(x)` returns LightGBM's `pred_contrib` values (Lundberg & Lee's TreeSHAP:
   per feature, signed log-odds moving the raw score away from the average), before calibration.

`random_state` seeds LightGBM (bagging, feature sampling) and the run is single-threaded and
`deterministic`, so one seed gives one model. `verbosity=-1` keeps LightGBM quiet.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import polars as pl

from closewise.errors import InvalidInput
from closewise.ml.calibration import Method, ScoreCalibrator
from closewise.ml.design import FeatureEncoder, as_frame, binary_target

_MIN_CALIBRATION_CLASS = 10

# LightGBM's native code is not safe to enter from two Python threads at once (its shared predictor and booster
# set-up races; a CI worker died of it while a forecast trained its win model in a thread beside the timing
# model). Every call into it goes through this lock; training is single-threaded anyway, so little is lost.
_NATIVE = threading.Lock()


class Fallback(Protocol):
    def fit(self, x: pl.DataFrame, y: np.ndarray) -> Any: ...
    def predict_proba(self, x: pl.DataFrame) -> np.ndarray: ...
    def contributions(self, x: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]: ...


class CalibratedBoosting:
    """LightGBM + held-out calibration + fallback. Subclasses set the fallback and monotone constraints."""

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        learning_rate: float = 0.08,
        num_leaves: int = 15,
        min_child_samples: int = 40,
        subsample: float = 0.8,
        colsample: float = 0.8,
        reg_lambda: float = 5.0,
        calibration: Method = "sigmoid",
        calibration_fraction: float = 0.25,
        refit: bool = True,
        min_class_count: int = 40,
        prior_strength: float = 20.0,
        max_bin: int = 63,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample = colsample
        self.reg_lambda = reg_lambda
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.refit = refit
        self.min_class_count = min_class_count
        self.prior_strength = prior_strength
        self.max_bin = max_bin
        self.random_state = random_state

    # --- what subclasses decide ---

    def _make_fallback(self) -> Fallback:
        raise NotImplementedError

    def _monotone(self, columns: list[str]) -> list[int]:
        return [0] * len(columns)

    # --- the estimator contract ---

    def fit(
        self,
        x: pl.DataFrame | np.ndarray,
        y: np.ndarray | pl.Series,
        *,
        groups: np.ndarray | pl.Series | None = None,
        time: np.ndarray | pl.Series | None = None,
    ) -> CalibratedBoosting:
        frame = as_frame(x)
        target = binary_target(y, frame.height)
        if not 0.0 < self.calibration_fraction < 1.0:
            raise InvalidInput(f"calibration_fraction must be in (0, 1), not {self.calibration_fraction}")
        self.feature_names_in_ = list(frame.columns)
        self.n_features_in_ = frame.width
        self.fallback_ = self._make_fallback()
        self.fallback_.fit(frame, target)
        self.class_counts_ = _class_counts(target, None if groups is None else np.asarray(groups))
        self.uses_fallback_ = min(self.class_counts_) < self.min_class_count
        self.booster_: lgb.Booster | None = None
        self.calibrator_: ScoreCalibrator | None = None
        if self.uses_fallback_:
            return self

        self.encoder_ = FeatureEncoder().fit(frame)
        matrix = self.encoder_.transform(frame)
        held = _held_out(frame.height, self.calibration_fraction, groups, time)
        fit_rows, cal_rows = ~held, held
        seed = self._seed()
        if _enough(target[cal_rows]) and _enough(target[fit_rows]):
            early = self._train(matrix[fit_rows], target[fit_rows], seed)
            self.calibrator_ = ScoreCalibrator(self.calibration).fit(
                _predict(early, matrix[cal_rows], raw_score=True), target[cal_rows]
            )
            self.booster_ = self._train(matrix, target, seed) if self.refit else early
        else:
            # Too few held-out examples of a class to calibrate: the log-loss trees alone.
            self.booster_ = self._train(matrix, target, seed)
        return self

    def predict_proba(self, x: pl.DataFrame | np.ndarray) -> np.ndarray:
        frame = self._checked(x)
        if self.booster_ is None:
            return self.fallback_.predict_proba(frame)
        raw = _predict(self.booster_, self.encoder_.transform(frame), raw_score=True)
        p = self.calibrator_.transform(raw) if self.calibrator_ is not None else 1.0 / (1.0 + np.exp(-raw))
        p = np.asarray(p, dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def contributions(self, x: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Signed log-odds contribution of each feature per row, the base value per row, and the names."""
        frame = self._checked(x)
        if self.booster_ is None:
            return self.fallback_.contributions(frame)
        values = _predict(self.booster_, self.encoder_.transform(frame), pred_contrib=True)
        return values[:, :-1], values[:, -1], list(self.feature_names_in_)

    # --- internals ---

    def _checked(self, x: pl.DataFrame | np.ndarray) -> pl.DataFrame:
        if not hasattr(self, "fallback_"):
            raise InvalidInput(f"{type(self).__name__} is not fitted yet; call fit() first")
        frame = as_frame(x, self.feature_names_in_ if not isinstance(x, pl.DataFrame) else None)
        return frame

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.default_rng().integers(0, 2**31 - 1))
        return int(self.random_state)

    def _train(self, matrix: np.ndarray, target: np.ndarray, seed: int) -> lgb.Booster:
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample,
            "lambda_l2": self.reg_lambda,
            "max_bin": self.max_bin,
            "monotone_constraints": self._monotone(self.feature_names_in_),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbosity": -1,
        }
        with _NATIVE:
            data = lgb.Dataset(
                matrix,
                label=target,
                categorical_feature=self.encoder_.categorical_indices,
                free_raw_data=False,
                params={"verbosity": -1, "max_bin": self.max_bin},
            )
            return lgb.train(params, data, num_boost_round=self.n_estimators)


def _predict(booster: lgb.Booster, matrix: np.ndarray, **kind: bool) -> np.ndarray:
    with _NATIVE:
        return np.asarray(booster.predict(matrix, **kind), dtype=np.float64)


def _class_counts(target: np.ndarray, groups: np.ndarray | None) -> tuple[int, int]:
    if groups is None:
        positives = int(target.sum())
        return target.size - positives, positives
    negatives = np.unique(groups[target == 0]).size
    return int(negatives), int(np.unique(groups[target == 1]).size)


def _enough(target: np.ndarray) -> bool:
    positives = int(target.sum())
    return min(positives, target.size - positives) >= _MIN_CALIBRATION_CLASS


def _held_out(
    n: int, fraction: float, groups: np.ndarray | pl.Series | None, time: np.ndarray | pl.Series | None
) -> np.ndarray:
    """Rows of the groups first seen in the last `fraction` of times (or the last rows, without groups)."""
    if groups is None or time is None:
        held = np.zeros(n, dtype=bool)
        held[n - round(n * fraction) :] = True
        return held
    frame = pl.DataFrame({"g": np.asarray(groups), "t": np.asarray(time)})
    times = frame["t"].unique().sort()
    if times.len() < 2:
        return np.zeros(n, dtype=bool)
    split = times[int(np.floor(times.len() * (1.0 - fraction)))]
    first = frame.group_by("g").agg(pl.col("t").min().alias("first"))
    late = frame.join(first, on="g", how="left", maintain_order="left")["first"] >= split
    return np.asarray(late.to_numpy(), dtype=bool)
