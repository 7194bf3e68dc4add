"""Writing a source's history into the change log (see ingest/history.py for the derivation).

The opportunity rows are loaded first. Their current values are appended as the newest snapshot (at the
time of the newest history row), so the log always ends at what the opportunity holds now. A closed deal's
row cannot know the last open stage it reached; the history can, and sets it.

Snapshots may be a lazy frame (a scan of the Parquet files an importer spooled them to): they are read
one bucket of opportunities at a time (`_bucket`, a hash of the opportunity's external id), so the rows of
one opportunity are always processed together and memory holds one bucket, not millions of rows.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.enums import ChangeSource, OpportunityStatus
from closewise.ingest.context import LoadContext
from closewise.ingest.fast_convert import round_cents_column
from closewise.ingest.history import derive_changes, missing_changes
from closewise.ingest.report import EntityCounts, ErrorSink, RowError

# Opportunities per bucket (and transaction), about.
CHUNK = 20_000
OPEN = OpportunityStatus.OPEN.value


def bucket_of(buckets: int) -> pl.Expr:
    """The `_bucket` column: which of `buckets` groups a snapshot's opportunity falls in (stable in a run)."""
    return (pl.col("opportunity").hash(seed=0) % max(buckets, 1)).cast(pl.Int32).alias("_bucket")


