"""Finding the object files of a Salesforce export in a folder or a zip."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from closewise.errors import InvalidInput
from closewise.ingest.archive import extract_zip

OBJECTS = (
    "CurrencyType", "DatedConversionRate", "FiscalYearSettings", "Period", "UserRole", "User", "Account", "Contact",
    "Opportunity", "OpportunityHistory", "OpportunityFieldHistory", "Lead", "Task", "Event", "ForecastingQuota",
)


def object_of(path: Path) -> str | None:
    """`Opportunity.csv`, `opportunity.xlsx` or `export__Opportunity.csv` -> `Opportunity`."""
    stem = path.stem.split("__")[-1].lower()
    for name in OBJECTS:
        if stem == name.lower():
            return name
    return None


def _scan(folder: Path, where: Path) -> dict[str, Path]:
    """{object name: file} of a folder; two files of one object (two exports in one folder, or a CSV and
    an XLSX of the same object) are refused, naming both."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".csv", ".xlsx") and not path.name.startswith("."):
            name = object_of(path)
            if name is None:
                continue
            if name in found:
                first, second = (str(p.relative_to(folder)) for p in (found[name], path))
                raise InvalidInput(f"{first} and {second} are both {name} files (two exports in one place?); "
                                   "import one export at a time", where=str(where))
            found[name] = path
    return found


@contextmanager
def export_files(path: Path) -> Iterator[dict[str, Path]]:
    """{object name: file} for a folder or a zip (extracted to a temporary folder while in use)."""
    if path.is_dir():
        found = _scan(path, path)
        if not found:
            raise InvalidInput("no Salesforce object files (Opportunity.csv, User.csv, ...) in this folder",
                               where=str(path))
        yield found
        return
    if not zipfile.is_zipfile(path):
        raise InvalidInput("expected a Salesforce export folder or zip file", where=str(path))
    with TemporaryDirectory(prefix="closewise-sf-") as temporary:
        root = Path(temporary)
        extract_zip(path, root, wanted=lambda name: object_of(name) is not None)
        found = _scan(root, path)
        if not found:
            raise InvalidInput("no Salesforce object files (Opportunity.csv, User.csv, ...) in this zip",
                               where=str(path))
        yield found
