"""What the entity loaders share: reading typed canonical values, rejecting rows, and keyed upserts.

Canonical rows arrive typed from the importers; the readers here still accept the plain text a hand-built
row might hold, and turn anything they cannot read into a `BadValue` naming the column, which rejects the
row. A field absent from a row is never written; a field present and empty clears the stored value (except
where the column cannot be empty, where an empty value is taken as absent).

Each loader's rows are checked for duplicate keys across the whole import through `LoadContext.seen`,
whose keys are prefixed with the entity (opportunities use the bare external id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.money import round_cents
from closewise.domain.timeutil import as_utc, start_of_day
from closewise.ingest.context import LoadContext
from closewise.ingest.refs import AccountRef, UserRef
from closewise.ingest.report import EntityCounts, ErrorSink, RowError
from closewise.ingest.values import parse_amount, parse_bool

Row = dict[str, Any]


class BadValue(Exception):
    """A value that rejects its row: the column at fault, the value and why."""

    def __init__(self, column: str, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.value = "" if value is None else str(value)
        self.reason = reason


@dataclass
class Prepared:
    """One validated row: its key, the columns to write and whatever the loader resolves later."""

    key: str
    row: Row
    values: dict[str, Any] = field(default_factory=dict)
    links: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return int(self.row.get("_line", 0))

    @property
    def file(self) -> str:
        return str(self.row.get("_file", ""))


def reject(sink: ErrorSink, row: Row, column: str, value: Any, reason: str) -> None:
    sink.add(RowError(str(row.get("_file", "")), int(row.get("_line", 0)), column, "" if value is None else str(value),
                      reason))


def _seen_key(entity: str, key: str) -> str:
    return f"{entity}\x1f{key}"


def prepare_rows(
    context: LoadContext, entity: str, rows: Iterable[Row], sink: ErrorSink, prepare: Callable[[Row], Prepared], *,
    key_column: str = "external_id",
) -> list[Prepared]:
    """Prepare every row, rejecting bad ones and any key already loaded earlier in this import."""
    prepared: list[Prepared] = []
    for row in rows:
        try:
            # A repeated id is refused before its references are resolved (which may create records).
            _check_unseen(context, entity, reference_text(row.get(key_column)), key_column)
            item = prepare(row)
            _check_unseen(context, entity, item.key, key_column)
        except BadValue as exc:
            reject(sink, row, exc.column, exc.value, exc.reason)
            continue
        context.seen[_seen_key(entity, item.key)] = item.line
        prepared.append(item)
    return prepared


def _check_unseen(context: LoadContext, entity: str, key: str | None, column: str) -> None:
    first = context.seen.get(_seen_key(entity, key)) if key is not None else None
    if first is not None:
        raise BadValue(column, key, f"duplicate record (first seen on line {first})")


def external_id(row: Row, *, noun: str = "record") -> str:
    value = row.get("external_id")
    text = "" if value is None else str(value).strip()
    if not text:
        raise BadValue("external_id", "", f"the {noun} has no id")
    return text


# --- reading one typed value ---------------------------------------------------------------------------


def text(row: Row, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    return str(value).strip() or None


def integer(row: Row, name: str, *, minimum: int | None = None) -> int | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else _number(value)
    except ValueError as exc:
        raise BadValue(name, value, str(exc)) from exc
    if number is None:
        return None
    if number != int(number):
        raise BadValue(name, value, f"{value!r} is not a whole number")
    if minimum is not None and number < minimum:
        raise BadValue(name, value, f"{value} is below {minimum}")
    return int(number)


def amount(row: Row, name: str, *, minimum: float | None = None) -> float | None:
    """A money amount, rounded to the cent as stored."""
    value = row.get(name)
    try:
        number = _number(value)
    except ValueError as exc:
        raise BadValue(name, value, str(exc)) from exc
    if number is None:
        return None
    if minimum is not None and number < minimum:
        raise BadValue(name, value, f"{value} is below {minimum:g}")
    return round_cents(number)


def number(row: Row, name: str) -> float | None:
    value = row.get(name)
    try:
        return _number(value)
    except ValueError as exc:
        raise BadValue(name, value, str(exc)) from exc


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    return parse_amount(str(value))


def boolean(row: Row, name: str) -> bool | None:
    value = row.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    try:
        return parse_bool(str(value))
    except ValueError as exc:
        raise BadValue(name, value, str(exc)) from exc


def day(row: Row, name: str) -> date | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value).date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise BadValue(name, value, f"{value!r} is not a date like 2024-05-31") from exc


def moment(row: Row, name: str) -> datetime | None:
    """An aware UTC datetime; a bare date is taken as its midnight UTC."""
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return start_of_day(value)
    try:
        return as_utc(datetime.fromisoformat(str(value).strip()))
    except ValueError as exc:
        raise BadValue(name, value, f"{value!r} is not a date and time like 2024-05-31T14:00:00Z") from exc


def custom(row: Row, name: str = "custom") -> dict[str, Any] | None:
    value = row.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise BadValue(name, value, "custom fields must be a mapping of field name to value")


def fit(table: sa.Table, values: dict[str, Any]) -> None:
    """Reject a text longer than its column holds (PostgreSQL would refuse the whole batch)."""
    for name, value in values.items():
        if isinstance(value, str) and name in table.c:
            length = getattr(table.c[name].type, "length", None)
            if length is not None and len(value) > length:
                raise BadValue(name, value[:80], f"{len(value)} characters; the field holds at most {length}")


# --- references ----------------------------------------------------------------------------------------


def user_id(connection: Connection, context: LoadContext, value: Any) -> int | None:
    """The user an owner-like reference names (created as a rep when nobody matches); None when empty."""
    if not isinstance(value, UserRef):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text_value = str(value).strip()
        value = UserRef(email=text_value) if "@" in text_value else UserRef(external_id=text_value, name=text_value)
    return context.users.resolve(connection, value, now=context.now)


def account_id(connection: Connection, context: LoadContext, value: Any) -> int | None:
    """The account a reference names (created when missing); None when empty."""
    if not isinstance(value, AccountRef):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        value = AccountRef(external_id=str(value).strip(), name=str(value).strip())
    return context.accounts.resolve(connection, value, now=context.now)


def reference_text(value: Any) -> str | None:
    """An external id given as a plain value (a lead, an opportunity, a contact)."""
    if value is None:
        return None
    return str(value).strip() or None


def ids_by_external(
    connection: Connection, *, table: sa.Table, source: str, rows: Iterable[Row], name: str
) -> dict[str, int]:
    """{external id: id} of the records of `table` that the rows' `name` field refers to."""
    wanted = sorted({ref for row in rows if (ref := reference_text(row.get(name)))})
    if not wanted:
        return {}
    found = queries.existing_by_key(connection, table=table, source=source, external_ids=wanted, columns=())
    return {key: int(record["id"]) for key, record in found.items()}


