"""Leads in SQL: the lead frames the lead analytics read (cut to a scope), one lead for a decision, the app's
lead events, routing rules, and the lead settings (SLA, business hours) kept in `org_settings`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.org_settings import read_settings, write_setting
from closewise.db.scope import visible
from closewise.db.tables import activities, lead_events, lead_routing_rules, leads, opportunities, users
from closewise.domain.scope import Scope
from closewise.domain.timeutil import naive_utc
from closewise.errors import NotFound
from closewise.leads import schema

# org_settings keys of the lead settings, with their defaults.
SETTINGS: Final[dict[str, str]] = {
    "leads_sla_minutes": "60",
    "leads_business_hours": "Mon-Fri 09:00-17:00",
    "leads_timezone": "UTC",
    "leads_clock": "lead",
    "leads_route_last": "",  # the default round robin's last assignee
}


def _frame(rows: Iterable[Sequence[Any]], columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """A frame from SQL rows, timestamps made naive UTC (PostgreSQL hands them out aware)."""
    stamps = [i for i, dtype in enumerate(columns.values()) if isinstance(dtype, pl.Datetime)]
    data = []
    for row in rows:
        values = list(row)
        for i in stamps:
            if isinstance(values[i], datetime):
                values[i] = naive_utc(values[i])
        data.append(values)
    return pl.DataFrame(data, schema=dict(columns), orient="row")


def lead_query() -> sa.Select[Any]:
    return sa.select(*(leads.c[name] for name in schema.LEADS)).order_by(leads.c.id)


def load_leads(connection: Connection, *, scope: Scope | None = None,
               ids: Sequence[int] | None = None) -> pl.DataFrame:
    """The leads `scope` sees (None: all), as the `schema.LEADS` frame."""
    query = lead_query()
    if scope is not None:
        query = visible(query, leads.c.owner_id, scope)
    if ids is not None:
        query = query.where(leads.c.id.in_(list(ids)))
    frame = _frame(connection.execute(query), schema.LEADS)
    return frame.with_columns(pl.col("recycled_count").fill_null(0))


def load_lead_activities(connection: Connection, *, scope: Scope | None = None) -> pl.DataFrame:
    """Activities on leads (of the leads `scope` sees)."""
    a = activities
    query = sa.select(a.c.lead_id, a.c.owner_id, a.c.type, a.c.occurred_at, a.c.completed).where(
        a.c.lead_id.is_not(None))
    if scope is not None and not scope.everything:
        query = query.where(a.c.lead_id.in_(visible(sa.select(leads.c.id), leads.c.owner_id, scope)))
    return _frame(connection.execute(query), schema.ACTIVITIES)


def load_lead_events(connection: Connection, *, scope: Scope | None = None,
                     lead_id: int | None = None) -> pl.DataFrame:
    e = lead_events
    query = sa.select(e.c.lead_id, e.c.kind, e.c.occurred_at, e.c.user_id, e.c.owner_id, e.c.reason,
                      e.c.re_engage_at, e.c.note).order_by(e.c.occurred_at, e.c.id)
    if lead_id is not None:
        query = query.where(e.c.lead_id == lead_id)
    if scope is not None and not scope.everything:
        query = query.where(e.c.lead_id.in_(visible(sa.select(leads.c.id), leads.c.owner_id, scope)))
    return _frame(connection.execute(query), schema.EVENTS)


def load_lead_opportunities(connection: Connection) -> pl.DataFrame:
    """Opportunities that came from a lead: named by `opportunities.lead_id` or by a lead's
    `converted_opportunity_id`."""
    o = opportunities
    named = sa.select(leads.c.converted_opportunity_id).where(leads.c.converted_opportunity_id.is_not(None))
    query = sa.select(o.c.id, o.c.lead_id, o.c.owner_id, o.c.status, sa.cast(o.c.amount, sa.Float), o.c.currency,
                      o.c.close_date, o.c.created_at, o.c.closed_at).where(
        sa.or_(o.c.lead_id.is_not(None), o.c.id.in_(named)))
    return _frame(connection.execute(query), schema.OPPORTUNITIES)


def load_users(connection: Connection) -> pl.DataFrame:
    u = users
    return _frame(connection.execute(sa.select(u.c.id, u.c.name, u.c.email, u.c.role, u.c.manager_id, u.c.active)
                                     .order_by(u.c.id)), schema.USERS)


def get_lead(connection: Connection, *, lead_id: int, scope: Scope | None) -> dict[str, Any]:
    """One lead's row; NotFound when it does not exist or `scope` does not see it (worded alike)."""
    query = sa.select(leads).where(leads.c.id == lead_id)
    if scope is not None:
        query = visible(query, leads.c.owner_id, scope)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no lead {lead_id}", where="lead")
    return dict(row)


