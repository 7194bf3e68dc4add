"""Regressions from review: a bad IsDeleted, cent rounding of history amounts, a duplicate HubSpot deal's
history, ForecastingQuota errors naming the right column."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.domain.money import round_cents, round_cents_expr
from closewise.ingest.hubspot import _snapshots
from closewise.ingest.salesforce.presets import opportunity_frame_hook, stage_order
from tests.cli_runner import Result, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch


@pytest.fixture
def db(database_url: str, capsys: Cap, monkeypatch: Mp) -> str:
    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    return database_url


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


def _rewrite(path: Path, change: dict[str, dict[str, str]]) -> None:
    with path.open(encoding="cp1252", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row in rows[1:]:
        for column, value in change.get(row[0], {}).items():
            row[header.index(column)] = value
    with path.open("w", encoding="cp1252", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)


def _errors(counts: dict[str, object]) -> list[dict[str, str]]:
    with Path(str(counts["errors_file"])).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _export(tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(FIXTURES / "data_export", target)
    return target


def test_bad_is_deleted_rejects_that_row(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    export = _export(tmp_path)
    _rewrite(export / "Opportunity.csv", {"006B": {"IsDeleted": "maybe"}})
    counts = _import(db, export, capsys, monkeypatch, tmp_path).json()["opportunities"]
    assert counts["rejected"] == 1
    errors = _errors(counts)
    assert [(e["line"], e["column"], e["value"]) for e in errors] == [("3", "IsDeleted", "maybe")]
    loaded = {r[0] for r in _query(db, sa.select(tables.opportunities.c.external_id))}
    assert loaded == {"006A", "006C", "006D"}


def test_frame_hook_reports_bad_is_deleted() -> None:
    raw = pl.DataFrame({"IsDeleted": ["0", "maybe", "1"], "IsClosed": ["0", "0", "0"], "IsWon": ["0", "0", "0"],
                        "StageSortOrder": ["1", "2", "²"]})
    converted = pl.DataFrame({"stage": ["a", "b", "c"]})
    result = opportunity_frame_hook(raw, converted)
    assert not result.unsure
    assert result.keep.to_list() == [True, True, False]
    assert set(result.errors) == {1}
    assert result.errors[1][:2] == ("IsDeleted", "maybe")
    assert stage_order("²") is None and stage_order("3") == 3


def test_cent_rounding_is_one_rule() -> None:
    values = [79740.425, 1.005, 2.675, 0.125, None]
    frame = pl.DataFrame({"a": values}).select(round_cents_expr(pl.col("a")))
    assert frame.to_series().to_list() == [None if v is None else round_cents(v) for v in values]


def test_history_amount_with_third_decimal_writes_no_change(db: str, capsys: Cap, monkeypatch: Mp,
                                                            tmp_path: Path) -> None:
    export = _export(tmp_path)
    _rewrite(export / "Opportunity.csv", {"006A": {"Amount": "79740.425"}})
    _rewrite(export / "OpportunityHistory.csv", {key: {"Amount": "79740.425"} for key in
                                                 ("008A1", "008A2", "008A3", "008A4")})
    _import(db, export, capsys, monkeypatch, tmp_path)
    c, o = tables.opportunity_changes, tables.opportunities
    amounts = _query(db, sa.select(c.c.old_value, c.c.new_value).join(o, o.c.id == c.c.opportunity_id)
                     .where(o.c.external_id == "006A", c.c.field == "amount"))
    assert amounts == []
    stored = _query(db, sa.select(o.c.amount).where(o.c.external_id == "006A"))
    assert float(stored[0][0]) == round_cents(79740.425)  # type: ignore[arg-type]


def test_duplicate_hubspot_deal_history_is_not_merged() -> None:
    at = datetime(2024, 1, 1)
    records = [
        {"external_id": "101", "_file": "deals.csv", "_line": 2, "_history": [(at, "A")]},
        {"external_id": "101", "_file": "deals.csv", "_line": 5, "_history": [(at, "B"), (at, "C")]},
    ]
    frame = _snapshots(records, {"101": 2})
    assert frame.get_column("_line").to_list() == [2]
    assert frame.get_column("stage").to_list() == ["A"]


def test_quota_errors_name_their_column(db: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    export = _export(tmp_path)
    path = export / "ForecastingQuota.csv"
    with path.open(encoding="cp1252", newline="") as handle:
        rows = list(csv.reader(handle))
    first = rows[1]
    bad_date = [first[0] + "x", first[1], first[2], "not a date", *first[4:]]
    bad_amount = [first[0] + "y", first[1], first[2], first[3], "12k", *first[5:]]
    with path.open("a", encoding="cp1252", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([bad_date, bad_amount])
    counts = _import(db, export, capsys, monkeypatch, tmp_path).json()["quotas"]
    got = sorted((e["column"], e["value"]) for e in _errors(counts))
    assert got == [("QuotaAmount", "12k"), ("StartDate", "not a date")]
