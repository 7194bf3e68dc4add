"""Loading accounts and their contacts, upserted by (source, external id).

An opportunity file that names its accounts only by name creates a placeholder account whose external id
is that name. When the account file of the same source arrives later, its record takes that placeholder
over (the account keeps its id and gains the real external id) instead of duplicating the company.
Loaded accounts are told to the import's account directory, so opportunities of the same import find them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import (
    Prepared,
    Row,
    account_id,
    amount,
    custom,
    external_id,
    fit,
    integer,
    moment,
    prepare_rows,
    text,
    upsert_keyed,
    user_id,
)
from closewise.ingest.report import EntityCounts, ErrorSink

ACCOUNT_COLUMNS = ("name", "industry", "employees", "annual_revenue", "country", "segment", "owner_id",
                   "created_at", "custom")
CONTACT_COLUMNS = ("account_id", "name", "email", "title", "buying_role")


def _prepare_account(connection: Connection, context: LoadContext, row: Row) -> Prepared:
    key = external_id(row, noun="account")
    values: dict[str, Any] = {}
    if name := text(row, "name"):  # the name cannot be emptied; an empty one keeps the stored name
        values["name"] = name
    for column in ("industry", "country", "segment"):
        if column in row:
            values[column] = text(row, column)
    if "employees" in row:
        values["employees"] = integer(row, "employees", minimum=0)
    if "annual_revenue" in row:
        values["annual_revenue"] = amount(row, "annual_revenue")
    if "created_at" in row:
        values["created_at"] = moment(row, "created_at")
    if "custom" in row:
        values["custom"] = custom(row)
    fit(tables.accounts, values)
    if "owner" in row:
        values["owner_id"] = user_id(connection, context, row["owner"])
    return Prepared(key, row, values)


def _adopt_placeholders(
    connection: Connection, context: LoadContext, items: Sequence[Prepared], existing: dict[str, dict[str, Any]]
) -> None:
    """Let a new account take over the placeholder created for its name (external id == name)."""
    keys = {item.key for item in items}
    wanted = [item.values["name"] for item in items if item.key not in existing and item.values.get("name")]
    if not wanted:
        return
    found = queries.existing_by_key(connection, table=tables.accounts, source=context.source,
                                    external_ids=wanted, columns=ACCOUNT_COLUMNS)
    taken: set[str] = set()
    for item in items:
        name = item.values.get("name")
        placeholder = found.get(name) if item.key not in existing and name else None
        if (placeholder is None or placeholder["name"] != placeholder["external_id"] or name in keys
                or name in taken):
            continue
        taken.add(str(name))
        existing[item.key] = placeholder
        item.values["external_id"] = item.key


def load_account_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical account rows inside the caller's transaction.

    Fields: external_id (required), name, industry, employees, annual_revenue, country, segment, owner
    (UserRef), created_at, custom.
    """
    counts.read += len(rows)
    items = prepare_rows(context, "accounts", rows, sink, lambda row: _prepare_account(connection, context, row))
    existing = queries.existing_by_key(connection, table=tables.accounts, source=context.source,
                                       external_ids=[item.key for item in items], columns=ACCOUNT_COLUMNS)
    _adopt_placeholders(connection, context, items, existing)
    stored_names = {key: str(record["name"]) for key, record in existing.items()}

    def new_record(item: Prepared) -> dict[str, Any]:
        return {**item.values, "source": context.source, "external_id": item.key,
                "name": item.values.get("name") or item.key}

    ids = upsert_keyed(connection, table=tables.accounts, source=context.source, items=items,
                       compared=ACCOUNT_COLUMNS, counts=counts, new_record=new_record, existing=existing)
    for item in items:
        name = item.values.get("name") or stored_names.get(item.key) or item.key
        context.accounts.remember(item.key, name, ids[item.key])


_ROLE_TEXT = re.compile(r"[^a-z0-9]+")


def buying_role(value: str | None) -> str | None:
    """`Economic Buyer` → `economic_buyer`: the role's key."""
    if value is None:
        return None
    return _ROLE_TEXT.sub("_", value.strip().lower()).strip("_") or None


def _prepare_contact(connection: Connection, context: LoadContext, row: Row) -> Prepared:
    key = external_id(row, noun="contact")
    values: dict[str, Any] = {}
    if name := text(row, "name"):
        values["name"] = name
    if "email" in row:
        email = text(row, "email")
        values["email"] = email.lower() if email else None
    if "title" in row:
        values["title"] = text(row, "title")
    if "buying_role" in row:
        values["buying_role"] = buying_role(text(row, "buying_role"))
    fit(tables.contacts, values)
    if "account" in row:
        values["account_id"] = account_id(connection, context, row["account"])
    return Prepared(key, row, values)


def load_contact_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical contact rows inside the caller's transaction.

    Fields: external_id (required), account (AccountRef), name, email, title, buying_role.
    """
    counts.read += len(rows)
    items = prepare_rows(context, "contacts", rows, sink, lambda row: _prepare_contact(connection, context, row))

    def new_record(item: Prepared) -> dict[str, Any]:
        return {**item.values, "source": context.source, "external_id": item.key,
                "name": item.values.get("name") or item.values.get("email") or item.key}

    upsert_keyed(connection, table=tables.contacts, source=context.source, items=items, compared=CONTACT_COLUMNS,
                 counts=counts, new_record=new_record)
