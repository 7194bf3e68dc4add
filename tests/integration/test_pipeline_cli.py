"""`closewise pipeline` and `closewise waterfall` on the demo org (seed 7, today 2026-11-22), through the CLI,
on SQLite or PostgreSQL (CLOSEWISE_TEST_DATABASE_URL).

The demo org is built once for the module. The checks are the contract's: the JSON shape, the flows adding
up from the start to the end value, and those values being the `pipeline` command's totals at the same
instants (the end: `--as-of TO`; the start: just before `--from`, i.e. `--as-of` the day before).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.services.demo import build_demo
from tests.cli_runner import Result, run_cli

TODAY = date(2026, 11, 22)
FLOWS = ["created", "increased", "decreased", "won", "lost", "no_decision", "pulled_in", "pushed_out"]
SIGN = {"created": 1, "increased": 1, "decreased": -1, "won": -1, "lost": -1, "no_decision": -1, "pulled_in": 1,
        "pushed_out": -1}
WINDOWS = [
    ("2026-10-01", "2026-11-21", None),  # the current quarter so far
    ("2026-10-01", "2026-11-21", "2026-Q4"),
    ("2026-07-01", "2026-09-30", "2026-Q3"),  # a whole past quarter, for its own deals
    ("2026-08-15", "2026-11-21", "2026-Q4"),  # starts before the period
    ("2025-11-22", "2026-11-21", None),  # a year, across dated EUR/GBP rates
    ("2026-01-01", "2026-06-30", "2026"),  # a fiscal year
    ("2026-11-02", "2026-11-10", "2026-11"),  # a month
]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo org in a database of its own for the module: a SQLite file, or a fresh PostgreSQL database."""
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    if not server:
        url = f"sqlite:///{tmp_path_factory.mktemp('pipeline') / 'demo.db'}"
        engine = make_engine(url)
        upgrade(engine)
        build_demo(engine, seed=7, today=TODAY)
        engine.dispose()
        yield url
        return
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        upgrade(engine)
        build_demo(engine, seed=7, today=TODAY)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: str, *args: str) -> Result:
    return run_cli(capsys, monkeypatch, "--db", db, *args)


def _day_before(text: str) -> str:
    return (date.fromisoformat(text) - timedelta(days=1)).isoformat()


@pytest.mark.parametrize(("start", "end", "period"), WINDOWS)
def test_waterfall_adds_up_and_meets_the_pipeline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_db: str, start: str, end: str,
    period: str | None,
) -> None:
    scope = ["--period", period] if period else []
    result = cli(capsys, monkeypatch, demo_db, "waterfall", "--from", start, "--to", end, *scope, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert set(document) == {"from", "to", "period", "currency", "start_value", "end_value", "flows",
                             "deal_counts"}
    assert list(document["flows"]) == FLOWS
    assert all(isinstance(value, float) and value >= 0 for value in document["flows"].values())
    assert document["currency"] == "USD"
    assert document["from"] == f"{start}T00:00:00+00:00"
    assert document["to"] == f"{end}T23:59:59.999999+00:00"

    moved = sum(SIGN[name] * value for name, value in document["flows"].items())
    assert document["start_value"] + moved == pytest.approx(document["end_value"], rel=1e-9, abs=1e-6)
    if period is None:
        assert document["period"] is None
        assert document["flows"]["pulled_in"] == document["flows"]["pushed_out"] == 0.0
    else:
        assert document["period"]["label"] == period
    assert document["flows"]["created"] > 0 and document["flows"]["lost"] > 0  # the demo sells all year

    for as_of, value in ((end, document["end_value"]), (_day_before(start), document["start_value"])):
        shown = cli(capsys, monkeypatch, demo_db, "pipeline", "--as-of", as_of, *scope, "--json")
        assert shown.code == 0, shown.stderr
        assert shown.json()["total"] == pytest.approx(value, rel=1e-12)


def test_the_deal_detail_makes_up_the_flows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_db: str
) -> None:
    result = cli(capsys, monkeypatch, demo_db, "waterfall", "--from", "2026-08-15", "--to", "2026-11-21",
                 "--period", "2026-Q4", "--deals", "--json")
    document = result.json()
    for name in FLOWS:
        rows = [row for row in document["deals"] if row["flow"] == name]
        assert sum(row["value"] for row in rows) == pytest.approx(document["flows"][name])
        assert len(rows) == document["deal_counts"][name]
    assert {"id", "external_id", "name", "flow", "value", "owner_id", "stage", "status"} <= set(document["deals"][0])
    assert all(row["name"] for row in document["deals"])
    assert document["flows"]["pulled_in"] > 0 and document["flows"]["pushed_out"] > 0  # the demo moves dates


@pytest.mark.parametrize("by", ["stage", "owner", "team", "segment", "period"])
def test_pipeline_groups_add_up_to_the_total(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_db: str, by: str
) -> None:
    result = cli(capsys, monkeypatch, demo_db, "pipeline", "--as-of", "2026-11-21", "--by", by, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["by"] == by and document["currency"] == "USD"
    assert document["as_of"] == "2026-11-21T23:59:59.999999+00:00"
    groups = document["groups"]
    assert set(groups[0]) == {"key", "label", "count", "total", "weighted"}
    assert sum(g["count"] for g in groups) == document["count"] > 0
    assert sum(g["total"] for g in groups) == pytest.approx(document["total"])
    assert sum(g["weighted"] for g in groups) == pytest.approx(document["weighted"])
    assert 0 < document["weighted"] < document["total"]
    if by == "stage":
        assert [g["key"] for g in groups] == ["prospecting", "qualification", "discovery", "solution", "proposal",
                                              "negotiation"]
    if by == "period":
        assert [g["key"] for g in groups] == sorted(g["key"] for g in groups)


def test_tables_without_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_db: str) -> None:
    shown = cli(capsys, monkeypatch, demo_db, "waterfall", "--from", "2026-10-01", "--to", "2026-11-21",
                "--period", "2026-Q4")
    assert shown.code == 0, shown.stderr
    for label in ("Start pipeline", "Created", "Pulled in", "Pushed out", "No decision", "End pipeline"):
        assert label in shown.stdout
    table = cli(capsys, monkeypatch, demo_db, "pipeline", "--as-of", "2026-11-21", "--by", "team")
    assert table.code == 0 and "Total" in table.stdout and "East" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["waterfall", "--from", "2026-11-21", "--to", "2026-11-21"], "must be before"),
        (["waterfall", "--from", "2026-11-21", "--to", "2026-10-01"], "must be before"),
        (["waterfall", "--from", "2026-02-30", "--to", "2026-10-01"], "--from '2026-02-30' is not a date"),
        (["waterfall", "--from", "2026-01-01", "--to", "soon"], "--to 'soon' is not a date"),
        (["waterfall", "--from", "2026-01-01", "--to", "2026-03-01", "--period", "2026-Q5"], "period '2026-Q5'"),
        (["pipeline", "--by", "region"], "--by 'region' is not one of"),
        (["pipeline", "--as-of", "yesterday"], "--as-of 'yesterday'"),
        (["pipeline", "--by", "period", "--period-type", "week"], "--period-type 'week'"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_db: str, args: list[str], message: str
) -> None:
    result = cli(capsys, monkeypatch, demo_db, *args)
    assert result.code != 0
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
