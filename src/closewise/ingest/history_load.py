"""Writing a source's history into the change log (see ingest/history.py for the derivation).

The opportunity rows are loaded first. Their current values are appended as the newest snapshot (at the
time of the newest history row), so the log always ends at what the opportunity holds now. A closed deal's
row cannot know the last open stage it reached; the history can, and sets it.

Snapshots may be a lazy frame (a scan of the Parquet files an importer spooled them to): they are read
one bucket of opportunities at a time (`_bucket`, a hash of the opportunity's external id), so the rows of
one opportunity are always processed together and memory holds one bucket, not millions of rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.db import bulk_load, bulk_write, tables
from closewise.db import ingest as queries
from closewise.domain.enums import ChangeSource, OpportunityStatus
from closewise.ingest.context import LoadContext
from closewise.ingest.fast_convert import round_cents_column
from closewise.ingest.history import derive_changes, missing_changes
from closewise.ingest.report import EntityCounts, ErrorSink, RowError

# Opportunities per bucket (and transaction), about.
CHUNK = 20_000
# Buckets written at once on PostgreSQL (each over its own connection, in its own transaction).
WRITERS = 2
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
    fixes: list[pl.DataFrame] = []
    with engine.begin() as connection:
        # No change row of this source's opportunities yet (a first import): nothing to compare with, and
        # each opportunity's changes are written by its bucket alone, so no bucket needs to look any up.
        first = not queries.has_changes(connection, source=context.source)
    # Otherwise changes are looked up by opportunity while loading: that index stays.
    keep = [] if first else ["ix_opportunity_changes_opportunity_id"]
    # PostgreSQL spends a backend's CPU on each COPY: two buckets are written at once, over two connections.
    writers = WRITERS if engine.dialect.name == "postgresql" else 1
    with bulk_load.upkeep_deferred(engine, table=tables.opportunity_changes, rows=total, keep=keep), \
            ThreadPoolExecutor(max_workers=1) as deriving, ThreadPoolExecutor(max_workers=writers) as writing:

        def derive(bucket: int) -> _Bucket:
            snapshots = lazy.filter(pl.col("_bucket") == bucket)
            # The bucket's keys first: joining with all of them hashes a million keys per bucket (0.37 s against
            # 0.13 s for 100,000 snapshots; see `_derive` too).
            wanted = keys.lazy().join(snapshots.select("opportunity").unique(), on="opportunity", how="semi")
            chunk = (snapshots.join(wanted, on="opportunity", how="inner", maintain_order="left")
                     .drop("opportunity", "_file", "_line", "_bucket").collect())
            return _derive(chunk, fields, stored)

        def write(derived: _Bucket) -> tuple[int, int, pl.DataFrame]:
            """Change rows written, history rows that added some, stages to fix."""
            if not derived.snapshots.height:
                return 0, 0, derived.fixes
            with engine.begin() as connection:
                bulk_load.tune_for_import(connection)
                new = _write(connection, context, derived, compare=not first)
            # A history row added something when a new change row carries its opportunity and time.
            added = derived.snapshots.join(new.select("opportunity_id", "changed_at").unique(),
                                           on=["opportunity_id", "changed_at"], how="semi").height
            return new.height, added, derived.fixes

        # A bucket's change rows are derived (Polars, mostly without the GIL) while earlier ones are written.
        pending = deriving.submit(derive, 0)
        in_flight: deque[Future[tuple[int, int, pl.DataFrame]]] = deque()
        done = 0
        for bucket in range(buckets):
            derived = pending.result()
            if bucket + 1 < buckets:
                pending = deriving.submit(derive, bucket + 1)
            in_flight.append(writing.submit(write, derived))
            while in_flight and (len(in_flight) > writers or bucket + 1 == buckets):
                new_rows, added, fixed = in_flight.popleft().result()
                written, contributing, done = written + new_rows, contributing + added, done + 1
                fixes.append(fixed)
                if progress is not None:
                    progress(done, buckets)
    _fix_stages(engine, fixes)
    if progress is not None:
        progress(buckets, buckets)  # the stage fixes and the indexes built again belong to this step
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


@dataclass(frozen=True)
class _Bucket:
    """One bucket's snapshots (`opportunity_id`, `changed_at`, fields), the change rows they derive, the
    stages to fix (`id`, `stage`: see `_fix_stages`) and the opportunities they concern."""

    snapshots: pl.DataFrame
    changes: pl.DataFrame
    fixes: pl.DataFrame
    opportunity_ids: list[int]


def _derive(chunk: pl.DataFrame, fields: list[str], stored: pl.DataFrame) -> _Bucket:
    """The change rows of one bucket's snapshots (no side effects); `stored` holds every opportunity's row."""
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
    # The bucket's opportunities picked out of all first (a semi join hashes the bucket's 20,000 ids; a left
    # join the million stored ones: 0.13 s a bucket, against 0.02 s).
    mine = stored.join(last.select("opportunity_id"), on="opportunity_id", how="semi")
    state = last.join(mine.select("opportunity_id", *dict.fromkeys([*covered, "status", "stage"])),
                      on="opportunity_id", how="left", maintain_order="left")
    fixes = pl.DataFrame(schema={"id": pl.Int64, "stage": pl.String})
    if "stage" in covered:
        closed = (pl.col("status") != OPEN) & pl.col("last_stage").is_not_null()
        fixes = state.filter(closed & (pl.col("stage") != pl.col("last_stage"))).select(
            pl.col("opportunity_id").alias("id"), pl.col("last_stage").alias("stage"))
        state = state.with_columns(pl.when(closed).then(pl.col("last_stage")).otherwise(pl.col("stage"))
                                   .alias("stage"))
    current = state.select("opportunity_id", "changed_at", *covered).cast(chunk.schema)
    derived = derive_changes(pl.concat([chunk, current]), covered)
    return _Bucket(chunk, derived, fixes, last.get_column("opportunity_id").to_list())


def _write(connection: Connection, context: LoadContext, bucket: _Bucket, *, compare: bool) -> pl.DataFrame:
    """Write a bucket's change rows not already stored (without `compare`, its opportunities are known to have
    none stored); returns them."""
    stored = queries.changes_for(connection, opportunity_ids=bucket.opportunity_ids) if compare else []
    new = missing_changes(bucket.changes, stored)
    bulk_write.insert_frame(connection, table=tables.opportunity_changes, frame=new.with_columns(
        changed_by=pl.lit(None, pl.Int64), source=pl.lit(ChangeSource.HISTORY.value),
        import_run_id=pl.lit(context.run_id, pl.Int64),
    ))
    return new


def _fix_stages(engine: Engine, fixes: list[pl.DataFrame]) -> None:
    """Give closed deals the last open stage their history reached, all in one statement once every bucket is
    loaded (a run killed before this point recomputes them: they follow from the history and the stored rows,
    not from the change log).

    On PostgreSQL updating a row writes a new version of it and an entry in every index: 700,000 of a million
    opportunities took 144 s with the table's eleven indexes (load 10), 15 s without its nine plain ones, which
    are therefore dropped meanwhile when the update touches at least half of the table, and built again.
    """
    frame = pl.concat(fixes) if fixes else pl.DataFrame()
    if frame.is_empty():
        return
    with bulk_load.indexes_deferred_for_update(engine, table=tables.opportunities, rows=frame.height), \
            engine.begin() as connection:
        bulk_load.tune_for_import(connection)
        bulk_write.update_frame(connection, table=tables.opportunities, frame=frame)
