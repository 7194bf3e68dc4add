"""Managing users: listing, adding, setting passwords (the CLI), and the hierarchy an admin manages from the
settings page and `/api/users` (roles, managers, deactivation), always within the caller's scope and recorded
in the audit log with the actor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import users as user_queries
from closewise.domain.enums import Role
from closewise.domain.scope import Action, Scope, subtree
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
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


# -- the settings page and /api/users: the hierarchy managed by an admin -----------------------------------


@dataclass(frozen=True)
class UserDetail:
    """A user as the settings page and the API show them: never their password hash."""

    id: int
    email: str | None
    name: str
    role: str
    manager_id: int | None
    team_id: int | None
    team: str | None
    active: bool
    hire_date: date | None


@dataclass(frozen=True)
class UserChanges:
    """What an admin changes on a user; `None` leaves a field as it is (`clear_manager` removes the manager)."""

    role: str | None = None
    manager_id: int | None = None
    clear_manager: bool = False
    active: bool | None = None
    name: str | None = None


def _detail(row: user_queries.UserRow, teams: dict[int, str]) -> UserDetail:
    team = teams.get(row.team_id) if row.team_id is not None else None
    return UserDetail(row.id, row.email, row.name, row.role, row.manager_id, row.team_id, team, row.active,
                      row.hire_date)


def _require(scope: Scope, action: Action) -> None:
    if not scope.may(action):
        raise Forbidden(f"a {scope.role.value} cannot {action.value.replace('_', ' ')}")


def _visible_row(connection: Connection, scope: Scope, user_id: int) -> user_queries.UserRow:
    """The user, when `scope` sees them; otherwise the same NotFound as for a user that does not exist."""
    row = user_queries.get_by_id(connection, user_id=user_id)
    if row is None or not scope.sees_owner(row.id):
        raise NotFound(f"no user with id {user_id}")
    return row


def visible_users(engine: Engine, scope: Scope) -> list[UserDetail]:
    """The users `scope` sees: everyone for an admin or leader, a manager's subtree, a rep themselves."""
    with engine.connect() as connection:
        teams = user_queries.team_names(connection)
        return [_detail(row, teams) for row in user_queries.list_visible(connection, scope=scope)]


def get_user(engine: Engine, scope: Scope, user_id: int) -> UserDetail:
    with engine.connect() as connection:
        return _detail(_visible_row(connection, scope, user_id), user_queries.team_names(connection))


def _check_manager(connection: Connection, *, user_id: int | None, manager_id: int) -> None:
    """A manager must exist, and must not be the user or anyone who reports to them (a cycle would put
    people above themselves, and every scope below them would be wrong)."""
    managers = user_queries.manager_map(connection)
    if manager_id not in managers:
        raise InvalidInput(f"no user with id {manager_id} to be the manager", where="manager_id")
    if user_id is None:
        return
    if manager_id == user_id:
        raise Conflict("a user cannot be their own manager", where="manager_id")
    if manager_id in subtree(user_id, managers):
        raise Conflict("that manager reports to this user, directly or not: the hierarchy would become a cycle",
                       where="manager_id")


def create_user(engine: Engine, actor: Scope, *, email: str, role: str, name: str | None = None,
                manager_id: int | None = None, password: str | None = None) -> UserDetail:
    _require(actor, Action.MANAGE_USERS)
    address = validate_email(email)
    parsed_role = parse_role(role)
    password_hash = hash_password(validate_password(password)) if password else None
    display_name = (name or "").strip() or address.split("@")[0].replace(".", " ").title()
    with engine.begin() as connection:
        if user_queries.get_by_email(connection, email=address) is not None:
            raise Conflict(f"a user with email {address} already exists", where="email")
        if manager_id is not None:
            _check_manager(connection, user_id=None, manager_id=manager_id)
        now = utcnow()
        user_id = user_queries.insert_user(connection, email=address, name=display_name, role=parsed_role.value,
                                           manager_id=manager_id, created_at=now, password_hash=password_hash)
        audit.record(connection, at=now, actor_id=actor.user_id, action="user.add", entity="user",
                     entity_id=user_id, detail={"email": address, "role": parsed_role.value,
                                                "manager_id": manager_id, "password_set": password_hash is not None})
        return _detail(_visible_row(connection, actor, user_id), user_queries.team_names(connection))


def change_user(engine: Engine, actor: Scope, user_id: int, changes: UserChanges) -> UserDetail:
    """Change a user's role, manager, name or active flag. Refused: a manager cycle, and leaving no active admin
    (demoting or deactivating the last one); nobody deactivates themselves."""
    _require(actor, Action.MANAGE_USERS)
    with engine.begin() as connection:
        row = _visible_row(connection, actor, user_id)
        values: dict[str, Any] = {}
        if changes.role is not None:
            role = parse_role(changes.role).value
            if role != row.role:
                values["role"] = role
        if changes.clear_manager:
            if row.manager_id is not None:
                values["manager_id"] = None
        elif changes.manager_id is not None and changes.manager_id != row.manager_id:
            _check_manager(connection, user_id=row.id, manager_id=changes.manager_id)
            values["manager_id"] = changes.manager_id
        if changes.active is not None and changes.active != row.active:
            if not changes.active and row.id == actor.user_id:
                raise Conflict("you cannot deactivate your own account; ask another admin", where="active")
            values["active"] = changes.active
        if changes.name is not None:
            name = changes.name.strip()
            if not name:
                raise InvalidInput("the name cannot be empty", where="name")
            if name != row.name:
                values["name"] = name
        stays_admin = values.get("role", row.role) == Role.ADMIN.value and values.get("active", row.active)
        if row.role == Role.ADMIN.value and row.active and not stays_admin \
                and user_queries.count_active_admins(connection) <= 1:
            raise Conflict("this is the last active admin: make someone else an admin first", where="role")
        if values:
            user_queries.update_user(connection, user_id=row.id, values=values)
            if values.get("active") is False:
                user_queries.revoke_credentials(connection, user_id=row.id)
            before = {"role": row.role, "manager_id": row.manager_id, "active": row.active, "name": row.name}
            audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="user.change", entity="user",
                         entity_id=row.id, detail={key: {"from": before[key], "to": value}
                                                   for key, value in values.items()})
        return _detail(_visible_row(connection, actor, user_id), user_queries.team_names(connection))


def reset_password(engine: Engine, actor: Scope, user_id: int, *, password: str) -> None:
    """Set a new password (stored as an argon2 hash) and end the user's sessions and tokens."""
    _require(actor, Action.MANAGE_USERS)
    password_hash = hash_password(validate_password(password))
    with engine.begin() as connection:
        row = _visible_row(connection, actor, user_id)
        user_queries.set_password_hash(connection, user_id=row.id, password_hash=password_hash)
        if row.id != actor.user_id:
            user_queries.revoke_credentials(connection, user_id=row.id)
        audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="user.reset_password", entity="user",
                     entity_id=row.id)
