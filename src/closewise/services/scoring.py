"""Scoring every open deal with the deal models and storing the answer (`closewise score`, the demo, the web app).

The deal list, the deal page and `GET /api/opportunities` show a win probability per deal; fitting the models
takes seconds, so they are fitted once (as of now, on history before now), every open deal is scored for the
current fiscal quarter, and the scores are stored in `deal_scores` with the moment they describe.

Every run is also kept in `deal_score_history`, which the deal page draws as "probability over time". For that
line to be honest, each point must come from models fitted only on what was known at its moment, never from
today's models applied to old features. `backfill_weeks=N` therefore refits the models as of each of the last N
week starts (Monday 00:00 UTC) and scores the deals open then, for the fiscal quarter containing that day;
those runs go to the history only, and the run as of now alone fills `deal_scores`. The org is read once and
the fits share one `ml.frames.OrgFrames`, whose per-date feature cache makes the weekly refits cheap (their
training grids overlap). The web app never backfills while answering a request: it only reads what this stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from closewise.db.deal_scores import record_history, replace_scores
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import InvalidInput
from closewise.ml.frames import OrgFrames
from closewise.ml.scorer import DealScorer
from closewise.services.org_data import load_org

MAX_BACKFILL_WEEKS = 260
Progress = Callable[[str, float], None]  # (what is being done, fraction of the run done)


@dataclass(frozen=True)
class ScoringRun:
    as_of: datetime
    period_start: date
    period_end: date
    deals: int
    model: str
    history: tuple[tuple[datetime, int], ...] = ()  # (as_of, deals scored) of each backfilled week, oldest first


def week_starts(now: datetime, weeks: int) -> list[datetime]:
    """The last `weeks` week starts (Monday 00:00 UTC) strictly before `now`, oldest first."""
    if not 0 <= weeks <= MAX_BACKFILL_WEEKS:
        raise InvalidInput(f"--backfill-weeks must be between 0 and {MAX_BACKFILL_WEEKS}, not {weeks}",
                           where="backfill_weeks")
    at = as_utc(now)
    monday = datetime.combine(at.date() - timedelta(days=at.weekday()), time.min, tzinfo=UTC)
    if monday >= at:
        monday -= timedelta(days=7)
    return [monday - timedelta(days=7 * k) for k in reversed(range(weeks))]


def score_deals(engine: Engine, *, as_of: datetime | None = None, backfill_weeks: int = 0,
                progress: Progress | None = None) -> ScoringRun:
    """Store the scores as of `as_of` (default now) in `deal_scores` and the history, after keeping in the history
    the scores of the last `backfill_weeks` week starts, each from models fitted as of that week start."""
    at = as_utc(as_of or utcnow())
    backfill = week_starts(at, backfill_weeks)
    steps = len(backfill) + 2  # reading, each week, now

    def report(message: str, done: int) -> None:
        if progress:
            progress(message, done / steps)

    report("reading the org", 0)
    org = load_org(engine)
    frames = OrgFrames.of(org)
    history: list[tuple[datetime, int]] = []
    for index, moment in enumerate(backfill, start=1):
        report(f"refitting as of {moment:%Y-%m-%d}", index)
        scorer = DealScorer().fit(frames, as_of=moment.replace(tzinfo=None))
        rows = _scored(scorer, frames, org.calendar, moment, reasons=False)
        with engine.begin() as connection:
            record_history(connection, rows)
        history.append((moment, len(rows)))
    report("fitting the deal models as of now", steps - 1)
    scorer = DealScorer().fit(frames, as_of=at.replace(tzinfo=None))
    rows = _scored(scorer, frames, org.calendar, at, reasons=True)
    with engine.begin() as connection:
        replace_scores(connection, rows)
    report("done", steps)
    quarter = org.calendar.period_containing(at.date(), PeriodKind.QUARTER)
    return ScoringRun(at, quarter.start, quarter.last_day, len(rows), _model_name(scorer), tuple(history))


def refresh_deal_scores(engine: Engine, *, as_of: datetime | None = None,
                        progress: Callable[[str], None] | None = None) -> ScoringRun:
    """Fit the deal models as of `as_of` (default now) and store a score for every deal open then."""
    return score_deals(engine, as_of=as_of,
                       progress=(lambda message, _fraction: progress(message)) if progress else None)


def _scored(scorer: DealScorer, frames: OrgFrames, calendar: FiscalCalendar, at: datetime, *,
            reasons: bool) -> list[dict[str, Any]]:
    naive = at.replace(tzinfo=None)
    quarter = calendar.period_containing(naive.date(), PeriodKind.QUARTER)
    scores = scorer.score(frames, as_of=naive, period_start=quarter.start, period_end=quarter.end, reasons=reasons)
    model = _model_name(scorer)
    return [_row(row, at, quarter.start, quarter.last_day, model) for row in scores.iter_rows(named=True)]


def _model_name(scorer: DealScorer) -> str:
    return "fallback rates" if scorer.uses_fallback else "gradient boosting"


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
