"""Stream the rows of a CSV or XLSX file, each with the line number where it starts.

CRM exports arrive as they really are: Salesforce Data Exports in Windows-1252 or UTF-8 (with or without a
BOM) with every field quoted, Excel-saved CSVs with nothing quoted, European files separated by `;`, tab
files, and XLSX workbooks. `open_table` hides those differences and yields, in file order, a `SourceRow`
for every record it can read and a `BadRow` (line, reason, raw text) for every one it cannot, so an
importer loads the good rows and reports the others. Iterating never raises on bad content.

CSV reading is one pass over the bytes with constant memory:

- Lines are split on `\\n` and decoded one at a time: as UTF-8, or, for a line that is not valid UTF-8, as
  Windows-1252 (its five undefined bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D read as in Latin-1, so no byte is
  ever rejected). `TableReader.encoding` is `"utf-8"`, `"utf-8-sig"` (a BOM) or `"windows-1252"`: it is
  known from the first 64 KiB when opening and corrected during iteration if a later line needed the
  fallback, so it is final once iteration ends.
- The delimiter is chosen among `,` `;` tab `|` from the first 64 KiB: quoted text is removed, then the
  candidate occurring on the header line and the same number of times on the following lines wins.
- The records are parsed by the `csv` module (standard quoting: double quotes, doubled to escape, in
  strict mode so a stray character after a closing quote or an unterminated quote at the end of the file
  is reported instead of guessed at). Line numbers are physical (the header is line 1) and stay right
  when quoted fields hold newlines. Empty lines are skipped.

XLSX reading goes through openpyxl in read-only mode; cells become the text a CSV export would hold
(see `cell_text`) and line numbers are spreadsheet row numbers.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple, Self

from closewise.errors import InvalidInput

__all__ = [
    "BadRow",
    "SourceRow",
    "TableReader",
    "TableRow",
    "decode_windows_1252",
    "header_names",
    "open_table",
    "sniff_delimiter",
]

SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})

# Windows-1252 for the bytes 0x80-0x9F, applied after a Latin-1 decode (which agrees with Windows-1252
# everywhere else). The five bytes Windows-1252 leaves undefined keep their Latin-1 meaning.
_CP1252_FIXUP = {byte: (bytes([byte]).decode("cp1252", errors="ignore") or chr(byte)) for byte in range(0x80, 0xA0)}
_CP1252_TABLE = str.maketrans(_CP1252_FIXUP)

_QUOTED = re.compile(r'"[^"]*"')


class SourceRow(NamedTuple):
    """A record read whole: `values` maps every header column to its raw text ('' when empty)."""

    line: int
    values: dict[str, str]


class BadRow(NamedTuple):
    """A record that cannot be read: where it starts, why, and its text as found (line ends removed)."""

    line: int
    reason: str
    raw: str


TableRow = SourceRow | BadRow


def decode_windows_1252(data: bytes) -> str:
    """Decode Windows-1252 without ever failing (undefined bytes read as Latin-1)."""
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1").translate(_CP1252_TABLE)


class TableReader:
    """An open table: its header, what was detected, and its rows (iterate once).

    `encoding` and `delimiter` are None for XLSX files. Use as a context manager (or call `close`).
    """

    path: Path
    columns: list[str]
    delimiter: str | None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns = []
        self.delimiter = None
        self._iterated = False

    @property
    def encoding(self) -> str | None:
        return None

    def __iter__(self) -> Iterator[TableRow]:
        if self._iterated:
            raise RuntimeError(f"{self.path} has already been read; open it again to read it twice")
        self._iterated = True
        return self._rows()

    def _rows(self) -> Iterator[TableRow]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_table(
    path: Path | str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
) -> TableReader:
    """Open a CSV (any extension) or XLSX file for streaming.

    `encoding` and `delimiter` override the sniffing for CSV files; `sheet` names the XLSX worksheet to
    read (the first one by default). Raises `InvalidInput` when the file cannot be opened as a table at
    all (an old binary `.xls`, a damaged workbook, an unknown sheet or encoding) and `OSError` when it
    cannot be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        from closewise.ingest.xlsx import XlsxReader  # imports this module: defer to avoid a cycle

        return XlsxReader(path, sheet)
    if suffix == ".xls":
        raise InvalidInput(
            "Excel 97-2003 (.xls) files are not supported: save the file as XLSX or CSV", where=str(path)
        )
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InvalidInput(f"the delimiter must be one character other than a quote or newline, not {delimiter!r}")
    return _CsvReader(path, encoding=encoding, delimiter=delimiter)


