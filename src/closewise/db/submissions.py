"""Reading forecast submissions (the calls reps and managers make each week) as a frame.

Both kinds are returned: `submission` (a person's own call) and `adjustment` (a manager's change to a
report's number, about `subject_id`); the consumer picks. Timestamps come out as naive `Datetime("us")`
holding UTC, like every frame of `closewise.analytics.schema`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables
from closewise.domain.timeutil import as_utc

SUBMISSION_SCHEMA: Final[dict[str, pl.DataType]] = {
    "id": pl.Int64(),
    "user_id": pl.Int64(),
    "period": pl.String(),
    "submitted_at": pl.Datetime("us"),
    "commit": pl.Float64(),
    "best_case": pl.Float64(),
    "pipeline": pl.Float64(),
    "kind": pl.String(),
    "subject_id": pl.Int64(),
}


def load_submissions(connection: Connection) -> pl.DataFrame:
    """Every forecast submission and adjustment, sorted by `submitted_at`, `id` (columns: SUBMISSION_SCHEMA)."""
    f = tables.forecast_submissions
    query = sa.select(
        f.c.id,
        f.c.user_id,
        f.c.period,
        f.c.submitted_at,
        f.c.commit,
        f.c.best_case,
        f.c.pipeline,
        f.c.kind,
        f.c.subject_id,
    )
    rows = [
        (key, user, period, _naive_utc(at), _money(commit), _money(best), _money(pipeline), kind, subject)
        for key, user, period, at, commit, best, pipeline, kind, subject in connection.execute(query)
    ]
    return pl.DataFrame(rows, schema=SUBMISSION_SCHEMA, orient="row").sort("submitted_at", "id")


def _naive_utc(value: datetime) -> datetime:
    return as_utc(value).replace(tzinfo=None)


def _money(value: float | Decimal | None) -> float | None:
    # Money is declared asdecimal=False, but a driver may still hand back a Decimal.
    return None if value is None else float(value)


def insert_call(connection: Connection, *, user_id: int, period: str, at: datetime, commit: float, best_case: float,
                notes: str | None, kind: str = "submission", subject_id: int | None = None) -> int:
    """Store one call (or, with kind `adjustment` and `subject_id`, a manager's adjustment); returns its id."""
    result = connection.execute(tables.forecast_submissions.insert().values(
        user_id=user_id, period=period, submitted_at=at, commit=commit, best_case=best_case, kind=kind,
        subject_id=subject_id, notes=notes))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def call_notes(connection: Connection, *, period: str) -> dict[int, str | None]:
    """The notes of each call of `period`, by submission id."""
    f = tables.forecast_submissions
    return {row.id: row.notes for row in connection.execute(sa.select(f.c.id, f.c.notes).where(f.c.period == period))}
