"""Reading XLSX workbooks as streams of rows, like a CSV (openpyxl in read-only mode).

Cells become the text a CSV export would hold (see `cell_text`); line numbers are spreadsheet row numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from closewise.errors import InvalidInput
from closewise.ingest.readers import BadRow, SourceRow, TableReader, TableRow, header_names


def cell_text(value: object) -> str:
    """The text of a spreadsheet cell as a CSV export would hold it.

    None → ''; datetimes → `YYYY-MM-DD HH:MM:SS` (with microseconds if any, `YYYY-MM-DD` at midnight);
    booleans → `TRUE`/`FALSE`; whole floats without `.0`; other numbers by `repr`; the rest by `str`.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class XlsxReader(TableReader):
    def __init__(self, path: Path, sheet: str | None) -> None:
        super().__init__(path)
        import zipfile

        from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]
        from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped, unused-ignore]

        try:
            self._book: Any = load_workbook(path, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise InvalidInput(f"not a readable XLSX workbook ({exc})", where=str(path)) from None
        try:
            if sheet is None:
                self._sheet: Any = self._book.worksheets[0]
            elif sheet in self._book.sheetnames:
                self._sheet = self._book[sheet]
            else:
                names = ", ".join(self._book.sheetnames)
                raise InvalidInput(f"no sheet named {sheet!r} (the workbook has {names})", where=str(path))
            if hasattr(self._sheet, "reset_dimensions"):
                # Stored dimensions are often wrong in files written by other tools; read what is there.
                self._sheet.reset_dimensions()
            self._cells: Iterator[tuple[object, ...]] = iter(self._sheet.iter_rows(values_only=True))
            header = next(self._cells, ())
            last = max((i for i, v in enumerate(header) if v is not None and cell_text(v).strip()), default=-1)
            self.columns = header_names([cell_text(v) for v in header[: last + 1]])
        except BaseException:
            self._book.close()
            raise

    def close(self) -> None:
        self._book.close()

    def _rows(self) -> Iterator[TableRow]:
        columns = self.columns
        width = len(columns)
        for line, cells in enumerate(self._cells, start=2):
            texts = [cell_text(v) for v in cells]
            if not any(texts):
                continue
            if len(texts) > width:
                stray = [i for i in range(width, len(texts)) if texts[i]]
                if stray:
                    yield BadRow(line, f"a value in column {stray[0] + 1}, which has no header", "\t".join(texts))
                    continue
                del texts[width:]
            elif len(texts) < width:
                texts.extend([""] * (width - len(texts)))
            yield SourceRow(line, dict(zip(columns, texts, strict=True)))
