"""Sales' verdicts on a lead: accept it, reject it (to nurture or for good), or give a recycled one back.

A verdict takes an optional `Scope` like the reports (`services.leads`): a lead outside it answers NotFound,
worded like a missing one. Writes name the user who made them and leave a `lead_events` row; each returns the
lead as `services.leads.lead_detail` shows it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from closewise.db import leads as db
from closewise.db.tables import users
from closewise.domain.enums import LeadStatus, RecycleReason
from closewise.domain.scope import Scope
from closewise.domain.timeutil import utcnow
from closewise.errors import NotFound
from closewise.leads import events as lead_events
from closewise.leads import recycle as recycle_mod
from closewise.services.leads import lead_detail


def _actor(connection: Connection, email: str | None) -> int | None:
    if email is None:
        return None
    found = connection.execute(sa.select(users.c.id).where(sa.func.lower(users.c.email) == email.strip().lower())
                               ).scalar()
    if found is None:
        raise NotFound(f"no user {email!r}", where="--user")
    return int(found)


def _apply(connection: Connection, lead: dict[str, Any], verdict: recycle_mod.Verdict, *, user_id: int | None,
           note: str | None) -> None:
    now = utcnow()
    owner = lead["owner_id"]
    values: dict[str, Any] = {"status": verdict.status.value}
    events: list[dict[str, Any]] = []
    base = {"lead_id": lead["id"], "occurred_at": now, "user_id": user_id, "owner_id": owner, "note": note,
            "reason": None, "re_engage_at": None}
    if verdict.returned:
        values["recycled_count"] = int(lead["recycled_count"] or 0) + 1
        values["re_engage_at"] = None
        events.append({**base, "kind": lead_events.LeadEvent.RETURNED.value})
    if verdict.status is LeadStatus.ACCEPTED:
        values["accepted_at"] = now
        events.append({**base, "kind": lead_events.LeadEvent.ACCEPTED.value})
    elif verdict.status in (LeadStatus.REJECTED, LeadStatus.RECYCLED):
        assert verdict.reason is not None
        values.update(rejected_at=now, recycle_reason=verdict.reason.value, re_engage_at=verdict.re_engage_at)
        events.append({**base, "kind": lead_events.LeadEvent.REJECTED.value, "reason": verdict.reason.value})
        if verdict.status is LeadStatus.RECYCLED:
            events.append({**base, "kind": lead_events.LeadEvent.RECYCLED.value, "reason": verdict.reason.value,
                           "re_engage_at": verdict.re_engage_at})
    if lead["first_touch_at"] is None:
        values["first_touch_at"] = now  # a verdict is a touch
    db.update_lead(connection, lead_id=int(lead["id"]), values=values)
    db.add_events(connection, events)


def accept(engine: Engine, *, lead_id: int, scope: Scope | None = None, user_id: int | None = None,
           user_email: str | None = None, note: str | None = None) -> dict[str, Any]:
    with engine.begin() as connection:
        actor = user_id if user_id is not None else _actor(connection, user_email)
        lead = db.lock_lead(connection, lead_id=lead_id, scope=scope)
        _apply(connection, lead, recycle_mod.accept(lead["status"]), user_id=actor, note=note)
    return lead_detail(engine, lead_id=lead_id, scope=scope)


def reject(engine: Engine, *, lead_id: int, reason: str, scope: Scope | None = None, user_id: int | None = None,
           user_email: str | None = None, re_engage_at: date | None = None, nurture: bool | None = None,
           note: str | None = None) -> dict[str, Any]:
    why = recycle_mod.parse_reason(reason)
    with engine.begin() as connection:
        actor = user_id if user_id is not None else _actor(connection, user_email)
        lead = db.lock_lead(connection, lead_id=lead_id, scope=scope)
        verdict = recycle_mod.reject(lead["status"], why, today=utcnow().date(), re_engage_at=re_engage_at,
                                     nurture=nurture)
        _apply(connection, lead, verdict, user_id=actor, note=note)
    return lead_detail(engine, lead_id=lead_id, scope=scope)


def give_back(engine: Engine, *, lead_id: int, scope: Scope | None = None, user_id: int | None = None,
              user_email: str | None = None, note: str | None = None) -> dict[str, Any]:
    """A recycled or rejected lead came back: working again, its come-back counted."""
    with engine.begin() as connection:
        actor = user_id if user_id is not None else _actor(connection, user_email)
        lead = db.lock_lead(connection, lead_id=lead_id, scope=scope)
        _apply(connection, lead, recycle_mod.give_back(lead["status"]), user_id=actor, note=note)
    return lead_detail(engine, lead_id=lead_id, scope=scope)


REASONS = tuple(reason.value for reason in RecycleReason)
