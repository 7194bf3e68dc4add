"""Managing users: listing, adding, setting passwords."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from closewise.db import audit
from closewise.db import users as user_queries
from closewise.domain.enums import Role
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, InvalidInput, NotFound
from closewise.services.passwords import MIN_LENGTH, hash_password

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class UserSummary:
    id: int
    email: str | None
    name: str
    role: str
    manager_id: int | None


def list_users(engine: Engine) -> list[UserSummary]:
    with engine.connect() as connection:
        return [
            UserSummary(row.id, row.email, row.name, row.role, row.manager_id)
            for row in user_queries.list_users(connection)
        ]


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        allowed = ", ".join(role.value for role in Role)
        raise InvalidInput(f"unknown role {text!r}; choose one of {allowed}") from None


def validate_email(email: str) -> str:
    cleaned = email.strip()
    if not _EMAIL.match(cleaned):
        raise InvalidInput(f"{email!r} is not an email address")
    return cleaned.lower()


def validate_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_LENGTH} characters long")
    return password


def add_user(
    engine: Engine,
    *,
    email: str,
    role: str,
    name: str | None = None,
    manager_email: str | None = None,
    password: str | None = None,
) -> UserSummary:
    address = validate_email(email)
    parsed_role = parse_role(role)
    password_hash = hash_password(validate_password(password)) if password is not None else None
    with engine.begin() as connection:
        if user_queries.get_by_email(connection, email=address) is not None:
            raise Conflict(f"a user with email {address} already exists")
        manager_id = None
        if manager_email is not None:
            manager = user_queries.get_by_email(connection, email=manager_email)
            if manager is None:
                raise NotFound(f"no user with email {manager_email.strip()} to be the manager")
            manager_id = manager.id
        display_name = name or address.split("@")[0].replace(".", " ").title()
        now = utcnow()
        user_id = user_queries.insert_user(
            connection,
            email=address,
            name=display_name,
            role=parsed_role.value,
            manager_id=manager_id,
            created_at=now,
            password_hash=password_hash,
        )
        audit.record(
            connection,
            at=now,
            actor_id=None,
            action="user.add",
            entity="user",
            entity_id=user_id,
            detail={"email": address, "role": parsed_role.value},
        )
    return UserSummary(user_id, address, display_name, parsed_role.value, manager_id)


def set_password(engine: Engine, *, email: str, password: str) -> None:
    password_hash = hash_password(validate_password(password))
    with engine.begin() as connection:
        user = user_queries.get_by_email(connection, email=email)
        if user is None:
            raise NotFound(f"no user with email {email.strip()}")
        user_queries.set_password_hash(connection, user_id=user.id, password_hash=password_hash)
        audit.record(
            connection,
            at=utcnow(),
            actor_id=None,
            action="user.set_password",
            entity="user",
            entity_id=user.id,
        )
