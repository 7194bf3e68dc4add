"""The fast path for opportunity files: whole batches converted and inserted as columns, not row by row.

A file of a million new opportunities spends most of its time in per-row Python (one dict per row, one
converter call per cell, one reference look-up per row). Here rows are read by the same reader as always
(so line numbers and unreadable rows are exactly as before), converted column by column
(`fast_convert.py`), checked and resolved on distinct values, and inserted with one statement per batch
(`fast_load.py`).

Whenever a batch holds anything the fast path does not reproduce exactly - an opportunity already stored
(a re-import), an id seen twice, a hook that would fail - that batch goes through the per-row path
(`generic.records` + `opportunities.load_opportunity_batch`) instead, which defines the behaviour. Batches
are `BATCH` rows that pass conversion, one transaction each, whichever path loads them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from operator import getitem, itemgetter
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.db import bulk_load, tables
from closewise.ingest.context import LoadContext
from closewise.ingest.fast_convert import Converted, convert_column
from closewise.ingest.fast_load import load_new_opportunities
from closewise.ingest.fast_reader import LINE, read_canonical_csv
from closewise.ingest.fields import ENTITIES
from closewise.ingest.generic import FieldPlan, planned_table, records
from closewise.ingest.mapping import Mapping
from closewise.ingest.opportunities import load_opportunity_batch
from closewise.ingest.readers import BadRow, SourceRow, TableRow
from closewise.ingest.report import EntityCounts, ErrorSink, RowError
from closewise.ingest.session import batched

# Rows loaded in one transaction. Larger than the per-row path's `session.BATCH`: on SQLite every commit
# rewrites the index pages the batch touched into the WAL, so 5,000-row commits cost a third of the step.
BATCH = 50_000
# Rows converted at once (the transaction of the previous chunk is written meanwhile).
CHUNK = BATCH
Post = Callable[[dict[str, Any], SourceRow], dict[str, Any] | RowError | None]
Progress = Callable[[int], None]


@dataclass
class HookResult:
    """What a source's row hook adds to converted rows, for a whole frame of them.

    `keep` is False for rows the source marks deleted (skipped silently); `errors` maps a row index to
    (column, value, reason); `unsure` sends the batch to the per-row path (which will behave as it does).
    """

    keep: pl.Series
    status: pl.Series | None = None
    stage_order: pl.Series | None = None
    stage_probability: pl.Series | None = None
    errors: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    unsure: bool = False


# (raw source columns, converted columns) -> HookResult
FrameHook = Callable[[pl.DataFrame, pl.DataFrame], HookResult]


# Converted rows, the first error of each rejected row (by index), which rows to keep, the hook's say.
_Conversion = tuple[pl.DataFrame, dict[int, RowError], list[bool], HookResult | None]


@dataclass(frozen=True)
class FastHook:
    """A row hook (`post`) with its whole-frame equivalent and the source columns the latter reads."""

    post: Post
    frame: FrameHook
    columns: tuple[str, ...]


def load_opportunity_file(
    engine: Engine, context: LoadContext, path: Path, mapping: Mapping, *, counts: EntityCounts, sink: ErrorSink,
    notes: list[str], hook: FastHook | None = None, progress: Progress | None = None,
) -> None:
    """Import an opportunity file under `mapping`, batch by batch (see the module docstring)."""
    with planned_table(path, mapping, notes=notes) as planned:
        table = planned.table
        batch = _Batch(engine, context, planned.plans, mapping, path.name, counts, sink, notes, hook,
                       set(table.columns))
        read_before = counts.read
        whole = read_canonical_csv(path, table.columns, table.delimiter) if table.delimiter and batch.fast \
            and table.encoding in ("utf-8", "utf-8-sig") else None
        if whole is not None:
            # Converting a chunk (Polars, mostly without the GIL) overlaps with writing the previous one.
            with bulk_load.upkeep_deferred(engine, table=tables.opportunities, rows=whole.height), \
                    ThreadPoolExecutor(max_workers=1) as pool:
                chunks = [whole.slice(start, CHUNK) for start in range(0, whole.height, CHUNK)]
                pending = pool.submit(batch.convert_frame, chunks[0]) if chunks else None
                for number, frame in enumerate(chunks):
                    assert pending is not None
                    converted = pending.result()
                    pending = pool.submit(batch.convert_frame, chunks[number + 1]) if number + 1 < len(chunks) \
                        else None
                    batch.load_frame(frame, converted)
                    if progress is not None:
                        progress(counts.read - read_before)
            if progress is not None:
                progress(counts.read - read_before)  # the indexes built again belong to this file's time
            return
        for chunk in batched(planned.rows, CHUNK):
            batch.load_chunk(chunk)
            if progress is not None:
                progress(counts.read - read_before)


@dataclass
class _Batch:
    engine: Engine
    context: LoadContext
    plans: list[FieldPlan]
    mapping: Mapping
    file: str
    counts: EntityCounts
    sink: ErrorSink
    notes: list[str]
    hook: FastHook | None
    columns: set[str]

    @property
    def fast(self) -> bool:
        # Lead links need a look-up per batch that the fast path does not do.
        return not any(plan.name == "lead" for plan in self.plans)

    def load_chunk(self, chunk: list[TableRow]) -> None:
        # Conversion has no side effects: batches are cut the same way whichever path then loads them.
        good = [row for row in chunk if isinstance(row, SourceRow)]
        converted, problems, keep, hooked = self._convert(
            [row[0] for row in good], self._source_columns(good),
            lambda column: [row[1].get(column, "") for row in good],
        )
        # Outcome of each row of the chunk: an error, skipped, or its index in `converted`.
        outcomes: list[RowError | int | None] = []
        position = 0
        for row in chunk:
            if isinstance(row, BadRow):
                outcomes.append(RowError(self.file, row.line, "", row.raw[:200], row.reason))
                continue
            index = position
            position += 1
            outcomes.append(problems.get(index) if index in problems else (index if keep[index] else None))
        start = 0
        loaded = 0
        for end, outcome in enumerate(outcomes, start=1):
            if isinstance(outcome, int):
                loaded += 1
            if loaded == BATCH or end == len(outcomes):
                self._sub_batch(partial(getitem, chunk, slice(start, end)), outcomes[start:end], converted, hooked)
                start, loaded = end, 0

    def convert_frame(self, frame: pl.DataFrame) -> _Conversion:
        """The conversion of rows read by Polars (`fast_reader`: source columns as String, plus `_line`);
        free of side effects, so it may run while the previous chunk is written."""
        lines: list[int] = frame.get_column(LINE).to_list()
        source = {name: frame.get_column(name) for name in self._wanted() if name in frame.columns}

        def texts(column: str) -> list[str]:
            return frame.get_column(column).to_list() if column in frame.columns else [""] * frame.height

        return self._convert(lines, source, texts)

    def load_frame(self, frame: pl.DataFrame, conversion: _Conversion) -> None:
        """`load_chunk` for rows read by Polars, given their `convert_frame`."""
        names = [name for name in frame.columns if name != LINE]
        converted, problems, keep, hooked = conversion
        outcomes: list[RowError | int | None] = [
            problems.get(index) if index in problems else (index if keep[index] else None)
            for index in range(frame.height)
        ]

        def rows(start: int, end: int) -> list[TableRow]:
            part = frame.slice(start, end - start).select(LINE, *names)
            return [SourceRow(values[0], dict(zip(names, values[1:], strict=True))) for values in part.iter_rows()]

        start = loaded = 0
        for end, outcome in enumerate(outcomes, start=1):
            if isinstance(outcome, int):
                loaded += 1
            if loaded == BATCH or end == len(outcomes):
                self._sub_batch(partial(rows, start, end), outcomes[start:end], converted, hooked)
                start, loaded = end, 0

    def _per_row(self, rows: Sequence[TableRow]) -> None:
        post = self.hook.post if self.hook is not None else None
        loadable = list(records(iter(rows), self.sink, self.counts, self.plans, self.mapping.custom, self.file, post))
        with self.engine.begin() as connection:
            load_opportunity_batch(connection, self.context, loadable, self.counts, self.sink, notes=self.notes)

    def _sub_batch(self, rows: Callable[[], Sequence[TableRow]], outcomes: list[RowError | int | None],
                   converted: pl.DataFrame, hooked: HookResult | None) -> None:
        """Load a batch: `rows` gives its source rows, for the per-row path."""
        indices = [outcome for outcome in outcomes if isinstance(outcome, int)]
        frame = converted[indices] if indices else converted.clear()
        if not self.fast or not self._sure(frame, hooked, indices):
            self._per_row(rows())
            return
        for outcome in outcomes:
            if isinstance(outcome, RowError):
                self.counts.read += 1
                self.sink.add(outcome)
        if frame.height:
            if hooked is not None:
                frame = _with_hook(frame, hooked, indices)
            with self.engine.begin() as connection:
                bulk_load.tune_for_import(connection)
                load_new_opportunities(connection, self.context, frame, self.counts, self.sink, file=self.file)

    def _sure(self, frame: pl.DataFrame, hooked: HookResult | None, indices: list[int]) -> bool:
        """Whether the fast path reproduces this batch exactly: only new, distinct ids, a confident hook."""
        if hooked is not None and hooked.unsure:
            return False
        if "external_id" not in frame.columns:
            return False
        ids = frame.get_column("external_id").drop_nulls()
        if ids.is_duplicated().any():
            return False
        stored = self.context.stored_opportunities
        if stored is None:
            return False
        keys = ids.to_list()
        return stored.isdisjoint(keys) and self.context.seen.keys().isdisjoint(keys)

    def _wanted(self) -> list[str]:
        """The source columns the plans and the hook read."""
        wanted = [plan.column for plan in self.plans if plan.column is not None]
        if self.hook is not None:
            wanted += [name for name in self.hook.columns if name in self.columns]
        return list(dict.fromkeys(wanted))

    def _source_columns(self, good: list[SourceRow]) -> dict[str, pl.Series]:
        """The text of every source column the plans and the hook read, as columns."""
        names = self._wanted()
        if not names:
            return {}
        # One C-level tuple per row, then one transpose: far cheaper than a dict look-up per cell.
        getter = itemgetter(*names, names[0])
        cells = list(zip(*[getter(row[1]) for row in good], strict=True)) if good else [() for _ in names]
        return {name: pl.Series(name, cells[position], dtype=pl.String) for position, name in enumerate(names)}

    def _convert(
        self, lines: list[int], source: dict[str, pl.Series], texts: Callable[[str], list[str]]
    ) -> _Conversion:
        return convert_source(lines, source, texts, plans=self.plans, entity=self.mapping.entity, file=self.file,
                              custom=self.mapping.custom, hook=self.hook)


def convert_source(
    lines: list[int], source: dict[str, pl.Series], texts: Callable[[str], list[str]], *, plans: list[FieldPlan],
    entity: str, file: str, custom: tuple[str, ...], hook: FastHook | None,
) -> _Conversion:
    """Converted columns of readable rows (their lines, the source columns the plans and the hook read, any
    column's text), the first error of each rejected row (by index), which rows to keep, and the hook's say:
    what `generic.records` makes of the same rows, row by row."""
    count = len(lines)
    columns: dict[str, pl.Series] = {"_line": pl.Series("_line", lines, dtype=pl.Int64)}
    first_error: dict[int, RowError] = {}
    kinds = ENTITIES[entity]
    for plan in plans:
        if plan.column is None:
            columns[plan.name] = pl.Series(plan.name, [plan.constant] * count)
            continue
        column = plan.column
        values = source[column].alias(plan.name)
        result: Converted = convert_column(values, kinds[plan.name], plan.convert, plan.date_format)
        columns[plan.name] = result.values.rename(plan.name)
        for index, reason in result.errors.items():
            if index not in first_error:
                first_error[index] = RowError(file, lines[index], column, values[index], reason)
    if custom:
        # As stored: the JSON text of {column: raw text}.
        cells = [texts(c) for c in custom]
        columns["custom"] = pl.Series("custom", [json.dumps(dict(zip(custom, row, strict=True)))
                                                 for row in zip(*cells, strict=True)], dtype=pl.String)
    converted = pl.DataFrame(list(columns.values()))
    keep = [True] * count
    hooked: HookResult | None = None
    if hook is not None:
        raw = pl.DataFrame([source[name] if name in source else pl.Series(name, [""] * count, dtype=pl.String)
                            for name in hook.columns])
        ok = pl.Series([index not in first_error for index in range(count)], dtype=pl.Boolean)
        hooked = hook.frame(raw.filter(ok), converted.filter(ok))
        hooked = _spread(hooked, ok)
        keep = hooked.keep.to_list()
        for index, (column, value, reason) in hooked.errors.items():
            first_error[index] = RowError(file, lines[index], column, value, reason)
    return converted, first_error, keep, hooked


def _spread(result: HookResult, ok: pl.Series) -> HookResult:
    """A hook result computed on the rows that passed conversion, laid out over every row."""
    positions = [index for index, flag in enumerate(ok.to_list()) if flag]

    def widen(series: pl.Series | None, fill: Any) -> pl.Series | None:
        if series is None:
            return None
        full = pl.Series(series.name, [fill] * ok.len(), dtype=series.dtype)
        return full.scatter(positions, series) if positions else full

    keep = widen(result.keep, False)
    assert keep is not None
    return HookResult(
        keep=keep, status=widen(result.status, None), stage_order=widen(result.stage_order, None),
        stage_probability=widen(result.stage_probability, None),
        errors={positions[index]: error for index, error in result.errors.items()}, unsure=result.unsure,
    )


def _with_hook(frame: pl.DataFrame, hooked: HookResult, indices: list[int]) -> pl.DataFrame:
    extra: list[pl.Series] = []
    if hooked.status is not None:
        # The hook's status wins over a mapped status column, as the row hook overwrites it.
        status = hooked.status[indices].alias("status")
        if "status" in frame.columns:
            status = status.zip_with(status.is_not_null(), frame.get_column("status"))
        extra.append(status)
    if hooked.stage_order is not None:
        extra.append(hooked.stage_order[indices].alias("_stage_order"))
    if hooked.stage_probability is not None:
        extra.append(hooked.stage_probability[indices].alias("_stage_probability"))
    return frame.with_columns(extra) if extra else frame
