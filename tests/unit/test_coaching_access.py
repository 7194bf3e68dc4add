"""Who may write coaching records (`services.coaching_access`), judged from the role's actions
(`domain.scope.Action`) and the scope alone: a small hierarchy where manager 2 has reps 3 and 4, rep 5 is in
another team, and the leader (1), the admin (6) and a viewer under the manager (7) complete the roles."""

from __future__ import annotations

import pytest

from closewise.domain.enums import Role
from closewise.domain.scope import Action, Scope, allowed_actions
from closewise.errors import Forbidden
from closewise.services.coaching_access import may_coach, may_follow_up, require_coach

LEADER = Scope(user_id=1, role=Role.LEADER, owner_ids=None)
ADMIN = Scope(user_id=6, role=Role.ADMIN, owner_ids=None)
MANAGER = Scope(user_id=2, role=Role.MANAGER, owner_ids=frozenset({2, 3, 4, 7}))
REP = Scope(user_id=3, role=Role.REP, owner_ids=frozenset({3}))
VIEWER = Scope(user_id=7, role=Role.VIEWER, owner_ids=frozenset({7}))


def test_coach_and_follow_up_are_actions_of_the_roles() -> None:
    coaches = {role for role in Role if Action.COACH in allowed_actions(role)}
    assert coaches == {Role.ADMIN, Role.LEADER, Role.MANAGER}
    followers = {role for role in Role if Action.FOLLOW_UP in allowed_actions(role)}
    assert followers == {Role.ADMIN, Role.LEADER, Role.MANAGER, Role.REP}  # a viewer changes nothing


@pytest.mark.parametrize(("scope", "rep", "allowed"), [
    (MANAGER, 3, True),  # their own rep
    (MANAGER, 5, False),  # another team's rep: not in sight
    (MANAGER, 2, False),  # themselves: coaching is done by someone else
    (LEADER, 5, True),
    (ADMIN, 3, True),
    (LEADER, 1, False),
    (REP, 3, False),  # a rep does not coach, not even themselves
    (VIEWER, 7, False),
])
def test_who_may_coach_whom(scope: Scope, rep: int, allowed: bool) -> None:
    assert may_coach(scope, rep) is allowed
    if allowed:
        require_coach(scope, rep)
    else:
        with pytest.raises(Forbidden):
            require_coach(scope, rep)


def test_a_role_without_the_action_is_told_so_whatever_the_rep() -> None:
    with pytest.raises(Forbidden, match="a rep cannot coach"):
        require_coach(REP, 4)
    with pytest.raises(Forbidden, match="a viewer cannot coach"):
        require_coach(VIEWER, 3)
    with pytest.raises(Forbidden, match="for yourself"):
        require_coach(MANAGER, 2)
    assert may_coach(MANAGER) and may_coach(LEADER) and not may_coach(REP) and not may_coach(VIEWER)


@pytest.mark.parametrize(("scope", "rep", "allowed"), [
    (REP, 3, True),  # their own commitment
    (REP, 4, False),
    (MANAGER, 3, True),  # a coach of the rep
    (MANAGER, 5, False),
    (LEADER, 5, True),
    (VIEWER, 7, False),  # even a commitment recorded about the viewer: viewers change nothing
])
def test_who_may_follow_up_a_commitment(scope: Scope, rep: int, allowed: bool) -> None:
    assert may_follow_up(scope, rep) is allowed
