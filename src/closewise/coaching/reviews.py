"""Opportunity reviews: the agenda of deals worth a coaching conversation, and the questions to ask for each.

A deal is on the agenda for one or more reasons, judged at `as_of` on the open deals:

- `at_risk`: its win probability (the stored deal score) is under half its stage's default probability, or its
  close date has passed;
- `stalled`: nothing logged on it for longer than its stage's days-to-rot (default 21), or it has sat in its stage
  for more than twice that;
- `missing_criteria`: it moved past a stage without that stage's exit criteria, or answered a qualification
  question "unknown";
- `big`: its amount is in the top tenth of the open deals reviewed (at least the largest).

Deals are ordered by the number of reasons, then amount; each manager reviews at most `limit` per session. The
questions are the stage's coaching questions, then one per missing criterion and unknown answer, then one per
reason — what a manager asks to help the rep win, not what the number is (that is the forecast call's).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

import polars as pl

STAGE_QUESTIONS: Final[dict[str, tuple[str, ...]]] = {
    "prospecting": ("Who exactly have we reached, and did they reply?",
                    "Why would this account act now rather than next year?",
                    "Is the first meeting in the calendar?"),
    "qualification": ("What is the business pain, in the buyer's own words?",
                      "Is there a budget range, and who owns it?",
                      "What happens if they do nothing?"),
    "discovery": ("Who is the champion, and how have we tested them?",
                  "What is the impact in numbers, and who agreed with it?",
                  "How will they decide, and against whom?"),
    "solution": ("Have we met the economic buyer? What did they say matters?",
                 "Did the demo prove the decision criteria, or just show features?",
                 "What technical risk is still open?"),
    "proposal": ("Who has read the proposal, and what did they push back on?",
                 "What are the steps from here to a signature, with dates?",
                 "Who else must approve: legal, procurement, security?"),
    "negotiation": ("What are we giving, and what are we getting for it?",
                    "Is the signature date confirmed by the person who signs?",
                    "What could still stop it in the last week?"),
}
GENERIC_QUESTIONS: Final = ("What does the buyer need to believe to choose us?", "What is the next step, and when?")
REASON_QUESTIONS: Final = {
    "at_risk": "What would have to be true for this to close — and is the close date still real?",
    "stalled": "When did we last speak to the buyer, and what will restart the conversation?",
    "big": "Who else in the buying group have we not met yet?",
}
REASON_LABELS: Final = {"at_risk": "at risk", "stalled": "stalled", "missing_criteria": "missing criteria",
                        "big": "big deal"}


def agenda(
    deals: pl.DataFrame,
    stages: pl.DataFrame,
    *,
    as_of: datetime,
    scores: pl.DataFrame,
    last_activity: pl.DataFrame,
    stage_entered: pl.DataFrame,
    missing: dict[int, list[str]],
    unknowns: dict[int, list[str]],
    limit: int = 15,
    big_share: float = 0.1,
) -> list[dict[str, Any]]:
    """`deals`: open deals (`id`, `name`, `owner_id`, `stage`, `value`, `close_date`); `stages`: `key`, `name`,
    `default_probability` (percent), `days_to_rot`; `scores`: `id`, `p_win`; `last_activity`: `id`, `last_at`;
    `stage_entered`: `id`, `entered_at`; `missing` / `unknowns`: labels per deal id."""
    if deals.height == 0:
        return []
    cut = deals["value"].quantile(1 - big_share, interpolation="higher") if deals.height else None
    big_floor = float(cut) if isinstance(cut, int | float) else float("inf")
    table = (deals.join(scores, on="id", how="left").join(last_activity, on="id", how="left")
             .join(stage_entered, on="id", how="left")
             .join(stages.select(pl.col("key").alias("stage"), pl.col("name").alias("stage_name"),
                                 "default_probability", "days_to_rot"), on="stage", how="left"))
    today = as_of.date()
    items: list[dict[str, Any]] = []
    for row in table.iter_rows(named=True):
        rot = row["days_to_rot"] or 21
        idle = _days(as_of, row["last_at"] or row.get("created_at"))
        in_stage = _days(as_of, row["entered_at"])
        reasons: list[str] = []
        detail: list[str] = []
        default = (row["default_probability"] or 0.0) / 100
        overdue = isinstance(row["close_date"], date) and row["close_date"] < today
        if (row["p_win"] is not None and default > 0 and row["p_win"] < default / 2) or overdue:
            reasons.append("at_risk")
            if row["p_win"] is not None:
                detail.append(f"win probability {row['p_win']:.0%} against {default:.0%} for the stage")
            if overdue:
                detail.append(f"close date {row['close_date']} has passed")
        if (idle is not None and idle > rot) or (in_stage is not None and in_stage > 2 * rot):
            reasons.append("stalled")
            if idle is not None:
                detail.append(f"nothing logged for {idle:.0f} days")
            if in_stage is not None:
                detail.append(f"{in_stage:.0f} days in {row['stage_name'] or row['stage']}")
        gaps = missing.get(row["id"], [])
        unknown = unknowns.get(row["id"], [])
        if gaps or unknown:
            reasons.append("missing_criteria")
        if row["value"] is not None and row["value"] >= big_floor:
            reasons.append("big")
        if not reasons:
            continue
        questions = list(STAGE_QUESTIONS.get(row["stage"], GENERIC_QUESTIONS))
        questions += [f"What evidence do we have that: {label.rstrip('.').lower()}?" for label in gaps]
        questions += [f"Find out — {label}" for label in unknown]
        questions += [REASON_QUESTIONS[r] for r in reasons if r in REASON_QUESTIONS]
        items.append({
            "id": row["id"], "name": row["name"], "owner_id": row["owner_id"], "stage": row["stage"],
            "stage_name": row["stage_name"] or row["stage"], "amount": row["value"], "close_date": row["close_date"],
            "p_win": row["p_win"], "days_idle": idle, "days_in_stage": in_stage, "reasons": reasons,
            "reason_labels": [REASON_LABELS[r] for r in reasons], "detail": detail, "missing": gaps,
            "unknowns": unknown, "questions": questions,
        })
    items.sort(key=lambda item: (-len(item["reasons"]), -(item["amount"] or 0.0), item["id"]))
    return items[:limit]


def _days(at: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    return (at - then).total_seconds() / 86_400


def follow_up_status(due_on: date | None, done_at: datetime | None, *, today: date) -> str:
    """`done`, `overdue`, `due` (within a week) or `open`."""
    if done_at is not None:
        return "done"
    if due_on is None:
        return "open"
    if due_on < today:
        return "overdue"
    return "due" if (due_on - today).days <= 7 else "open"
