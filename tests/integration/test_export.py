"""`closewise export opportunities`: spreadsheet-safe files that re-import without loss.

A small demo org gets hostile values (formula-like text, unicode, quotes, newlines, a leading tab, text
already starting with `'=`, a negative amount, an owner known only by name); it is exported to CSV and XLSX,
each export is imported into a fresh database through the mapping written beside it, and every exported
field of every opportunity must come back equal.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]

from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.db.export import OPPORTUNITY_COLUMNS, stream_opportunities
from closewise.ingest.canonical import clean_id, converter
from closewise.ingest.fields import Kind
from closewise.services.export import inert
from tests.cli_runner import run_cli

Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch

HOSTILE: dict[str, dict[str, Any]] = {
    "DEMO-OPP-0000001": {"name": '=HYPERLINK("http://x")', "next_step": "+1", "competitor": "-2",
                         "lead_source": "@SUM(A1)"},
    "DEMO-OPP-0000002": {"name": "Zürich — 東京 ✓ \"quoted\", with comma",
                         "next_step": "line one\nline two\n\nline three", "amount": -500.0},
    "DEMO-OPP-0000003": {"next_step": "\tTabbed =1+1", "type": "'=already quoted", "amount": None},
}


@pytest.fixture
def target_url(new_database_url: Callable[[], str]) -> str:
    """A second empty database to import into."""
    return new_database_url()


def _normalised(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _exported_fields(url: str) -> dict[str, dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = [row for batch in stream_opportunities(connection, batch=50) for row in batch]
    finally:
        engine.dispose()
    named = [dict(zip(OPPORTUNITY_COLUMNS, map(_normalised, row), strict=True)) for row in rows]
    return {row["external_id"]: row for row in named}


@pytest.fixture
def demo_url(database_url: str, capsys: Cap, monkeypatch: Mp) -> str:
    built = run_cli(capsys, monkeypatch, "--db", database_url, "demo", "--no-serve", "--opportunities", "120",
                    "--today", "2025-06-30", "--json")
    assert built.code == 0, built.stderr
    engine = make_engine(database_url)
    o, u, a = tables.opportunities, tables.users, tables.accounts
    with engine.begin() as connection:
        for external_id, values in HOSTILE.items():
            connection.execute(o.update().where(o.c.external_id == external_id).values(**values))
        owner, account = connection.execute(
            sa.select(o.c.owner_id, o.c.account_id).where(o.c.external_id == "DEMO-OPP-0000004")).one()
        # An owner known only by a name that looks like a formula, and an account named like one.
        connection.execute(u.update().where(u.c.id == owner).values(email=None, name="-Rep Without Email"))
        connection.execute(a.update().where(a.c.id == account).values(name="=cmd|' /C calc'!A0"))
    engine.dispose()
    return database_url


def _copy_rates(source_url: str, target_url: str) -> None:
    """The target org knows the same currencies (amounts stay in their record currency)."""
    source, target = make_engine(source_url), make_engine(target_url)
    with source.connect() as connection:
        rates = [dict(row) for row in connection.execute(sa.select(tables.currency_rates)).mappings()]
    with target.begin() as connection:
        connection.execute(tables.currency_rates.insert(), [{k: v for k, v in r.items() if k != "id"} for r in rates])
    source.dispose()
    target.dispose()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_reimports_without_loss(
    fmt: str, demo_url: str, target_url: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp
) -> None:
    out = tmp_path / f"opportunities.{fmt}"
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "export", "opportunities", "--format", fmt,
                     "--out", str(out), "--json")
    assert result.code == 0, result.stderr
    assert result.json() == {"path": str(out), "rows": 120, "format": fmt}
    mapping = Path(f"{out}.mapping.yml")
    assert mapping.is_file()

    assert run_cli(capsys, monkeypatch, "--db", target_url, "init").code == 0
    _copy_rates(demo_url, target_url)
    imported = run_cli(capsys, monkeypatch, "--db", target_url, "import", "csv", str(out), "--mapping", str(mapping),
                       "--json", "--errors-dir", str(tmp_path / "errors"))
    assert imported.code == 0, imported.stderr
    counts = imported.json()["opportunities"]
    assert (counts["inserted"], counts["rejected"]) == (120, 0)

    original, back = _exported_fields(demo_url), _exported_fields(target_url)
    assert set(back) == set(original)
    for external_id, row in original.items():
        assert back[external_id] == row, external_id
    assert original["DEMO-OPP-0000001"]["name"] == '=HYPERLINK("http://x")'  # the hostile values made it through
    assert original["DEMO-OPP-0000003"]["type"] == "'=already quoted"


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["external_id"]: row for row in csv.DictReader(handle)}


def test_hostile_cells_are_inert_in_csv(demo_url: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    out = tmp_path / "deals.csv"
    assert run_cli(capsys, monkeypatch, "--db", demo_url, "export", "opportunities", "--out", str(out)).code == 0
    rows = _csv_rows(out)
    first = rows["DEMO-OPP-0000001"]
    assert (first["name"], first["next_step"], first["competitor"], first["lead_source"]) == (
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)")
    assert rows["DEMO-OPP-0000002"]["amount"] == "-500"  # a number is a value, never escaped
    assert rows["DEMO-OPP-0000002"]["next_step"] == "line one\nline two\n\nline three"
    assert rows["DEMO-OPP-0000003"]["next_step"] == "'\tTabbed =1+1"
    assert rows["DEMO-OPP-0000003"]["type"] == "''=already quoted"
    assert rows["DEMO-OPP-0000004"]["owner"] == "'-Rep Without Email"
    assert rows["DEMO-OPP-0000004"]["account"] == "'=cmd|' /C calc'!A0"
    every_text = [value for row in rows.values() for column, value in row.items()
                  if column not in ("amount", "probability")]
    assert not [value for value in every_text if value[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_hostile_cells_are_text_in_xlsx(demo_url: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    out = tmp_path / "deals.xlsx"  # the format follows the file name
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "export", "opportunities", "--out", str(out), "--json")
    assert result.json()["format"] == "xlsx"
    book = load_workbook(out)
    sheet = book.active
    header = [cell.value for cell in sheet[1]]
    by_id = {row[header.index("external_id")].value: row for row in sheet.iter_rows(min_row=2)}
    first = by_id["DEMO-OPP-0000001"]
    name = first[header.index("name")]
    assert (name.value, name.data_type) == ("'=HYPERLINK(\"http://x\")", "s")
    amount = by_id["DEMO-OPP-0000002"][header.index("amount")]
    assert (amount.value, amount.data_type) == (-500, "n")
    assert by_id["DEMO-OPP-0000001"][header.index("close_date")].is_date
    assert not [cell.value for row in by_id.values() for cell in row if cell.data_type == "f"]
    book.close()


def test_unknown_format_is_one_line(demo_url: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "export", "opportunities", "--format", "pdf",
                     "--out", str(tmp_path / "x.pdf"))
    assert result.code == 1 and result.stdout == ""
    assert "csv or xlsx" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pdf").exists()


_TEXTS = st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "'", "\t", "\r", "a", " ", "é"]), min_size=1)


@given(_TEXTS.filter(lambda text: text == text.strip()))
def test_inert_is_undone_exactly_by_the_importer(text: str) -> None:
    made_inert = inert(text)
    assert made_inert[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert converter(Kind.TEXT)(made_inert) == text
    assert clean_id(made_inert) == text
