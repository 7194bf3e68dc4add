"""Building a user's `Scope` from the hierarchy, and the one SQL filter every scoped query uses."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import users
from closewise.domain.enums import Role
from closewise.domain.scope import Scope, subtree
from closewise.errors import AuthError

_SelectT = TypeVar("_SelectT", bound=sa.Select[Any])
_EVERYTHING = frozenset({Role.ADMIN, Role.LEADER})


def scope_for(connection: Connection, *, user_id: int) -> Scope:
    """The scope of an active user; an unknown or deactivated user has none (AuthError)."""
    row = connection.execute(sa.select(users.c.role, users.c.active).where(users.c.id == user_id)).first()
    if row is None or not row.active:
        raise AuthError("this account no longer exists or has been deactivated")
    role = Role(row.role)
    if role in _EVERYTHING:
        return Scope(user_id=user_id, role=role, owner_ids=None)
    managers = {r.id: r.manager_id for r in connection.execute(sa.select(users.c.id, users.c.manager_id))}
    return Scope(user_id=user_id, role=role, owner_ids=subtree(user_id, managers))


def visible(statement: _SelectT, owner_column: sa.ColumnElement[Any], scope: Scope) -> _SelectT:
    """`statement` restricted to the rows whose owner `scope` sees."""
    if scope.owner_ids is None:
        return statement
    return statement.where(owner_column.in_(sorted(scope.owner_ids)))
