"""Feature frames to the float matrices the estimators fit on, and the checks at that border.

Numeric columns become float64 (null -> NaN, which LightGBM routes down its learned missing-value branch);
string columns become integer category codes learned at `fit` (unseen or null categories -> NaN), handed to
LightGBM as categorical features. The column list is fixed at `fit` and checked at every later call, like
scikit-learn's `feature_names_in_`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from closewise.errors import InvalidInput


class FeatureEncoder:
    """Learns the columns of a feature frame and the categories of its string columns."""

    def fit(self, frame: pl.DataFrame) -> FeatureEncoder:
        self.columns_: list[str] = list(frame.columns)
        self.categories_: dict[str, list[str]] = {
            name: sorted(frame[name].drop_nulls().unique().to_list())
            for name in frame.columns
            if frame.schema[name] in (pl.String(), pl.Categorical())
        }
        return self

    @property
    def categorical_indices(self) -> list[int]:
        return [self.columns_.index(name) for name in self.categories_]

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        missing = [name for name in self.columns_ if name not in frame.columns]
        if missing:
            raise InvalidInput(f"feature column {missing[0]!r} is missing", where="features frame")
        exprs: list[pl.Expr] = []
        for name in self.columns_:
            if name in self.categories_:
                codes = {value: float(code) for code, value in enumerate(self.categories_[name])}
                exprs.append(pl.col(name).cast(pl.String).replace_strict(codes, default=None, return_dtype=pl.Float64))
            else:
                exprs.append(pl.col(name).cast(pl.Float64, strict=False))
        matrix = frame.select(exprs).to_numpy().astype(np.float64, copy=False)
        return np.where(np.isfinite(matrix), matrix, np.nan)


def as_frame(x: pl.DataFrame | np.ndarray, names: Sequence[str] | None = None) -> pl.DataFrame:
    """A feature frame from a frame or a 2-D array (columns `x0`, `x1`, ... unless `names`)."""
    if isinstance(x, pl.DataFrame):
        return x
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise InvalidInput(f"features must be a 2-D table, got {array.ndim} dimension(s)")
    labels = list(names) if names is not None else [f"x{i}" for i in range(array.shape[1])]
    return pl.DataFrame(array, schema=labels, orient="row")


def binary_target(y: Sequence[float] | np.ndarray | pl.Series, n_rows: int) -> np.ndarray:
    target = np.asarray(y, dtype=np.float64).ravel()
    if target.shape[0] != n_rows:
        raise InvalidInput(f"{target.shape[0]} labels for {n_rows} rows")
    if not np.isin(target, (0.0, 1.0)).all():
        raise InvalidInput("labels must be 0 or 1")
    return target.astype(np.int64)
