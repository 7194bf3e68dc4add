"""`closewise import csv PATH --mapping FILE`: any CSV or XLSX, mapped onto one canonical entity.

Rows are read as a stream; each is converted field by field (a cell that cannot be converted rejects the
row, naming the column and why) and loaded in batches. Date formats are taken from the mapping or
inferred from the first rows, and the inference is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.domain.enums import ChangeField
from closewise.errors import InvalidInput
from closewise.ingest.canonical import converter
from closewise.ingest.context import LoadContext
from closewise.ingest.fields import ENTITIES, Kind
from closewise.ingest.history_load import load_history
from closewise.ingest.mapping import Mapping
from closewise.ingest.opportunities import load_opportunity_batch
from closewise.ingest.readers import BadRow, SourceRow, TableReader, TableRow, open_table
from closewise.ingest.report import EntityCounts, ErrorSink, ImportReport, RowError
from closewise.ingest.session import BATCH, ImportSession, batched
from closewise.ingest.values import DateFormat, infer_date_format

Progress = Callable[[str, int, int], None]
INFERENCE_SAMPLE = 2_000


@dataclass
class FieldPlan:
    name: str
    column: str | None
    constant: Any
    convert: Callable[[str], Any]
    date_format: DateFormat | None = None  # what `convert` reads dates with (date and datetime fields)


def plan_fields(mapping: Mapping, columns: list[str], sample: list[SourceRow]) -> tuple[list[FieldPlan], list[str]]:
    """How each mapped field is read, with the date formats fixed (given or inferred) and reported."""
    actual = {name.strip().lower(): name for name in columns}
    kinds = ENTITIES[mapping.entity]
    notes: list[str] = []
    formats: dict[Kind, DateFormat | None] = {}
    for kind, key in ((Kind.DATE, "date"), (Kind.DATETIME, "datetime")):
        wanted = [mapping.columns[f] for f, k in kinds.items() if k is kind and f in mapping.columns]
        if not wanted:
            continue
        given = mapping.formats.get(key) or (mapping.formats.get("date") if kind is Kind.DATETIME else None)
        if given:
            try:
                formats[kind] = DateFormat.from_spec(given)
            except ValueError as exc:
                raise InvalidInput(f"formats.{key}: {exc}", where=str(mapping.path)) from None
            continue
        values = [row.values.get(actual[c.strip().lower()], "") for row in sample for c in wanted]
        inferred = infer_date_format(v for v in values if v.strip())
        formats[kind] = inferred
        notes.append(f"{key} columns ({', '.join(wanted)}): {inferred.description}")
    plans = []
    for name, kind in kinds.items():
        convert = converter(kind, date_format=formats.get(Kind.DATE), datetime_format=formats.get(Kind.DATETIME))
        if name in mapping.columns:
            plans.append(FieldPlan(name, actual[mapping.columns[name].strip().lower()], None, convert,
                                   formats.get(kind) if kind in (Kind.DATE, Kind.DATETIME) else None))
        elif name in mapping.constants:
            constant = mapping.constants[name]
            try:
                value = convert(str(constant)) if constant is not None else None
            except ValueError as exc:
                raise InvalidInput(f"constants.{name}: {exc}", where=str(mapping.path)) from None
            plans.append(FieldPlan(name, None, value, convert))
    return plans, notes


def convert_row(row: SourceRow, plans: list[FieldPlan], custom: tuple[str, ...],
                file: str) -> dict[str, Any] | RowError:
    record: dict[str, Any] = {"_file": file, "_line": row.line}
    for plan in plans:
        if plan.column is None:
            record[plan.name] = plan.constant
            continue
        text = row.values.get(plan.column, "")
        try:
            record[plan.name] = plan.convert(text)
        except ValueError as exc:
            return RowError(file, row.line, plan.column, text, str(exc))
    if custom:
        record["custom"] = {column: row.values.get(column, "") for column in custom}
    return record


def records(reader: Iterator[TableRow], sink: ErrorSink, counts: EntityCounts, plans: list[FieldPlan],
            custom: tuple[str, ...], file: str,
            post: Callable[[dict[str, Any], SourceRow], dict[str, Any] | RowError | None] | None = None,
            ) -> Iterator[dict[str, Any]]:
    """Canonical rows from a table; rows that cannot be read or converted go to the sink.

    A row `post` returns None for (a row the source marks deleted) is skipped.
    """
    for row in reader:
        if isinstance(row, BadRow):
            counts.read += 1
            sink.add(RowError(file, row.line, "", row.raw[:200], row.reason))
            continue
        converted = convert_row(row, plans, custom, file)
        if post is not None and not isinstance(converted, RowError):
            posted = post(converted, row)
            if posted is None:
                continue
            converted = posted
        if isinstance(converted, RowError):
            counts.read += 1
            sink.add(converted)
            continue
        yield converted


@dataclass
class PlannedTable:
    """An open table with its fields planned: the reader, how each field is read, and every row (the rows
    sampled to plan the fields first)."""

    table: TableReader
    plans: list[FieldPlan]
    rows: Iterator[TableRow]


@contextmanager
def planned_table(path: Path, mapping: Mapping, *, notes: list[str]) -> Iterator[PlannedTable]:
    """Open a table and plan its fields under `mapping` from its first rows (date formats inferred and, like
    an encoding other than UTF-8, noted)."""
    with open_table(path) as table:
        mapping.check_columns(table.columns, file=path.name)
        stream = iter(table)
        sample_rows = list(islice(stream, INFERENCE_SAMPLE))
        sample = [row for row in sample_rows if isinstance(row, SourceRow)]
        plans, inferred = plan_fields(mapping, table.columns, sample)
        notes.extend(f"{path.name}: {note}" for note in inferred)
        if table.encoding and table.encoding not in ("utf-8", "utf-8-sig"):
            notes.append(f"{path.name}: read as {table.encoding}")
        yield PlannedTable(table, plans, chain(sample_rows, stream))


@contextmanager
def mapped_rows(
    path: Path, mapping: Mapping, *, counts: EntityCounts, sink: ErrorSink, notes: list[str],
    post: Callable[[dict[str, Any], SourceRow], dict[str, Any] | RowError | None] | None = None,
) -> Iterator[Iterator[dict[str, Any]]]:
    """Open a table and stream its canonical rows under `mapping` (see `planned_table`)."""
    with planned_table(path, mapping, notes=notes) as planned:
        yield records(planned.rows, sink, counts, planned.plans, mapping.custom, path.name, post)


def count_lines(path: Path) -> int:
    if path.suffix.lower() == ".xlsx":
        return 0
    total = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            total += block.count(b"\n")
    return max(total - 1, 0)


def import_mapped(engine: Engine, path: Path, mapping: Mapping, *, errors_dir: Path,
                  progress: Progress | None = None) -> ImportReport:
    session = ImportSession(engine, kind=f"csv:{mapping.entity}", path=path.resolve(), source=mapping.source,
                            errors_dir=errors_dir)
    try:
        _run(session, path, mapping, progress)
    except BaseException:
        session.finish("failed")
        raise
    return session.finish()


def _run(session: ImportSession, path: Path, mapping: Mapping, progress: Progress | None) -> None:
    entity = mapping.entity
    counts, sink = session.entity(entity)
    total = count_lines(path)
    with planned_table(path, mapping, notes=session.report.notes) as planned:
        if planned.table.encoding:
            session.report.notes.append(f"{path.name}: {planned.table.encoding}, delimiter "
                                        f"{planned.table.delimiter!r}")
        rows = records(planned.rows, sink, counts, planned.plans, mapping.custom, path.name)
        if entity == "opportunity_changes":
            _load_changes(session, rows, mapping, counts, sink)
            return
        context = session.load_context(stage_mapping=mapping.stages, create_stages=mapping.stages is None)
        loader = _loader(entity)
        for batch in batched(rows, BATCH):
            with session.engine.begin() as connection:
                loader(connection, context, batch, counts, sink, notes=session.report.notes)
            if progress is not None:
                progress(f"{entity}", counts.read, max(total, counts.read))
        if context.stages.created:
            session.report.notes.append(f"stages added to the playbook: {', '.join(context.stages.created)}")


def _loader(entity: str) -> Callable[..., None]:
    from closewise.ingest.entities import LOADERS

    return load_opportunity_batch if entity == "opportunities" else LOADERS[entity]


def _load_changes(session: ImportSession, rows: Iterator[dict[str, Any]], mapping: Mapping, counts: EntityCounts,
                  sink: ErrorSink) -> None:
    """Snapshots of an opportunity's state at `changed_at` (fields not given are carried forward)."""
    fields: list[str] = [f for f in ("stage", "amount", "close_date", "probability", "forecast_category")
                         if f in mapping.columns or f in mapping.constants]
    types: dict[str, pl.DataType] = {
        "stage": pl.String(), "amount": pl.Float64(), "close_date": pl.Date(), "probability": pl.Float64(),
        "forecast_category": pl.String(),
    }
    schema: dict[str, pl.DataType] = {"_file": pl.String(), "_line": pl.Int64(), "opportunity": pl.String(),
              "changed_at": pl.Datetime("us", "UTC"), **{f: types[f] for f in fields}}
    frame = pl.DataFrame(list(rows), schema=schema).with_columns(pl.col("changed_at").dt.replace_time_zone(None))
    context: LoadContext = session.load_context(
        stage_mapping=mapping.stages, create_stages=mapping.stages is None,
        history_fields=frozenset(ChangeField(f) for f in fields),
    )
    # A row that leaves a field empty carries its last known value (or, before any, its first known one).
    frame = frame.sort("opportunity", "changed_at").with_columns(
        *(pl.col(f).forward_fill().backward_fill().over("opportunity") for f in fields)
    )
    load_history(session.engine, context, frame, fields=fields, counts=counts, sink=sink)
