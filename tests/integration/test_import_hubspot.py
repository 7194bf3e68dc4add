"""`closewise import hubspot` on HubSpot-shaped deal and contact exports (tests/fixtures/hubspot).

deals.csv is a two-pipeline org ("Sales Pipeline", "Renewals") with label headers, every field quoted, a
name holding a comma and quotes, a next step holding a newline (so record 101 spans lines 2-3 and every
later record sits one line lower than its position), `Date entered` / `Date exited` columns, and two bad
rows: 105 (line 9, Close Date 2024-13-45) and 106 (line 10, Amount "12,3x4"). contacts.csv is an
unquoted contacts export with M/D/YYYY H:MM dates and one bad row: 506 (line 7, 31/31/2025).
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField
from closewise.ingest.hubspot_deals import history_columns
from tests.cli_runner import Result, run_cli

Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"

# Every non-empty Date entered cell of the five good deals is a snapshot; consecutive snapshots that differ
# give one change row. Record 101 entered Appointment Scheduled 01-05, Qualified To Buy 01-20 (the same
# time it exited Appointment Scheduled), Contract Sent 02-10: two stage changes. 102 went AS -> QTB -> CS
# -> Closed Won: two stage changes and open -> won (its stage stays contract_sent). 103 went AS -> Closed
# Lost: open -> lost only. 201 went Renewal Due -> Renewal Negotiation: one stage change. 202 went RD -> RN
# -> Closed Won: one stage change and open -> won. 104 has a single entry: nothing changed. Nine in all.
EXPECTED_CHANGES = {
    ("101", "stage", "appointment_scheduled", "qualified_to_buy", "2024-01-20 10:30"),
    ("101", "stage", "qualified_to_buy", "contract_sent", "2024-02-10 16:45"),
    ("102", "stage", "appointment_scheduled", "qualified_to_buy", "2024-02-15 12:00"),
    ("102", "stage", "qualified_to_buy", "contract_sent", "2024-03-01 09:15"),
    ("102", "status", "open", "won", "2024-03-20 17:00"),
    ("103", "status", "open", "lost", "2024-04-02 11:00"),
    ("201", "stage", "renewal_due", "renewal_negotiation", "2024-06-10 14:00"),
    ("202", "stage", "renewal_due", "renewal_negotiation", "2024-04-15 09:00"),
    ("202", "status", "open", "won", "2024-05-30 15:30"),
}


def _import(capsys: Cap, monkeypatch: Mp, database_url: str, path: Path, errors: Path) -> Result:
    return run_cli(capsys, monkeypatch, "--db", database_url, "import", "hubspot", str(path), "--json",
                   "--errors-dir", str(errors))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _changes(database_url: str) -> set[tuple[str, str, str, str, str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            o, c = tables.opportunities, tables.opportunity_changes
            rows = connection.execute(
                sa.select(o.c.external_id, c.c.field, c.c.old_value, c.c.new_value, c.c.changed_at)
                .join(o, o.c.id == c.c.opportunity_id)
            ).all()
    finally:
        engine.dispose()
    found = {(r[0], r[1], r[2], r[3], _utc(r[4]).strftime("%Y-%m-%d %H:%M")) for r in rows}
    assert len(found) == len(rows), "a change row was written twice"
    return found


def _rows(database_url: str, table: sa.Table) -> dict[str, dict[str, Any]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return {row["external_id"]: dict(row) for row in connection.execute(sa.select(table)).mappings()}
    finally:
        engine.dispose()


@pytest.fixture
def db(database_url: str, capsys: Cap, monkeypatch: Mp) -> str:
    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    return database_url


def test_folder_import_loads_deals_history_and_leads(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    result = _import(capsys, monkeypatch, db, FIXTURES, tmp_path / "errors")
    assert result.code == 0, result.stderr
    report = result.json()
    assert {k: report["opportunities"][k] for k in ("read", "inserted", "rejected")} == \
        {"read": 8, "inserted": 6, "rejected": 2}
    assert {k: report["leads"][k] for k in ("read", "inserted", "rejected")} == \
        {"read": 6, "inserted": 5, "rejected": 1}
    assert report["opportunity_changes"]["inserted"] == len(EXPECTED_CHANGES)
    assert _changes(db) == EXPECTED_CHANGES
    assert "MM/DD/YYYY HH:MM" in result.stderr  # the contacts' date format, inferred and reported

    deals = _rows(db, tables.opportunities)
    assert set(deals) == {"101", "102", "103", "104", "201", "202"}
    assert deals["102"]["name"] == 'Umbrella Corp, "Phase 2"'
    assert deals["102"]["amount"] == 25500.5
    assert deals["101"]["next_step"] == "Send redlines\nthen call legal"
    # Closed deals: the status from the closing stage label, the stage the last open one, closed when entered.
    assert (deals["102"]["status"], deals["102"]["stage"]) == ("won", "contract_sent")
    assert _utc(deals["102"]["closed_at"]) == datetime(2024, 3, 20, 17, 0, tzinfo=UTC)
    assert (deals["103"]["status"], deals["103"]["stage"]) == ("lost", "appointment_scheduled")
    assert (deals["202"]["status"], deals["202"]["pipeline"]) == ("won", "Renewals")
    assert deals["101"]["status"] == "open" and deals["101"]["closed_at"] is None
    # Deal probability 0.9 is a fraction: stored as percent. Forecast category labels map onto ours.
    assert deals["101"]["probability"] == pytest.approx(90.0)
    assert [deals[k]["forecast_category"] for k in ("101", "102", "103", "201")] == \
        ["commit", "closed", "omitted", "best_case"]
    assert deals["101"]["custom"] == {"Region": "EMEA"}

    leads = _rows(db, tables.leads)
    assert {k: v["status"] for k, v in leads.items()} == {
        "501": "new", "502": "accepted", "503": "rejected", "504": "recycled", "505": "converted"}
    assert leads["504"]["recycle_reason"] == "timing"
    assert leads["501"]["name"] == "Ada Lovelace"
    # 503 became a lead two days after the contact was created: the lead clock starts then.
    assert _utc(leads["503"]["created_at"]) == datetime(2025, 2, 3, 8, 30, tzinfo=UTC)
    assert _utc(leads["502"]["created_at"]) == datetime(2025, 3, 14, 9, 5, tzinfo=UTC)


def test_bad_rows_are_reported_with_their_lines(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    report = _import(capsys, monkeypatch, db, FIXTURES, tmp_path / "errors").json()
    with open(report["opportunities"]["errors_file"], encoding="utf-8") as handle:
        deal_errors = [(row["line"], row["column"]) for row in csv.DictReader(handle)]
    assert deal_errors == [("9", "Close Date"), ("10", "Amount")]
    with open(report["leads"]["errors_file"], encoding="utf-8") as handle:
        lead_errors = [(row["line"], row["value"]) for row in csv.DictReader(handle)]
    assert lead_errors == [("7", "31/31/2025 10:00")]
    assert report["opportunity_changes"]["errors_file"] is None  # a rejected deal's history is not reported again


def test_reimport_changes_nothing(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    _import(capsys, monkeypatch, db, FIXTURES, tmp_path / "errors")
    before = _changes(db)
    again = _import(capsys, monkeypatch, db, FIXTURES, tmp_path / "errors").json()
    assert again["opportunities"]["unchanged"] == 6
    assert again["leads"]["unchanged"] == 5
    for entity in ("opportunities", "leads"):
        assert again[entity]["inserted"] == again[entity]["updated"] == 0
    assert again["opportunity_changes"]["inserted"] == 0
    assert _changes(db) == before


def _move_104_to_qualified(source: Path, target: Path) -> None:
    """A newer export: deal 104 entered Qualified To Buy on 2024-07-01 10:00 (and left Appointment Scheduled)."""
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row in rows[1:]:
        if row[0] == "104":
            row[header.index("Deal Stage")] = "Qualified To Buy"
            row[header.index("Deal probability")] = "0.4"
            row[header.index("Last Modified Date")] = "2024-07-01 10:00"
            row[header.index('Date exited "Appointment Scheduled (Sales Pipeline)"')] = "2024-07-01 10:00"
            row[header.index('Date entered "Qualified To Buy (Sales Pipeline)"')] = "2024-07-01 10:00"
    with target.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)


def test_newer_export_adds_exactly_the_new_changes(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    _import(capsys, monkeypatch, db, FIXTURES / "deals.csv", tmp_path / "errors")
    before = _changes(db)
    newer = tmp_path / "deals-newer.csv"
    _move_104_to_qualified(FIXTURES / "deals.csv", newer)
    report = _import(capsys, monkeypatch, db, newer, tmp_path / "errors").json()
    # 104 changed stage and probability (one updated deal); the stage change comes from its new Date entered
    # cell, so the history adds one row and the row-level comparison none (probability is not history here,
    # so its change is logged at the deal's Last Modified Date).
    assert (report["opportunities"]["updated"], report["opportunities"]["unchanged"]) == (1, 5)
    added = _changes(db) - before
    assert added == {
        ("104", "stage", "appointment_scheduled", "qualified_to_buy", "2024-07-01 10:00"),
        ("104", "probability", encode(ChangeField.PROBABILITY, 20.0), encode(ChangeField.PROBABILITY, 40.0),
         "2024-07-01 10:00"),
    }
    assert _changes(db) >= before
    assert _rows(db, tables.opportunities)["104"]["stage"] == "qualified_to_buy"


def test_zip_and_single_file(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    archive = tmp_path / "hubspot-export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("deals.csv", "contacts.csv"):
            zipped.write(FIXTURES / name, f"export/{name}")
    from_zip = _import(capsys, monkeypatch, db, archive, tmp_path / "errors").json()
    assert from_zip["opportunities"]["inserted"] == 6 and from_zip["leads"]["inserted"] == 5
    single = tmp_path / "contacts-only.csv"
    shutil.copy(FIXTURES / "contacts.csv", single)
    again = _import(capsys, monkeypatch, db, single, tmp_path / "errors").json()
    assert set(again) == {"leads"} and again["leads"]["unchanged"] == 5


def test_a_file_that_is_no_hubspot_export_is_refused(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    result = _import(capsys, monkeypatch, db, other, tmp_path / "errors")
    assert result.code == 1 and result.stdout == ""
    assert "no HubSpot deal or contact export" in result.stderr


def test_history_headers_in_both_quote_styles() -> None:
    columns = history_columns([
        'Date entered "Appointment Scheduled (Sales Pipeline)"',
        "Date entered 'Closed Won (Sales Pipeline)'",
        'Date exited "Demo (done) (Partner Pipeline)"',
        'Time in "Appointment Scheduled (Sales Pipeline)"',
        "Deal Name",
    ])
    assert [(c.label, c.pipeline, c.entered) for c in columns] == [
        ("Appointment Scheduled", "Sales Pipeline", True),
        ("Closed Won", "Sales Pipeline", True),
        ("Demo (done)", "Partner Pipeline", False),
    ]


def test_two_exports_in_one_folder_are_refused(db: str, tmp_path: Path, capsys: Cap, monkeypatch: Mp) -> None:
    both = tmp_path / "both"
    for week in ("week1", "week2"):
        (both / week).mkdir(parents=True)
        shutil.copy(FIXTURES / "deals.csv", both / week / "deals.csv")
    result = _import(capsys, monkeypatch, db, both, tmp_path / "errors")
    assert result.code == 1 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "week1/deals.csv and week2/deals.csv are the same export file found twice" in message
    assert _rows(db, tables.opportunities) == {}
