"""The fast opportunity path loads exactly what the per-row path loads: the same records (with the same
ids), the same users, accounts and stages created on the way, the same change log, the same counts and
the same errors file, on exports full of hostile cells.

The per-row path is the reference: switching `_Batch.fast` off sends every row through it. Small batch
sizes make the examples cross batch and chunk boundaries.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.ingest import fastpath
from closewise.ingest.salesforce import import_salesforce_export

HEADER = ["Id", "IsDeleted", "AccountId", "Name", "StageName", "StageSortOrder", "Amount", "Probability",
          "CloseDate", "NextStep", "IsClosed", "IsWon", "ForecastCategoryName", "CurrencyIsoCode", "OwnerId",
          "CreatedDate", "Region__c"]
HOSTILE = [
    "", " ", "  padded  ", "'=SUM(A1)", "''+x", "\u00a0nbsp\u00a0", "\x1cx\x1d", "line\nbreak", "tab\there", "é",
    "000000000000000AAA", "a,b", 'say "hi"', "1\u200b",
]
CELLS: dict[str, list[str]] = {
    "Id": ["006A", "006B", "006C", " 006D ", "006E", "'=006F", ""],
    "IsDeleted": ["0", "0", "0", "1", "", "false", "TRUE"],
    "AccountId": ["001A", "001B", "", "000000000000000AAA", "Acme Corp", "001a"],
    "Name": ["Deal", "Négociación", "=HYPERLINK(\"x\")"],
    "StageName": ["Prospecting", "Closed Won", "Closed Lost", "No Decision", "Negotiation", "negotiation", "",
                  "Stage 9"],
    "StageSortOrder": ["1", "2", "7", "", "x"],
    "Amount": ["1000", "2500.5", "-3", "$1,234.56", "12k", "1e3", "1_000", "nan", "0.125", "(5)", " 7 "],
    "Probability": ["10", "60", "100", "55%", "", "abc", "0.5"],
    "CloseDate": ["2024-03-15 00:00:00", "2024-06-30", "2024-04-01 00:00:00", "2024-02-30 00:00:00", "03/15/24",
                  "2024-13-01", "", "2024-01-01 24:00:00", "2024-01-01 23:59:60", " 2024-05-05 "],
    "NextStep": ["Call", "-1", "@mention"],
    "IsClosed": ["0", "1", "1", "true", "maybe", ""],
    "IsWon": ["0", "1", "", "yes"],
    "ForecastCategoryName": ["Pipeline", "Best Case", "Commit", "Closed", "Omitted", "", "Unknown"],
    "CurrencyIsoCode": ["USD", "EUR", "usd", "", "XYZ", "US", "€€€"],
    "OwnerId": ["005A", "005B", "rep@example.com", "", "000000000000000AAA", "Rep Name"],
    "CreatedDate": ["2024-01-10 09:00:00", "2024-01-10T09:00:00.000+0000", "2024-01-10", "2024-02-30 10:00:00", "",
                    "yesterday"],
    "Region__c": ["West", "", "=1+1"],
}
_TEMPLATE: dict[str, Path] = {}
AUTO = "<distinct id>"


def _cell(column: str) -> st.SearchStrategy[str]:
    if column == "Id":
        # Mostly distinct ids (a repeated id sends its batch to the per-row path), some hostile ones.
        return st.sampled_from([AUTO] * 12 + CELLS["Id"] + HOSTILE[:4])
    if column == "IsDeleted":
        # A value that is not yes or no makes the row hook (and so the import) fail: rarely.
        return st.sampled_from(CELLS[column] * 30 + ["maybe"])
    # Mostly usual values, so that many rows load; now and then anything at all.
    pool = st.sampled_from(CELLS[column][:3] * 150 + CELLS[column] * 2 + HOSTILE)
    anything = st.text(max_size=4)
    return st.integers(0, 29).flatmap(lambda draw: anything if draw == 0 else pool)


def _row() -> st.SearchStrategy[list[str]]:
    return st.tuples(*(_cell(column) for column in HEADER)).map(list)


def _template() -> Path:
    """A migrated database with the currencies the rows use, copied for each import."""
    if "db" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="closewise-fastpath-"))
        engine = make_engine(f"sqlite:///{folder / 'template.db'}")
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(tables.currency_rates.insert(), [
                {"currency": "EUR", "rate": 0.9}, {"currency": "USD", "rate": 1.0, "is_corporate": True},
            ])
        engine.dispose()
        _TEMPLATE["db"] = folder / "template.db"
    return _TEMPLATE["db"]


def _write_export(folder: Path, rows: list[list[str]], *, truncated: bool, encoding: str) -> None:
    folder.mkdir(parents=True)
    rows = [[f"006N{index}" if row[0] == AUTO else row[0], *row[1:]] for index, row in enumerate(rows)]
    with (folder / "Opportunity.csv").open("w", encoding=encoding, errors="replace", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([HEADER, *rows])
        if truncated:
            handle.write('"006T","0","001A","Truncated"\r\n')


def _snapshot(url: str) -> dict[str, Any]:
    """Every table an opportunity import writes; the run's own time (a default for missing dates) as NOW."""
    engine = make_engine(url)
    skip = {"updated_at", "import_run_id"}
    state: dict[str, Any] = {}
    with engine.connect() as connection:
        now = connection.execute(sa.select(tables.import_runs.c.started_at)).scalar_one()
        for table in (tables.opportunities, tables.opportunity_changes, tables.users, tables.user_external_ids,
                      tables.accounts, tables.stages):
            columns = [column for column in table.c if column.name not in skip]
            rows = (tuple("NOW" if value == now else value for value in row)
                    for row in connection.execute(sa.select(*columns)))
            state[table.name] = sorted(rows, key=repr)
    engine.dispose()
    return state