def load_history(
    engine: Engine,
    context: LoadContext,
    snapshots: pl.DataFrame | pl.LazyFrame,
    *,
    fields: list[str],
    counts: EntityCounts,
    sink: ErrorSink,
    progress: Callable[[int, int], None] | None = None,
    buckets: int | None = None,
) -> int:
    """Load snapshots (`opportunity` external id, `changed_at`, `_file`, `_line`, raw `stage` and `fields`).

    `buckets` says how many `_bucket` values the snapshots already carry (see `bucket_of`); without it
    they are bucketed here. Counts are of history rows: `inserted` those that added change rows,
    `unchanged` those that added nothing new (already loaded, or no field changed), `rejected` those that
    could not be attached. Returns the number of change rows written.
    """
    lazy = snapshots.lazy()
    total = int(lazy.select(pl.len()).collect().item())
    counts.read += total
    rejected_before = counts.rejected
    if total == 0:
        return 0
    with engine.begin() as connection:
        current = queries.opportunity_frame(connection, source=context.source,
                                            columns=list(dict.fromkeys([*fields, "status", "stage"])))
        if "stage" in fields:
            lazy = _resolve_stages(connection, context, lazy, sink)
    if current.is_empty():
        for row in lazy.select("_file", "_line", "opportunity").collect().iter_rows():
            sink.add(RowError(str(row[0]), row[1], "OpportunityId", str(row[2]), "no such opportunity"))
        return 0
    keys = current.select(pl.col("external_id").alias("opportunity"), pl.col("id").alias("opportunity_id"))
    unmatched = lazy.join(keys.lazy(), on="opportunity", how="anti").select("_file", "_line", "opportunity").collect()
    for row in unmatched.iter_rows():
        sink.add(RowError(str(row[0]), row[1], "OpportunityId", str(row[2]), f"no opportunity {row[2]!r} to attach to"))
    del unmatched
    if buckets is None:
        distinct = int(lazy.select(pl.col("opportunity").n_unique()).collect().item())
        buckets = -(-distinct // CHUNK)
        lazy = lazy.with_columns(bucket_of(buckets))
    stored = current.rename({"id": "opportunity_id"})
    written = contributing = 0
    # Changes are looked up by opportunity while loading; the index by time is built at the end.
    with queries.plain_indexes_deferred(engine, table=tables.opportunity_changes, rows=total,
                                        keep=["ix_opportunity_changes_opportunity_id"]):
        for bucket in range(buckets):
            chunk = (lazy.filter(pl.col("_bucket") == bucket)
                     .join(keys.lazy(), on="opportunity", how="inner", maintain_order="left")
                     .drop("opportunity", "_file", "_line", "_bucket").collect())
            if chunk.height:
                with engine.begin() as connection:
                    new = _load_chunk(connection, context, chunk, fields, stored)
                written += new.height
                # A history row added something when a new change row carries its opportunity and time.
                contributing += chunk.join(new.select("opportunity_id", "changed_at").unique(),
                                           on=["opportunity_id", "changed_at"], how="semi").height
            if progress is not None:
                progress(bucket + 1, buckets)
    counts.inserted += contributing
    counts.unchanged += total - (counts.rejected - rejected_before) - contributing
    return written


def _resolve_stages(connection: Connection, context: LoadContext, snapshots: pl.LazyFrame,
                    sink: ErrorSink) -> pl.LazyFrame:
    """Raw stage values -> (stage key, status); rows with an unknown stage are rejected."""
    mapping: dict[str, tuple[str | None, str]] = {}
    bad: list[str] = []
    raws = snapshots.select(pl.col("stage").drop_nulls().unique(maintain_order=True)).collect().to_series()
    for raw in raws.to_list():
        try:
            target = context.stages.resolve(connection, raw)
        except ValueError as exc:
            bad.append(raw)
            for row in snapshots.filter(pl.col("stage") == raw).select("_file", "_line").collect().iter_rows():
                sink.add(RowError(str(row[0]), row[1], "StageName", raw, str(exc)))
            continue
        status = (target.status or OpportunityStatus.OPEN).value
        mapping[raw] = (target.stage, status)
    frame = snapshots.filter(~pl.col("stage").is_in(bad) | pl.col("stage").is_null()) if bad else snapshots
    stage_of = {raw: value[0] for raw, value in mapping.items()}
    status_of = {raw: value[1] for raw, value in mapping.items()}
    return frame.with_columns(
        pl.col("stage").replace_strict(status_of, default=None, return_dtype=pl.String).alias("status"),
        pl.col("stage").replace_strict(stage_of, default=None, return_dtype=pl.String).alias("stage"),
    )


def _load_chunk(
    connection: Connection, context: LoadContext, chunk: pl.DataFrame, fields: list[str], stored: pl.DataFrame
) -> pl.DataFrame:
    """Derive and write the change rows of one bucket's snapshots; `stored` holds every opportunity's row."""
    covered = [*fields, "status"] if "stage" in fields and "status" not in fields else list(fields)
    chunk = chunk.sort(["opportunity_id", "changed_at"], maintain_order=True).with_columns(
        pl.col("stage").forward_fill().backward_fill().over("opportunity_id") if "stage" in covered else pl.lit(None),
    ).select("opportunity_id", "changed_at", *covered)
    if "amount" in covered:
        chunk = chunk.with_columns(round_cents_column(chunk.get_column("amount")))
    last = chunk.group_by("opportunity_id", maintain_order=True).agg(
        pl.col("changed_at").max().alias("changed_at"),
        *([pl.col("stage").last().alias("last_stage")] if "stage" in covered else []),
    )
    state = last.join(stored.select("opportunity_id", *dict.fromkeys([*covered, "status", "stage"])),
                      on="opportunity_id", how="left", maintain_order="left")
    stage_fixes: list[dict[str, object]] = []
    if "stage" in covered:
        closed = (pl.col("status") != OPEN) & pl.col("last_stage").is_not_null()
        fixes = state.filter(closed & (pl.col("stage") != pl.col("last_stage")))
        stage_fixes = [{"id": key, "stage": stage} for key, stage in fixes.select("opportunity_id", "last_stage")
                       .iter_rows()]
        state = state.with_columns(pl.when(closed).then(pl.col("last_stage")).otherwise(pl.col("stage"))
                                   .alias("stage"))
    current = state.select("opportunity_id", "changed_at", *covered).cast(chunk.schema)
    derived = derive_changes(pl.concat([chunk, current]), covered)
    changes = queries.changes_for(connection, opportunity_ids=last.get_column("opportunity_id").to_list())
    new = missing_changes(derived, changes)
    queries.update_by_id(connection, table=tables.opportunities, rows=stage_fixes)
    queries.insert_frame(connection, table=tables.opportunity_changes, frame=new.with_columns(
        changed_by=pl.lit(None, pl.Int64), source=pl.lit(ChangeSource.HISTORY.value),
        import_run_id=pl.lit(context.run_id, pl.Int64),
    ))
    return new
