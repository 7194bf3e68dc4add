"""Who may write coaching records, and the checks every coaching write shares.

Reads are scoped like every report (`services.coaching_data`). Writes are authorised by the role's actions
(`domain.scope.Action`) on top of that, like every other write:

- `Action.COACH` (managers, leaders, admins): plans, commitments and review notes for the reps one sees, not
  for oneself (coaching is done by someone else);
- `Action.FOLLOW_UP` (everyone but viewers): marking one's own commitments done and noting the follow-up; a
  coach of the rep may do it too;
- adopting a checklist item into the playbook changes the playbook, so it needs `Action.MANAGE_SETTINGS`
  (leaders and admins), like editing the playbook does.
"""

from __future__ import annotations

from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Engine

from closewise.db import coaching as store
from closewise.db.org_frames import load_users
from closewise.domain.enums import Role
from closewise.domain.scope import Action, Scope
from closewise.errors import Forbidden, InvalidInput, NotFound

MAX_TEXT: Final = 4000


def text(value: str | None, where: str, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    """`value` stripped; InvalidInput naming `where` when empty (if `required`) or longer than `limit`."""
    stripped = (value or "").strip()
    if not stripped:
        if required:
            raise InvalidInput("this cannot be empty", where=where)
        return None
    if len(stripped) > limit:
        raise InvalidInput(f"longer than {limit:,} characters", where=where)
    return stripped


def rep_in_sight(scope: Scope, rep_id: int, engine: Engine) -> dict[str, Any]:
    """The user `rep_id`, when `scope` sees them (else NotFound, worded like a missing one)."""
    with engine.connect() as connection:
        row = store.user_row(connection, user_id=rep_id)
    if row is None or not scope.sees_owner(rep_id):
        raise NotFound(f"no user with id {rep_id}", where="rep")
    return row


def may_coach(scope: Scope, rep_id: int | None = None) -> bool:
    """`Action.COACH` over the reps one sees, not oneself (`rep_id` None: over anyone at all)."""
    return scope.may(Action.COACH) and (rep_id is None or (rep_id != scope.user_id and scope.sees_owner(rep_id)))


def require_coach(scope: Scope, rep_id: int) -> None:
    """Forbidden unless `scope` may coach `rep_id` (who must be in sight already: see `rep_in_sight`)."""
    if not scope.may(Action.COACH):
        raise Forbidden(f"a {scope.role.value} cannot {Action.COACH.value}")
    if not may_coach(scope, rep_id):
        who = "yourself" if rep_id == scope.user_id else "this rep"
        raise Forbidden(f"a {scope.role.value} cannot write coaching records for {who}")


def may_follow_up(scope: Scope, rep_id: int) -> bool:
    """A commitment is followed up by its rep (`Action.FOLLOW_UP`), or by a coach of its rep."""
    own = rep_id == scope.user_id and scope.may(Action.FOLLOW_UP)
    return own or may_coach(scope, rep_id)


def may_adopt(scope: Scope) -> bool:
    return scope.may(Action.MANAGE_SETTINGS)


def coachable_reps(engine: Engine, *, scope: Scope) -> list[dict[str, Any]]:
    """The active reps the user may write a plan for (none for reps and viewers)."""
    if not may_coach(scope):
        return []
    with engine.connect() as connection:
        users = load_users(connection)
    reps = scope.filter_frame(users.filter(pl.col("role") == Role.REP.value, pl.col("active")), "id")
    return [{"id": r["id"], "name": r["name"]} for r in reps.sort("name").iter_rows(named=True)
            if r["id"] != scope.user_id]
