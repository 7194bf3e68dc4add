"""Loading quotas: what an owner or a team is expected to close in a period, upserted by (user, team, period).

A period is written as the fiscal calendar reads it (`2024-05`, `2024-Q2`, `2024`) and stored under its
canonical label with its first and last day (inclusive, as shown to people), so a quarter means the same
dates as in forecasts. The currency must be one the import can convert, as for opportunities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.periods import FiscalCalendar
from closewise.errors import InvalidInput
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import (
    BadValue,
    Prepared,
    Row,
    TeamBook,
    amount,
    changed_values,
    fit,
    prepare_rows,
    text,
    user_id,
)
from closewise.ingest.refs import UserRef
from closewise.ingest.report import EntityCounts, ErrorSink
from closewise.services.org import fiscal_calendar

QUOTA_COLUMNS = ("period_start", "period_end", "amount", "currency")


def _prepare_quota(
    connection: Connection, context: LoadContext, calendar: FiscalCalendar, teams: TeamBook, row: Row
) -> Prepared:
    owner = row.get("owner")
    has_owner = not owner.is_empty() if isinstance(owner, UserRef) else bool(str(owner or "").strip())
    team = text(row, "team")
    if not has_owner and not team:
        raise BadValue("owner", "", "the quota names neither an owner nor a team")
    if has_owner and team:
        raise BadValue("team", team, "a quota belongs to an owner or to a team, not both")
    written = text(row, "period")
    if written is None:
        raise BadValue("period", "", "the quota has no period")
    try:
        period = calendar.parse(written)
    except InvalidInput as exc:
        raise BadValue("period", written, exc.message) from exc
    value = amount(row, "amount", minimum=0)
    if value is None:
        raise BadValue("amount", "", "the quota has no amount")
    values: dict[str, Any] = {"period_start": period.start, "period_end": period.last_day, "amount": value}
    code = text(row, "currency")
    if code is not None:
        code = code.upper()
        if code not in context.currencies:
            raise BadValue("currency", row.get("currency"), f"unknown currency {code!r}: no rate to convert it")
        values["currency"] = code
    fit(tables.teams, {"name": team})
    owner_id = user_id(connection, context, owner) if has_owner else None
    team_id = teams.resolve(connection, team)
    return Prepared(f"{owner_id or ''}/{team_id or ''}/{period.label}", row, values,
                    {"user_id": owner_id, "team_id": team_id, "period": period.label})


def load_quota_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical quota rows inside the caller's transaction.

    Fields: owner (UserRef) or team (team name), period (required), amount (required), currency.
    """
    counts.read += len(rows)
    calendar = fiscal_calendar(connection)
    teams = TeamBook(connection)
    items = prepare_rows(context, "quotas", rows, sink,
                         lambda row: _prepare_quota(connection, context, calendar, teams, row), key_column="period")
    stored = {
        (record["user_id"], record["team_id"], record["period"]): record
        for record in queries.quotas_for_periods(connection, periods=[item.links["period"] for item in items])
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for item in items:
        scope = (item.links["user_id"], item.links["team_id"], item.links["period"])
        record = stored.get(scope)
        if record is None:
            inserts.append({"currency": context.corporate_currency, **item.values, "user_id": scope[0],
                            "team_id": scope[1], "period": scope[2]})
            continue
        changes = changed_values(record, item.values)
        if changes:
            counts.updated += 1
            updates.append({"id": record["id"], **changes})
        else:
            counts.unchanged += 1
    counts.inserted += len(queries.insert_returning_ids(connection, table=tables.quotas, rows=inserts))
    queries.update_by_id(connection, table=tables.quotas, rows=updates)
    if teams.created and notes is not None:
        notes.append(f"teams created: {', '.join(teams.created)}")
