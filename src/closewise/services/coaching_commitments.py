"""Commitments: the next steps agreed in an opportunity review and the actions of a 1:1 plan, each with a due
date, marked done and followed up by the rep or their coach."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import coaching as store
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Forbidden, InvalidInput, NotFound
from closewise.services.coaching_access import may_follow_up, text
from closewise.services.coaching_data import json_dict


def update_commitment(engine: Engine, *, scope: Scope, commitment_id: int, done: bool | None = None,
                      follow_up: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Mark a commitment done (or open again) and/or add its follow-up note: its rep, or a coach of its rep."""
    moment = as_utc(now) if now is not None else utcnow()
    note = text(follow_up, "follow_up", required=False)
    with engine.begin() as connection:
        found = store.list_commitments(connection, scope=scope, commitment_id=commitment_id)
        if not found:
            raise NotFound(f"no commitment with id {commitment_id}")
        row = found[0]
        if not may_follow_up(scope, row["rep_id"]):
            raise Forbidden(f"a {scope.role.value} cannot update this commitment")
        values: dict[str, Any] = {}
        if done is not None:
            values["done_at"] = moment if done else None
        if note is not None:
            values["follow_up"] = note
        if not values:
            raise InvalidInput("nothing to change: give done or follow_up", where="commitment")
        store.update_commitment(connection, commitment_id=commitment_id, values=values)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.commitment",
                     entity="coaching_commitment", entity_id=commitment_id,
                     detail={"done": done, "follow_up": note is not None})
        return json_dict(store.list_commitments(connection, scope=scope, commitment_id=commitment_id)[0])


def insert_plan_commitment(connection: Connection, *, plan_id: int, rep_id: int, author: int, item: dict[str, Any],
                           moment: datetime, skills: set[str]) -> int:
    """A plan's commitment (`text`, `due_on`, `skill`: one of the plan's `skills` or none)."""
    body = text(item.get("text"), "commitments.text")
    skill = item.get("skill") or None
    if skill is not None and skill not in skills:
        raise InvalidInput(f"{skill!r} is not one of the plan's skills", where="commitments.skill")
    due = item.get("due_on")
    due_on = due if isinstance(due, date) or due is None else date.fromisoformat(str(due))
    return store.insert_commitment(connection, values={
        "plan_id": plan_id, "rep_id": rep_id, "author_id": author, "kind": "plan", "text": body, "skill": skill,
        "due_on": due_on, "created_at": moment})