class TeamBook:
    """Teams by name (case-insensitive), created when an import names a new one."""

    def __init__(self, connection: Connection) -> None:
        self._by_name = {name.strip().lower(): team_id for name, team_id in queries.team_directory(connection).items()}
        self.created: list[str] = []

    def resolve(self, connection: Connection, name: str | None) -> int | None:
        if not name:
            return None
        found = self._by_name.get(name.strip().lower())
        if found is None:
            (found,) = queries.insert_returning_ids(connection, table=tables.teams, rows=[{"name": name.strip()}])
            self._by_name[name.strip().lower()] = found
            self.created.append(name.strip())
        return found


# --- comparing and writing -----------------------------------------------------------------------------


def same(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, datetime) and isinstance(new, datetime):
        return as_utc(old) == as_utc(new)
    if isinstance(old, bool) or isinstance(new, bool):
        return bool(old) == bool(new)
    if isinstance(old, int | float) and isinstance(new, int | float):
        return abs(float(old) - float(new)) < 1e-9
    return bool(old == new)


def changed_values(stored: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from what is stored (only columns the stored record was read with)."""
    return {name: new for name, new in values.items() if name in stored and not same(stored[name], new)}


def upsert_keyed(
    connection: Connection, *, table: sa.Table, source: str, items: Sequence[Prepared], compared: Sequence[str],
    counts: EntityCounts, new_record: Callable[[Prepared], dict[str, Any]],
    existing: dict[str, dict[str, Any]] | None = None,
    on_update: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Insert new records and update changed ones by (source, external id); {external id: id} of all items.

    `existing` may be given (already looked up, e.g. with adopted records); `on_update(stored, changes)` may
    add derived columns to an update.
    """
    if existing is None:
        existing = queries.existing_by_key(
            connection, table=table, source=source, external_ids=[item.key for item in items], columns=compared
        )
    ids: dict[str, int] = {}
    inserts: list[dict[str, Any]] = []
    inserted_keys: list[str] = []
    updates: list[dict[str, Any]] = []
    for item in items:
        stored = existing.get(item.key)
        if stored is None:
            inserts.append(new_record(item))
            inserted_keys.append(item.key)
            continue
        ids[item.key] = int(stored["id"])
        changes = changed_values(stored, item.values)
        if not changes:
            counts.unchanged += 1
            continue
        if on_update is not None:
            on_update(stored, changes)
        counts.updated += 1
        updates.append({"id": stored["id"], **changes})
    new_ids = queries.insert_keyed(connection, table=table, rows=inserts)
    counts.inserted += len(new_ids)
    ids.update(zip(inserted_keys, new_ids, strict=True))
    queries.update_by_id(connection, table=table, rows=updates)
    return ids


def summarise(notes: list[str] | None, problems: list[str], what: str) -> None:
    """One note for a batch's problems of one kind, with the first few as examples."""
    if notes is None or not problems:
        return
    examples = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
    notes.append(f"{len(problems)} {what}: {examples}")
