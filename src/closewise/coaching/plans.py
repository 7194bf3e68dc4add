"""1:1 coaching plans: which skills to work on (from the gap analysis), and the before/after of the metrics a
plan targets.

**Suggested skills.** For each behaviour where top performers differ significantly from the rest, the rep's own
level (on the deals they opened in the window) is compared with the top performers'; the skills suggested are
those where the rep is furthest behind, in units of the measure's spread (its effect-size scale), at most
`limit`, each with the top performers' level as the target.

**Before / after.** A plan's metrics are measured on the rep's deals opened in the `window_days` (90) before the
plan started, and on those opened since (up to the review date when the plan is closed): mean for shares and
counts, median for durations and rates, as in the gap analysis, with whether the change went the right way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl


def _summary(values: pl.Series, how: str) -> float | None:
    if values.len() == 0:
        return None
    result = values.median() if how == "median" else values.mean()
    return float(result) if isinstance(result, int | float) else None


def rep_levels(behaviours: pl.DataFrame, metrics: pl.DataFrame, rep_id: int, *, since: datetime,
               until: datetime) -> dict[str, float | None]:
    """The rep's level on each measure of `metrics` (the gap table), on deals opened in `[since, until]`."""
    mine = behaviours.filter(pl.col("owner_id") == rep_id, pl.col("created_at") >= since,
                             pl.col("created_at") <= until)
    levels: dict[str, float | None] = {}
    for row in metrics.iter_rows(named=True):
        key = row["metric"]
        levels[key] = _summary(mine[key].drop_nulls(), row["summary"]) if key in mine.columns else None
    return levels


def suggest_skills(behaviours: pl.DataFrame, metrics: pl.DataFrame, rep_id: int, *, since: datetime,
                   until: datetime, limit: int = 3, min_deals: int = 3) -> list[dict[str, Any]]:
    """The significant behaviours the rep is furthest from the top performers on (module header)."""
    chosen = metrics.filter(pl.col("significant"), pl.col("favours_top").fill_null(value=False),
                            pl.col("kind") == "behaviour")
    mine = behaviours.filter(pl.col("owner_id") == rep_id, pl.col("created_at") >= since,
                             pl.col("created_at") <= until)
    found: list[dict[str, Any]] = []
    for row in chosen.iter_rows(named=True):
        key = row["metric"]
        if key not in mine.columns:
            continue
        values = mine[key].drop_nulls()
        if values.len() < min_deals or row["top"] is None:
            continue
        level = _summary(values, row["summary"])
        if level is None:
            continue
        gap = (row["top"] - level) if row["better"] == "higher" else (level - row["top"])
        scale = abs(row["top"] - row["rest"]) if row["rest"] is not None and row["top"] != row["rest"] else 1.0
        if gap <= 0:
            continue
        found.append({"metric": key, "label": row["label"], "unit": row["unit"], "better": row["better"],
                      "summary": row["summary"], "current": level, "target": row["top"], "rest": row["rest"],
                      "gap": gap / scale, "deals": values.len()})
    found.sort(key=lambda item: -item["gap"])
    return found[:limit]


def before_after(behaviours: pl.DataFrame, rep_id: int, skills: list[dict[str, Any]], *, started: datetime,
                 until: datetime, window_days: int = 90) -> list[dict[str, Any]]:
    """Per skill of a plan: `before`, `after`, deal counts, `improved` (None while either side has no deal)."""
    mine = behaviours.filter(pl.col("owner_id") == rep_id)
    before = mine.filter(pl.col("created_at") >= started - timedelta(days=window_days), pl.col("created_at") < started)
    after = mine.filter(pl.col("created_at") >= started, pl.col("created_at") <= until)
    rows: list[dict[str, Any]] = []
    for skill in skills:
        key, how = skill["metric"], skill.get("summary", "mean")
        if key not in mine.columns:
            rows.append({**skill, "before": None, "after": None, "before_deals": 0, "after_deals": 0,
                         "improved": None})
            continue
        b_values, a_values = before[key].drop_nulls(), after[key].drop_nulls()
        b, a = _summary(b_values, how), _summary(a_values, how)
        improved = None
        if a is not None and b is not None:
            improved = a > b if skill.get("better", "higher") == "higher" else a < b
        rows.append({**skill, "before": b, "after": a, "before_deals": b_values.len(), "after_deals": a_values.len(),
                     "improved": improved})
    return rows
