"""Loading leads, upserted by (source, external id).

Statuses are read from Closewise's own words and from Salesforce's defaults (`Open - Not Contacted` is
new, `Closed - Not Converted` rejected, ...); a status that is neither rejects the lead. A recycle reason
written as free text that matches no known reason is kept as `other`. A converted lead names the
opportunity it became: when that opportunity is stored, the lead points at it and the opportunity at the
lead (an opportunity imported later links itself through its own `lead` field). A lead must have a
creation date; only when the source has no such column at all is a new lead dated by the earliest time
its row gives (or the import's), with a note, rather than rejected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.enums import LeadStatus, RecycleReason
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import (
    BadValue,
    Prepared,
    Row,
    custom,
    day,
    external_id,
    fit,
    moment,
    prepare_rows,
    reference_text,
    same,
    summarise,
    text,
    upsert_keyed,
    user_id,
)
from closewise.ingest.report import EntityCounts, ErrorSink

TEXT_FIELDS = ("name", "email", "company", "lead_source", "campaign", "country", "timezone")
TIME_FIELDS = ("created_at", "assigned_at", "first_touch_at", "accepted_at", "rejected_at", "converted_at")
LEAD_COLUMNS = (*TEXT_FIELDS, *TIME_FIELDS, "owner_id", "status", "recycle_reason", "re_engage_at",
                "converted_opportunity_id", "custom")

STATUSES: dict[str, LeadStatus] = {status.value: status for status in LeadStatus} | {
    "open - not contacted": LeadStatus.NEW, "working - contacted": LeadStatus.WORKING,
    "closed - converted": LeadStatus.CONVERTED, "closed - not converted": LeadStatus.REJECTED,
    "qualified": LeadStatus.ACCEPTED, "unqualified": LeadStatus.REJECTED,
}
# Free-text reasons, by the words they contain (checked in order).
REASON_WORDS: tuple[tuple[frozenset[str], RecycleReason], ...] = (
    (frozenset({"budget", "price", "expensive", "money"}), RecycleReason.NO_BUDGET),
    (frozenset({"authority", "authorised", "authorized", "decision"}), RecycleReason.NO_AUTHORITY),
    (frozenset({"competitor", "competition"}), RecycleReason.COMPETITOR),
    (frozenset({"response", "unresponsive", "answer", "reply", "ghosted"}), RecycleReason.NO_RESPONSE),
    (frozenset({"fit", "unqualified", "irrelevant"}), RecycleReason.NOT_A_FIT),
    (frozenset({"timing", "later", "now", "quarter", "year"}), RecycleReason.TIMING),
)
_WORDS = re.compile(r"[a-z]+")


def parse_lead_status(value: str) -> LeadStatus:
    status = STATUSES.get(" ".join(value.strip().lower().split()))
    if status is None:
        raise BadValue("status", value, f"unknown lead status {value!r} (expected {', '.join(STATUSES)})")
    return status


def recycle_reason(value: str | None) -> RecycleReason | None:
    """A known reason by its key, else by the words it uses; `other` when nothing matches."""
    if value is None:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")
    if key in {reason.value for reason in RecycleReason}:
        return RecycleReason(key)
    words = set(_WORDS.findall(value.lower()))
    for vocabulary, reason in REASON_WORDS:
        if words & vocabulary:
            return reason
    return RecycleReason.OTHER


def _prepare_lead(
    connection: Connection, context: LoadContext, row: Row, opportunities: dict[str, dict[str, Any]]
) -> Prepared:
    key = external_id(row, noun="lead")
    values: dict[str, Any] = {}
    links: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name in row:
            values[name] = text(row, name)
    if values.get("email"):
        values["email"] = str(values["email"]).lower()
    for name in TIME_FIELDS:
        if name in row:
            values[name] = moment(row, name)
    if "created_at" not in row:
        # The source has no creation date at all (Salesforce's sample Lead.csv): a new lead is dated by the
        # earliest moment the row knows, else the import; a stored lead keeps its date.
        known = [when for name in TIME_FIELDS if (when := values.get(name)) is not None]
        if (modified := moment(row, "modified_at")) is not None:
            known.append(modified)
        links["created_at"] = min(known, default=context.now)
    elif values["created_at"] is None:
        raise BadValue("created_at", row.get("created_at"), "the lead has no creation date (created_at)")
    if status := text(row, "status"):
        values["status"] = parse_lead_status(status).value
    if "recycle_reason" in row:
        reason = recycle_reason(text(row, "recycle_reason"))
        values["recycle_reason"] = reason.value if reason else None
    if "re_engage_at" in row:
        values["re_engage_at"] = day(row, "re_engage_at")
    if "custom" in row:
        values["custom"] = custom(row)
    fit(tables.leads, values)
    if "converted_opportunity" in row:
        wanted = reference_text(row["converted_opportunity"])
        if wanted is None:
            values["converted_opportunity_id"] = None
        elif wanted in opportunities:
            values["converted_opportunity_id"] = int(opportunities[wanted]["id"])
            links["opportunity_lead_id"] = opportunities[wanted]["lead_id"]
        else:
            # Not stored (yet): keep whatever link the lead has; the opportunity links itself when it comes.
            links["missing"] = f"line {row.get('_line', 0)}: no opportunity {wanted!r}"
    if "owner" in row:
        values["owner_id"] = user_id(connection, context, row["owner"])
    return Prepared(key, row, values, links)


def _count_recycling(stored: dict[str, Any], changes: dict[str, Any]) -> None:
    if changes.get("status") == LeadStatus.RECYCLED.value:
        changes["recycled_count"] = int(stored.get("recycled_count") or 0) + 1


def load_lead_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical lead rows inside the caller's transaction.

    Fields: external_id (required), name, email, company, lead_source, campaign, country, timezone, owner
    (UserRef), status, created_at (required when the source has it), assigned_at, first_touch_at,
    accepted_at, rejected_at, recycle_reason, re_engage_at, converted_at, converted_opportunity (opportunity
    external id), custom, modified_at (only to date a lead whose source has no created_at).
    """
    counts.read += len(rows)
    source = context.source
    wanted = sorted({ref for row in rows if (ref := reference_text(row.get("converted_opportunity")))})
    opportunities = queries.existing_by_key(connection, table=tables.opportunities, source=source,
                                            external_ids=wanted, columns=("lead_id",))
    items = prepare_rows(context, "leads", rows, sink,
                         lambda row: _prepare_lead(connection, context, row, opportunities))
    missing = [str(item.links["missing"]) for item in items if "missing" in item.links]

    undated: list[str] = []

    def new_record(item: Prepared) -> dict[str, Any]:
        status = item.values.get("status") or LeadStatus.NEW.value
        if "created_at" in item.links:
            undated.append(f"line {item.line}")
        return {"created_at": item.links.get("created_at"), **item.values, "source": source, "external_id": item.key,
                "status": status, "recycled_count": 1 if status == LeadStatus.RECYCLED.value else 0}

    existing = queries.existing_by_key(connection, table=tables.leads, source=source,
                                       external_ids=[item.key for item in items],
                                       columns=(*LEAD_COLUMNS, "recycled_count"))
    ids = upsert_keyed(connection, table=tables.leads, source=source, items=items, compared=LEAD_COLUMNS,
                       counts=counts, new_record=new_record, existing=existing, on_update=_count_recycling)
    _link_opportunities(connection, context, items, ids)
    summarise(notes, missing, "converted leads name an opportunity that is not stored (link left as it was)")
    summarise(notes, undated, "new leads had no creation date in the source; dated by their earliest known time "
              "(or the import)")


def _link_opportunities(
    connection: Connection, context: LoadContext, items: Sequence[Prepared], ids: dict[str, int]
) -> None:
    """Point each converted opportunity at its lead, writing only links that change."""
    updates = [
        {"id": int(item.values["converted_opportunity_id"]), "lead_id": ids[item.key], "updated_at": context.now}
        for item in items
        if item.values.get("converted_opportunity_id") is not None
        and not same(item.links.get("opportunity_lead_id"), ids[item.key])
    ]
    queries.update_by_id(connection, table=tables.opportunities, rows=updates)
