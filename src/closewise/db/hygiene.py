"""Storage of pipeline hygiene: snoozes, the frames the checks read, and the writes of a sweep and its undo.

A sweep closes deals as no decision. Every deal it touches gets change-log rows (source `sweep`) and an
audit-log row (action `hygiene.sweep`) holding the sweep id and the values it replaced, which is what an
undo reads back to restore them. An undo writes the reverse change rows and `hygiene.sweep_undo` audit
rows, so the log keeps its rule (the last `new_value` of a field is the current value).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.analytics import schema as s
from closewise.db.scope import visible
from closewise.db.tables import (
    audit_log,
    hygiene_snoozes,
    opportunities,
    opportunity_changes,
    qualification_answers,
    users,
)
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField, ChangeSource
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc

SWEEP: Final = "hygiene.sweep"
SWEEP_UNDO: Final = "hygiene.sweep_undo"
_CHUNK: Final = 900  # ids per IN (...) list, under SQLite's old 999-parameter limit


@dataclass(frozen=True)
class DealState:
    """The fields a sweep changes, as they are stored now."""

    id: int
    external_id: str
    name: str
    owner_id: int | None
    status: str
    forecast_category: str | None
    closed_at: datetime | None


@dataclass(frozen=True)
class FieldChange:
    field: ChangeField
    old: str | None
    new: str | None


def _naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value).replace(tzinfo=None)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start:start + _CHUNK])


def load_answers(connection: Connection) -> pl.DataFrame:
    """When each qualification answer was given: `opportunity_id`, `answered_at` (naive UTC)."""
    q = qualification_answers
    rows = connection.execute(sa.select(q.c.opportunity_id, q.c.answered_at))
    return pl.DataFrame([(oid, _naive_utc(at)) for oid, at in rows],
                        schema={"opportunity_id": pl.Int64(), "answered_at": s.TIMESTAMP}, orient="row")


def load_snoozes(connection: Connection) -> pl.DataFrame:
    """Every snooze: `opportunity_id`, `code`, `until`, `created_at` (naive UTC), `reason`, `created_by`."""
    h = hygiene_snoozes
    rows = connection.execute(sa.select(h.c.opportunity_id, h.c.code, h.c.until, h.c.created_at, h.c.reason,
                                        h.c.created_by).order_by(h.c.id))
    return pl.DataFrame(
        [(oid, code, until, _naive_utc(at), reason, by) for oid, code, until, at, reason, by in rows],
        schema={"opportunity_id": pl.Int64(), "code": pl.String(), "until": pl.Date(), "created_at": s.TIMESTAMP,
                "reason": pl.String(), "created_by": pl.Int64()},
        orient="row",
    )


def insert_snooze(
    connection: Connection, *, opportunity_id: int, code: str, reason: str, until: date, created_by: int | None,
    created_at: datetime,
) -> int:
    result = connection.execute(hygiene_snoozes.insert().values(
        opportunity_id=opportunity_id, code=code, reason=reason, until=until, created_by=created_by,
        created_at=created_at))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def deal_states(connection: Connection, ids: Sequence[int], *, lock: bool = False) -> dict[int, DealState]:
    """The stored state of the given opportunities (missing ids are left out); `lock` takes row locks
    where the database has them, so a concurrent edit waits for the sweep."""
    o = opportunities
    found: dict[int, DealState] = {}
    for chunk in _chunks(sorted(set(ids))):
        query = sa.select(o.c.id, o.c.external_id, o.c.name, o.c.owner_id, o.c.status, o.c.forecast_category,
                          o.c.closed_at).where(o.c.id.in_(chunk))
        if lock and connection.dialect.name == "postgresql":
            query = query.with_for_update()
        for row in connection.execute(query):
            found[row.id] = DealState(row.id, row.external_id, row.name, row.owner_id, row.status,
                                      row.forecast_category, row.closed_at)
    return found


def visible_deal_ids(connection: Connection, ids: Sequence[int], scope: Scope) -> set[int]:
    """Those of `ids` that exist and whose owner `scope` sees (the one visibility rule, `db.scope.visible`)."""
    o = opportunities
    found: set[int] = set()
    for chunk in _chunks(sorted(set(ids))):
        found.update(connection.execute(visible(sa.select(o.c.id).where(o.c.id.in_(chunk)), o.c.owner_id, scope))
                     .scalars())
    return found


def active_snoozes(connection: Connection, *, on: date, scope: Scope) -> list[dict[str, Any]]:
    """The latest snooze of each (deal, finding) made so far that still hides it on `on`, on deals `scope` sees:
    `opportunity_id`, `deal`, `code`, `until`, `reason`, `created_at`, `created_by_name`."""
    h, o = hygiene_snoozes, opportunities
    query = visible(
        sa.select(h.c.id, h.c.opportunity_id, o.c.name.label("deal"), h.c.code, h.c.until, h.c.reason,
                  h.c.created_at, users.c.name.label("created_by_name"))
        .join(o, o.c.id == h.c.opportunity_id)
        .outerjoin(users, users.c.id == h.c.created_by)
        .order_by(h.c.created_at, h.c.id),
        o.c.owner_id, scope)
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for row in connection.execute(query):
        latest[(row.opportunity_id, row.code)] = dict(row._mapping)
    return sorted((row for row in latest.values() if row["until"] > on), key=lambda row: (row["until"], row["id"]))


def user_names(connection: Connection, ids: Sequence[int]) -> dict[int, str]:
    """The names of the given users (missing ids are left out)."""
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(set(ids))):
        found.update((row.id, row.name) for row in connection.execute(
            sa.select(users.c.id, users.c.name).where(users.c.id.in_(chunk))))
    return found


def deal_labels(connection: Connection, ids: Sequence[int]) -> pl.DataFrame:
    """`id`, `external_id`, `name` of the given opportunities."""
    o = opportunities
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(sorted(set(ids))):
        rows.extend(tuple(row) for row in connection.execute(
            sa.select(o.c.id, o.c.external_id, o.c.name).where(o.c.id.in_(chunk))))
    return pl.DataFrame(rows, schema={"id": pl.Int64(), "external_id": pl.String(), "name": pl.String()},
                        orient="row")


def write_state(
    connection: Connection,
    *,
    opportunity_id: int,
    status: str,
    forecast_category: str | None,
    closed_at: datetime | None,
    changes: Iterable[FieldChange],
    at: datetime,
    changed_by: int | None,
    reason: str,
) -> None:
    """Set a deal's status, forecast category and closed_at, and log each field that changed."""
    connection.execute(
        opportunities.update().where(opportunities.c.id == opportunity_id).values(
            status=status, forecast_category=forecast_category, closed_at=closed_at, updated_at=at))
    rows = [
        {"opportunity_id": opportunity_id, "field": change.field.value, "old_value": change.old,
         "new_value": change.new, "changed_at": at, "changed_by": changed_by, "source": ChangeSource.SWEEP.value,
         "reason": reason}
        for change in changes if change.old != change.new
    ]
    if rows:
        connection.execute(opportunity_changes.insert(), rows)


def field_change(field: ChangeField, old: str | None, new: str | None) -> FieldChange:
    return FieldChange(field, encode(field, old), encode(field, new))


def sweep_audit(connection: Connection, sweep_id: str) -> list[dict[str, Any]]:
    """The audit rows of a sweep and of its undo (`action`, `entity`, `entity_id`, `at`, `detail`), oldest
    first. The sweep id sits in each row's JSON detail, read here rather than queried (JSON operators differ
    between SQLite and PostgreSQL, and sweeps are few)."""
    a = audit_log
    rows = connection.execute(
        sa.select(a.c.action, a.c.entity, a.c.entity_id, a.c.at, a.c.detail)
        .where(a.c.action.in_([SWEEP, SWEEP_UNDO])).order_by(a.c.id))
    return [dict(row._mapping) for row in rows
            if isinstance(row.detail, dict) and row.detail.get("sweep_id") == sweep_id]
