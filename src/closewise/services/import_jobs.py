"""Imports started from the web app: an upload is checked and saved to a private temporary folder, imported by
a background job (`services/jobs.py`) through the same importers as the CLI (`services/imports.py`), and the
folder is removed when the job ends. A run that changed anything queues a refresh of the stored deal scores so
win probabilities reflect the new data.

What can be checked before the job starts is checked at once, so a bad request gets one clear message: the
kind, the size (`MAX_UPLOAD_BYTES`), the file types, and for a mapped CSV/XLSX the mapping itself and that the
file has every column it names. Rows the importers reject land in per-entity error files, which are served
only by import run id (the run's own files, never a path from a request), combined into one CSV whose cells a
spreadsheet will not run as formulas.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Engine

from closewise.db import audit
from closewise.db import import_runs as run_queries
from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError, InvalidInput, NotFound
from closewise.ingest.mapping import load_mapping
from closewise.ingest.readers import open_table
from closewise.ingest.report import ImportReport
from closewise.services import imports
from closewise.services.export import FORMULA_STARTS
from closewise.services.jobs import Job, JobRunner, Progress

MAX_UPLOAD_BYTES = 500 * 1024 * 1024
SCORING_KEY = "deal-scores"
TABLE_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ".xlsx", ".xlsm"})
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class ImportKind(StrEnum):
    SALESFORCE = "salesforce"  # a Data Export zip, or its CSV files
    HUBSPOT = "hubspot"  # deal / contact exports: CSV or XLSX files, or a zip of them
    CSV = "csv"  # any CSV or XLSX file with a mapping

    @property
    def label(self) -> str:
        return {"salesforce": "Salesforce export", "hubspot": "HubSpot export",
                "csv": "CSV or XLSX with a mapping"}[self.value]


def errors_dir(configured: str | Path | None = None) -> Path:
    """Where the web app keeps the files of rejected rows: `configured`, else `$CLOSEWISE_DATA_DIR/import-errors`,
    else the user's data folder (`$XDG_DATA_HOME/closewise`, `~/.local/share/closewise`). Private (0700)."""
    if configured:
        folder = Path(configured)
    else:
        base = os.environ.get("CLOSEWISE_DATA_DIR") or str(
            Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "closewise")
        folder = Path(base).expanduser() / "import-errors"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def parse_kind(text: str) -> ImportKind:
    try:
        return ImportKind(text.strip().lower())
    except ValueError:
        allowed = ", ".join(kind.value for kind in ImportKind)
        raise InvalidInput(f"unknown import kind {text!r}; choose one of {allowed}", where="kind") from None


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the browser gave it and its content."""

    name: str
    content: IO[bytes]


@dataclass
class StagedImport:
    """An upload saved to its private folder, ready for an importer."""

    kind: ImportKind
    folder: Path
    target: Path  # the file or folder the importer reads
    names: list[str]
    mapping_path: Path | None = None

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class ImportOutcome:
    run_id: int
    kind: str
    files: list[str]
    counts: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    scoring_job_id: str | None = None

    @property
    def changed(self) -> bool:
        return any(c.get("inserted", 0) or c.get("updated", 0) for c in self.counts.values())

    @property
    def rejected(self) -> int:
        return sum(int(c.get("rejected", 0)) for c in self.counts.values())


def safe_name(name: str, *, default: str = "upload") -> str:
    """A file name fit for the private folder: the last part of what the browser sent, tame characters only."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    return cleaned[:120] or default


def _unique(folder: Path, name: str) -> Path:
    path = folder / name
    counter = 2
    while path.exists():
        stem, suffix = Path(name).stem, Path(name).suffix
        path = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    return path


def _save(upload: Upload, path: Path, budget: int) -> int:
    written = 0
    with path.open("wb") as out:
        while chunk := upload.content.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise InvalidInput(f"the upload is larger than {_megabytes(MAX_UPLOAD_BYTES)}; import a file this "
                                   "large with the command line (closewise import)", where=safe_name(upload.name))
            out.write(chunk)
    return written


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _clean(text: str, folder: Path) -> str:
    """A message without the private folder's path: people know their files by the names they uploaded."""
    prefix = str(folder.resolve())
    return text.replace(prefix + "/", "").replace(prefix, "upload")


def _rewrap(exc: CloseWiseError, folder: Path, *, where: str | None = None) -> CloseWiseError:
    cleaned = type(exc)(_clean(exc.message, folder),
                        where=where if where is not None else (_clean(exc.where, folder) if exc.where else None))
    return cleaned


