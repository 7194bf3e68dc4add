"""Reading a CSV file with Polars when that gives exactly what `readers.open_table` would.

The line-by-line reader (`readers.py`) defines what a file holds. It spends about a second per 100,000
rows in Python; Polars' reader does the same work in a fraction of that, but it is not as forgiving (or as
precise) with broken files. So Polars is used only for files written the canonical way Salesforce writes
them - UTF-8, every field quoted, one line ending throughout, no blank lines, no NUL bytes - and the file
itself proves it: re-serialising the parsed rows with every field quoted must give back exactly the file's
number of bytes, line ends and double quotes. Anything else (Windows-1252, an unquoted or ragged row, a
stray quote, a blank line...) is declined and the caller reads the file line by line.

`read_canonical_csv` reads a whole file at once (None when declined). `CanonicalBatches` reads it a batch
of rows at a time, in bounded memory (the 5,000,000 rows of an OpportunityHistory file take 1.3 GB as
text); the proof needs every row, so whether the file was canonical is known only once the last batch has
been read, and the caller must keep what it did with the batches undoable until then.

Line numbers are physical, as in `readers.py`: row k starts on line 2 + the sum, over the rows before it,
of 1 + the line breaks inside their fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

LINE = "_line"
_BLOCK = 1 << 22
# Rows of a batch of `CanonicalBatches`.
BATCH_ROWS = 200_000


def _file_counts(path: Path) -> tuple[int, int, bool]:
    """Line feeds and double quotes in the file, and whether it holds a NUL byte."""
    newlines = quotes = 0
    nul = False
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            newlines += block.count(b"\n")
            quotes += block.count(b'"')
            nul = nul or b"\x00" in block
    return newlines, quotes, nul


def _header(path: Path) -> tuple[bytes, bytes] | None:
    """The header line and the line ending it uses (None when the file has no complete first line)."""
    with path.open("rb") as handle:
        header = handle.readline()
    if not header.endswith(b"\n"):
        return None
    return header, (b"\r\n" if header.endswith(b"\r\n") else b"\n")


def _scan_options(columns: list[str], delimiter: str) -> dict[str, Any]:
    return {"has_header": True, "infer_schema": False, "separator": delimiter, "quote_char": '"',
            "encoding": "utf8", "truncate_ragged_lines": False, "raise_if_empty": False, "new_columns": columns}


@dataclass
class _Totals:
    """What re-serialising rows would write, summed over the rows read so far."""

    rows: int = 0
    nulls: int = 0
    text: int = 0  # bytes of the cells
    quoted: int = 0  # double quotes inside cells
    breaks: int = 0  # line feeds inside cells
    cr_ended: bool = False  # a cell ending in CR

    def add(self, frame: pl.DataFrame, columns: list[str], ending: bytes) -> int:
        """Count a frame's rows in; returns the line feeds inside its cells."""
        cells = [pl.col(name) for name in columns]
        stats = frame.select(
            nulls=pl.sum_horizontal(cell.null_count() for cell in cells),
            text=pl.sum_horizontal(cell.str.len_bytes().cast(pl.Int64).sum() for cell in cells),
            quoted=pl.sum_horizontal(cell.str.count_matches('"', literal=True).cast(pl.Int64).sum() for cell in cells),
            breaks=pl.sum_horizontal(cell.str.count_matches("\n", literal=True).cast(pl.Int64).sum() for cell in cells),
        ).row(0, named=True)
        self.rows += frame.height
        self.nulls += int(stats["nulls"] or 0)
        self.text += int(stats["text"] or 0)
        self.quoted += int(stats["quoted"] or 0)
        self.breaks += int(stats["breaks"] or 0)
        if ending == b"\r\n" and frame.height and not self.cr_ended:
            self.cr_ended = bool(frame.select(pl.any_horizontal(cell.str.ends_with("\r") for cell in cells).any())
                                 .item())
        return int(stats["breaks"] or 0)

    def prove(self, path: Path, header: bytes, ending: bytes, columns: list[str], delimiter: str) -> bool:
        """Whether the rows counted are exactly the file, re-serialised with every field quoted."""
        newlines, quotes, nul = _file_counts(path)
        if nul or self.nulls:
            return False
        size = path.stat().st_size
        if self.rows == 0:
            return size == len(header)
        # A row re-serialised is `"` + its cells (each `"` doubled) joined by `"<delimiter>"` + `"`, so its
        # size is the cells' bytes, their quotes once more and the fixed framing.
        framing = 2 + (len(columns) - 1) * (2 + len(delimiter.encode("utf-8")))
        expected_size = len(header) + self.text + self.quoted + self.rows * (framing + len(ending))
        expected_lines = 1 + self.breaks + self.rows
        whole = size == expected_size and newlines == expected_lines
        # The last row may lack its line ending.
        unended = size == expected_size - len(ending) and newlines == expected_lines - 1
        expected_quotes = header.count(b'"') + 2 * self.quoted + 2 * len(columns) * self.rows
        # A field ending in CR next to a CRLF line end is ambiguous: left to the line reader.
        return quotes == expected_quotes and (whole or unended) and not self.cr_ended