def _run(folder: Path, work: Path, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    database = work / ("fast.db" if fast else "slow.db")
    shutil.copy(_template(), database)
    url = f"sqlite:///{database}"
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(fastpath._Batch, "fast", property(lambda self: False))
        engine = make_engine(url)
        try:
            report = import_salesforce_export(engine, folder,
                                              errors_dir=work / ("errors-fast" if fast else "errors-slow"))
        except ValueError as exc:
            return {"failed": str(exc)}
        finally:
            engine.dispose()
    counts = report.entities["opportunities"].as_json()
    errors: list[list[str]] = []
    if counts.pop("errors_file"):
        with Path(report.entities["opportunities"].errors_file or "").open(encoding="utf-8") as handle:
            errors = sorted(list(csv.reader(handle))[1:])
    return {"counts": counts, "errors": errors, "notes": sorted(report.notes), **_snapshot(url)}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(fastpath, "BATCH", 7)
    monkeypatch.setattr(fastpath, "CHUNK", 20)
    yield


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row(), max_size=60), truncated=st.booleans(), cp1252=st.booleans())
def test_fast_and_per_row_paths_load_the_same(rows: list[list[str]], truncated: bool, cp1252: bool,
                                               monkeypatch: pytest.MonkeyPatch, small_batches: None) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        _write_export(work / "export", rows, truncated=truncated, encoding="cp1252" if cp1252 else "utf-8")
        slow = _run(work / "export", work, fast=False, monkeypatch=monkeypatch)
        fast = _run(work / "export", work, fast=True, monkeypatch=monkeypatch)
    assert fast == slow


