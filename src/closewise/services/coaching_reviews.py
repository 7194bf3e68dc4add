"""Opportunity reviews as a signed-in user sees them: per manager, an agenda of the deals worth coaching
(`coaching.reviews`) with the questions to ask for each deal's stage, and the review notes and next steps
recorded and followed up.

Kept apart from the forecast call (`services.forecast_call`): nothing here asks what the number is, only how
to win the deal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.coaching import reviews as review_rules
from closewise.coaching.behaviours import stage_intervals
from closewise.db import audit
from closewise.db import coaching as store
from closewise.db import deals as deal_queries
from closewise.db.opportunity_labels import opportunity_labels
from closewise.domain.enums import Role
from closewise.domain.scope import Scope, subtree
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import InvalidInput, NotFound
from closewise.playbook.gate_effect import advances
from closewise.playbook.qualification import unknown_findings
from closewise.services.coaching_access import require_coach, text
from closewise.services.coaching_data import CoachingData, json_dict, load
from closewise.services.report_cache import ReportCache


@dataclass(frozen=True)
class ReviewReport:
    as_of: datetime
    currency: str
    manager_id: int | None
    managers: list[dict[str, Any]]  # the managers whose teams the user may review
    items: list[dict[str, Any]]
    next_steps: list[dict[str, Any]]  # review commitments of the reps in the agenda's reach, open first
    notes: list[dict[str, Any]]  # recent review notes

    def to_dict(self) -> dict[str, Any]:
        return json_dict({"as_of": self.as_of, "currency": self.currency, "manager_id": self.manager_id,
                          "managers": self.managers, "items": self.items, "next_steps": self.next_steps,
                          "notes": self.notes})


def review_agenda(engine: Engine, *, scope: Scope, manager_id: int | None = None, as_of: datetime | None = None,
                  limit: int = 15, data: CoachingData | None = None,
                  cache: ReportCache | None = None) -> ReviewReport:
    """The deals worth reviewing among those the user sees (a manager's team when `manager_id` is given: a
    manager outside the user's sight is NotFound), with questions, and the review notes and next steps. With a
    `cache` (`services.report_cache`) the report is kept there (a note or next step recorded moves its stamp)."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be 1 to 100", where="limit")
    if cache is not None and data is None:
        key = (scope.owner_ids, scope.user_id, scope.role, manager_id, limit)
        return cache.remember_as_of("reviews", key, as_of, lambda: _agenda(
            engine, scope, manager_id, limit, load(engine, scope=scope, as_of=as_of, cache=cache)))
    return _agenda(engine, scope, manager_id, limit, data or load(engine, scope=scope, as_of=as_of))


