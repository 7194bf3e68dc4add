"""Storage for coaching: the frames the coaching analytics read (contacts' buying roles, leads, deal scores) and
the records coaching writes (1:1 plans, commitments, review notes, adopted checklist items).

Reads of coaching records are scoped by the rep they are about (`visible(..., rep_id, scope)`): a rep sees
their own, a manager their reports', a leader and an admin all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.scope import visible
from closewise.db.tables import (
    activities,
    coaching_adoptions,
    coaching_commitments,
    coaching_notes,
    coaching_plans,
    contacts,
    deal_scores,
    leads,
    users,
)
from closewise.domain.scope import Scope


def _naive(value: datetime | None) -> datetime | None:
    """Naive UTC, as the analytics frames hold timestamps (SQLite gives naive UTC already)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _inserted(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def load_contacts(connection: Connection) -> pl.DataFrame:
    """`id`, `buying_role` of every contact that appears on an activity."""
    used = sa.select(activities.c.contact_id).where(activities.c.contact_id.is_not(None)).distinct().subquery()
    rows = connection.execute(sa.select(contacts.c.id, contacts.c.buying_role)
                              .where(contacts.c.id.in_(sa.select(used.c.contact_id)))).all()
    return pl.DataFrame([(r.id, r.buying_role) for r in rows], schema={"id": pl.Int64(), "buying_role": pl.String()},
                        orient="row")


def load_leads(connection: Connection) -> pl.DataFrame:
    """`id`, `owner_id`, `lead_source`, `created_at`, `first_touch_at` (naive UTC)."""
    rows = connection.execute(sa.select(leads.c.id, leads.c.owner_id, leads.c.lead_source, leads.c.created_at,
                                        leads.c.first_touch_at)).all()
    return pl.DataFrame([(r.id, r.owner_id, r.lead_source, _naive(r.created_at), _naive(r.first_touch_at))
                         for r in rows],
                        schema={"id": pl.Int64(), "owner_id": pl.Int64(), "lead_source": pl.String(),
                                "created_at": pl.Datetime("us"), "first_touch_at": pl.Datetime("us")}, orient="row")


def load_scores(connection: Connection) -> pl.DataFrame:
    """The stored win probability of each scored deal: `id`, `p_win`."""
    rows = connection.execute(sa.select(deal_scores.c.opportunity_id, deal_scores.c.p_win)).all()
    return pl.DataFrame([(r.opportunity_id, r.p_win) for r in rows], schema={"id": pl.Int64(), "p_win": pl.Float64()},
                        orient="row")


# --- plans and commitments ----------------------------------------------------------------------------------


def insert_plan(connection: Connection, *, values: dict[str, Any]) -> int:
    return _inserted(connection.execute(coaching_plans.insert().values(**values)))


def update_plan(connection: Connection, *, plan_id: int, values: dict[str, Any]) -> None:
    connection.execute(coaching_plans.update().where(coaching_plans.c.id == plan_id).values(**values))


def list_plans(connection: Connection, *, scope: Scope, rep_id: int | None = None,
               plan_id: int | None = None) -> list[dict[str, Any]]:
    p = coaching_plans
    rep = users.alias("rep")
    author = users.alias("author")
    query = (sa.select(p, rep.c.name.label("rep_name"), author.c.name.label("author_name"))
             .select_from(p.join(rep, rep.c.id == p.c.rep_id).outerjoin(author, author.c.id == p.c.author_id))
             .order_by(p.c.status, p.c.starts_on.desc(), p.c.id.desc()))
    if rep_id is not None:
        query = query.where(p.c.rep_id == rep_id)
    if plan_id is not None:
        query = query.where(p.c.id == plan_id)
    return [dict(row) for row in connection.execute(visible(query, p.c.rep_id, scope)).mappings()]


def insert_commitment(connection: Connection, *, values: dict[str, Any]) -> int:
    return _inserted(connection.execute(coaching_commitments.insert().values(**values)))


def update_commitment(connection: Connection, *, commitment_id: int, values: dict[str, Any]) -> None:
    connection.execute(coaching_commitments.update().where(coaching_commitments.c.id == commitment_id)
                       .values(**values))


def list_commitments(connection: Connection, *, scope: Scope, plan_id: int | None = None, kind: str | None = None,
                     rep_id: int | None = None, opportunity_id: int | None = None,
                     commitment_id: int | None = None) -> list[dict[str, Any]]:
    c = coaching_commitments
    rep = users.alias("rep")
    query = (sa.select(c, rep.c.name.label("rep_name")).select_from(c.join(rep, rep.c.id == c.c.rep_id))
             .order_by(c.c.done_at.is_not(None), c.c.due_on, c.c.id))
    for column, value in ((c.c.plan_id, plan_id), (c.c.kind, kind), (c.c.rep_id, rep_id),
                          (c.c.opportunity_id, opportunity_id), (c.c.id, commitment_id)):
        if value is not None:
            query = query.where(column == value)
    return [dict(row) for row in connection.execute(visible(query, c.c.rep_id, scope)).mappings()]


# --- notes ---------------------------------------------------------------------------------------------------


def insert_note(connection: Connection, *, values: dict[str, Any]) -> int:
    return _inserted(connection.execute(coaching_notes.insert().values(**values)))


def list_notes(connection: Connection, *, scope: Scope, kind: str | None = None, rep_id: int | None = None,
               opportunity_id: int | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    n = coaching_notes
    author = users.alias("author")
    query = (sa.select(n, author.c.name.label("author_name"))
             .select_from(n.outerjoin(author, author.c.id == n.c.author_id))
             .order_by(n.c.created_at.desc(), n.c.id.desc()))
    for column, value in ((n.c.kind, kind), (n.c.rep_id, rep_id), (n.c.opportunity_id, opportunity_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(n.c.created_at >= since)
    return [dict(row) for row in connection.execute(visible(query, n.c.rep_id, scope)).mappings()]


# --- adopted checklist items ----------------------------------------------------------------------------------


def insert_adoption(connection: Connection, *, values: dict[str, Any]) -> int:
    return _inserted(connection.execute(coaching_adoptions.insert().values(**values)))


def list_adoptions(connection: Connection) -> list[dict[str, Any]]:
    a = coaching_adoptions
    query = (sa.select(a, users.c.name.label("adopted_by_name"))
             .select_from(a.outerjoin(users, users.c.id == a.c.adopted_by)).order_by(a.c.adopted_at, a.c.id))
    return [dict(row) for row in connection.execute(query).mappings()]


def user_row(connection: Connection, *, user_id: int) -> dict[str, Any] | None:
    row = connection.execute(sa.select(users.c.id, users.c.name, users.c.email, users.c.role, users.c.manager_id,
                                       users.c.hire_date, users.c.active)
                             .where(users.c.id == user_id)).mappings().first()
    return dict(row) if row is not None else None
