"""Storing and reading the deal models' latest scores (`deal_scores`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import deal_score_history, deal_scores


def replace_scores(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Every stored score gives way to `rows` (one transaction: readers see the old set or the new one)."""
    connection.execute(deal_scores.delete())
    if rows:
        connection.execute(deal_scores.insert(), list(rows))
        record_history(connection, rows)


def record_history(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Keep each score in the deal's history (`opportunity_id`, `as_of`, `p_win`, `p_close_in_period`), replacing
    a score already kept for the same deal and moment."""
    if not rows:
        return
    moments = sorted({row["as_of"] for row in rows})
    connection.execute(deal_score_history.delete().where(deal_score_history.c.as_of.in_(moments)))
    keep = ("opportunity_id", "as_of", "p_win", "p_close_in_period")
    connection.execute(deal_score_history.insert(), [{key: row[key] for key in keep} for row in rows])


def latest_scoring(connection: Connection) -> datetime | None:
    """When the stored scores were computed for (their `as_of`), or None when nothing is scored."""
    value = connection.execute(sa.select(sa.func.max(deal_scores.c.as_of))).scalar()
    return value if isinstance(value, datetime) else None
