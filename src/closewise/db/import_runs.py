"""Reading the record of past imports (`import_runs`, written by `ingest/session.py`) for the imports page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import import_runs, users


@dataclass(frozen=True)
class RunRow:
    id: int
    kind: str
    path: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    errors_file: str | None
    user_id: int | None
    user_name: str | None


def _query() -> sa.Select[Any]:
    return sa.select(import_runs, users.c.name.label("user_name")).select_from(
        import_runs.outerjoin(users, users.c.id == import_runs.c.user_id))


def _run(row: sa.RowMapping) -> RunRow:
    counts = row["counts"] if isinstance(row["counts"], dict) else {}
    return RunRow(int(row["id"]), row["kind"], row["path"], row["started_at"], row["finished_at"], row["status"],
                  counts, row["errors_file"], row["user_id"], row["user_name"])


def list_runs(connection: Connection, *, limit: int = 50) -> list[RunRow]:
    """The latest runs first."""
    query = _query().order_by(import_runs.c.started_at.desc(), import_runs.c.id.desc()).limit(limit)
    return [_run(row) for row in connection.execute(query).mappings()]


def get_run(connection: Connection, *, run_id: int) -> RunRow | None:
    row = connection.execute(_query().where(import_runs.c.id == run_id)).mappings().first()
    return _run(row) if row else None


def claim_runs(connection: Connection, *, path: str, user_id: int) -> list[int]:
    """Who started a run from the web app (the importers record what, not who): mark the runs that read `path`
    (a web upload's private folder, never reused) as started by `user_id`."""
    table = import_runs
    ids = [int(i) for i in connection.execute(
        sa.select(table.c.id).where(table.c.path == path, table.c.user_id.is_(None)).order_by(table.c.id)).scalars()]
    if ids:
        connection.execute(table.update().where(table.c.id.in_(ids)).values(user_id=user_id))
    return ids
