"""Import use cases: which importer reads which path, and where rejected rows are reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from closewise.errors import InvalidInput
from closewise.ingest.generic import import_mapped
from closewise.ingest.mapping import load_mapping
from closewise.ingest.report import ImportReport

Progress = Callable[[str, int, int], None]


def _existing(path: Path) -> Path:
    if not path.exists():
        raise InvalidInput("no such file or folder", where=str(path))
    return path


def import_csv(engine: Engine, path: Path, *, mapping_path: Path, errors_dir: Path,
               progress: Progress | None = None) -> ImportReport:
    mapping = load_mapping(mapping_path)
    if not _existing(path).is_file():
        raise InvalidInput("expected a CSV or XLSX file", where=str(path))
    return import_mapped(engine, path, mapping, errors_dir=errors_dir, progress=progress)


def import_salesforce(
    engine: Engine, path: Path, *, errors_dir: Path, progress: Progress | None = None
) -> ImportReport:
    from closewise.ingest.salesforce import import_salesforce_export

    return import_salesforce_export(engine, _existing(path), errors_dir=errors_dir, progress=progress)


def import_hubspot(engine: Engine, path: Path, *, errors_dir: Path, progress: Progress | None = None) -> ImportReport:
    from closewise.ingest.hubspot import import_hubspot_export

    return import_hubspot_export(engine, _existing(path), errors_dir=errors_dir, progress=progress)
