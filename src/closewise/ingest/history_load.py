"""Writing a source's history into the change log (see ingest/history.py for the derivation).

The opportunity rows are loaded first. Their current values are appended as the newest snapshot (at the
time of the newest history row), so the log always ends at what the opportunity holds now. A closed deal's
row cannot know the last open stage it reached; the history can, and sets it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.enums import ChangeSource, OpportunityStatus
from closewise.ingest.history import derive_changes, missing_changes
from closewise.ingest.opportunities import LoadContext
from closewise.ingest.report import EntityCounts, ErrorSink, RowError

CHUNK = 20_000


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def load_history(
    engine: Engine,
    context: LoadContext,
    snapshots: pl.DataFrame,
    *,
    fields: list[str],
    counts: EntityCounts,
    sink: ErrorSink,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Load snapshots (`opportunity` external id, `changed_at`, `_file`, `_line`, raw `stage` and `fields`).

    Counts are of history rows: `inserted` those that added change rows, `unchanged` those that added
    nothing new (already loaded, or no field changed), `rejected` those that could not be attached.
    Returns the number of change rows written.
    """
    counts.read += snapshots.height
    rejected_before = counts.rejected
    if snapshots.height == 0:
        return 0
    with engine.begin() as connection:
        current = queries.opportunity_keys(connection, source=context.source, columns=[*fields, "status", "stage"])
        if "stage" in fields:
            snapshots = _resolve_stages(connection, context, snapshots, sink)
    if not current:
        for row in snapshots.select("_file", "_line", "opportunity").iter_rows():
            sink.add(RowError(row[0], row[1], "OpportunityId", str(row[2]), "no such opportunity"))
        return 0
    keys = pl.DataFrame(
        {"opportunity": [row["external_id"] for row in current], "opportunity_id": [int(row["id"]) for row in current]},
        schema={"opportunity": pl.String, "opportunity_id": pl.Int64},
    )
    matched = snapshots.join(keys, on="opportunity", how="left")
    for row in matched.filter(pl.col("opportunity_id").is_null()).select("_file", "_line", "opportunity").iter_rows():
        sink.add(RowError(row[0], row[1], "OpportunityId", str(row[2]), f"no opportunity {row[2]!r} to attach to"))
    matched = matched.filter(pl.col("opportunity_id").is_not_null()).drop("opportunity", "_file", "_line")
    by_id = {int(row["id"]): row for row in current}
    ids = matched.get_column("opportunity_id").unique().sort().to_list()
    written = contributing = 0
    for start in range(0, len(ids), CHUNK):
        chunk_ids = ids[start : start + CHUNK]
        chunk = matched.filter(pl.col("opportunity_id").is_in(chunk_ids))
        with engine.begin() as connection:
            new = _load_chunk(connection, context, chunk, fields, by_id)
        written += new.height
        # A history row added something when a new change row carries its opportunity and time.
        contributing += chunk.join(new.select("opportunity_id", "changed_at").unique(),
                                   on=["opportunity_id", "changed_at"], how="semi").height
        if progress is not None:
            progress(min(start + CHUNK, len(ids)), len(ids))
    counts.inserted += contributing
    counts.unchanged += snapshots.height - (counts.rejected - rejected_before) - contributing
    return written


def _resolve_stages(connection: Connection, context: LoadContext, snapshots: pl.DataFrame,
                    sink: ErrorSink) -> pl.DataFrame:
    """Raw stage values -> (stage key, status); rows with an unknown stage are rejected."""
    mapping: dict[str, tuple[str | None, str]] = {}
    bad: set[str] = set()
    for raw in snapshots.get_column("stage").drop_nulls().unique().to_list():
        try:
            target = context.stages.resolve(connection, raw)
        except ValueError as exc:
            bad.add(raw)
            for row in snapshots.filter(pl.col("stage") == raw).select("_file", "_line").iter_rows():
                sink.add(RowError(row[0], row[1], "StageName", raw, str(exc)))
            continue
        status = (target.status or OpportunityStatus.OPEN).value
        mapping[raw] = (target.stage, status)
    frame = snapshots.filter(~pl.col("stage").is_in(list(bad)) | pl.col("stage").is_null())
    stage_of = {raw: value[0] for raw, value in mapping.items()}
    status_of = {raw: value[1] for raw, value in mapping.items()}
    return frame.with_columns(
        pl.col("stage").replace_strict(status_of, default=None, return_dtype=pl.String).alias("status"),
        pl.col("stage").replace_strict(stage_of, default=None, return_dtype=pl.String).alias("stage"),
    )


def _load_chunk(
    connection: Connection, context: LoadContext, chunk: pl.DataFrame, fields: list[str], by_id: dict[int, Any]
) -> pl.DataFrame:
    covered = [*fields, "status"] if "stage" in fields and "status" not in fields else list(fields)
    chunk = chunk.sort(["opportunity_id", "changed_at"]).with_columns(
        pl.col("stage").forward_fill().backward_fill().over("opportunity_id") if "stage" in covered else pl.lit(None),
        pl.col("amount").round(2) if "amount" in covered else pl.lit(None),
    ).select("opportunity_id", "changed_at", *covered)
    last = chunk.group_by("opportunity_id", maintain_order=True).agg(
        pl.col("changed_at").max().alias("changed_at"),
        *([pl.col("stage").last().alias("last_stage")] if "stage" in covered else []),
    )
    stage_fixes: list[dict[str, Any]] = []
    current_rows: list[dict[str, Any]] = []
    for row in last.iter_rows(named=True):
        stored = by_id[row["opportunity_id"]]
        state = {name: stored[name] for name in covered}
        if "stage" in covered and stored["status"] != OpportunityStatus.OPEN.value and row["last_stage"]:
            if stored["stage"] != row["last_stage"]:
                stage_fixes.append({"id": row["opportunity_id"], "stage": row["last_stage"]})
            state["stage"] = row["last_stage"]
        current_rows.append({"opportunity_id": row["opportunity_id"], "changed_at": row["changed_at"], **state})
    current = pl.DataFrame(current_rows, schema=chunk.schema)
    derived = derive_changes(pl.concat([chunk, current]), covered)
    stored = queries.changes_for(connection, opportunity_ids=chunk.get_column("opportunity_id").unique().to_list())
    new = missing_changes(derived, stored)
    queries.update_by_id(connection, table=tables.opportunities, rows=stage_fixes)
    rows = [
        {**row, "changed_at": row["changed_at"].replace(tzinfo=UTC), "changed_by": None,
         "source": ChangeSource.HISTORY.value, "import_run_id": context.run_id}
        for row in new.iter_rows(named=True)
    ]
    queries.insert_changes(connection, rows=rows)
    return new
