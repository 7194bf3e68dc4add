"""`closewise import salesforce` on exports written in the real layouts (see the fixture generator for the
derivation of every expected number)."""

from __future__ import annotations

import csv
import shutil
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from closewise.analytics.snapshots import build_timeline, snapshot
from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.db.frames import load_changes, load_opportunities
from tests.cli_runner import Result, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch


def _import(database_url: str, path: Path, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> Result:
    result = run_cli(capsys, monkeypatch, "--db", database_url, "import", "salesforce", str(path), "--json",
                     "--errors-dir", str(tmp_path / "errors"))
    assert result.code == 0, result.stderr
    return result


def _query(database_url: str, statement: sa.Select[tuple[object, ...]]) -> list[tuple[object, ...]]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(statement)]
    engine.dispose()
    return rows


def _count(database_url: str, table: sa.Table) -> int:
    return int(_query(database_url, sa.select(sa.func.count()).select_from(table))[0][0])  # type: ignore[call-overload]


@pytest.fixture
def db(database_url: str, capsys: Cap, monkeypatch: Mp) -> str:
    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    return database_url


def _copy_export(tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(FIXTURES / "data_export", target)
    return target


def _rewrite(path: Path, change: dict[str, dict[str, str]], append: list[list[str]] | None = None) -> None:
    """Rewrite a cp1252, every-field-quoted export file, changing cells of rows keyed by Id."""
    with path.open(encoding="cp1252", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row in rows[1:]:
        for column, value in change.get(row[0], {}).items():
            row[header.index(column)] = value
    with path.open("w", encoding="cp1252", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows + (append or []))


def test_data_export_loads_every_object(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    counts = _import(db, FIXTURES / "data_export", capsys, monkeypatch, tmp_path).json()
    assert counts["opportunities"]["inserted"] == 4
    assert counts["users"]["inserted"] == 4
    assert counts["accounts"]["inserted"] == 2
    assert counts["leads"]["inserted"] == 2
    assert counts["activities"]["inserted"] == 3  # two Tasks and one Event
    assert counts["quotas"]["inserted"] == 1
    assert counts["currency_rates"]["inserted"] == 5  # 3 static + 2 dated
    assert all(entity["rejected"] == 0 for entity in counts.values())
    # 11 change rows from OpportunityHistory and 1 owner change from OpportunityFieldHistory.
    assert _count(db, tables.opportunity_changes) == 12

    o = tables.opportunities
    rows = {r[0]: r[1:] for r in _query(db, sa.select(o.c.external_id, o.c.stage, o.c.status, o.c.currency,
                                                      o.c.forecast_category, o.c.next_step, o.c.custom))}
    # A won deal keeps the last open stage it reached (from history); the status carries the outcome.
    assert rows["006A"][:2] == ("negociacion", "won")
    assert rows["006C"][:2] == ("prospecting", "lost")
    assert rows["006B"][2] == "EUR" and rows["006B"][3] == "best_case"
    assert rows["006B"][4] == '=HYPERLINK("http://evil.test")'  # stored as text, never evaluated
    assert rows["006B"][5] == {"Region__c": "EMEA"}
    stage_names = dict(_query(db, sa.select(tables.stages.c.key, tables.stages.c.name)))
    assert stage_names["negociacion"] == "Negociación"  # Windows-1252 decoded

    u = tables.users
    people = {r[0]: r[1:] for r in _query(db, sa.select(u.c.email, u.c.name, u.c.role, u.c.manager_id, u.c.id))}
    assert people["ana@acme.test"][:2] == ("Ana Álvarez", "leader")
    assert people["ben@acme.test"][1:3] == ("manager", people["ana@acme.test"][3])
    assert people["cleo@acme.test"][1:3] == ("rep", people["ben@acme.test"][3])
    settings = dict(_query(db, sa.select(tables.org_settings.c.key, tables.org_settings.c.value)))
    assert settings["fiscal_year_start_month"] == "2"
    quota = _query(db, sa.select(tables.quotas.c.period, tables.quotas.c.amount))
    assert quota == [("2024-Q1", 100000.0)]  # fiscal Q1 of a February year starts 2024-02-01
    lead = _query(db, sa.select(tables.leads.c.status, tables.leads.c.converted_opportunity_id)
                  .where(tables.leads.c.external_id == "00QA"))
    assert lead[0][0] == "converted" and lead[0][1] is not None


def test_history_rebuilds_past_states(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    _import(db, FIXTURES / "data_export", capsys, monkeypatch, tmp_path)
    engine = make_engine(db)
    with engine.connect() as connection:
        timeline = build_timeline(load_opportunities(connection), load_changes(connection))
        query = sa.select(tables.opportunities.c.external_id, tables.opportunities.c.id)
        ids = {row[0]: row[1] for row in connection.execute(query)}
    engine.dispose()

    def state(external_id: str, at: datetime) -> dict[str, object]:
        frame = snapshot(timeline, at).filter(id=ids[external_id])
        return frame.row(0, named=True) if frame.height else {}

    early = state("006A", datetime(2024, 1, 20, tzinfo=UTC))
    assert (early["stage"], early["amount"], early["status"]) == ("prospecting", 40000.0, "open")
    middle = state("006A", datetime(2024, 3, 1, tzinfo=UTC))
    assert (middle["stage"], middle["amount"], middle["close_date"]) == ("negociacion", 50000.0, date(2024, 3, 1))
    assert state("006A", datetime(2024, 3, 16, tzinfo=UTC))["status"] == "won"
    assert state("006D", datetime(2024, 3, 31, tzinfo=UTC)) == {}  # created 2024-04-01
    owner_ids = _query(db, sa.select(tables.users.c.email, tables.users.c.id))
    by_email = dict(owner_ids)
    assert state("006D", datetime(2024, 4, 2, tzinfo=UTC))["owner_id"] == by_email["dan@acme.test"]
    assert state("006D", datetime(2024, 4, 6, tzinfo=UTC))["owner_id"] == by_email["cleo@acme.test"]


def test_reimport_changes_nothing(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    _import(db, FIXTURES / "data_export", capsys, monkeypatch, tmp_path)
    before = _count(db, tables.opportunity_changes)
    again = _import(db, FIXTURES / "data_export", capsys, monkeypatch, tmp_path).json()
    for name, entity in again.items():
        assert entity["inserted"] == entity["updated"] == entity["rejected"] == 0, name
        assert entity["unchanged"] == entity["read"], name
    assert _count(db, tables.opportunity_changes) == before
    assert _count(db, tables.users) == 4


def test_newer_export_writes_one_change_per_real_change(db: str, capsys: Cap, monkeypatch: Mp,
                                                          tmp_path: Path) -> None:
    _import(db, FIXTURES / "data_export", capsys, monkeypatch, tmp_path)
    before = _count(db, tables.opportunity_changes)
    newer = _copy_export(tmp_path)
    # 006B's amount rises (OpportunityHistory records it) and 006D's next step changes (no history for it).
    _rewrite(newer / "Opportunity.csv", {
        "006B": {"Amount": "25000", "LastModifiedDate": "2024-03-01 09:00:00"},
        "006D": {"NextStep": "Call back", "LastModifiedDate": "2024-04-20 09:00:00"},
    }, append=None)
    _rewrite(newer / "OpportunityHistory.csv", {}, append=[[
        "008B2", "006B", "005D", "2024-03-01 09:00:00", "Negociación", "25000", "15000", "2024-06-30 00:00:00",
        "60", "BestCase", "EUR", "", "0",
    ]])
    counts = _import(db, newer, capsys, monkeypatch, tmp_path).json()
    assert counts["opportunities"]["updated"] == 2 and counts["opportunities"]["unchanged"] == 2
    assert counts["opportunity_changes"]["inserted"] == 1  # the one new history row
    c, o = tables.opportunity_changes, tables.opportunities
    new_rows = _query(db, sa.select(o.c.external_id, c.c.field, c.c.old_value, c.c.new_value, c.c.changed_at)
                      .join(o, o.c.id == c.c.opportunity_id).order_by(c.c.id).offset(before))
    assert [(r[0], r[1], r[2], r[3]) for r in new_rows] == [
        ("006D", "next_step", "Send deck", "Call back"),
        ("006B", "amount", "20000.0", "25000.0"),
    ]
    # Each change is dated when it became known: the row's LastModifiedDate / the history row's time.
    assert {r[0]: r[4].replace(tzinfo=None) for r in new_rows} == {  # type: ignore[union-attr]
        "006D": datetime(2024, 4, 20, 9), "006B": datetime(2024, 3, 1, 9)}


def test_five_corrupted_rows_are_reported_and_the_rest_loads(db: str, capsys: Cap, monkeypatch: Mp,
                                                               tmp_path: Path) -> None:
    export = _copy_export(tmp_path)
    good = ["0", "001A", "Good deal", "Prospecting", "1", "1000", "10", "2024-09-30 00:00:00", "", "", "", "0", "0",
            "Pipeline", "Pipeline", "USD", "005C", "2024-04-01 08:00:00", "2024-04-01 08:00:00", ""]

    def row(identifier: str, **cells: str) -> list[str]:
        values = [identifier, *good]
        header = ["Id", "IsDeleted", "AccountId", "Name", "StageName", "StageSortOrder", "Amount", "Probability",
                  "CloseDate", "Type", "NextStep", "LeadSource", "IsClosed", "IsWon", "ForecastCategory",
                  "ForecastCategoryName", "CurrencyIsoCode", "OwnerId", "CreatedDate", "LastModifiedDate",
                  "Region__c"]
        for column, value in cells.items():
            values[header.index(column)] = value
        return values

    _rewrite(export / "Opportunity.csv", {}, append=[
        row("006E1"),                                        # line 6: good
        row("006E2", CloseDate="2024-02-30 00:00:00"),       # line 7: bad date
        row("006E3", Amount="12k"),                          # line 8: non-numeric amount
        row(""),                                             # line 9: empty Id
        row("006E5", CurrencyIsoCode="XYZ"),                 # line 10: unknown currency
        row("006E6"),                                        # line 11: good
    ])
    with (export / "Opportunity.csv").open("a", encoding="cp1252", newline="") as handle:
        handle.write('"006E7","0","001A","Truncated"\r\n')  # line 12: a truncated row
    counts = _import(db, export, capsys, monkeypatch, tmp_path).json()["opportunities"]
    assert (counts["read"], counts["inserted"], counts["rejected"]) == (11, 6, 5)
    with Path(counts["errors_file"]).open(encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert sorted((int(e["line"]), e["column"]) for e in errors) == [
        (7, "CloseDate"), (8, "Amount"), (9, "external_id"), (10, "currency"), (12, ""),
    ]
    assert all(e["reason"] for e in errors)
    loaded = {r[0] for r in _query(db, sa.select(tables.opportunities.c.external_id))}
    assert loaded == {"006A", "006B", "006C", "006D", "006E1", "006E6"}


def test_zip_export(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in (FIXTURES / "data_export").glob("*.csv"):
            handle.write(path, f"WE_00D000000000001_1/{path.name}")
    counts = _import(db, archive, capsys, monkeypatch, tmp_path).json()
    assert counts["opportunities"]["inserted"] == 4 and _count(db, tables.opportunity_changes) == 12


def test_excel_style_layout(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    counts = _import(db, FIXTURES / "excel_style", capsys, monkeypatch, tmp_path).json()
    assert counts["opportunities"]["inserted"] == 3 and counts["opportunities"]["rejected"] == 0
    # 006X2: 5 changes on 01/10 (stage, amount, close date, probability, category) + 3 on 02/28 (status,
    # probability, category); 006X3: 3 on 03/15 (status, probability, category); 006X1: none.
    assert _count(db, tables.opportunity_changes) == 11
    o = tables.opportunities
    rows = dict(_query(db, sa.select(o.c.external_id, o.c.close_date)))
    assert rows["006X1"] == date(2024, 3, 2)  # MM/DD/YY


def test_shared_sample_export(db: str, shared_data: Path, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    folder = shared_data / "salesforce_sample_export"
    if not folder.is_dir():
        pytest.skip("no salesforce_sample_export")
    first = _import(db, folder, capsys, monkeypatch, tmp_path).json()
    with (folder / "Opportunity.csv").open(encoding="utf-8-sig") as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    assert first["opportunities"]["inserted"] + first["opportunities"]["rejected"] == expected
    assert first["opportunities"]["rejected"] == 0
    again = _import(db, folder, capsys, monkeypatch, tmp_path).json()
    assert all(entity["unchanged"] == entity["read"] for entity in again.values())


def test_not_an_export(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(capsys, monkeypatch, "--db", db, "import", "salesforce", str(tmp_path / "empty"))
    assert result.code == 1 and "no Salesforce object files" in result.stderr
    result = run_cli(capsys, monkeypatch, "--db", db, "import", "salesforce", str(tmp_path / "missing"))
    assert result.code == 1 and "no such file or folder" in result.stderr


def test_two_exports_in_one_folder_are_refused(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    """The same object found twice (two weekly exports side by side) would import one of them at random."""
    both = tmp_path / "both"
    shutil.copytree(FIXTURES / "data_export", both / "week1")
    shutil.copytree(FIXTURES / "data_export", both / "week2")
    result = run_cli(capsys, monkeypatch, "--db", db, "import", "salesforce", str(both))
    assert result.code == 1 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "week1/Account.csv and week2/Account.csv are both Account files" in message
    assert _count(db, tables.opportunities) == 0
