"""Target leakage: columns of a training table that are only known once the outcome is.

A win model trained on closed deals sees every column as it stood at the close. Some of them (the total
days from identification to closing, the number of stage changes, the share of the deal's life spent in
each stage) are written by the closing itself; on an open deal they do not exist yet, or mean something
else, and a model that uses them scores well in the lab and fails in use (Kaufman et al. 2012, "Leakage in
data mining: formulation, detection, and avoidance"). `leakage_report` flags a column when any of these
hold:

- `name`: it is named like a measure of the whole life of the deal up to its end: a duration "through",
  "to" or "until" closing, a "total days", a ratio of days to the total, a stage change count, a closing
  timestamp, the outcome itself. Cheap and the most reliable signal on real exports, where a leaked column
  is often only moderately predictive on its own (on the IBM sample its single-column AUC is 0.56-0.72);
- `separates`: alone it separates the classes almost perfectly (rank AUC of the values, or of the
  category's target rate estimated out of fold, at least `auc_threshold`, default 0.9): too good to be
  known before the end;
- `shares_of_total`: with other columns of the table it splits a whole (non-negative values in [0, 1]
  summing to about 1 on most rows): shares of a lifetime are known once the lifetime has ended.

The report lists every column (except the target) with its single-column AUC and the reasons, flagged
first; `leaky_columns` returns the flagged names.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Final

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from closewise.errors import InvalidInput

_CLOSING = r"(clos(e|ed|ing)|won|win|lost|loss|end(ed)?|outcome|result)"
NAME_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("a duration up to the closing", re.compile(rf"\b(through|thru|to|until|till)\W+{_CLOSING}\b")),
    ("a total over the deal's life", re.compile(r"\btotal\W+(days|time|duration|age)\b")),
    ("a share of the deal's total time", re.compile(r"\bratio\b.*\btotal\b|\b(share|pct|percent)\b.*\btotal\b")),
    ("a count of stage changes", re.compile(r"\bstage\W+change(s)?\W+(count|number)\b|\b(number|count)\W+of\W+stage")),
    ("the closing moment", re.compile(r"\b(closed|won|lost)\W+(at|on|date|time)\b|\bdays\W+to\W+(close|win)\b")),
    ("the outcome", re.compile(r"\b(outcome|result|status|is\W+won|is\W+closed)\b")),
)
REPORT_COLUMNS: Final = ("column", "flagged", "single_auc", "reasons")


def _words(name: str) -> str:
    """`TotalDaysToClose`, `total_days_to_close` and `Total Days To Close` all read `total days to close`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return re.sub(r"[^a-z0-9]+", " ", spaced.lower()).strip()


def _name_reasons(name: str) -> list[str]:
    text = _words(name)
    return [f"named like {what}" for what, pattern in NAME_PATTERNS if pattern.search(text)]


def single_column_auc(values: pl.Series, target: np.ndarray, *, folds: int = 5, seed: int = 0) -> float | None:
    """How well one column alone separates the classes: max(AUC, 1 − AUC) of its values (numbers), or of its
    category's target rate estimated on the other folds (strings). None when it cannot be computed."""
    y = np.asarray(target, dtype=np.float64)
    if np.unique(y).size < 2:
        return None
    if values.dtype.is_numeric() or values.dtype == pl.Boolean:
        x = values.cast(pl.Float64).to_numpy()
        known = np.isfinite(x)
        if known.sum() < 10 or np.unique(y[known]).size < 2 or np.unique(x[known]).size < 2:
            return None
        auc = float(roc_auc_score(y[known], x[known]))
    else:
        text = values.cast(pl.String).fill_null("").to_numpy()
        order = np.random.default_rng(seed).permutation(len(text))
        score = np.empty(len(text))
        prior = y.mean()
        for fold in range(folds):
            test = order[fold::folds]
            train = np.setdiff1d(order, test, assume_unique=True)
            table = (
                pl.DataFrame({"k": text[train], "y": y[train]})
                .group_by("k")
                .agg(((pl.col("y").sum() + prior) / (pl.len() + 1.0)).alias("r"))
            )
            rates = dict(zip(table["k"].to_list(), table["r"].to_list(), strict=True))
            score[test] = [rates.get(k, prior) for k in text[test]]
        auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _shares_of_total(frame: pl.DataFrame, *, tolerance: float = 0.02, share: float = 0.9) -> dict[str, list[str]]:
    """Groups of 2-4 columns in [0, 1] that sum to about 1 on at least `share` of the rows."""
    candidates = []
    for name in frame.columns:
        series = frame[name]
        if not series.dtype.is_numeric():
            continue
        x = series.cast(pl.Float64).drop_nulls()
        if x.len() and x.min() >= 0.0 and x.max() <= 1.0 and x.n_unique() > 2:  # type: ignore[operator]
            candidates.append(name)
    found: dict[str, list[str]] = {}
    for size in (2, 3, 4):
        for group in combinations(candidates[:12], size):
            total = frame.select(pl.sum_horizontal(pl.col(list(group)).fill_null(0.0))).to_series().to_numpy()
            if np.mean(np.abs(total - 1.0) <= tolerance) >= share:
                for name in group:
                    found.setdefault(name, [n for n in group if n != name])
    return found


def leakage_report(frame: pl.DataFrame, target: str, *, auc_threshold: float = 0.9) -> pl.DataFrame:
    """One row per column of `frame` but `target`: `column`, `flagged`, `single_auc`, `reasons` (see header).

    `target` is a 0/1 column, or a two-valued column (the class sorting last counts as positive, e.g.
    "Won" over "Loss" is not assumed: pass a 0/1 column when the order matters to you; AUC is symmetric)."""
    if target not in frame.columns:
        raise InvalidInput(f"target column {target!r} is missing", where="leakage check")
    labels = frame[target]
    classes = labels.drop_nulls().unique().sort()
    if classes.len() != 2:
        raise InvalidInput(f"target {target!r} must have two classes, found {classes.len()}", where="leakage check")
    rows = frame.filter(labels.is_not_null())
    y = (rows[target] == classes[1]).cast(pl.Float64).to_numpy()
    features = rows.drop(target)
    shares = _shares_of_total(features)
    report = []
    for name in features.columns:
        reasons = _name_reasons(name)
        auc = single_column_auc(features[name], y)
        if auc is not None and auc >= auc_threshold:
            reasons.append(f"separates the outcome alone (AUC {auc:.2f})")
        if name in shares:
            reasons.append(f"a share of a total, with {', '.join(shares[name])}")
        report.append({"column": name, "flagged": bool(reasons), "single_auc": auc, "reasons": reasons})
    return pl.DataFrame(
        report,
        schema={
            "column": pl.String(),
            "flagged": pl.Boolean(),
            "single_auc": pl.Float64(),
            "reasons": pl.List(pl.String()),
        },
    ).sort(["flagged", "single_auc"], descending=[True, True], nulls_last=True)


def leaky_columns(frame: pl.DataFrame, target: str, *, auc_threshold: float = 0.9) -> list[str]:
    report = leakage_report(frame, target, auc_threshold=auc_threshold)
    return report.filter(pl.col("flagged"))["column"].to_list()