def test_clean_rows_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct new ids and ordinary cells: nothing falls back to the per-row path."""
    rows = [[f"006{i:03d}", "0", f"001{i % 3}", f"Deal {i}", ["Prospecting", "Closed Won", "Closed Lost"][i % 3],
             "1", str(1000 + i), "10", "2024-03-15 00:00:00", "", "1" if i % 3 else "0", "1" if i % 3 == 1 else "0",
             "Pipeline", "USD", f"005{i % 2}", "2024-01-10 09:00:00", "West"] for i in range(30)]
    _write_export(tmp_path / "export", rows, truncated=True, encoding="utf-8")
    fallbacks: list[int] = []
    original = fastpath._Batch._per_row

    def per_row(self: fastpath._Batch, chunk: list[Any]) -> None:
        fallbacks.append(len(chunk))
        original(self, chunk)

    monkeypatch.setattr(fastpath._Batch, "_per_row", per_row)
    fast = _run(tmp_path / "export", tmp_path, fast=True, monkeypatch=monkeypatch)
    assert fallbacks == []
    assert fast["counts"]["inserted"] == 30 and fast["counts"]["rejected"] == 1
    monkeypatch.undo()
    slow = _run(tmp_path / "export", tmp_path, fast=False, monkeypatch=monkeypatch)
    assert fast == slow


def test_a_canonical_export_is_read_by_polars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export written as Salesforce writes it (UTF-8, all quoted) goes through the Polars reader; the
    Hypothesis test above then compares that reader too (its files are canonical unless cp1252 or truncated)."""
    rows = [[f"006{i:03d}", "0", "001A", f"Deal\n{i}", "Prospecting", "1", str(1000 + i), "10",
             "2024-03-15 00:00:00", 'say "hi"', "0", "0", "Pipeline", "USD", "005A", "2024-01-10 09:00:00", "West"]
            for i in range(12)]
    _write_export(tmp_path / "export", rows, truncated=False, encoding="utf-8")
    used: list[bool] = []
    original = fastpath.read_canonical_csv

    def spy(*args: Any) -> Any:
        frame = original(*args)
        used.append(frame is not None)
        return frame

    monkeypatch.setattr(fastpath, "read_canonical_csv", spy)
    fast = _run(tmp_path / "export", tmp_path, fast=True, monkeypatch=monkeypatch)
    assert used == [True]
    slow = _run(tmp_path / "export", tmp_path, fast=False, monkeypatch=monkeypatch)
    assert fast == slow and fast["counts"]["inserted"] == 12


# --- OpportunityHistory read by Polars (ingest/history_read.py) --------------------------------------------

HISTORY_HEADER = ["Id", "OpportunityId", "CreatedDate", "StageName", "Amount", "CloseDate", "Probability",
                  "ForecastCategory", "IsDeleted"]
HISTORY_CELLS: dict[str, list[str]] = {
    "Id": ["008A", "008B", ""],
    "OpportunityId": ["006A", "006B", "006C", "006Z", "", "000000000000000AAA", " 006A "],
    "CreatedDate": ["2024-01-10 09:00:00", "2024-01-12 10:00:00", "2024-02-01 00:00:00", "2024-01-10",
                    "2024-02-30 10:00:00", "", "01/15/24 3:04 PM", "2024-01-10T09:00:00.000+0000"],
    "StageName": ["Prospecting", "Negotiation", "Closed Won", "Closed Lost", "", "Stage 9"],
    "Amount": ["1000", "2500.5", "", "$1,234.56", "12k", "0.125", " 7 "],
    "CloseDate": ["2024-03-15 00:00:00", "2024-06-30", "", "2024-02-30 00:00:00", "03/15/24"],
    "Probability": ["10", "60", "", "55%", "abc"],
    "ForecastCategory": ["Pipeline", "Best Case", "Closed", "", "Unknown"],
    "IsDeleted": ["0", "0", "1", "", "false", " 1 ", "maybe"],
}


def _history_row() -> st.SearchStrategy[list[str]]:
    def cell(column: str) -> st.SearchStrategy[str]:
        pool = st.sampled_from(HISTORY_CELLS[column][:2] * 60 + HISTORY_CELLS[column] * 2 + HOSTILE)
        return st.integers(0, 29).flatmap(lambda draw: st.text(max_size=4) if draw == 0 else pool)

    return st.tuples(*(cell(column) for column in HISTORY_HEADER)).map(list)


