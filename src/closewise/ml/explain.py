"""Per-deal reasons: the features that moved a deal's win probability most, in plain language.

From the signed log-odds contributions of `WinModel.contributions` (TreeSHAP values for the boosted model,
the stage and owner terms for the fallback), each deal keeps its `n` largest in absolute value, each as
`{feature, contribution, text}` where the text reads like "close date pushed 3 times (−0.8)": the feature as
the deal shows it (`ml.features.DESCRIPTIONS`) and its contribution in log-odds (positive helps).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import polars as pl

from closewise.ml.features import DESCRIPTIONS

REASON_DTYPE: Final = pl.List(pl.Struct({"feature": pl.String(), "contribution": pl.Float64(), "text": pl.String()}))
_CATEGORY_NAMES: Final = {0.0: "pipeline", 1.0: "best case", 2.0: "commit"}


def describe(feature: str, value: Any) -> str:
    """The feature as the deal shows it, e.g. `describe("pushes", 3.0) == "close date pushed 3 times"`."""
    template = DESCRIPTIONS.get(feature)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{template.split('{')[0].strip() or feature} unknown" if template else f"{feature} unknown"
    if template is None:
        return f"{feature} = {value}"
    if isinstance(value, str):
        return template.format(text=value.replace("_", " "))
    number = float(value)
    if feature == "days_to_close" and number < 0:
        return f"expected close date passed {-number:.0f} days ago"
    return template.format(
        value=number,
        pct=f"{number:.0%}",
        signed_pct=f"{number:+.0%}",
        yes_no="has a" if number >= 0.5 else "no",
        category=_CATEGORY_NAMES.get(number, f"{number:.0f}"),
        amount=f"{math.expm1(number):,.0f}",
        text=str(value),
    )


def signed(contribution: float) -> str:
    text = f"{contribution:+.1f}"
    return text.replace("-", "−")


def reasons(features: pl.DataFrame, contributions: np.ndarray, names: list[str], *, n: int = 3) -> pl.Series:
    """One list of the `n` strongest reasons per row of `features` (same row order as `contributions`)."""
    rows: list[list[dict[str, Any]]] = []
    for i in range(features.height):
        values = contributions[i]
        order = np.argsort(-np.abs(values), kind="stable")[:n]
        picked = []
        for j in order:
            if values[j] == 0.0:
                continue
            name = names[j]
            value = features[name][i] if name in features.columns else None
            picked.append(
                {
                    "feature": name,
                    "contribution": float(values[j]),
                    "text": f"{describe(name, value)} ({signed(float(values[j]))})",
                }
            )
        rows.append(picked)
    return pl.Series("reasons", rows, dtype=REASON_DTYPE)
