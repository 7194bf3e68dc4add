"""Queries on users, their external ids and the hierarchy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import users


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
