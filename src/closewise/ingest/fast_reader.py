"""Reading a whole CSV file with Polars when that gives exactly what `readers.open_table` would.

The line-by-line reader (`readers.py`) defines what a file holds. It spends about a second per 100,000
rows in Python; Polars' reader does the same work in a fraction of that, but it is not as forgiving (or as
precise) with broken files. So Polars is used only for files written the canonical way Salesforce writes
them - UTF-8, every field quoted, one line ending throughout, no blank lines, no NUL bytes - and the file
itself proves it: re-serialising the parsed rows with every field quoted must give back exactly the file's
number of bytes, line ends and double quotes. Anything else (Windows-1252, an unquoted or ragged row, a
stray quote, a blank line...) returns None and the caller reads the file line by line.

Line numbers are physical, as in `readers.py`: row k starts on line 2 + the sum, over the rows before it,
of 1 + the line breaks inside their fields.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

LINE = "_line"
_BLOCK = 1 << 22


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


def read_canonical_csv(path: Path, columns: list[str], delimiter: str) -> pl.DataFrame | None:
    """Every row as String columns named `columns` plus `_line`, or None when the file is not canonical."""
    with path.open("rb") as handle:
        header = handle.readline()
    if not header.endswith(b"\n"):
        return None
    ending = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    try:
        frame = pl.read_csv(path, has_header=True, infer_schema=False, separator=delimiter, quote_char='"',
                            encoding="utf8", truncate_ragged_lines=False, raise_if_empty=False, new_columns=columns)
    except (pl.exceptions.PolarsError, ValueError, OSError):
        return None
    if frame.columns != columns or any(dtype != pl.String for dtype in frame.dtypes):
        return None
    newlines, quotes, nul = _file_counts(path)
    if nul:
        return None
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, pl.Int64).alias(LINE)) if path.stat().st_size == len(header) else None
    cells = [pl.col(name) for name in columns]
    # Totals over the whole frame: a row re-serialised is `"` + its cells (each `"` doubled) joined by
    # `"<delimiter>"` + `"`, so its size is the cells' bytes, their quotes once more and the fixed framing.
    stats = frame.select(
        nulls=pl.sum_horizontal(cell.null_count() for cell in cells),
        text=pl.sum_horizontal(cell.str.len_bytes().cast(pl.Int64).sum() for cell in cells),
        quoted=pl.sum_horizontal(cell.str.count_matches('"', literal=True).cast(pl.Int64).sum() for cell in cells),
        breaks=pl.sum_horizontal(cell.str.count_matches("\n", literal=True).cast(pl.Int64).sum() for cell in cells),
    ).row(0, named=True)
    rows = frame.height
    framing = 2 + (len(columns) - 1) * (2 + len(delimiter.encode("utf-8")))
    expected_size = len(header) + stats["text"] + stats["quoted"] + rows * (framing + len(ending))
    expected_lines = 1 + stats["breaks"] + rows
    size = path.stat().st_size
    whole = size == expected_size and newlines == expected_lines
    # The last row may lack its line ending.
    unended = size == expected_size - len(ending) and newlines == expected_lines - 1
    expected_quotes = header.count(b'"') + 2 * stats["quoted"] + 2 * len(columns) * rows
    if stats["nulls"] or quotes != expected_quotes or not (whole or unended):
        return None
    if ending == b"\r\n" and frame.select(pl.any_horizontal(cell.str.ends_with("\r") for cell in cells).any()).item():
        return None  # a field ending in CR next to a CRLF line end: leave the ambiguity to the reader
    if not stats["breaks"]:
        return frame.with_columns(pl.int_range(2, rows + 2, dtype=pl.Int64).alias(LINE))
    breaks = pl.sum_horizontal(cell.str.count_matches("\n", literal=True) for cell in cells)
    span = (breaks + 1).cast(pl.Int64)
    return frame.with_columns((span.cum_sum() - span + 2).alias(LINE))
