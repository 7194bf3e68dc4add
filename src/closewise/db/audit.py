"""The audit log: who did what, to which record, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db.tables import audit_log


def record(
    connection: Connection,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: str | int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    connection.execute(
        audit_log.insert().values(
            at=at,
            actor_id=actor_id,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            detail=detail,
        )
    )
