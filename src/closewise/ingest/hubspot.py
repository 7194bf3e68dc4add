"""`closewise import hubspot PATH`: HubSpot deal and contact exports, as HubSpot writes them.

PATH is one export file, a folder of them, or a zip (CSV or XLSX). Each file is told apart by its header:
deal exports have "Deal Name" / "Deal Stage", contact exports "First Name" / "Email" / "Lead Status".
Contacts load first (as leads), then each deal file (as opportunities), then that file's stage history
from its `Date entered "<stage> (<pipeline>)"` columns. The upsert key is ("hubspot", Record ID), so a
repeated import changes nothing and a newer export updates what changed and adds only its new history.

The column readings and their decisions live in ingest/hubspot_deals.py and ingest/hubspot_contacts.py;
conversion, dates (inferred per column group and reported), loading and history reuse the generic
machinery (ingest/generic.py, ingest/opportunities.py, ingest/leads.py, ingest/history_load.py).

HubSpot writes times in the exporting user's time zone without saying which; they are read as UTC.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Protocol, TypeVar

import polars as pl
from sqlalchemy.engine import Engine

from closewise.domain.enums import ChangeField
from closewise.errors import InvalidInput
from closewise.ingest.archive import extract_zip
from closewise.ingest.context import LoadContext
from closewise.ingest.entities import load_lead_batch
from closewise.ingest.generic import INFERENCE_SAMPLE, FieldPlan, convert_row, count_lines, plan_fields, records
from closewise.ingest.history_load import load_history
from closewise.ingest.hubspot_contacts import ContactPreset, contact_preset, is_contact_file
from closewise.ingest.hubspot_deals import SOURCE, DealPreset, deal_preset, is_deal_file, stage_probabilities
from closewise.ingest.mapping import Mapping
from closewise.ingest.opportunities import load_opportunity_batch
from closewise.ingest.readers import SourceRow, TableRow, open_table
from closewise.ingest.report import ImportReport, RowError
from closewise.ingest.session import BATCH, ImportSession, batched

Progress = Callable[[str, int, int], None]
SUFFIXES = (".csv", ".xlsx", ".xlsm")
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "_file": pl.String(), "_line": pl.Int64(), "opportunity": pl.String(), "changed_at": pl.Datetime("us"),
    "stage": pl.String(),
}


class Preset(Protocol):
    file: str
    mapping: Mapping
    notes: list[str]
    synthetic: tuple[str, ...]

    def augment(self, values: dict[str, str]) -> None: ...

    def adjust(self, plans: list[FieldPlan]) -> None: ...

    def complete(self, record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError: ...


def import_hubspot_export(engine: Engine, path: Path, *, errors_dir: Path,
                          progress: Progress | None = None) -> ImportReport:
    session = ImportSession(engine, kind="hubspot", path=path.resolve(), source=SOURCE, errors_dir=errors_dir)
    try:
        with export_files(path) as files:
            _run(session, files, progress)
    except BaseException:
        session.finish("failed")
        raise
    return session.finish()


def _tables(folder: Path, where: Path) -> list[Path]:
    """The table files of a folder; two of the same name (two exports in one folder) are refused, naming both."""
    found = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in SUFFIXES
             and not p.name.startswith((".", "~$")) and "__MACOSX" not in p.parts]
    by_name: dict[str, Path] = {}
    for path in found:
        first = by_name.setdefault(path.name.lower(), path)
        if first is not path:
            raise InvalidInput(f"{first.relative_to(folder)} and {path.relative_to(folder)} are the same export file "
                               "found twice (two exports in one place?); import one export at a time", where=str(where))
    return found


@contextmanager
def export_files(path: Path) -> Iterator[list[Path]]:
    """The table files of a file, folder or zip (a zip is extracted to a temporary folder while in use)."""
    if path.is_dir():
        yield _tables(path, path)
        return
    if path.suffix.lower() in SUFFIXES or not zipfile.is_zipfile(path):
        yield [path]
        return
    with TemporaryDirectory(prefix="closewise-hubspot-") as temporary:
        extract_zip(path, Path(temporary), wanted=lambda name: name.suffix.lower() in SUFFIXES)
        yield _tables(Path(temporary), path)


def _run(session: ImportSession, files: list[Path], progress: Progress | None) -> None:
    deals: list[Path] = []
    contacts: list[Path] = []
    for file in files:
        with open_table(file) as table:
            columns = list(table.columns)
        if is_deal_file(columns):
            deals.append(file)
        elif is_contact_file(columns):
            contacts.append(file)
        else:
            session.report.notes.append(f"{file.name}: neither a deal nor a contact export; skipped")
    if not deals and not contacts:
        raise InvalidInput("no HubSpot deal or contact export here (deals have a \"Deal Name\" or \"Deal Stage\" "
                           "column; contacts \"First Name\", \"Email\" or \"Lead Status\")", where=str(session.path))
    plain = session.load_context()
    with_history = dataclasses.replace(plain, history_fields=frozenset({ChangeField.STAGE, ChangeField.STATUS}))
    for file in contacts:
        _load_contacts(session, plain, file, progress)
    for file in deals:
        _load_deals(session, plain, with_history, file, progress)
    if plain.stages.created:
        session.report.notes.append(f"stages added to the playbook: {', '.join(plain.stages.created)}")


P = TypeVar("P", bound=Preset)


@contextmanager
def _reading(session: ImportSession, path: Path, entity: str, build: Callable[[list[str], list[SourceRow]], P],
             ) -> Iterator[tuple[P, Iterator[dict[str, Any]], list[dict[str, Any]]]]:
    """Open a file, build its preset from the first rows, and stream its converted rows.

    Gives the preset, the stream of converted rows (unreadable and unconvertible rows go to the entity's
    errors file) and the converted first rows, for the caller to learn from before loading.
    """
    counts, sink = session.entity(entity)
    with open_table(path) as table:
        stream = iter(table)
        head = list(islice(stream, INFERENCE_SAMPLE))
        sample = [row for row in head if isinstance(row, SourceRow)]
        preset = build(list(table.columns), sample)
        for row in sample:
            preset.augment(row.values)
        plans, notes = plan_fields(preset.mapping, [*table.columns, *preset.synthetic], sample)
        preset.adjust(plans)
        session.report.notes.extend(f"{path.name}: {note}" for note in notes)
        session.report.notes.extend(preset.notes)
        if table.encoding and table.encoding not in ("utf-8", "utf-8-sig"):
            session.report.notes.append(f"{path.name}: read as {table.encoding}")
        learned = [r for r in (_convert(preset, plans, row) for row in sample) if not isinstance(r, RowError)]

        def augmented() -> Iterator[TableRow]:
            for position, row in enumerate(chain(head, stream)):
                if isinstance(row, SourceRow) and position >= len(head):  # the first rows are done above
                    preset.augment(row.values)
                yield row

        rows = records(augmented(), sink, counts, plans, preset.mapping.custom, path.name, preset.complete)
        yield preset, rows, learned


def _convert(preset: Preset, plans: list[FieldPlan], row: SourceRow) -> dict[str, Any] | RowError:
    record = convert_row(row, plans, preset.mapping.custom, preset.file)
    return record if isinstance(record, RowError) else preset.complete(record, row)


def _load_contacts(session: ImportSession, context: LoadContext, path: Path, progress: Progress | None) -> None:
    counts, sink = session.entity("leads")
    total = count_lines(path)

    def build(columns: list[str], sample: list[SourceRow]) -> ContactPreset:
        return contact_preset(path, columns)

    with _reading(session, path, "leads", build) as (_preset, rows, _learned):
        for batch in batched(rows, BATCH):
            with session.engine.begin() as connection:
                load_lead_batch(connection, context, batch, counts, sink, notes=session.report.notes)
            if progress is not None:
                progress(f"leads ({path.name})", counts.read, max(total, counts.read))


def _load_deals(session: ImportSession, plain: LoadContext, with_history: LoadContext, path: Path,
                progress: Progress | None) -> None:
    counts, sink = session.entity("opportunities")
    total = count_lines(path)
    frames: list[pl.DataFrame] = []

    def build(columns: list[str], sample: list[SourceRow]) -> DealPreset:
        return deal_preset(path, columns, sample)

    with _reading(session, path, "opportunities", build) as (preset, rows, learned):
        if preset.history:
            _create_stages(session, plain, preset, learned)
        for batch in batched(rows, BATCH):
            histories = [r for r in batch if r.get("_history")]
            others = [r for r in batch if not r.get("_history")]
            with session.engine.begin() as connection:
                load_opportunity_batch(connection, with_history, histories, counts, sink)
                load_opportunity_batch(connection, plain, others, counts, sink)
            frames.append(_snapshots(histories, plain.seen))
            if progress is not None:
                progress(f"opportunities ({path.name})", counts.read, max(total, counts.read))
    if preset.history:
        history_counts, history_sink = session.entity("opportunity_changes")
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=HISTORY_SCHEMA)
        load_history(session.engine, with_history, frame, fields=["stage"], counts=history_counts,
                     sink=history_sink)


def _create_stages(session: ImportSession, context: LoadContext, preset: DealPreset,
                   sample: list[dict[str, Any]]) -> None:
    """Add the export's stages to the playbook in pipeline order, each with its deals' usual probability."""
    probabilities = stage_probabilities(preset, sample)
    with session.engine.begin() as connection:
        for column in preset.history:
            if column.entered:
                context.stages.resolve(connection, column.label, probability=probabilities.get(column.label.lower()))


def _snapshots(records: list[dict[str, Any]], loaded: dict[str, int]) -> pl.DataFrame:
    """The stage snapshots of the deals that loaded (a rejected deal's history is not reported twice)."""
    data: dict[str, list[Any]] = {name: [] for name in HISTORY_SCHEMA}
    for record in records:
        external_id = str(record.get("external_id") or "")
        if loaded.get(external_id) != record["_line"]:
            continue
        for at, label in record["_history"]:
            data["_file"].append(record["_file"])
            data["_line"].append(record["_line"])
            data["opportunity"].append(external_id)
            data["changed_at"].append(at)
            data["stage"].append(label)
    return pl.DataFrame(data, schema=HISTORY_SCHEMA)
