"""Exporting opportunities to CSV or XLSX, safe to open in a spreadsheet and re-importable without loss.

Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@`
(and some also after a leading tab or carriage return). Every text cell that starts with one of those is
written with a `'` before it, which a spreadsheet shows as text; a text cell that already starts with `'`s
followed by one of those gets one more `'`, so the escape can always be undone. The importer removes
exactly that one `'` (ingest/canonical.py, `_text` and `clean_id`). Numbers and dates are written as
values (numbers, real dates in XLSX), never escaped.

Beside the export, `PATH.mapping.yml` is written: `closewise import csv PATH --mapping PATH.mapping.yml`
loads the file back (status and forecast category from their columns; stage keys as exported, so no
`stages:` block is needed). Timestamps are UTC, written `YYYY-MM-DD HH:MM:SS[.ffffff]`; XLSX keeps them to
the millisecond (Excel's precision). XLSX cells are XML text: a carriage return comes back as a plain
newline (XML line-end normalisation) and control characters other than tab and newline cannot be held, so
they are left out. CSV keeps every character.

The file is written next to its target and renamed into place when complete, so a failed export never
leaves half a file under the name asked for.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Engine

from closewise.db.export import OPPORTUNITY_COLUMNS, count_opportunities, opportunity_sources, stream_opportunities
from closewise.errors import InvalidInput

Progress = Callable[[str, int, int], None]
NUMBER_COLUMNS = frozenset({"amount", "probability"})
DATE_COLUMNS = frozenset({"close_date"})
DATETIME_COLUMNS = frozenset({"created_at", "closed_at"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    format: ExportFormat
    mapping_path: Path

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows, "format": self.format.value}


def inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (see the module header)."""
    first = text[:1]
    if first in FORMULA_STARTS or (first == "'" and text.lstrip("'")[:1] in FORMULA_STARTS):
        return "'" + text
    return text


def parse_format(name: str | None, out: Path) -> ExportFormat:
    """The format asked for, else the one the file name says (`.xlsx`), else CSV."""
    if name is None:
        return ExportFormat.XLSX if out.suffix.lower() == ".xlsx" else ExportFormat.CSV
    try:
        return ExportFormat(name.strip().lower())
    except ValueError:
        raise InvalidInput(f"--format {name!r} is not csv or xlsx") from None


def _utc_text(value: datetime) -> str:
    moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return moment.isoformat(sep=" ")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _csv_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in NUMBER_COLUMNS:
        return _number_text(float(value))
    if column in DATETIME_COLUMNS and isinstance(value, datetime):
        return _utc_text(value)
    if column in DATE_COLUMNS and isinstance(value, date):
        return value.isoformat()
    return inert(str(value))


def _xlsx_cell(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in NUMBER_COLUMNS:
        return float(value)
    if column in DATETIME_COLUMNS and isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if column in DATE_COLUMNS and isinstance(value, date):
        return value
    return _XLSX_ILLEGAL.sub("", inert(str(value)))


@contextmanager
def _replacing(path: Path, *, text: bool) -> Iterator[IO[Any]]:
    """A temporary file beside `path`, renamed onto it when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with (os.fdopen(handle, "w", encoding="utf-8-sig", newline="") if text else os.fdopen(handle, "wb")) as out:
            yield out
        os.chmod(temporary, 0o644)  # mkstemp makes it private; an export is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_csv(out: Path, batches: Iterator[list[tuple[Any, ...]]], done: Callable[[int], None]) -> int:
    rows = 0
    with _replacing(out, text=True) as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(OPPORTUNITY_COLUMNS)
        for batch in batches:
            writer.writerows([_csv_cell(c, v) for c, v in zip(OPPORTUNITY_COLUMNS, row, strict=True)] for row in batch)
            rows += len(batch)
            done(rows)
    return rows


def _write_xlsx(out: Path, batches: Iterator[list[tuple[Any, ...]]], done: Callable[[int], None]) -> int:
    from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]

    book: Any = Workbook(write_only=True)
    sheet = book.create_sheet("opportunities")
    sheet.append(list(OPPORTUNITY_COLUMNS))
    rows = 0
    for batch in batches:
        for row in batch:
            sheet.append([_xlsx_cell(c, v) for c, v in zip(OPPORTUNITY_COLUMNS, row, strict=True)])
        rows += len(batch)
        done(rows)
    with _replacing(out, text=False) as handle:
        book.save(handle)
    return rows


def mapping_document(source: str, sources: list[str], data_file: str) -> str:
    """The mapping YAML that re-imports an export (see DESIGN.md, `closewise import csv`)."""
    # JSON strings are YAML strings: the source is quoted whatever it holds.
    lines = ["entity: opportunities", f"source: {json.dumps(source, ensure_ascii=False)}", "columns:"]
    lines += [f"  {name}: {name}" for name in OPPORTUNITY_COLUMNS if name != "source"]
    lines += ["formats:", '  date: "YYYY-MM-DD"', '  datetime: "YYYY-MM-DD HH:MM:SS"']
    header = (f"# Re-imports {data_file}: closewise import csv {data_file} --mapping <this file>\n"
              "# Stage keys are exported as the playbook names them, so no `stages:` block is needed.\n")
    if len(sources) > 1:
        header += (f"# The export holds several sources ({', '.join(sources)}); a mapping names one, so every row\n"
                   f"# re-imports under {source!r}.\n")
    return header + "\n".join(lines) + "\n"


def export_opportunities(engine: Engine, out: Path, *, fmt: ExportFormat, progress: Progress | None = None,
                         batch: int = 5_000) -> ExportResult:
    """Write every opportunity to `out` (CSV or XLSX) and the mapping that re-imports it beside it."""
    if out.is_dir():
        raise InvalidInput("is a folder; give a file name", where=str(out))
    with engine.connect() as connection:
        total = count_opportunities(connection)
        sources = opportunity_sources(connection)

        def done(rows: int) -> None:
            if progress is not None:
                progress("opportunities", rows, max(total, rows))

        batches = stream_opportunities(connection, batch=batch)
        rows = (_write_xlsx if fmt is ExportFormat.XLSX else _write_csv)(out, batches, done)
    mapping_path = out.with_name(out.name + ".mapping.yml")
    source = sources[0] if len(sources) == 1 else ("closewise" if not sources else "export")
    mapping_path.write_text(mapping_document(source, sources, out.name), encoding="utf-8")
    return ExportResult(out, rows, fmt, mapping_path)
