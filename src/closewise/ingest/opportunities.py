"""Loading opportunities: insert new ones, update changed ones, and log one change row per real change.

An importer hands over canonical rows: dicts holding only the fields its source provides (a field the
source does not have is never overwritten), plus `_file` and `_line` for error reports. Each batch is one
transaction, so an import killed mid-way leaves whole batches behind and re-running it completes it.

Change-log rules (DESIGN.md): a re-import that finds a changed tracked field writes one change row, stamped
with the row's `modified_at` when the source has one (that is when the change became known), else now. A
new opportunity without history is taken as created open at `created_at` and, when closed, closed at its
close date: its status (and closing forecast category) get a change row then. When the import also brings
history for some fields (`history_fields`), those fields' changes come from the history instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import bulk_write, tables
from closewise.db import ingest as queries
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField, ChangeSource, ForecastCategory, OpportunityStatus
from closewise.domain.money import round_cents
from closewise.domain.timeutil import as_utc, start_of_day
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import reject
from closewise.ingest.refs import AccountRef, UserRef
from closewise.ingest.report import EntityCounts, ErrorSink

# Canonical field -> the change-log field it feeds.
TRACKED: dict[str, ChangeField] = {
    "stage": ChangeField.STAGE,
    "status": ChangeField.STATUS,
    "amount": ChangeField.AMOUNT,
    "close_date": ChangeField.CLOSE_DATE,
    "forecast_category": ChangeField.FORECAST_CATEGORY,
    "owner_id": ChangeField.OWNER,
    "probability": ChangeField.PROBABILITY,
    "next_step": ChangeField.NEXT_STEP,
}
PLAIN = ("name", "currency", "created_at", "closed_at", "lead_source", "type", "competitor", "pipeline", "custom",
         "account_id", "lead_id")
COMPARED = tuple(TRACKED) + PLAIN
CLOSED_CATEGORY = {
    OpportunityStatus.WON.value: ForecastCategory.CLOSED.value,
    OpportunityStatus.LOST.value: ForecastCategory.OMITTED.value,
    OpportunityStatus.NO_DECISION.value: ForecastCategory.OMITTED.value,
}


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return as_utc(old) == as_utc(new)
    if isinstance(old, float) or isinstance(new, float):
        if old is None or new is None:
            return old is new
        return abs(float(old) - float(new)) < 1e-9
    return bool(old == new)


def _prepare(
    connection: Connection, context: LoadContext, row: dict[str, Any], sink: ErrorSink
) -> dict[str, Any] | None:
    """Resolve references and validate one row; None when it is rejected (already reported)."""
    external_id = str(row.get("external_id") or "").strip()
    if not external_id:
        reject(sink, row, "external_id", "", "the record has no id")
        return None
    line = int(row.get("_line", 0))
    if external_id in context.seen:
        reject(sink, row, "external_id", external_id, f"duplicate id (first seen on line {context.seen[external_id]})")
        return None
    values: dict[str, Any] = {}
    for name in ("name", "amount", "close_date", "created_at", "closed_at", "probability", "next_step",
                 "lead_source", "type", "competitor", "pipeline", "custom", "forecast_category"):
        if name in row:
            values[name] = row[name]
    if "amount" in values and values["amount"] is not None:
        values["amount"] = round_cents(values["amount"])
    if "currency" in row:
        code = (row["currency"] or context.corporate_currency).strip().upper()
        if code not in context.currencies:
            reject(sink, row, "currency", row["currency"], f"unknown currency {code!r}: no rate to convert it")
            return None
        values["currency"] = code
    status = row.get("status")
    if "stage" in row:
        try:
            target = context.stages.resolve(
                connection, str(row["stage"] or ""), probability=row.get("_stage_probability"),
                order=row.get("_stage_order"),
            )
        except ValueError as exc:
            reject(sink, row, "stage", row["stage"], str(exc))
            return None
        if target.stage is not None:
            values["stage"] = target.stage
        if target.status is not None and status is None:
            status = target.status.value
    if status is not None:
        values["status"] = str(status)
    if "owner" in row:
        ref = row["owner"]
        values["owner_id"] = (
            context.users.resolve(connection, ref, now=context.now) if isinstance(ref, UserRef) else None
        )
    if "account" in row:
        ref = row["account"]
        values["account_id"] = (
            context.accounts.resolve(connection, ref, now=context.now) if isinstance(ref, AccountRef) else None
        )
    values["_modified_at"] = row.get("modified_at")
    values["_lead"] = row.get("lead")
    context.seen[external_id] = line
    values["external_id"] = external_id
    values["_row"] = row
    return values


def _new_record(context: LoadContext, values: dict[str, Any]) -> dict[str, Any]:
    status = values.get("status") or OpportunityStatus.OPEN.value
    stage = values.get("stage") or context.stages.first_stage()
    if stage is None:
        raise ValueError("the opportunity has no stage and the playbook has none to default to")
    created = values.get("created_at")
    close_date = values.get("close_date")
    if created is None:
        created = start_of_day(close_date) if close_date else context.now
    closed_at = values.get("closed_at")
    if status != OpportunityStatus.OPEN.value and closed_at is None:
        closed_at = start_of_day(close_date) if close_date else created
    record = {name: values.get(name) for name in COMPARED if name in values}
    record.update(
        source=context.source, external_id=values["external_id"], name=values.get("name") or values["external_id"],
        stage=stage, status=status, currency=values.get("currency") or context.corporate_currency,
        created_at=created, closed_at=closed_at, pipeline=values.get("pipeline") or context.stages.pipeline,
        updated_at=context.now,
    )
    if record.get("forecast_category") is None:
        record["forecast_category"] = CLOSED_CATEGORY.get(status) or context.stages.default_category(stage)
    return record


def opening_changes(context: LoadContext, opportunity_id: int, record: dict[str, Any]) -> list[dict[str, Any]]:
    """A closed deal imported without history: it was open until it closed."""
    status = record["status"]
    if status == OpportunityStatus.OPEN.value or ChangeField.STATUS in context.history_fields:
        return []
    at = record["closed_at"]
    base = {"opportunity_id": opportunity_id, "changed_at": at, "changed_by": record.get("owner_id"),
            "source": ChangeSource.IMPORT.value, "import_run_id": context.run_id}
    changes = [{**base, "field": ChangeField.STATUS.value, "old_value": OpportunityStatus.OPEN.value,
                "new_value": status}]
    opening_category = context.stages.default_category(record["stage"])
    if (ChangeField.FORECAST_CATEGORY not in context.history_fields and record.get("forecast_category")
            and opening_category and opening_category != record["forecast_category"]):
        changes.append({**base, "field": ChangeField.FORECAST_CATEGORY.value, "old_value": opening_category,
                        "new_value": record["forecast_category"]})
    return changes


def load_opportunity_batch(
    connection: Connection, context: LoadContext, rows: Sequence[dict[str, Any]], counts: EntityCounts,
    sink: ErrorSink, *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical opportunity rows inside the caller's transaction."""
    counts.read += len(rows)
    prepared = [p for row in rows if (p := _prepare(connection, context, row, sink)) is not None]
    _link_leads(connection, context, prepared)
    known = context.stored_opportunities
    candidates = [p["external_id"] for p in prepared if known is None or p["external_id"] in known]
    existing = queries.existing_by_key(
        connection, table=tables.opportunities, source=context.source, external_ids=candidates, columns=COMPARED,
    ) if candidates else {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for values in prepared:
        stored = existing.get(values["external_id"])
        if stored is None:
            try:
                inserts.append(_new_record(context, values))
            except ValueError as exc:
                reject(sink, values["_row"], "stage", "", str(exc))
            continue
        changed = {name: values[name] for name in COMPARED if name in values and not _same(stored[name], values[name])}
        if not changed:
            counts.unchanged += 1
            continue
        counts.updated += 1
        updates.append({"id": stored["id"], **changed, "updated_at": context.now})
        at = values["_modified_at"] or context.now
        for name, new in changed.items():
            tracked = TRACKED.get(name)
            if tracked is None or tracked in context.history_fields:
                continue
            changes.append({
                "opportunity_id": stored["id"], "field": tracked.value, "old_value": encode(tracked, stored[name]),
                "new_value": encode(tracked, new), "changed_at": at, "changed_by": None,
                "source": ChangeSource.IMPORT.value, "import_run_id": context.run_id,
            })
    bulk_write.fast_insert(connection, table=tables.opportunities, rows=inserts)
    counts.inserted += len(inserts)
    closing = [record for record in inserts if record["status"] != OpportunityStatus.OPEN.value]
    if closing and ChangeField.STATUS not in context.history_fields:
        new_ids = queries.ids_by_key(connection, table=tables.opportunities, source=context.source,
                                     external_ids=[record["external_id"] for record in closing])
        for record in closing:
            changes.extend(opening_changes(context, new_ids[record["external_id"]], record))
    queries.update_by_id(connection, table=tables.opportunities, rows=updates)
    queries.insert_changes(connection, rows=changes)


def _link_leads(connection: Connection, context: LoadContext, prepared: list[dict[str, Any]]) -> None:
    wanted = [str(p["_lead"]) for p in prepared if p.get("_lead")]
    if not wanted:
        return
    found = queries.existing_by_key(connection, table=tables.leads, source=context.source, external_ids=wanted,
                                    columns=())
    for values in prepared:
        if values.get("_lead"):
            lead = found.get(str(values["_lead"]))
            values["lead_id"] = lead["id"] if lead else None
