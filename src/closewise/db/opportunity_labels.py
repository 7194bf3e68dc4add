"""Names and external ids of opportunities, for listing the deals behind an analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables

# Well under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK: Final = 5_000


def opportunity_labels(connection: Connection, *, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """`{id: (external_id, name)}` for the given opportunity ids (unknown ids are left out)."""
    o = tables.opportunities
    labels: dict[int, tuple[str, str]] = {}
    unique = sorted(set(ids))
    for first in range(0, len(unique), _CHUNK):
        chunk = unique[first:first + _CHUNK]
        for row in connection.execute(sa.select(o.c.id, o.c.external_id, o.c.name).where(o.c.id.in_(chunk))):
            labels[int(row.id)] = (str(row.external_id), str(row.name))
    return labels
