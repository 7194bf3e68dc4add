"""Loading users: the people, their roles, teams and the management hierarchy.

A user row is matched to a stored person exactly as owners are (refs.UserDirectory): by external id within
the source, then by email, then by name. So a rep first created from an opportunity's owner name is the
same person when the source's user list arrives, and gains its external id. A match by email or name is
refused when that person already holds another external id of this source: two records of one CRM are two
people, whatever their names.

Managers often appear later in the file than their reports, so they are resolved in a second pass once
every user of the batch is stored. A manager nobody can find leaves the user without one (a note says so);
the row is not rejected. Passwords are never touched, and an import never takes the admin role away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.enums import Role
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import (
    BadValue,
    Prepared,
    Row,
    TeamBook,
    boolean,
    changed_values,
    day,
    external_id,
    fit,
    prepare_rows,
    summarise,
    text,
)
from closewise.ingest.refs import UserDirectory, UserRef
from closewise.ingest.report import EntityCounts, ErrorSink

USER_COLUMNS = ("name", "email", "role", "title", "hire_date", "active", "team_id", "manager_id")

ROLES: dict[str, Role] = {role.value: role for role in Role} | {
    "administrator": Role.ADMIN, "system administrator": Role.ADMIN, "executive": Role.LEADER,
    "sales leader": Role.LEADER, "sales manager": Role.MANAGER, "sales rep": Role.REP, "representative": Role.REP,
    "account executive": Role.REP, "read only": Role.VIEWER, "read-only": Role.VIEWER,
}


def parse_role(value: str | None) -> Role | None:
    if value is None:
        return None
    role = ROLES.get(" ".join(value.strip().lower().split()))
    if role is None:
        raise BadValue("role", value, f"unknown role {value!r} (expected {', '.join(r.value for r in Role)})")
    return role


def _prepare_user(connection: Connection, teams: TeamBook, row: Row) -> Prepared:
    key = external_id(row, noun="user")
    values: dict[str, Any] = {}
    if name := text(row, "name"):
        values["name"] = name
    if "email" in row:
        email = text(row, "email")
        if email is not None and ("@" not in email or " " in email):
            raise BadValue("email", email, f"{email!r} is not an email address")
        values["email"] = email.lower() if email else None
    if role := parse_role(text(row, "role")):
        values["role"] = role.value
    if "title" in row:
        values["title"] = text(row, "title")
    if "hire_date" in row:
        values["hire_date"] = day(row, "hire_date")
    if (active := boolean(row, "active")) is not None:
        values["active"] = active
    team = text(row, "team") if "team" in row else None
    fit(tables.users, values)
    fit(tables.teams, {"name": team})
    if "team" in row:
        values["team_id"] = teams.resolve(connection, team)
    return Prepared(key, row, values)


@dataclass
class _People:
    """Who is who while one batch loads: the directory of earlier batches plus this batch's new users."""

    directory: UserDirectory
    external_ids: dict[int, set[str]]
    by_external: dict[str, int] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)

    def find(self, ref: UserRef) -> int | None:
        if ref.external_id and (found := self.directory.find(UserRef(external_id=ref.external_id))
                                or self.by_external.get(ref.external_id)):
            return found
        if ref.email and (found := self.directory.find(UserRef(email=ref.email))
                          or self.by_email.get(ref.email.lower())):
            return found
        if ref.name and (found := self.directory.find(UserRef(name=ref.name))
                         or self.by_name.get(ref.name.strip().lower())):
            return found
        return None

    def match(self, item: Prepared) -> int | None:
        """The stored person this row describes, unless the candidate is another record of the source."""
        if found := self.find(UserRef(external_id=item.key)):
            return found
        for ref in (UserRef(email=item.values.get("email")), UserRef(name=item.values.get("name"))):
            found = self.find(ref) if not ref.is_empty() else None
            if found is not None and not self.external_ids.get(found, set()) - {item.key}:
                return found
        return None

    def email_owner(self, email: str | None) -> int | None:
        return self.find(UserRef(email=email)) if email else None

    def add(self, user_id: int, *, email: str | None, name: str) -> None:
        if email:
            self.by_email[email.lower()] = user_id
        self.by_name.setdefault(name.strip().lower(), user_id)

    def register(self, connection: Connection, source: str, key: str, user_id: int) -> bool:
        """Give the person this external id of the source; False when they already hold it."""
        if self.find(UserRef(external_id=key)) is not None:
            return False
        queries.insert_external_ids(connection, rows=[{"source": source, "external_id": key, "user_id": user_id}])
        self.by_external[key] = user_id
        self.directory.remember(key, user_id)
        self.external_ids.setdefault(user_id, set()).add(key)
        return True


