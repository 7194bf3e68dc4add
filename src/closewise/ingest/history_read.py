"""Reading a history file (state snapshots: an opportunity, a time, the fields' values then) into typed
Parquet files, a batch of rows at a time, so that millions of history rows never sit in memory at once.

The rows are read and converted as any mapped file's rows are (`generic.records`: a row that cannot be read
or converted goes to the errors file; a row the source's hook marks deleted is skipped). A file written the
canonical way (`fast_reader`) is read by Polars instead, its cells converted a column at a time
(`fastpath.convert_source`), which gives the same rows and errors without a Python object per cell: 5,000,000
Salesforce history rows took 42 s of CPU row by row. Whether such a file was canonical is known after its last
row; until then its errors are held back and its Parquet files are only candidates, dropped (and the file read
row by row) if it was not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from closewise.ingest.fast_reader import LINE, CanonicalBatches
from closewise.ingest.fastpath import FastHook, convert_source
from closewise.ingest.generic import FieldPlan, planned_table, records
from closewise.ingest.history_load import bucket_of
from closewise.ingest.mapping import Mapping
from closewise.ingest.readers import TableRow
from closewise.ingest.refs import reads_closed
from closewise.ingest.report import EntityCounts, ErrorSink, RowError
from closewise.ingest.session import batched

# History rows converted and written to one Parquet file at a time.
SPOOL_ROWS = 100_000
# Errors of a canonical-looking file held back at most; past that the file is read row by row (a file that
# bad is rarely canonical, and the errors would take memory).
MAX_HELD_ERRORS = 100_000
Progress = Callable[[int], None]
TYPES: dict[str, pl.DataType] = {
    "stage": pl.String(), "amount": pl.Float64(), "close_date": pl.Date(), "probability": pl.Float64(),
    "forecast_category": pl.String(),
}


def spool_snapshots(
    path: Path, mapping: Mapping, spool: Path, *, fields: list[str], buckets: int, counts: EntityCounts,
    sink: ErrorSink, notes: list[str], hook: FastHook | None = None, progress: Progress | None = None,
) -> int:
    """Write the file's snapshots to `spool/part-*.parquet` (`_line`, `opportunity`, `changed_at` as naive UTC,
    `fields`, `_bucket` of `buckets`, `_file`); returns how many. Rejected rows go to `sink`."""
    with planned_table(path, mapping, notes=notes) as planned:
        table = planned.table
        if table.delimiter and table.encoding in ("utf-8", "utf-8-sig") and not mapping.custom:
            written = _spool_canonical(
                CanonicalBatches(path, table.columns, table.delimiter), spool, planned.plans, mapping, path.name,
                fields=fields, buckets=buckets, counts=counts, sink=sink, hook=hook, progress=progress,
            )
            if written is not None:
                return written
        return _spool_rows(planned.rows, spool, planned.plans, mapping, path.name, fields=fields, buckets=buckets,
                           counts=counts, sink=sink, hook=hook, progress=progress)


def _schema(fields: list[str]) -> dict[str, Any]:
    return {"_line": pl.Int64, "opportunity": pl.String, "changed_at": pl.Datetime("us", "UTC"),
            **{name: TYPES[name] for name in fields}}


def _write(frame: pl.DataFrame, spool: Path, name: str, *, buckets: int, file: str) -> None:
    aware = frame.schema["changed_at"] != pl.Datetime("us")
    frame.with_columns(
        pl.col("changed_at").dt.replace_time_zone(None) if aware else pl.col("changed_at"), bucket_of(buckets),
        pl.lit(file).alias("_file"),  # Parquet stores a repeated value once per page
    ).write_parquet(spool / f"{name}.parquet", statistics=True)


def _spool_rows(
    rows: Iterator[TableRow], spool: Path, plans: list[FieldPlan], mapping: Mapping, file: str, *,
    fields: list[str], buckets: int, counts: EntityCounts, sink: ErrorSink, hook: FastHook | None,
    progress: Progress | None,
) -> int:
    """The row-by-row reading (the definition of what the file holds)."""
    written = 0
    schema = _schema(fields)
    post = hook.post if hook is not None else None
    for number, batch in enumerate(batched(records(rows, sink, counts, plans, mapping.custom, file, post),
                                           SPOOL_ROWS)):
        _write(pl.DataFrame(batch, schema=schema), spool, f"part-{number:05d}", buckets=buckets, file=file)
        written += len(batch)
        if progress is not None:
            progress(written)
    return written


def _spool_canonical(
    batches: CanonicalBatches, spool: Path, plans: list[FieldPlan], mapping: Mapping, file: str, *,
    fields: list[str], buckets: int, counts: EntityCounts, sink: ErrorSink, hook: FastHook | None,
    progress: Progress | None,
) -> int | None:
    """Read a canonical file with Polars; None (and nothing written or reported) when it was not canonical."""
    schema = _schema(fields)
    wanted = list(dict.fromkeys([plan.column for plan in plans if plan.column is not None]
                                + [name for name in (hook.columns if hook else ()) if name in batches.columns]))
    held: list[RowError] = []
    written = 0
    parts: list[Path] = []
    for number, frame in enumerate(batches):
        lines: list[int] = frame.get_column(LINE).to_list()

        def texts(column: str, frame: pl.DataFrame = frame) -> list[str]:
            return frame.get_column(column).to_list()

        converted, errors, keep, _ = convert_source(
            lines, {name: frame.get_column(name) for name in wanted}, texts, plans=plans, entity=mapping.entity,
            file=file, custom=mapping.custom, hook=hook,
        )
        held.extend(errors[index] for index in sorted(errors))
        if len(held) > MAX_HELD_ERRORS:
            break
        good = pl.Series([keep[index] and index not in errors for index in range(len(lines))], dtype=pl.Boolean)
        rows = converted.filter(good)
        # The columns and types the row-by-row reading gives (times naive UTC already).
        snapshot = rows.select(
            (pl.col(name) if name in rows.columns else pl.lit(None)).cast(
                pl.Datetime("us") if name == "changed_at" else dtype).alias(name)
            for name, dtype in schema.items()
        )
        # Candidates until the file is proven canonical: named apart from the row-by-row reading's files.
        _write(snapshot, spool, f"canonical-{number:05d}", buckets=buckets, file=file)
        parts.append(spool / f"canonical-{number:05d}.parquet")
        written += snapshot.height
        if progress is not None:
            progress(written)
    if batches.canonical is not True:
        for part in parts:
            part.unlink()
        return None
    for error in held:
        counts.read += 1
        sink.add(error)
    return written


def stage_hints(snapshots: pl.LazyFrame) -> pl.DataFrame:
    """For each opportunity of the snapshots (`external_id`), the stage value of its latest snapshot whose stage
    does not read as closed (`_stage_hint`): the last open stage it reached, as far as can be told before the
    stages are resolved (see `LoadContext.stage_hints`)."""
    values = snapshots.select(pl.col("stage").drop_nulls().unique()).collect().to_series().to_list()
    closed = [value for value in values if reads_closed(value)]
    return (snapshots.filter(pl.col("stage").is_not_null() & ~pl.col("stage").is_in(closed))
            .group_by("opportunity")
            .agg(pl.col("stage").sort_by("changed_at", maintain_order=True).last())
            .select(pl.col("opportunity").alias("external_id"), pl.col("stage").alias("_stage_hint"))
            .collect())