def stage_upload(kind_text: str, files: list[Upload], *, mapping_text: str | None = None,
                 mapping_file: Upload | None = None, limit: int | None = None) -> StagedImport:
    """Check an upload and save it to a new private folder (removed again when a check fails); the files
    together may hold `limit` bytes (default `MAX_UPLOAD_BYTES`)."""
    kind = parse_kind(kind_text)
    files = [f for f in files if f.name]
    if not files:
        raise InvalidInput("choose a file to import", where="file")
    pasted = (mapping_text or "").strip()
    has_mapping_file = mapping_file is not None and bool(mapping_file.name)
    if kind is ImportKind.CSV:
        if len(files) != 1:
            raise InvalidInput("a mapped import reads one CSV or XLSX file at a time", where="file")
        if not pasted and not has_mapping_file:
            raise InvalidInput("a CSV or XLSX import needs a mapping: paste it or upload the YAML file",
                               where="mapping")
        if pasted and has_mapping_file:
            raise InvalidInput("give the mapping once: pasted or as a file, not both", where="mapping")
    for upload in files:
        suffix = Path(safe_name(upload.name)).suffix.lower()
        allowed = TABLE_SUFFIXES | ({".zip"} if kind is not ImportKind.CSV else set())
        if suffix not in allowed:
            shown = ", ".join(sorted(allowed))
            raise InvalidInput(f"{kind.label}: expected a file ending in {shown}", where=safe_name(upload.name))
    folder = Path(tempfile.mkdtemp(prefix="closewise-upload-"))  # mode 0700: only this server reads it
    try:
        return _stage(kind, folder, files, pasted, mapping_file if has_mapping_file else None,
                      MAX_UPLOAD_BYTES if limit is None else limit)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _stage(kind: ImportKind, folder: Path, files: list[Upload], pasted: str, mapping_file: Upload | None,
           limit: int) -> StagedImport:
    names = [safe_name(f.name) for f in files]
    single = len(files) == 1
    data = folder if single else folder / (names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more")
    data.mkdir(exist_ok=True)
    budget = limit
    paths = []
    for upload, name in zip(files, names, strict=True):
        path = _unique(data, name)
        budget -= _save(upload, path, budget)
        paths.append(path)
    target = paths[0] if single else data
    staged = StagedImport(kind, folder, target, names)
    if kind is ImportKind.CSV:
        staged.mapping_path, shown = _stage_mapping(folder, pasted, mapping_file)
        try:
            mapping = load_mapping(staged.mapping_path)
            with open_table(target) as table:
                mapping.check_columns(table.columns, file=names[0])
        except InvalidInput as exc:
            mapping_fault = exc.where is not None and exc.where == str(staged.mapping_path)
            raise _rewrap(exc, folder, where=shown if mapping_fault else None) from None
    return staged


def _stage_mapping(folder: Path, pasted: str, mapping_file: Upload | None) -> tuple[Path, str]:
    mapping_dir = folder / "mapping"
    mapping_dir.mkdir()
    if mapping_file is not None:
        name = safe_name(mapping_file.name, default="mapping.yml")
        path = mapping_dir / name
        _save(mapping_file, path, 1024 * 1024)
        return path, name
    path = mapping_dir / "mapping.yml"
    path.write_text(pasted, encoding="utf-8")
    return path, "the pasted mapping"


def _run(engine: Engine, staged: StagedImport, errors_dir: Path, progress: Progress) -> ImportReport:
    def step(label: str, done: int, total: int) -> None:
        fraction = min(done / total, 1.0) if total else None
        progress(f"{label}: {done:,} rows read" if done else f"reading {label}", fraction)

    if staged.kind is ImportKind.CSV:
        assert staged.mapping_path is not None
        return imports.import_csv(engine, staged.target, mapping_path=staged.mapping_path, errors_dir=errors_dir,
                                  progress=step)
    if staged.kind is ImportKind.SALESFORCE:
        return imports.import_salesforce(engine, staged.target, errors_dir=errors_dir, progress=step)
    return imports.import_hubspot(engine, staged.target, errors_dir=errors_dir, progress=step)


def start_import(jobs: JobRunner, engine: Engine, staged: StagedImport, *, actor_id: int, errors_dir: Path,
                 refresh_scores: Callable[[Engine], object] | None = None) -> Job:
    """Run the import in the background; the job's result is an `ImportOutcome`. `refresh_scores` (default
    `services.scoring.refresh_deal_scores`) is queued as a job of its own when the import changed anything."""

    def work(progress: Progress) -> ImportOutcome:
        try:
            report = _run(engine, staged, errors_dir, progress)
        except CloseWiseError as exc:
            _claim(engine, staged, actor_id, failed=str(exc))
            raise _rewrap(exc, staged.folder) from None
        except Exception as exc:  # a bug, still told without the private folder's path
            text = _clean(f"{type(exc).__name__}: {exc}", staged.folder)
            _claim(engine, staged, actor_id, failed=text)
            raise CloseWiseError(f"the import stopped unexpectedly ({text})") from exc
        finally:
            staged.discard()
        outcome = ImportOutcome(report.run_id, staged.kind.value, staged.names, public_counts(report.as_json()),
                                [_clean(note, staged.folder) for note in report.notes])
        _claim(engine, staged, actor_id, run_id=report.run_id, counts=outcome.counts)
        if outcome.changed:
            outcome.scoring_job_id = queue_score_refresh(jobs, engine, actor_id=actor_id, refresh=refresh_scores).id
        return outcome

    return jobs.submit("import", actor_id, work)


def queue_score_refresh(jobs: JobRunner, engine: Engine, *, actor_id: int,
                        refresh: Callable[[Engine], object] | None = None) -> Job:
    """Queue one refresh of the stored deal scores (a later import queues a new one)."""

    def work(progress: Progress) -> dict[str, Any]:
        progress("refreshing win probabilities", None)
        chosen = refresh
        if chosen is None:  # the models load only here, so an import never waits for (or fails on) them
            from closewise.services.scoring import refresh_deal_scores

            chosen = refresh_deal_scores
        done = chosen(engine)
        return {"deals": getattr(done, "deals", None), "model": getattr(done, "model", None)}

    jobs.forget(SCORING_KEY)
    return jobs.submit("scoring", actor_id, work, key=SCORING_KEY)


def _claim(engine: Engine, staged: StagedImport, actor_id: int, *, run_id: int | None = None,
           counts: dict[str, Any] | None = None, failed: str | None = None) -> None:
    """Record who ran the import (the run itself was recorded by the importer) in the run and the audit log."""
    with engine.begin() as connection:
        claimed = run_queries.claim_runs(connection, path=str(staged.target.resolve()), user_id=actor_id)
        audit.record(connection, at=utcnow(), actor_id=actor_id, action="import.failed" if failed else "import.run",
                     entity="import_run", entity_id=run_id if run_id is not None else (claimed[0] if claimed else None),
                     detail={"kind": staged.kind.value, "files": staged.names, "counts": counts,
                             "error": _clean(failed, staged.folder) if failed else None})


# -- past runs and their errors ----------------------------------------------------------------------------


def list_runs(engine: Engine, *, limit: int = 50) -> list[run_queries.RunRow]:
    with engine.connect() as connection:
        return run_queries.list_runs(connection, limit=limit)


def get_run(engine: Engine, run_id: int) -> run_queries.RunRow:
    with engine.connect() as connection:
        found = run_queries.get_run(connection, run_id=run_id)
    if found is None:
        raise NotFound(f"no import run {run_id}")
    return found


def public_counts(counts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Counts per entity without the errors file's server path (served by run id instead)."""
    return {name: {key: value for key, value in entity.items() if key != "errors_file"}
            for name, entity in counts.items() if isinstance(entity, dict)}


def run_label(path: str) -> str:
    """What a run read, as people named it (the private folder of a web upload is not worth showing)."""
    return Path(path).name or path


def error_files(run: run_queries.RunRow) -> list[tuple[str, Path]]:
    """The run's own error files that still exist, as (entity, path): only files the importer named for this
    run (`import-<run id>-<entity>-errors.csv`), whatever else the stored value holds."""
    found = []
    own = re.compile(rf"^import-{run.id}-([a-z_]+)-errors\.csv$")
    for text in (run.errors_file or "").split(";"):
        if not text.strip():
            continue
        path = Path(text.strip())
        match = own.match(path.name)
        if match and path.is_file():
            found.append((match.group(1), path))
    return found


def _inert(text: str) -> str:
    """Idempotent on cells the error sink already made inert (they start with a quote)."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def errors_csv(engine: Engine, run_id: int) -> Iterator[str]:
    """The rejected rows of one run as one CSV (entity, file, line, column, value, reason)."""
    files = error_files(get_run(engine, run_id))
    if not files:
        raise NotFound(f"import run {run_id} has no errors file (no row was rejected, or the file was removed)")

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow(["entity", "file", "line", "column", "value", "reason"])
        yield flush()
        for entity, path in files:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                for count, row in enumerate(reader, start=1):
                    writer.writerow([entity, *(_inert(cell) for cell in row)])
                    if count % 1000 == 0:
                        yield flush()
        yield flush()

    return lines()