def _agenda(engine: Engine, scope: Scope, manager_id: int | None, limit: int, data: CoachingData) -> ReviewReport:
    managers = _managers_in_sight(data, scope)
    if manager_id is None and scope.role == Role.MANAGER:
        manager_id = scope.user_id  # a manager's agenda is their own team's unless they pick another
    owners: set[int] | None = None
    if manager_id is not None:
        if manager_id not in {m["id"] for m in managers} and manager_id != scope.user_id:
            raise NotFound(f"no manager with id {manager_id}", where="manager")
        owners = _team_of(data, manager_id)
    open_deals = data.deals.filter(pl.col("status") == "open")
    if owners is not None:
        open_deals = open_deals.filter(pl.col("owner_id").is_in(sorted(owners)))
    ids = open_deals["id"].implode()
    stays = stage_intervals(open_deals, data.mine.changes.filter(pl.col("opportunity_id").is_in(ids)), data.playbook,
                            as_of=data.at)
    entered = stays.group_by("opportunity_id").agg(pl.col("entered_at").max()).rename({"opportunity_id": "id"})
    last = (data.mine.activities.filter(pl.col("opportunity_id").is_in(ids), pl.col("occurred_at") <= data.at,
                                        pl.col("completed").fill_null(value=True))
            .group_by("opportunity_id").agg(pl.col("occurred_at").max().alias("last_at"))
            .rename({"opportunity_id": "id"}))
    labels = {c.key: c.label for stage in data.playbook.stages for c in stage.exit_criteria}
    judged = advances(data.mine.changes.filter(pl.col("opportunity_id").is_in(ids)), data.checks, data.playbook,
                      as_of=data.at).filter(~pl.col("met"))
    missing: dict[int, list[str]] = {}
    for row in judged.select("opportunity_id", "criterion").unique().sort("criterion").iter_rows(named=True):
        missing.setdefault(row["opportunity_id"], []).append(labels.get(row["criterion"], row["criterion"]))
    questions = {(f.key, q.key): q.label for f in data.playbook.frameworks for q in f.questions}
    unknown: dict[int, list[str]] = {}
    for row in unknown_findings(data.answers.filter(pl.col("opportunity_id").is_in(ids)), as_of=data.at).iter_rows(
            named=True):
        unknown.setdefault(row["opportunity_id"], []).append(questions.get((row["framework"], row["question"]),
                                                                           row["question"]))
    with engine.connect() as connection:
        scores = store.load_scores(connection)
        names = opportunity_labels(connection, ids=open_deals["id"].to_list())
    named = open_deals.with_columns(pl.col("id").replace_strict({k: v[1] for k, v in names.items()}, default="",
                                                                return_dtype=pl.String).alias("name"))
    items = review_rules.agenda(named, data.org.stages, as_of=data.at, scores=scores, last_activity=last,
                                stage_entered=entered, missing=missing, unknowns=unknown, limit=limit)
    people = dict(zip(data.org.users["id"].to_list(), data.org.users["name"].to_list(), strict=True))
    for item in items:
        item["owner"] = people.get(item["owner_id"])
    with engine.connect() as connection:
        steps = store.list_commitments(connection, scope=scope, kind="review")
        notes = store.list_notes(connection, scope=scope, kind="review")
    if owners is not None:
        steps = [s for s in steps if s["rep_id"] in owners]
        notes = [n for n in notes if n["rep_id"] in owners]
    today = data.at.date()
    for step in steps:
        step["status"] = review_rules.follow_up_status(step["due_on"], step["done_at"], today=today)
        step["deal"] = names.get(step["opportunity_id"], (None, None))[1] if step["opportunity_id"] else None
    for note in notes:
        note["deal"] = names.get(note["opportunity_id"], (None, None))[1] if note["opportunity_id"] else None
        note["rep"] = people.get(note["rep_id"])
    return ReviewReport(as_of=data.at, currency=data.org.corporate_currency, manager_id=manager_id,
                        managers=managers, items=items, next_steps=steps, notes=notes[:50])


def record_review(engine: Engine, *, scope: Scope, deal_id: int, note: str, next_step: str | None = None,
                  due_on: date | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A review note on a deal and, optionally, the next step agreed with its due date (a commitment of the
    deal's owner). Managers, leaders and admins, on deals of reps they see."""
    moment = as_utc(now) if now is not None else utcnow()
    body = text(note, "note")
    step = text(next_step, "next_step", required=False)
    if due_on is not None and step is None:
        raise InvalidInput("a due date needs a next step", where="due_on")
    with engine.begin() as connection:
        row = deal_queries.get_deal(connection, scope=scope, deal_id=deal_id)
        if row is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        owner = row["owner_id"]
        if owner is None:
            raise InvalidInput("this deal has no owner to coach", where="deal")
        require_coach(scope, int(owner))
        note_id = store.insert_note(connection, values={
            "rep_id": owner, "author_id": scope.user_id, "opportunity_id": deal_id, "kind": "review",
            "body": body, "created_at": moment})
        step_id = None
        if step is not None:
            step_id = store.insert_commitment(connection, values={
                "rep_id": owner, "opportunity_id": deal_id, "author_id": scope.user_id, "kind": "review",
                "text": step, "due_on": due_on, "created_at": moment})
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.review", entity="opportunity",
                     entity_id=deal_id, detail={"note_id": note_id, "commitment_id": step_id})
    return {"note_id": note_id, "commitment_id": step_id, "rep_id": owner, "opportunity_id": deal_id}


def _managers_in_sight(data: CoachingData, scope: Scope) -> list[dict[str, Any]]:
    users = data.org.users
    managers = users.filter(pl.col("role").is_in([Role.MANAGER.value, Role.LEADER.value]), pl.col("active"))
    return [{"id": row["id"], "name": row["name"]} for row in managers.sort("name").iter_rows(named=True)
            if scope.sees_owner(row["id"])]


def _team_of(data: CoachingData, manager_id: int) -> set[int]:
    managers = dict(zip(data.org.users["id"].to_list(), data.org.users["manager_id"].to_list(), strict=True))
    return set(subtree(manager_id, managers))