def _describe(ref: UserRef) -> str:
    return repr(ref.external_id or ref.email or ref.name)


def load_user_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical user rows inside the caller's transaction.

    Fields: external_id (required), name, email, role, manager (UserRef), title, hire_date, active, team.
    """
    counts.read += len(rows)
    teams = TeamBook(connection)
    items = prepare_rows(context, "users", rows, sink, lambda row: _prepare_user(connection, teams, row))
    people = _People(context.users, queries.user_external_ids_by_user(connection, source=context.source))
    problems: list[str] = []

    # Pass 1: find or create every person of the batch, and record their external ids.
    placed: list[tuple[Prepared, int, bool, bool]] = []  # item, user id, inserted, external id registered
    for item in items:
        uid = people.match(item)
        email = item.values.get("email")
        owner = people.email_owner(email)
        if owner is not None and owner != uid:
            problems.append(f"line {item.line}: {email} already belongs to another user; email not stored")
            item.values.pop("email")
            email = None
        inserted = uid is None
        if uid is None:
            name = str(item.values.get("name") or (email or "").split("@")[0] or f"{context.source} user {item.key}")
            record = {**item.values, "name": name, "email": email, "role": item.values.get("role", Role.REP.value),
                      "active": item.values.get("active", True), "manager_id": None, "created_at": context.now}
            (uid,) = queries.insert_returning_ids(connection, table=tables.users, rows=[record])
            people.add(uid, email=email, name=name)
            counts.inserted += 1
        registered = people.register(connection, context.source, item.key, uid)
        placed.append((item, uid, inserted, registered))

    # Pass 2: managers, now that everyone of the batch exists.
    for item, uid, inserted, _ in placed:
        if "manager" not in item.row:
            continue
        ref = item.row["manager"]
        if ref is None or (isinstance(ref, UserRef) and ref.is_empty()):
            item.values["manager_id"] = None
            continue
        if not isinstance(ref, UserRef):
            ref = UserRef(external_id=str(ref).strip(), name=str(ref).strip())
        manager = people.find(ref)
        if manager is None or manager == uid:
            why = "is not among the users" if manager is None else "is the user themself"
            # A new user simply has none; a stored one keeps the manager it has.
            outcome = "left without a manager" if inserted else "manager left unchanged"
            problems.append(f"line {item.line}: manager {_describe(ref)} {why}; {outcome}")
            continue
        item.values["manager_id"] = manager

    stored = queries.users_by_id(connection, user_ids=[uid for _, uid, _, _ in placed], columns=USER_COLUMNS)
    updates: list[dict[str, Any]] = []
    for item, uid, inserted, registered in placed:
        changes = changed_values(stored[uid], item.values)
        if "role" in changes and stored[uid]["role"] == Role.ADMIN.value:
            # Whoever runs Closewise must not lose the keys to it because a CRM calls them a rep.
            problems.append(f"line {item.line}: {stored[uid]['name']} is an admin here; role {changes.pop('role')} "
                            "not applied")
        if changes:
            updates.append({"id": uid, **changes})
        if inserted:
            continue
        if changes or registered:
            counts.updated += 1
        else:
            counts.unchanged += 1
    queries.update_by_id(connection, table=tables.users, rows=updates)

    summarise(notes, problems, "user rows had a problem that did not reject them")
    if teams.created and notes is not None:
        notes.append(f"teams created: {', '.join(teams.created)}")
    # Later batches and entities of this import match people against the stored users, new ones included.
    fresh = UserDirectory(connection, source=context.source)
    fresh.created = context.users.created
    context.users = fresh
