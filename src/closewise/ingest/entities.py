"""The batch loaders of every entity besides opportunities, in one place for the importers.

Each has the shape of `load_opportunity_batch(connection, context, rows, counts, sink)`: it upserts one
batch of canonical rows inside the caller's transaction, counts every row as inserted, updated, unchanged
or rejected (rejections go to the sink with the column and the reason), and takes an optional `notes`
list for what an import should tell its user without rejecting anything. See each module for its rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from closewise.ingest.accounts import load_account_batch, load_contact_batch
from closewise.ingest.activities import load_activity_batch
from closewise.ingest.context import LoadContext
from closewise.ingest.leads import load_lead_batch
from closewise.ingest.quotas import load_quota_batch
from closewise.ingest.rates import load_currency_rate_batch
from closewise.ingest.report import EntityCounts, ErrorSink
from closewise.ingest.users import load_user_batch

__all__ = [
    "LOADERS",
    "BatchLoader",
    "load_account_batch",
    "load_activity_batch",
    "load_contact_batch",
    "load_currency_rate_batch",
    "load_lead_batch",
    "load_quota_batch",
    "load_user_batch",
]


class BatchLoader(Protocol):
    def __call__(
        self, connection: Connection, context: LoadContext, rows: Sequence[dict[str, Any]], counts: EntityCounts,
        sink: ErrorSink, *, notes: list[str] | None = None,
    ) -> None: ...


LOADERS: dict[str, BatchLoader] = {
    "accounts": load_account_batch,
    "contacts": load_contact_batch,
    "users": load_user_batch,
    "activities": load_activity_batch,
    "leads": load_lead_batch,
    "quotas": load_quota_batch,
    "currency_rates": load_currency_rate_batch,
}
