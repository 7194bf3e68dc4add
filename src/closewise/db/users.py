"""Queries on users, their external ids and the hierarchy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.scope import visible
from closewise.db.tables import api_tokens, teams, users, web_sessions
from closewise.domain.scope import Scope


@dataclass(frozen=True)
class UserRow:
    id: int
    email: str | None
    name: str
    role: str
    manager_id: int | None
    team_id: int | None
    hire_date: date | None
    active: bool
    password_hash: str | None


def _row(mapping: sa.RowMapping) -> UserRow:
    return UserRow(
        id=mapping["id"],
        email=mapping["email"],
        name=mapping["name"],
        role=mapping["role"],
        manager_id=mapping["manager_id"],
        team_id=mapping["team_id"],
        hire_date=mapping["hire_date"],
        active=bool(mapping["active"]),
        password_hash=mapping["password_hash"],
    )


def list_users(connection: Connection) -> list[UserRow]:
    result = connection.execute(sa.select(users).order_by(users.c.id))
    return [_row(row) for row in result.mappings()]


def get_by_email(connection: Connection, *, email: str) -> UserRow | None:
    row = (
        connection.execute(sa.select(users).where(sa.func.lower(users.c.email) == email.strip().lower()))
        .mappings()
        .first()
    )
    return _row(row) if row else None


def get_by_id(connection: Connection, *, user_id: int) -> UserRow | None:
    row = connection.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
    return _row(row) if row else None


def insert_user(
    connection: Connection,
    *,
    email: str | None,
    name: str,
    role: str,
    manager_id: int | None,
    created_at: datetime,
    password_hash: str | None = None,
    hire_date: date | None = None,
) -> int:
    result = connection.execute(
        users.insert().values(
            email=email,
            name=name,
            role=role,
            manager_id=manager_id,
            password_hash=password_hash,
            hire_date=hire_date,
            active=True,
            created_at=created_at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def set_password_hash(connection: Connection, *, user_id: int, password_hash: str) -> None:
    connection.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


def list_visible(connection: Connection, *, scope: Scope) -> list[UserRow]:
    """The users `scope` may see (a user is their own 'owner': a manager sees their subtree, a rep themselves)."""
    result = connection.execute(visible(sa.select(users), users.c.id, scope).order_by(users.c.name, users.c.id))
    return [_row(row) for row in result.mappings()]


def manager_map(connection: Connection) -> dict[int, int | None]:
    """`user -> manager` for every user: the hierarchy, for cycle checks."""
    return {row.id: row.manager_id for row in connection.execute(sa.select(users.c.id, users.c.manager_id))}


def count_active_admins(connection: Connection) -> int:
    query = sa.select(sa.func.count()).select_from(users).where(users.c.role == "admin", users.c.active.is_(True))
    return int(connection.execute(query).scalar_one())


def update_user(connection: Connection, *, user_id: int, values: dict[str, Any]) -> None:
    """Set `values` (role, manager_id, active, name, team_id, password_hash) on one user."""
    if values:
        connection.execute(users.update().where(users.c.id == user_id).values(**values))


def team_names(connection: Connection) -> dict[int, str]:
    return {row.id: row.name for row in connection.execute(sa.select(teams.c.id, teams.c.name))}


def revoke_credentials(connection: Connection, *, user_id: int) -> None:
    """End every browser session and API token of one user (after a password reset or a deactivation)."""
    connection.execute(web_sessions.delete().where(web_sessions.c.user_id == user_id))
    connection.execute(api_tokens.delete().where(api_tokens.c.user_id == user_id))