# --- CSV ---------------------------------------------------------------------------------------------


class _CsvDialect(csv.Dialect):
    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


def _normalise_encoding(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise InvalidInput(f"unknown encoding {name!r}") from None
    return "windows-1252" if codec == "cp1252" else codec


def _ascii_compatible(codec: str) -> bool:
    return '\n,;\t|"'.encode(codec, errors="replace") == b'\n,;\t|"'


class _CsvReader(TableReader):
    def __init__(self, path: Path, *, encoding: str | None, delimiter: str | None) -> None:
        super().__init__(path)
        self._file: IO[bytes] = path.open("rb")
        try:
            sample = self._file.read(SNIFF_BYTES)
            complete = len(sample) < SNIFF_BYTES
            self._file.seek(0)
            self._requested = _normalise_encoding(encoding) if encoding else None
            self._encoding, text = self._sniff_encoding(sample, complete)
            self.delimiter = delimiter or sniff_delimiter(text, complete=complete)
            self._text: io.TextIOWrapper | None = None
            if self._requested and not _ascii_compatible(self._requested):
                self._text = io.TextIOWrapper(self._file, encoding=self._requested, errors="replace", newline="")
            self._fallback = False  # a line needed Windows-1252 (auto-detection only)
            self._bad_line: str | None = None  # why the lines of the current record are unreadable
            self._record: list[str] = []  # decoded lines of the current record, for BadRow.raw
            self._reader = csv.reader(self._lines(), _CsvDialect, delimiter=self.delimiter)
            self._consumed = 0  # physical lines read up to the end of the previous record
            self._header_error: BadRow | None = None
            self._read_header()
        except BaseException:
            self._file.close()
            raise

    @property
    def encoding(self) -> str:
        return "windows-1252" if self._fallback else self._encoding

    def close(self) -> None:
        if self._text is not None:
            self._text.close()  # and the file under it
        self._file.close()

    def _sniff_encoding(self, sample: bytes, complete: bool) -> tuple[str, str]:
        """Guess the encoding from the first bytes; return it and the sample as text (for the delimiter)."""
        if self._requested:
            if not _ascii_compatible(self._requested):
                # UTF-16 and friends: the BOM is read by the codec, the sample decoded leniently.
                return self._requested, sample.decode(self._requested, errors="replace")
            text = sample.decode(self._requested, errors="replace")
            return self._requested, text.removeprefix("\ufeff")
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            # Excel's "Unicode text" export.
            self._requested = "utf-16"
            return "utf-16", sample.decode("utf-16", errors="replace")
        bom = sample.startswith(codecs.BOM_UTF8)
        body = sample[len(codecs.BOM_UTF8) :] if bom else sample
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(body, final=complete)
        except UnicodeDecodeError:
            return "windows-1252", decode_windows_1252(body)
        return ("utf-8-sig" if bom else "utf-8"), text

    def _lines(self) -> Iterator[str]:
        """Decoded physical lines, remembering those of the current record and anything wrong with them."""
        record = self._record
        if self._text is not None:
            for line in self._text:
                if "\x00" in line:
                    self._bad_line = "the line contains a NUL byte"
                record.append(line)
                yield line
            return
        lines = iter(self._file)
        first = next(lines, b"")
        if first.startswith(codecs.BOM_UTF8):
            first = first[len(codecs.BOM_UTF8) :]
        if self._requested:
            yield from self._lines_in(self._requested, first, lines)
            return
        for raw in _chain_one(first, lines):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = decode_windows_1252(raw)
                self._fallback = True
            if "\x00" in line:
                self._bad_line = "the line contains a NUL byte"
            record.append(line)
            yield line

    def _lines_in(self, codec: str, first: bytes, lines: Iterator[bytes]) -> Iterator[str]:
        record = self._record
        for raw in _chain_one(first, lines):
            if codec == "windows-1252":
                line = decode_windows_1252(raw)
            else:
                try:
                    line = raw.decode(codec)
                except UnicodeDecodeError as exc:
                    line = raw.decode(codec, errors="replace")
                    self._bad_line = f"byte 0x{raw[exc.start]:02X} is not valid in {codec}"
            if "\x00" in line:
                self._bad_line = "the line contains a NUL byte"
            record.append(line)
            yield line

    def _read_header(self) -> None:
        reader = self._reader
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = self._bad_line or _csv_reason(exc)
                self._header_error = self._bad(self._consumed + 1, f"cannot read the header: {reason}")
                return
            if not fields:
                self._consumed = reader.line_num
                self._record.clear()
                continue
            if self._bad_line is not None:
                self._header_error = self._bad(self._consumed + 1, f"cannot read the header: {self._bad_line}")
                return
            self.columns = header_names(fields)
            self._consumed = reader.line_num
            self._record.clear()
            return

    def _bad(self, start: int, reason: str) -> BadRow:
        """The current record (from line `start`) as a BadRow; forget its lines."""
        row = BadRow(start, reason, "".join(self._record).rstrip("\r\n"))
        self._record.clear()
        self._bad_line = None
        return row

    def _rows(self) -> Iterator[TableRow]:
        if self._header_error is not None:
            yield self._header_error
            return
        if not self.columns:
            return
        reader = self._reader
        record = self._record
        columns = self.columns
        width = len(columns)
        make = tuple.__new__  # SourceRow(...) without the Python-level __new__ of named tuples
        consumed = self._consumed  # physical lines read up to the end of the previous record
        while True:
            try:
                # The hot loop: one C-level parse, one dict, one tuple per record.
                for fields in reader:
                    if len(fields) == width and self._bad_line is None:
                        yield make(SourceRow, (consumed + 1, dict(zip(columns, fields, strict=False))))
                    elif self._bad_line is not None:
                        yield self._bad(consumed + 1, self._bad_line)
                    elif fields:  # [] is an empty line
                        yield self._bad(consumed + 1, f"expected {width} fields, found {len(fields)}")
                    consumed = reader.line_num
                    record.clear()
                return
            except csv.Error as exc:
                yield self._bad(consumed + 1, self._bad_line or _csv_reason(exc))
                consumed = reader.line_num


def _chain_one(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _csv_reason(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return "unterminated quoted field at the end of the file"
    if "expected after" in message:
        return "unexpected character after a closing quote"
    if "field larger than field limit" in message:
        return f"a field is longer than {csv.field_size_limit():,} characters (unterminated quote?)"
    if "new-line character seen in unquoted field" in message:
        return "a carriage return inside an unquoted field"
    return message


def header_names(fields: list[str]) -> list[str]:
    """Clean header cells: BOM and surrounding whitespace removed, blanks named `column_N` (1-based),
    repeated names suffixed `.1`, `.2`... (as pandas does) so every column keeps its values."""
    names: list[str] = []
    seen: set[str] = set()
    for position, field in enumerate(fields, start=1):
        name = field.replace("\ufeff", "").strip() or f"column_{position}"
        base, count = name, 0
        while name in seen:
            count += 1
            name = f"{base}.{count}"
        seen.add(name)
        names.append(name)
    return names


def sniff_delimiter(text: str, *, complete: bool = False) -> str:
    """Choose the delimiter of a CSV sample among `,` `;` tab `|` (`,` when nothing fits).

    Quoted text is removed, then records are compared: the winner occurs on the header line and the same
    number of times on most of the following ones; among equals, the most frequent on the header, then the
    earlier in `DELIMITERS`. `complete` says the sample is the whole file (so its last line is whole).
    """
    unquoted = _QUOTED.sub("", text)
    lines = unquoted.split("\n")
    if not complete and len(lines) > 1:
        lines.pop()  # cut by the sample size
    records = [line for line in (raw.strip("\r") for raw in lines) if line][:100]
    if not records:
        return ","
    best: tuple[float, int, int] | None = None
    chosen = ","
    for rank, candidate in enumerate(DELIMITERS):
        on_header = records[0].count(candidate)
        if on_header == 0:
            continue
        rest = records[1:]
        agreement = sum(line.count(candidate) == on_header for line in rest) / len(rest) if rest else 1.0
        score = (round(agreement, 1), on_header, -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen
