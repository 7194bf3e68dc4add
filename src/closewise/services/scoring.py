"""Scoring every open deal with the deal models and storing the answer (`closewise score`, the demo, the web app).

The deal list, the deal page and `GET /api/opportunities` show a win probability per deal; fitting the models
takes seconds, so they are fitted once (as of now, on history before now), every open deal is scored for the
current fiscal quarter, and the scores are stored in `deal_scores` with the moment they describe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from closewise.db.deal_scores import replace_scores
from closewise.domain.periods import PeriodKind
from closewise.domain.timeutil import as_utc, utcnow
from closewise.ml.scorer import DealScorer
from closewise.services.org_data import load_org


@dataclass(frozen=True)
class ScoringRun:
    as_of: datetime
    period_start: date
    period_end: date
    deals: int
    model: str


def refresh_deal_scores(engine: Engine, *, as_of: datetime | None = None,
                        progress: Callable[[str], None] | None = None) -> ScoringRun:
    """Fit the deal models as of `as_of` (default now) and store a score for every deal open then."""
    at = as_utc(as_of or utcnow())
    naive = at.replace(tzinfo=None)
    if progress:
        progress("reading the org")
    org = load_org(engine)
    quarter = org.calendar.period_containing(naive.date(), PeriodKind.QUARTER)
    if progress:
        progress("fitting the deal models")
    scorer = DealScorer().fit(org, as_of=naive)
    if progress:
        progress("scoring open deals")
    scores = scorer.score(org, as_of=naive, period_start=quarter.start, period_end=quarter.end)
    model = "fallback rates" if scorer.uses_fallback else "gradient boosting"
    rows = [_row(row, at, quarter.start, quarter.last_day, model) for row in scores.iter_rows(named=True)]
    with engine.begin() as connection:
        replace_scores(connection, rows)
    return ScoringRun(at, quarter.start, quarter.last_day, len(rows), model)


def _row(row: dict[str, Any], at: datetime, start: date, last_day: date, model: str) -> dict[str, Any]:
    reasons = [{"feature": r["feature"], "contribution": round(float(r["contribution"]), 4), "text": r["text"]}
               for r in (row.get("reasons") or [])]
    expected = row.get("expected_amount")
    return {
        "opportunity_id": int(row["id"]),
        "as_of": at,
        "period_start": start,
        "period_end": last_day,
        "p_win": _probability(row.get("p_win")),
        "p_close_in_period": _probability(row.get("p_close_in_period")),
        "expected_amount": None if expected is None else round(float(expected), 2),
        "model": model,
        "reasons": reasons,
    }


def _probability(value: Any) -> float:
    return 0.0 if value is None else min(1.0, max(0.0, float(value)))
