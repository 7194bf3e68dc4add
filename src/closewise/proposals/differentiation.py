"""The differentiation library: talking points per competitor and buyer persona, and the org's own record
against each competitor (win rate over closed deals), linked to the open deals that face them.

The library starts from built-in points (for the competitors the demo org meets, and a generic set for any
other); an org adds or overrides points of its own (`talking_points` table), which win over the built-in ones
for the same competitor and persona.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

PERSONAS = ("economic_buyer", "champion", "decision_maker", "technical_evaluator", "procurement")
PERSONA_LABELS = {"economic_buyer": "Economic buyer", "champion": "Champion", "decision_maker": "Decision maker",
                  "technical_evaluator": "Technical evaluator", "procurement": "Procurement"}
GENERIC = "*"
NO_COMPETITOR = "(none)"


@dataclass(frozen=True)
class TalkingPoint:
    competitor: str  # the competitor's name as deals record it, or "*" for any
    persona: str
    headline: str
    detail: str
    proof: str | None = None
    source: str = "built-in"  # built-in | org

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _p(competitor: str, persona: str, headline: str, detail: str, proof: str | None = None) -> TalkingPoint:
    return TalkingPoint(competitor, persona, headline, detail, proof)


BUILT_IN: tuple[TalkingPoint, ...] = (
    _p(GENERIC, "economic_buyer", "A number you can defend to the board",
       "A calibrated forecast range with its own track record, so the commit is a decision, not a hope.",
       "Backtests on your own history, shown beside every forecast."),
    _p(GENERIC, "champion", "Less time building the forecast, more time coaching",
       "Deal risk, hygiene and coverage in one place, from the CRM the team already uses."),
    _p(GENERIC, "decision_maker", "Self-hosted and open",
       "Your data stays on your servers; no per-seat lock-in and an open data model."),
    _p(GENERIC, "technical_evaluator", "Fits the CRM you have",
       "Imports Salesforce and HubSpot exports or any CSV, on SQLite or PostgreSQL, with a documented REST API."),
    _p(GENERIC, "procurement", "Predictable cost",
       "One subscription, no separate charge for analytics or API access."),
    _p("Clari", "economic_buyer", "Forecast you can audit",
       "Every number traces back to deals and their change history, with backtests against what happened.",
       "Win probability and slip risk per deal, with reasons."),
    _p("Clari", "technical_evaluator", "No black box",
       "Open models and model cards; train and evaluate on your own history."),
    _p("Gong", "champion", "Coaching from outcomes, not only calls",
       "Top-performer behaviours measured on won deals become playbook checklists, without recording every call."),
    _p("Gong", "economic_buyer", "Forecast first",
       "A calibrated quarter range with the probability of hitting target, not a conversation-intelligence add-on."),
    _p("Salesforce Einstein", "decision_maker", "Works beyond one CRM edition",
       "No edition upgrade needed; the same forecasting on Salesforce exports, HubSpot or spreadsheets."),
    _p("Salesforce Einstein", "economic_buyer", "Your own track record",
       "Backtests show how the forecast would have done in past quarters before you rely on it."),
    _p("Aviso", "champion", "Adopted in days",
       "Reps keep working in the CRM; managers get hygiene and coverage without a new workflow."),
    _p("BoostUp", "economic_buyer", "Coverage you can act on",
       "How much pipeline, at which stage, created by when, from your own conversion and cycle times."),
    _p("InsightSquared", "technical_evaluator", "Live, not a reporting layer",
       "Deal scores refresh from the change log; the pipeline as of any date is rebuilt exactly."),
    _p("Spreadsheet", "economic_buyer", "Stop re-building the forecast every Monday",
       "The roll-up, the commit and the model's range in one place, with every change logged.",
       "Forecast prep in minutes instead of days."),
    _p("Spreadsheet", "champion", "One version of the truth",
       "No copy-pasted tabs: deals, changes and calls come from the CRM, with history."),
)


def library(stored: Iterable[TalkingPoint] = ()) -> list[TalkingPoint]:
    """Built-in points with the org's own points added; an org point replaces the built-in one for the same
    competitor and persona."""
    own = list(stored)
    replaced = {(p.competitor.lower(), p.persona) for p in own}
    kept = [p for p in BUILT_IN if (p.competitor.lower(), p.persona) not in replaced]
    return sorted(own + kept, key=lambda p: (p.competitor == GENERIC, p.competitor.lower(), p.persona))


def points_for(competitor: str | None, persona: str | None, points: Iterable[TalkingPoint]) -> list[TalkingPoint]:
    """The points for `competitor` (and `persona` when given), falling back to the generic ones for each persona
    the competitor has none for."""
    items = list(points)
    name = (competitor or GENERIC).lower()
    specific = [p for p in items if p.competitor.lower() == name]
    covered = {p.persona for p in specific}
    chosen = specific + [p for p in items if p.competitor == GENERIC and p.persona not in covered]
    if persona is not None:
        chosen = [p for p in chosen if p.persona == persona]
    return sorted(chosen, key=lambda p: PERSONAS.index(p.persona) if p.persona in PERSONAS else len(PERSONAS))


def win_rates(deals: pl.DataFrame) -> pl.DataFrame:
    """Per competitor (`(none)` for deals without one): closed, won, lost, no-decision deals, the win rate over
    closed deals, and the open deals and amount facing them. `deals` needs `competitor`, `status` and `amount`
    (`amount` in a common currency)."""
    frame = deals.with_columns(pl.col("competitor").fill_null(NO_COMPETITOR))
    grouped = frame.group_by("competitor").agg(
        closed=pl.col("status").is_in(["won", "lost", "no_decision"]).sum(),
        won=(pl.col("status") == "won").sum(),
        lost=(pl.col("status") == "lost").sum(),
        no_decision=(pl.col("status") == "no_decision").sum(),
        open_deals=(pl.col("status") == "open").sum(),
        open_amount=pl.when(pl.col("status") == "open").then(pl.col("amount")).otherwise(0.0).sum(),
    )
    return grouped.with_columns(
        win_rate=pl.when(pl.col("closed") > 0).then(pl.col("won") / pl.col("closed")).otherwise(None),
    ).sort(["closed", "competitor"], descending=[True, False])


def overview(rates: pl.DataFrame, points: Iterable[TalkingPoint]) -> list[dict[str, Any]]:
    """One entry per competitor met (`rates` from `win_rates`): the record against them, the gap to the win rate
    without a competitor, and the talking points per persona."""
    items = list(points)
    baseline_rows = rates.filter(pl.col("competitor") == NO_COMPETITOR)
    baseline = baseline_rows["win_rate"][0] if baseline_rows.height else None
    result: list[dict[str, Any]] = []
    for row in rates.filter(pl.col("competitor") != NO_COMPETITOR).iter_rows(named=True):
        gap = None if row["win_rate"] is None or baseline is None else row["win_rate"] - baseline
        result.append({**row, "baseline_win_rate": baseline, "gap": gap,
                       "points": [p.as_dict() for p in points_for(row["competitor"], None, items)]})
    return result


def record_against(rates: pl.DataFrame, competitor: str | None) -> Mapping[str, Any] | None:
    if not competitor:
        return None
    rows = rates.filter(pl.col("competitor").str.to_lowercase() == competitor.lower())
    return rows.row(0, named=True) if rows.height else None
