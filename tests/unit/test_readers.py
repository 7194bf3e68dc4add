"""The streaming table reader: encodings, delimiters, quoting, line numbers, bad records, XLSX, hostile input."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closewise.errors import InvalidInput
from closewise.ingest.readers import BadRow, SourceRow, TableRow, open_table, sniff_delimiter
from closewise.ingest.xlsx import cell_text


def read(path: Path, **options: str) -> tuple[list[str], str | None, str | None, list[TableRow]]:
    with open_table(path, **options) as table:
        rows = list(table)
        return table.columns, table.encoding, table.delimiter, rows


def write(tmp_path: Path, data: bytes, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_salesforce_data_export_every_field_quoted_utf8_with_bom(tmp_path: Path) -> None:
    data = '\ufeff"Id","Name","Amount","IsWon"\r\n"006A","Négociation, phase 2","1200.5","0"\r\n"006B","","","1"\r\n'
    columns, encoding, delimiter, rows = read(write(tmp_path, data.encode("utf-8")))
    assert columns == ["Id", "Name", "Amount", "IsWon"]
    assert (encoding, delimiter) == ("utf-8-sig", ",")
    assert rows == [
        SourceRow(2, {"Id": "006A", "Name": "Négociation, phase 2", "Amount": "1200.5", "IsWon": "0"}),
        SourceRow(3, {"Id": "006B", "Name": "", "Amount": "", "IsWon": "1"}),
    ]


def test_windows_1252_export_reads_accents_and_euro(tmp_path: Path) -> None:
    data = '"Id","StageName","Description"\r\n"006A","Negociación","€ 5 — “quoted”"\r\n'.encode("cp1252")
    assert b"\xf3" in data and b"\x80" in data
    _, encoding, _, rows = read(write(tmp_path, data))
    assert encoding == "windows-1252"
    assert rows == [SourceRow(2, {"Id": "006A", "StageName": "Negociación", "Description": "€ 5 — “quoted”"})]


def test_bytes_undefined_in_windows_1252_read_as_latin_1(tmp_path: Path) -> None:
    # 0x81 is undefined in Windows-1252 and 0xE9 is not valid UTF-8 here: the line falls back, nothing is lost.
    _, encoding, _, rows = read(write(tmp_path, b"a,b\n\x81,caf\xe9\n"))
    assert encoding == "windows-1252"
    assert rows == [SourceRow(2, {"a": "\x81", "b": "café"})]


def test_encoding_is_corrected_when_a_late_line_needs_the_fallback(tmp_path: Path) -> None:
    body = b"Id,Name\n" + b"".join(b"%d,plain ascii name\n" % i for i in range(5000)) + b"9999,Jos\xe9\n"
    assert len(body) > 64 * 1024  # beyond the sniffed sample
    with open_table(write(tmp_path, body)) as table:
        assert table.encoding == "utf-8"
        rows = list(table)
        assert table.encoding == "windows-1252"
    assert rows[-1] == SourceRow(5002, {"Id": "9999", "Name": "José"})


def test_explicit_encoding_reports_undecodable_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,ok\n2,caf\xe9\n3,ok\n")
    _, encoding, _, rows = read(path, encoding="utf-8")
    assert encoding == "utf-8"
    assert [row.line for row in rows if isinstance(row, SourceRow)] == [2, 4]
    assert rows[1] == BadRow(3, "byte 0xE9 is not valid in utf-8", "2,caf\ufffd")
    _, encoding, _, rows = read(path, encoding="cp1252")
    assert encoding == "windows-1252"
    assert rows[1] == SourceRow(3, {"a": "2", "b": "café"})


def test_utf16_text_export_from_excel(tmp_path: Path) -> None:
    path = write(tmp_path, "Id\tName\r\n1\tZoë\r\n".encode("utf-16"))
    columns, encoding, delimiter, rows = read(path)
    assert (columns, encoding, delimiter) == (["Id", "Name"], "utf-16", "\t")
    assert rows == [SourceRow(2, {"Id": "1", "Name": "Zoë"})]


def test_excel_style_unquoted(tmp_path: Path) -> None:
    data = (
        b"Id,StageName,Amount,CloseDate,IsWon\n"
        b"006A,Qualification,15000,02/03/24,FALSE\n"
        b"006B,Closed Won,,02/23/26,TRUE\n"
    )
    _, encoding, delimiter, rows = read(write(tmp_path, data))
    assert (encoding, delimiter) == ("utf-8", ",")
    assert rows[1] == SourceRow(
        3, {"Id": "006B", "StageName": "Closed Won", "Amount": "", "CloseDate": "02/23/26", "IsWon": "TRUE"}
    )


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    # The decimal comma and a comma in a name must not make `,` win.
    lines = [["Id", "Name", "Amount"], ["1", "Smith, Jones & Co", "1.234,56"], ["2", "Acme", "7,5"]]
    data = "".join(delimiter.join(line) + "\r\n" for line in lines).encode()
    columns, _, found, rows = read(write(tmp_path, data))
    assert found == delimiter
    assert columns == ["Id", "Name", "Amount"]
    assert rows[0] == SourceRow(2, {"Id": "1", "Name": "Smith, Jones & Co", "Amount": "1.234,56"})


def test_sniffing_ignores_delimiters_inside_quotes() -> None:
    assert sniff_delimiter('"a;b;c","d;e"\n"1;2","3"\n') == ","
    assert sniff_delimiter("Name;Amount (1,000s)\nAcme;12\nGlobex;7\n") == ";"
    assert sniff_delimiter("single column\nvalue\n") == ","
    assert sniff_delimiter("") == ","


def test_explicit_delimiter_wins(tmp_path: Path) -> None:
    columns, _, delimiter, rows = read(write(tmp_path, b"a;b,c\n1;2,3\n"), delimiter=";")
    assert (columns, delimiter) == (["a", "b,c"], ";")
    assert rows == [SourceRow(2, {"a": "1", "b,c": "2,3"})]
    with pytest.raises(InvalidInput):
        open_table(tmp_path / "table.csv", delimiter="ab")


def test_quoted_newlines_keep_physical_line_numbers(tmp_path: Path) -> None:
    data = b'Id,Notes,Amount\r\n1,"first\r\nsecond\r\nthird",10\r\n\r\n2,"a ""quoted"" word",20\r\n3,"x\ny",30\r\n'
    _, _, _, rows = read(write(tmp_path, data))
    assert rows == [
        SourceRow(2, {"Id": "1", "Notes": "first\r\nsecond\r\nthird", "Amount": "10"}),
        SourceRow(6, {"Id": "2", "Notes": 'a "quoted" word', "Amount": "20"}),  # line 5 is empty
        SourceRow(7, {"Id": "3", "Notes": "x\ny", "Amount": "30"}),
    ]


def test_truncated_last_row_is_a_bad_row_with_its_line(tmp_path: Path) -> None:
    data = b'"Id","Name","Amount"\n"1","Acme","10"\n"2","Glo'
    _, _, _, rows = read(write(tmp_path, data))
    assert rows == [
        SourceRow(2, {"Id": "1", "Name": "Acme", "Amount": "10"}),
        BadRow(3, "unterminated quoted field at the end of the file", '"2","Glo'),
    ]
    _, _, _, rows = read(write(tmp_path, b"Id,Name,Amount\n1,Acme,10\n2,Glo"))
    assert rows[1] == BadRow(3, "expected 3 fields, found 2", "2,Glo")


def test_too_many_fields_nul_and_stray_quote_are_bad_rows_and_reading_goes_on(tmp_path: Path) -> None:
    data = b'Id,Name\n1,"a","b"\n2,x\x00y\n3,"ok"z\n4,fine\n'
    _, _, _, rows = read(write(tmp_path, data))
    assert rows == [
        BadRow(2, "expected 2 fields, found 3", '1,"a","b"'),
        BadRow(3, "the line contains a NUL byte", "2,x\x00y"),
        BadRow(4, "unexpected character after a closing quote", '3,"ok"z'),
        SourceRow(5, {"Id": "4", "Name": "fine"}),
    ]


def test_header_is_cleaned_and_made_unique(tmp_path: Path) -> None:
    columns, _, _, rows = read(write(tmp_path, b"\n \xef\xbb\xbfId , Name,,Name\n1,a,b,c\n"))
    assert columns == ["Id", "Name", "column_3", "Name.1"]
    assert rows == [SourceRow(3, {"Id": "1", "Name": "a", "column_3": "b", "Name.1": "c"})]


def test_empty_file_and_unreadable_header(tmp_path: Path) -> None:
    assert read(write(tmp_path, b"")) == ([], "utf-8", ",", [])
    columns, _, _, rows = read(write(tmp_path, b'"Id,Name\n1,2\n'))
    assert columns == []
    assert rows == [
        BadRow(1, "cannot read the header: unterminated quoted field at the end of the file", '"Id,Name\n1,2')
    ]


def test_a_table_is_read_once(tmp_path: Path) -> None:
    with open_table(write(tmp_path, b"a\n1\n")) as table:
        assert list(table) == [SourceRow(2, {"a": "1"})]
        with pytest.raises(RuntimeError):
            iter(table)


def test_old_excel_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="xls"):
        open_table(write(tmp_path, b"\xd0\xcf\x11\xe0", "Opportunity.xls"))
    with pytest.raises(InvalidInput, match="XLSX"):
        open_table(write(tmp_path, b"not a zip", "Opportunity.xlsx"))


# --- XLSX --------------------------------------------------------------------------------------------


def test_xlsx_round_trip(tmp_path: Path) -> None:
    from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]

    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "Notes"
    first.append(["ignored"])
    sheet = book.create_sheet("Opportunities")
    sheet.append([" Id ", "Name", "Amount", "CloseDate", "CreatedDate", "IsWon", "Probability"])
    sheet.append(["006A", "Négociation", 1200.0, date(2024, 3, 31), datetime(2024, 1, 2, 9, 30), True, 0.25])
    sheet.append([])  # an empty row is skipped, and the line numbers stay spreadsheet rows
    sheet.append(["006B", None, 15, None, None, False, None])
    sheet.append(["006C", "stray", 1, None, None, None, None, None, "note"])
    path = tmp_path / "export.xlsx"
    book.save(path)

    with open_table(path, sheet="Opportunities") as table:
        assert (table.columns[0], table.encoding, table.delimiter) == ("Id", None, None)
        rows = list(table)
    assert rows[0] == SourceRow(
        2,
        {
            "Id": "006A",
            "Name": "Négociation",
            "Amount": "1200",
            "CloseDate": "2024-03-31",
            "CreatedDate": "2024-01-02 09:30:00",
            "IsWon": "TRUE",
            "Probability": "0.25",
        },
    )
    assert rows[1] == SourceRow(
        4,
        {
            "Id": "006B",
            "Name": "",
            "Amount": "15",
            "CloseDate": "",
            "CreatedDate": "",
            "IsWon": "FALSE",
            "Probability": "",
        },
    )
    assert isinstance(rows[2], BadRow) and rows[2].line == 5 and "column 9" in rows[2].reason
    with open_table(path) as table:
        assert table.columns == ["ignored"]
    with pytest.raises(InvalidInput, match="no sheet named"):
        open_table(path, sheet="Missing")


def test_cell_text() -> None:
    assert [cell_text(v) for v in (None, "x", 3, 3.0, 2.5, 1e20, True)] == ["", "x", "3", "3", "2.5", "1e+20", "TRUE"]
    assert cell_text(datetime(2024, 3, 31, 0, 0)) == "2024-03-31"
    assert cell_text(datetime(2024, 3, 31, 12, 0, 5, 250000)) == "2024-03-31 12:00:05.250000"


# --- hostile input (Hypothesis) ----------------------------------------------------------------------

TOKENS = [b'"', b",", b";", b"\t", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xe9", b"\xef\xbb\xbf", b"a", b"1", b" "]
hostile_bytes = st.binary(max_size=400) | st.lists(st.sampled_from(TOKENS), max_size=120).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile_bytes, delimiter=st.sampled_from([None, ",", ";"]))
def test_arbitrary_bytes_never_raise(data: bytes, delimiter: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.csv"
        path.write_bytes(data)
        with open_table(path, delimiter=delimiter) as table:
            rows = list(table)
            assert table.encoding in {"utf-8", "utf-8-sig", "windows-1252", "utf-16"}
    physical_lines = data.count(b"\n") + data.count(b"\r") + 1  # \r counts too for UTF-16 text
    lines = [row.line for row in rows]
    assert lines == sorted(set(lines))
    assert all(1 <= line <= physical_lines for line in lines)
    for row in rows:
        assert isinstance(row, SourceRow | BadRow)
        if isinstance(row, SourceRow):
            assert list(row.values) == table.columns


HEADER_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ ", min_size=1, max_size=8
)
CELL = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)


Quoting = Literal[0, 1, 2, 3]
QUOTINGS: list[Quoting] = [csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 5))
    header = draw(st.lists(HEADER_NAME.map(str.strip).filter(bool), min_size=width, max_size=width, unique=True))
    rows = draw(st.lists(st.lists(CELL, min_size=width, max_size=width), max_size=8))
    return header, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=tables(),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    quoting=st.sampled_from(QUOTINGS),
    terminator=st.sampled_from(["\r\n", "\n"]),
    bom=st.booleans(),
)
def test_any_table_written_by_csv_writer_reads_back_exactly(
    table: tuple[list[str], list[list[str]]], delimiter: str, quoting: Quoting, terminator: str, bom: bool
) -> None:
    header, rows = table
    if terminator == "\n":
        # csv.writer does not quote a lone carriage return unless it is part of the line terminator.
        rows = [[cell.replace("\r", "") for cell in row] for row in rows]
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    writer.writerow(header)
    expected_lines = []
    for row in rows:
        expected_lines.append(text.getvalue().count("\n") + 1)
        writer.writerow(row)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(("\ufeff" if bom else "").encode() + text.getvalue().encode("utf-8"))
        # One column has no delimiter on the header line to sniff: name it then.
        with open_table(path, delimiter=delimiter if len(header) == 1 else None) as reader:
            assert reader.columns == header
            assert reader.delimiter == delimiter
            read_back = list(reader)
    assert read_back == [
        SourceRow(line, dict(zip(header, row, strict=True))) for line, row in zip(expected_lines, rows, strict=True)
    ]


# --- the Polars reader for canonical files (ingest/fast_reader.py) -------------------------------------

QUOTED_TOKENS = [b'"', b'""', b",", b";", b"\n", b"\r", b"\r\n", b"\x00", b"\xe9", b"\xc3\xa9", b"a", b" ", b"\n\n"]


@st.composite
def near_canonical(draw: st.DrawFn) -> bytes:
    """A header and rows written with every field quoted, then now and then damaged the ways exports are."""
    width = draw(st.integers(1, 4))
    header = [f"C{index}" for index in range(width)]
    rows = draw(st.lists(st.lists(st.lists(st.sampled_from(QUOTED_TOKENS), max_size=4).map(b"".join),
                                  min_size=width, max_size=width), max_size=6))
    ending = draw(st.sampled_from([b"\r\n", b"\n"]))

    def record(cells: list[bytes]) -> bytes:
        return b",".join(b'"' + cell.replace(b'"', b'""') + b'"' for cell in cells)

    records = [record([name.encode() for name in header]), *(record(row) for row in rows)]
    data = ending.join(records) + (ending if draw(st.booleans()) else b"")
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.sampled_from(QUOTED_TOKENS)) + data[position:]
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=near_canonical())
def test_polars_reader_reads_exactly_what_the_line_reader_reads_or_declines(data: bytes) -> None:
    from closewise.ingest.fast_reader import LINE, CanonicalBatches, read_canonical_csv

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        path.write_bytes(data)
        with open_table(path) as table:
            columns, delimiter, encoding = table.columns, table.delimiter, table.encoding
            rows = list(table)
        if not columns or delimiter is None or encoding not in ("utf-8", "utf-8-sig"):
            return
        frame = read_canonical_csv(path, columns, delimiter)
        batches = CanonicalBatches(path, columns, delimiter, rows=2)
        batched = list(batches)
    if batches.canonical:
        # Read a batch at a time (batch boundaries fall anywhere), the file gives what the line reader gives.
        assert [SourceRow(values[0], dict(zip(columns, values[1:], strict=True)))
                for frame_ in batched for values in frame_.select(LINE, *columns).iter_rows()] == rows
    assert batches.canonical is (frame is not None)
    if frame is None:
        return
    read = [SourceRow(values[0], dict(zip(columns, values[1:], strict=True)))
            for values in frame.select(LINE, *columns).iter_rows()]
    assert read == rows


def test_polars_reader_takes_a_salesforce_export_and_declines_damaged_ones(tmp_path: Path) -> None:
    from closewise.ingest.fast_reader import CanonicalBatches, read_canonical_csv

    clean = b'\xef\xbb\xbf"Id","Name"\r\n"006A","two\r\nlines"\r\n"006B",""\r\n'
    frame = read_canonical_csv(write(tmp_path, clean), ["Id", "Name"], ",")
    assert frame is not None and frame.rows() == [("006A", "two\r\nlines", 2), ("006B", "", 4)]
    batches = CanonicalBatches(write(tmp_path, clean), ["Id", "Name"], ",", rows=1)
    assert [frame.rows() for frame in batches] == [[("006A", "two\r\nlines", 2)], [("006B", "", 4)]]
    assert batches.canonical is True
    for damaged in (clean.replace(b'"006B",""', b'"006B"'), clean.replace(b"006B", b"006\xe9"),
                    clean + b"\r\n", clean.replace(b'"006B"', b"006B"), clean.replace(b"006A", b"006\x00")):
        assert read_canonical_csv(write(tmp_path, damaged), ["Id", "Name"], ",") is None
        batches = CanonicalBatches(write(tmp_path, damaged), ["Id", "Name"], ",", rows=1)
        list(batches)
        assert batches.canonical is False