def lock_lead(connection: Connection, *, lead_id: int, scope: Scope | None) -> dict[str, Any]:
    """`get_lead`, holding the row for the rest of the transaction on PostgreSQL (SQLite locks the file)."""
    query = sa.select(leads).where(leads.c.id == lead_id)
    if scope is not None:
        query = visible(query, leads.c.owner_id, scope)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no lead {lead_id}", where="lead")
    return dict(row)


def update_lead(connection: Connection, *, lead_id: int, values: Mapping[str, Any]) -> None:
    connection.execute(leads.update().where(leads.c.id == lead_id).values(**values))


def add_event(connection: Connection, *, lead_id: int, kind: str, occurred_at: datetime, user_id: int | None,
              owner_id: int | None, reason: str | None = None, re_engage_at: date | None = None,
              note: str | None = None) -> None:
    connection.execute(lead_events.insert().values(
        lead_id=lead_id, kind=kind, occurred_at=occurred_at, user_id=user_id, owner_id=owner_id, reason=reason,
        re_engage_at=re_engage_at, note=note))


def add_events(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        connection.execute(lead_events.insert(), [dict(row) for row in rows])


def unassigned_leads(connection: Connection) -> pl.DataFrame:
    """New leads without an owner: what routing assigns."""
    query = lead_query().where(leads.c.owner_id.is_(None), leads.c.status == "new")
    return _frame(connection.execute(query), schema.LEADS)


def open_load(connection: Connection) -> dict[int, int]:
    """Open leads (new or working) per owner."""
    query = (sa.select(leads.c.owner_id, sa.func.count()).where(
        leads.c.owner_id.is_not(None), leads.c.status.in_(list(schema.OPEN_STATUSES))).group_by(leads.c.owner_id))
    return {int(owner): int(count) for owner, count in connection.execute(query)}


def assign(connection: Connection, rows: Sequence[tuple[int, int]], *, at: datetime) -> int:
    """Give each (lead id, owner id) its owner, if the lead is still unassigned; returns how many changed."""
    changed = 0
    for lead_id, owner_id in rows:
        result = connection.execute(leads.update().where(leads.c.id == lead_id, leads.c.owner_id.is_(None))
                                    .values(owner_id=owner_id, assigned_at=at))
        changed += result.rowcount
    return changed


def active_reps(connection: Connection) -> list[int]:
    query = sa.select(users.c.id).where(users.c.role == "rep", users.c.active.is_(True)).order_by(users.c.id)
    return [int(user) for user in connection.execute(query).scalars()]


def active_user_emails(connection: Connection) -> dict[str, int]:
    query = sa.select(users.c.id, users.c.email).where(users.c.active.is_(True), users.c.email.is_not(None))
    return {str(email).lower(): int(user) for user, email in connection.execute(query)}


def list_rules(connection: Connection) -> list[dict[str, Any]]:
    r = lead_routing_rules
    return [dict(row) for row in connection.execute(sa.select(r).order_by(r.c.position, r.c.id)).mappings()]


def replace_rules(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    connection.execute(lead_routing_rules.delete())
    if rows:
        connection.execute(lead_routing_rules.insert(), [dict(row) for row in rows])


def set_rule_pointer(connection: Connection, *, name: str, member: int) -> None:
    r = lead_routing_rules
    connection.execute(r.update().where(r.c.name == name).values(last_member_id=member))


def lead_settings(connection: Connection) -> dict[str, str]:
    stored = read_settings(connection)
    return {key: stored.get(key, default) for key, default in SETTINGS.items()}


def write_lead_setting(connection: Connection, *, key: str, value: str) -> None:
    assert key in SETTINGS, key
    write_setting(connection, key=key, value=value)


def corporate(connection: Connection) -> str:
    return read_settings(connection)["corporate_currency"]
