"""Who may see and change what.

Visibility follows the hierarchy (DESIGN.md): a rep sees their own records, a manager their direct and indirect
reports' (and their own), a leader and an admin everything. A viewer sees what their place in the hierarchy
shows, and can change nothing. A `Scope` is worked out once per request (`db.scope.scope_for`) and every read
goes through one of its two filters: `Scope.visible` for SQL (in `db/scope.py`) and `Scope.filter_frame` for
Polars frames, so no query, aggregate, export or cache has its own idea of visibility.

Writes are authorised separately (`Scope.may`): seeing a deal does not mean being allowed to change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from closewise.domain.enums import Role


class Action(StrEnum):
    """What a user can ask to change."""

    EDIT_DEAL = "edit_deal"  # stage, amount, close date, next step, forecast category
    SNOOZE_FINDING = "snooze_finding"
    SWEEP_DEALS = "sweep_deals"  # close stale deals as no decision
    SUBMIT_FORECAST = "submit_forecast"
    IMPORT_DATA = "import_data"
    MANAGE_USERS = "manage_users"  # users, roles, hierarchy
    MANAGE_SETTINGS = "manage_settings"  # quotas, fiscal calendar, currencies, playbook
    COACH = "coach"  # review notes, next steps, 1:1 plans and their commitments, for the reps one sees
    FOLLOW_UP = "follow_up"  # mark one's own coaching commitments done and note how they went


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.LEADER: frozenset({Action.EDIT_DEAL, Action.SNOOZE_FINDING, Action.SWEEP_DEALS, Action.SUBMIT_FORECAST,
                            Action.MANAGE_SETTINGS, Action.COACH, Action.FOLLOW_UP}),
    Role.MANAGER: frozenset({Action.EDIT_DEAL, Action.SNOOZE_FINDING, Action.SWEEP_DEALS, Action.SUBMIT_FORECAST,
                             Action.COACH, Action.FOLLOW_UP}),
    Role.REP: frozenset({Action.EDIT_DEAL, Action.SNOOZE_FINDING, Action.SUBMIT_FORECAST, Action.FOLLOW_UP}),
    Role.VIEWER: frozenset(),
}


@dataclass(frozen=True)
class Scope:
    """The records one user may see: the owners whose records are visible (`None`: every record)."""

    user_id: int
    role: Role
    owner_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.owner_ids is None

    def sees_owner(self, owner_id: int | None) -> bool:
        """Records without an owner are visible only to those who see everything."""
        if self.owner_ids is None:
            return True
        return owner_id is not None and owner_id in self.owner_ids

    def filter_frame(self, frame: pl.DataFrame, column: str = "owner_id") -> pl.DataFrame:
        """The rows of `frame` this scope may see, judged by the owner in `column`."""
        if self.owner_ids is None:
            return frame
        return frame.filter(pl.col(column).is_in(sorted(self.owner_ids)))

    def may(self, action: Action) -> bool:
        return action in _ALLOWED[self.role]


def allowed_actions(role: Role) -> frozenset[Action]:
    return _ALLOWED[role]


def subtree(user_id: int, managers: Mapping[int, int | None]) -> frozenset[int]:
    """`user_id` and everyone who reports to them, directly or not, in a `user -> manager` map. A cycle in
    the map (bad imported data) cannot loop forever: each user is visited once."""
    reports: dict[int, list[int]] = {}
    for user, manager in managers.items():
        if manager is not None:
            reports.setdefault(manager, []).append(user)
    seen = {user_id}
    todo = [user_id]
    while todo:
        for report in reports.get(todo.pop(), ()):
            if report not in seen:
                seen.add(report)
                todo.append(report)
    return frozenset(seen)