def _history_export(folder: Path, rows: list[list[str]], *, encoding: str) -> None:
    deals = [[key, "0", "001A", f"Deal {key}", stage, "1", "1000", "10", "2024-03-15 00:00:00", "", closed, won,
              "Pipeline", "USD", "005A", "2024-01-10 09:00:00", "West"]
             for key, stage, closed, won in (("006A", "Prospecting", "0", "0"), ("006B", "Closed Won", "1", "1"),
                                             ("006C", "Closed Lost", "1", "0"), ("006D", "Negotiation", "0", "0"))]
    _write_export(folder, deals, truncated=False, encoding="utf-8")
    with (folder / "OpportunityHistory.csv").open("w", encoding=encoding, errors="replace", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([HISTORY_HEADER, *rows])


def _run_history(folder: Path, work: Path, *, polars: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from closewise.ingest import history_read

    class Declined(history_read.CanonicalBatches):
        def __iter__(self) -> Iterator[Any]:
            self.canonical = False
            return iter(())

    database = work / ("polars.db" if polars else "rows.db")
    shutil.copy(_template(), database)
    url = f"sqlite:///{database}"
    read: list[bool] = []
    original = history_read._spool_canonical

    def spy(batches: history_read.CanonicalBatches, *args: Any, **kwargs: Any) -> int | None:
        written = original(batches, *args, **kwargs)
        read.append(written is not None)
        return written

    with monkeypatch.context() as patch:
        patch.setattr(history_read, "_spool_canonical", spy)
        if not polars:
            # And the opportunities row by row too, which inserts closed deals without the history's stage hints
            # (the history step then sets their stage): the end state must not show the difference.
            patch.setattr(history_read, "CanonicalBatches", Declined)
            patch.setattr(fastpath._Batch, "fast", property(lambda self: False))
        engine = make_engine(url)
        try:
            report = import_salesforce_export(engine, folder, errors_dir=work / ("errors-p" if polars else "errors-r"))
        finally:
            engine.dispose()
    counts = report.entities["opportunity_changes"].as_json()
    errors: list[list[str]] = []
    if counts.pop("errors_file"):
        with Path(report.entities["opportunity_changes"].errors_file or "").open(encoding="utf-8") as handle:
            errors = list(csv.reader(handle))[1:]  # in line order, as written
    return {"counts": counts, "errors": errors, "notes": sorted(report.notes), "polars": read, **_snapshot(url)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_history_row(), max_size=40), cp1252=st.booleans())
def test_history_read_by_polars_loads_what_the_row_reader_loads(rows: list[list[str]], cp1252: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same change log, counts and errors file (rows in the same order), whichever reader read the history,
    and whether the closed deals were inserted with the stage the history hints at or updated afterwards."""
    monkeypatch.setattr("closewise.ingest.history_read.SPOOL_ROWS", 7)
    monkeypatch.setattr("closewise.ingest.fast_reader.BATCH_ROWS", 7)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        _history_export(work / "export", rows, encoding="cp1252" if cp1252 else "utf-8")
        by_rows = _run_history(work / "export", work, polars=False, monkeypatch=monkeypatch)
        by_polars = _run_history(work / "export", work, polars=True, monkeypatch=monkeypatch)
    assert by_rows.pop("polars") in ([], [False])
    # Read by Polars unless the file is not canonical (Windows-1252 beyond ASCII, a field ending in CR...).
    used = by_polars.pop("polars")
    assert used in ([], [True], [False])
    event(f"read by Polars: {used == [True]}, rows rejected: {bool(by_rows['errors'])}")
    assert by_polars == by_rows


def test_closed_deals_are_inserted_with_the_stage_their_history_reached(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With the history's hints no closed deal needs its stage updated afterwards; without them (the per-row
    path) the history step updates them, to the same end state."""
    from closewise.db import bulk_write
    from closewise.demo.salesforce_export import write_export

    write_export(tmp_path / "export", opportunities=300, seed=5)
    updated: list[int] = []
    original = bulk_write.update_frame

    def spy(connection: Any, *, table: Any, frame: Any) -> int:
        updated.append(frame.height)
        return int(original(connection, table=table, frame=frame))

    monkeypatch.setattr(bulk_write, "update_frame", spy)
    states = []
    for fast in (True, False):
        updated.clear()
        database = tmp_path / f"{fast}.db"
        shutil.copy(_template(), database)
        with monkeypatch.context() as patch:
            if not fast:
                patch.setattr(fastpath._Batch, "fast", property(lambda self: False))
            engine = make_engine(f"sqlite:///{database}")
            import_salesforce_export(engine, tmp_path / "export", errors_dir=tmp_path / f"errors-{fast}")
            engine.dispose()
        states.append(_snapshot(f"sqlite:///{database}"))
        # Hinted: nothing to fix. Row by row: the closed deals (inserted at the first stage) whose history went
        # further are fixed, in one update.
        if fast:
            assert updated == []
        else:
            assert len(updated) == 1 and updated[0] > 50
    assert states[0] == states[1]
