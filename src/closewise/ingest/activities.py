"""Loading activities (calls, emails, meetings, tasks), upserted by (source, external id).

The type is read from what CRMs write (`Call`, `Email`, `Meeting`, Salesforce's `Event` is a meeting);
anything else is a task. An activity names its opportunity, lead and contact by their external ids in the
same source. An opportunity that is named but not stored rejects the activity (it would be counted against
the wrong deal otherwise); a lead or contact that is not stored leaves that link empty, with a note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import tables
from closewise.domain.enums import ActivityType
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import (
    BadValue,
    Prepared,
    Row,
    account_id,
    boolean,
    external_id,
    fit,
    ids_by_external,
    moment,
    prepare_rows,
    reference_text,
    summarise,
    text,
    upsert_keyed,
    user_id,
)
from closewise.ingest.report import EntityCounts, ErrorSink

ACTIVITY_COLUMNS = ("type", "subject", "owner_id", "opportunity_id", "account_id", "lead_id", "contact_id",
                    "occurred_at", "completed")
_WORDS = re.compile(r"[a-z]+")


def activity_type(value: Any) -> ActivityType:
    """`Call`, `Logged call` → call; `Email`, `E-mail` → email; `Meeting`, `Event` → meeting; else task."""
    words = set(_WORDS.findall(str(value or "").lower().replace("e-mail", "email")))
    if words & {"call", "phone"}:
        return ActivityType.CALL
    if words & {"email", "mail"}:
        return ActivityType.EMAIL
    if words & {"meeting", "event"}:
        return ActivityType.MEETING
    return ActivityType.TASK


def _prepare_activity(
    connection: Connection, context: LoadContext, row: Row, links: dict[str, dict[str, int]], problems: list[str]
) -> Prepared:
    key = external_id(row, noun="activity")
    values: dict[str, Any] = {}
    occurred = moment(row, "occurred_at")
    if occurred is None:
        raise BadValue("occurred_at", "", "the activity has no date (occurred_at)")
    values["occurred_at"] = occurred
    if "type" in row:
        values["type"] = activity_type(row["type"]).value
    if "subject" in row:
        values["subject"] = text(row, "subject")
    if (completed := boolean(row, "completed")) is not None:
        values["completed"] = completed
    fit(tables.activities, values)
    if "opportunity" in row:
        wanted = reference_text(row["opportunity"])
        found = links["opportunity"].get(wanted) if wanted else None
        if wanted and found is None:
            raise BadValue("opportunity", wanted, f"no opportunity {wanted!r}")
        values["opportunity_id"] = found
    for name in ("lead", "contact"):
        if name in row:
            wanted = reference_text(row[name])
            found = links[name].get(wanted) if wanted else None
            if wanted and found is None:
                problems.append(f"line {row.get('_line', 0)}: no {name} {wanted!r}")
            values[f"{name}_id"] = found
    if "owner" in row:
        values["owner_id"] = user_id(connection, context, row["owner"])
    if "account" in row:
        values["account_id"] = account_id(connection, context, row["account"])
    return Prepared(key, row, values)


def load_activity_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical activity rows inside the caller's transaction.

    Fields: external_id (required), type, subject, owner (UserRef), opportunity (external id), account
    (AccountRef), lead (external id), contact (external id), occurred_at (required), completed.
    """
    counts.read += len(rows)
    source = context.source
    links = {
        "opportunity": ids_by_external(connection, table=tables.opportunities, source=source, rows=rows,
                                       name="opportunity"),
        "lead": ids_by_external(connection, table=tables.leads, source=source, rows=rows, name="lead"),
        "contact": ids_by_external(connection, table=tables.contacts, source=source, rows=rows, name="contact"),
    }
    problems: list[str] = []
    items = prepare_rows(
        context, "activities", rows, sink, lambda row: _prepare_activity(connection, context, row, links, problems)
    )

    def new_record(item: Prepared) -> dict[str, Any]:
        return {"type": ActivityType.TASK.value, "completed": True, **item.values, "source": source,
                "external_id": item.key}

    upsert_keyed(connection, table=tables.activities, source=source, items=items, compared=ACTIVITY_COLUMNS,
                 counts=counts, new_record=new_record)
    summarise(notes, problems, "activities name a lead or contact that is not stored (link left empty)")
