"""OpportunityFieldHistory: owner and next-step changes (the fields OpportunityHistory does not track).

Salesforce writes an owner change twice, once with user ids (DataType EntityId) and once with names;
the id rows are the ones kept. Rows already in the change log are not written again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.db import ingest as queries
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField, ChangeSource
from closewise.domain.timeutil import as_utc
from closewise.ingest.canonical import clean_id
from closewise.ingest.context import LoadContext
from closewise.ingest.history import missing_changes
from closewise.ingest.readers import BadRow, SourceRow, open_table
from closewise.ingest.refs import UserRef
from closewise.ingest.report import EntityCounts, ErrorSink, RowError
from closewise.ingest.salesforce.presets import parse_when

FIELDS = {"owner": ChangeField.OWNER, "ownerid": ChangeField.OWNER, "nextstep": ChangeField.NEXT_STEP}


def load_field_history(engine: Engine, context: LoadContext, path: Path, *, counts: EntityCounts,
                       sink: ErrorSink) -> int:
    raw: list[dict[str, Any]] = []
    with open_table(path) as table:
        for row in table:
            if isinstance(row, BadRow):
                counts.read += 1
                sink.add(RowError(path.name, row.line, "", row.raw[:200], row.reason))
                continue
            counts.read += 1
            parsed = _parse(path, row, sink)
            if parsed is None:
                counts.unchanged += 1  # a field Closewise does not track, or the name half of an owner change
            elif parsed:
                raw.append(parsed)
    if not raw:
        return 0
    with engine.begin() as connection:
        keys = {row["external_id"]: int(row["id"]) for row in queries.opportunity_keys(
            connection, source=context.source, columns=())}
        rows: list[dict[str, Any]] = []
        for item in raw:
            opportunity_id = keys.get(item["opportunity"])
            if opportunity_id is None:
                sink.add(RowError(path.name, item["line"], "OpportunityId", item["opportunity"], "no such opportunity"))
                continue
            field: ChangeField = item["field"]
            old, new = item["old"], item["new"]
            if field is ChangeField.OWNER:
                old = context.users.resolve(connection, UserRef(external_id=old), now=context.now) if old else None
                new = context.users.resolve(connection, UserRef(external_id=new), now=context.now) if new else None
            rows.append({"opportunity_id": opportunity_id, "field": field.value,
                         "changed_at": as_utc(item["at"]).replace(tzinfo=None),
                         "old_value": encode(field, old), "new_value": encode(field, new), "line": item["line"]})
        if not rows:
            return 0
        derived = pl.DataFrame(rows)
        stored = queries.changes_for(connection, opportunity_ids=derived.get_column("opportunity_id").unique())
        new_rows = missing_changes(derived.drop("line"), stored)
        counts.unchanged += derived.height - new_rows.height
        counts.inserted += new_rows.height
        queries.insert_changes(connection, rows=[
            {**row, "changed_at": as_utc(row["changed_at"]), "changed_by": None,
             "source": ChangeSource.HISTORY.value, "import_run_id": context.run_id}
            for row in new_rows.iter_rows(named=True)
        ])
        return new_rows.height


def _parse(path: Path, row: SourceRow, sink: ErrorSink) -> dict[str, Any] | None:
    values = row.values
    field = FIELDS.get(values.get("Field", "").strip().lower())
    if field is None:
        return None
    if field is ChangeField.OWNER:
        kind = values.get("DataType", "").strip()
        old, new = clean_id(values.get("OldValue", "")), clean_id(values.get("NewValue", ""))
        if (kind and kind != "EntityId") or any(v and not v.startswith("005") for v in (old, new)):
            return None
    else:
        old, new = values.get("OldValue", "").strip() or None, values.get("NewValue", "").strip() or None
    try:
        at = parse_when(values.get("CreatedDate", ""))
    except ValueError as exc:
        sink.add(RowError(path.name, row.line, "CreatedDate", values.get("CreatedDate", ""), str(exc)))
        return {}
    if at is None:
        sink.add(RowError(path.name, row.line, "CreatedDate", "", "the change has no date"))
        return {}
    return {"opportunity": clean_id(values.get("OpportunityId", "")) or "", "field": field, "old": old, "new": new,
            "at": at, "line": row.line}