def _with_lines(frame: pl.DataFrame, columns: list[str], first: int, breaks: int) -> pl.DataFrame:
    """The frame with `_line`, its first row starting on line `first`."""
    if not breaks:
        return frame.with_columns(pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(LINE))
    inside = pl.sum_horizontal(pl.col(name).str.count_matches("\n", literal=True) for name in columns)
    span = (inside + 1).cast(pl.Int64)
    return frame.with_columns((span.cum_sum() - span + first).alias(LINE))


def _string_columns(frame: pl.DataFrame, columns: list[str]) -> bool:
    return frame.columns == columns and all(dtype == pl.String for dtype in frame.dtypes)


def read_canonical_csv(path: Path, columns: list[str], delimiter: str) -> pl.DataFrame | None:
    """Every row as String columns named `columns` plus `_line`, or None when the file is not canonical."""
    start = _header(path)
    if start is None:
        return None
    header, ending = start
    try:
        frame = pl.read_csv(path, **_scan_options(columns, delimiter))
    except (pl.exceptions.PolarsError, ValueError, OSError):
        return None
    if not _string_columns(frame, columns):
        return None
    totals = _Totals()
    breaks = totals.add(frame, columns, ending)
    if not totals.prove(path, header, ending, columns, delimiter):
        return None
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, pl.Int64).alias(LINE))
    return _with_lines(frame, columns, 2, breaks)


class CanonicalBatches:
    """The rows of a file a batch at a time (String columns named `columns` plus `_line`), read by Polars.

    Iterating stops early (with `canonical` False) as soon as the file shows it is not canonical; after the
    last batch `canonical` says whether every batch given was exactly what the line reader reads. Until
    then it is None, and what was done with the batches must be undoable.
    """

    def __init__(self, path: Path, columns: list[str], delimiter: str, *, rows: int = BATCH_ROWS) -> None:
        self.path = path
        self.columns = columns
        self.delimiter = delimiter
        self.rows = rows
        self.canonical: bool | None = None

    def __iter__(self) -> Iterator[pl.DataFrame]:
        start = _header(self.path)
        if start is None:
            self.canonical = False
            return
        header, ending = start
        totals = _Totals()
        line = 2
        scan = pl.scan_csv(self.path, **_scan_options(self.columns, self.delimiter))
        try:
            for frame in scan.collect_batches(chunk_size=self.rows, maintain_order=True):
                if not _string_columns(frame, self.columns):
                    self.canonical = False
                    return
                before = totals.nulls
                breaks = totals.add(frame, self.columns, ending)
                if totals.nulls > before or totals.cr_ended:
                    self.canonical = False
                    return
                if frame.height:
                    yield _with_lines(frame, self.columns, line, breaks)
                line += frame.height + breaks
        except (pl.exceptions.PolarsError, ValueError, OSError):
            self.canonical = False
            return
        self.canonical = totals.prove(self.path, header, ending, self.columns, self.delimiter)
