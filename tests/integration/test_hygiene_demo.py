"""Hygiene on a real database: the dead-deal rule against later outcomes (demo org and the shared
Salesforce sample), no look-ahead, snoozes, sweep + undo, and the CLI's JSON.

Why the acceptance check reads as it does. On a past date, the open deals are split by the sweep rule (dead:
aged past the won-deal cycle or stuck in stage, and no activity for 30 days) into dead and the rest. The
outcome of each is read from the org's final change log, which holds everything that happened after that
date: won if its status became `won` within the next 90 days. If the rule finds dead weight, dead deals
must be won at most a third as often as the others. On the demo, the deals that stall (docs/demo.md:
nobody works them, and they end as no decision 2-3 cycles after entering their stage) are the dead weight
the rule must catch; live slow deals keep being worked and are not swept.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.analytics import hygiene as rules
from closewise.analytics.snapshots import build_timeline, snapshot
from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.db.hygiene import load_answers
from closewise.db.migrate import upgrade
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Conflict, NotFound
from closewise.services import hygiene as service
from closewise.services import hygiene_sweep
from closewise.services.demo import build_demo
from closewise.services.imports import import_salesforce
from closewise.services.org_data import OrgData, load_org
from tests.cli_runner import run_cli

TODAY = date(2026, 11, 22)
HORIZON = timedelta(days=90)
Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch


def _new_database(tmp_path: Path) -> Iterator[str]:
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'hygiene.db'}"
        return
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seed-7 demo org, built once for the module."""
    for url in _new_database(tmp_path_factory.mktemp("hygiene")):
        engine = make_engine(url)
        upgrade(engine)
        build_demo(engine, seed=7, today=TODAY)
        engine.dispose()
        yield url


@pytest.fixture
def demo(demo_url: str) -> Iterator[Engine]:
    engine = make_engine(demo_url)
    yield engine
    engine.dispose()


# --- the acceptance check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    as_of: datetime
    dead: int
    dead_won: int
    rest: int
    rest_won: int


def _won_within(org: OrgData, as_of: datetime) -> set[int]:
    """Deals whose status became won in (as_of, as_of + 90 days], by the final change log."""
    at = as_of.replace(tzinfo=None)
    wins = org.timeline.filter(pl.col("status") == "won", pl.col("valid_from") > at,
                               pl.col("valid_from") <= at + HORIZON)
    return set(wins["id"].to_list())


def _splits(org: OrgData, answers: pl.DataFrame, as_ofs: list[datetime]) -> list[Split]:
    splits = []
    for as_of in as_ofs:
        found = rules.findings(org.timeline, as_of=as_of, stages=org.stages, changes=org.changes,
                               activities=org.activities, answers=answers)
        dead = set(rules.dead_deals(found)["id"].to_list())
        open_ids = set(snapshot(org.timeline, as_of).filter(pl.col("status") == "open")["id"].to_list())
        won = _won_within(org, as_of)
        rest = open_ids - dead
        splits.append(Split(as_of, len(dead), len(dead & won), len(rest), len(rest & won)))
    return splits


def _month_ends(end: date, months: int) -> list[datetime]:
    """`months` dates a month apart, the last one `end` (day of month kept, at most the 28th)."""
    dates = []
    year, month = end.year, end.month
    for _ in range(months):
        dates.append(datetime(year, month, min(end.day, 28), tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(dates)


def _check(splits: list[Split], *, min_dead: int) -> None:
    report = "\n".join(f"{x.as_of:%Y-%m-%d}: dead {x.dead_won}/{x.dead} won, rest {x.rest_won}/{x.rest}"
                       for x in splits)
    for x in splits:
        if x.dead >= min_dead and x.rest_won:
            assert x.dead_won / x.dead <= (x.rest_won / x.rest) / 3, report
    dead, dead_won = sum(x.dead for x in splits), sum(x.dead_won for x in splits)
    rest, rest_won = sum(x.rest for x in splits), sum(x.rest_won for x in splits)
    assert dead >= min_dead and rest_won > 0, report
    assert dead_won / dead <= (rest_won / rest) / 3, report


def test_deals_flagged_dead_were_dead_on_the_demo(demo: Engine) -> None:
    # Every month over the last year whose 90 days of outcomes lie inside the history (the last as-of date
    # is 90 days before the demo's today): twelve dates from 2025-09-22 to 2026-08-22.
    org = load_org(demo)
    with demo.connect() as connection:
        answers = load_answers(connection)
    last = datetime.combine(TODAY - HORIZON, datetime.min.time(), tzinfo=UTC)
    splits = _splits(org, answers, _month_ends(last.date(), 12))
    assert len(splits) == 12 and all(x.as_of + HORIZON <= datetime.combine(TODAY, datetime.min.time(), UTC)
                                     for x in splits)
    # The demo plants enough stalled deals for every month to count on its own (>= 30 dead deals each).
    assert min(x.dead for x in splits) >= 30
    _check(splits, min_dead=30)


@pytest.mark.realdata
def test_deals_flagged_dead_were_dead_on_the_salesforce_sample(
    engine: Engine, shared_data: Path, tmp_path: Path
) -> None:
    folder = shared_data / "salesforce_sample_export"
    if not folder.is_dir():
        pytest.skip("no salesforce_sample_export")
    import_salesforce(engine, folder, errors_dir=tmp_path / "errors")
    org = load_org(engine)
    with engine.connect() as connection:
        answers = load_answers(connection)
    if org.opportunities.height == 0:
        pytest.skip("the sample holds no opportunities")
    first = org.opportunities["created_at"].min()
    ends = [org.opportunities["created_at"].max(), org.opportunities["closed_at"].max(),
            org.changes["changed_at"].max()]
    last = max(end for end in ends if isinstance(end, datetime))
    assert isinstance(first, datetime)
    # As-of dates every 30 days from the first creation to 90 days before the last thing that happened.
    as_ofs = []
    day = first + timedelta(days=30)
    while day + HORIZON <= last:
        as_ofs.append(day.replace(tzinfo=UTC))
        day += timedelta(days=30)
    splits = _splits(org, answers, as_ofs)
    dead, rest_won = sum(x.dead for x in splits), sum(x.rest_won for x in splits)
    if dead < 10 or rest_won == 0:
        pytest.skip(f"the sample is too small to judge: {org.opportunities.height} deals created "
                    f"{first:%Y-%m-%d} to {last:%Y-%m-%d}; {len(as_ofs)} as-of dates with 90 days of outcomes, "
                    f"{dead} dead deal-dates, {rest_won} wins among the others")
    _check(splits, min_dead=10)


# --- no look-ahead ------------------------------------------------------------------------------------


def test_findings_use_only_what_was_known_then(demo: Engine) -> None:
    # The findings on a past date are the same computed from the full history or from the history cut at
    # that date (the as-of state as the current rows, and only the changes, activities, answers known then).
    org = load_org(demo)
    with demo.connect() as connection:
        answers = load_answers(connection)
    as_of = datetime(2026, 3, 15, 12, tzinfo=UTC)
    at = as_of.replace(tzinfo=None)
    full = rules.findings(org.timeline, as_of=as_of, stages=org.stages, changes=org.changes,
                          activities=org.activities, answers=answers)
    state = snapshot(org.timeline, as_of).drop("valid_from")
    cut_changes = org.changes.filter(pl.col("changed_at") <= at)
    cut_timeline = build_timeline(state, cut_changes)
    cut = rules.findings(cut_timeline, as_of=as_of, stages=org.stages, changes=cut_changes,
                         activities=org.activities.filter(pl.col("occurred_at") <= at),
                         answers=answers.filter(pl.col("answered_at") <= at))
    assert full.height > 100
    assert full.equals(cut)


# --- snooze, sweep, undo -------------------------------------------------------------------------------


def _admin_email(engine: Engine) -> str:
    with engine.connect() as connection:
        email = connection.execute(sa.select(tables.users.c.email).where(tables.users.c.role == "admin")).scalar()
    assert isinstance(email, str)
    return email


def _rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table).order_by(table.c.id))]


def _assert_log_agrees(engine: Engine) -> None:
    """closewise.domain.changes: per deal and field, the log chains (old = previous new) and its last
    new_value is the current row's value."""
    current = {row["id"]: row for row in _rows(engine, tables.opportunities)}
    changes = sorted(_rows(engine, tables.opportunity_changes), key=lambda c: (as_utc(c["changed_at"]), c["id"]))
    for (deal, name), group in itertools.groupby(sorted(changes, key=lambda c: (c["opportunity_id"], c["field"])),
                                                 key=lambda c: (c["opportunity_id"], c["field"])):
        ordered = sorted(group, key=lambda c: (as_utc(c["changed_at"]), c["id"]))
        for previous, change in itertools.pairwise(ordered):
            assert change["old_value"] == previous["new_value"], (deal, name)
        assert ordered[-1]["new_value"] == encode(ChangeField(name), current[deal][name]), (deal, name)


def test_sweep_then_undo_restores_the_exact_state(demo: Engine) -> None:
    now = utcnow()  # after the demo's history (it ends at TODAY 00:00 UTC)
    email = _admin_email(demo)
    before_opps = _rows(demo, tables.opportunities)
    before_changes = len(_rows(demo, tables.opportunity_changes))

    preview = hygiene_sweep.preview_sweep(demo, as_of=now)
    assert preview.deals and not preview.confirmed and preview.sweep_id is None
    assert len(_rows(demo, tables.opportunity_changes)) == before_changes  # a preview writes nothing

    swept = hygiene_sweep.confirm_sweep(demo, as_of=now, user_email=email, reason="quarterly clean-up", now=now)
    assert swept.sweep_id and [d.id for d in swept.deals] == [d.id for d in preview.deals] and not swept.skipped
    ids = {d.id for d in swept.deals}
    after = {row["id"]: row for row in _rows(demo, tables.opportunities)}
    for deal_id in ids:
        row = after[deal_id]
        assert (row["status"], row["forecast_category"]) == ("no_decision", "omitted")
        assert as_utc(row["closed_at"]) == now
    new_changes = _rows(demo, tables.opportunity_changes)[before_changes:]
    assert {c["opportunity_id"] for c in new_changes} == ids
    assert all(c["source"] == "sweep" and c["reason"].startswith(f"hygiene sweep {swept.sweep_id}: quarterly")
               for c in new_changes)
    with demo.connect() as connection:
        user_id = connection.execute(sa.select(tables.users.c.id).where(tables.users.c.email == email)).scalar()
    assert {c["changed_by"] for c in new_changes} == {user_id}
    audit = [a for a in _rows(demo, tables.audit_log) if a["action"] == "hygiene.sweep"]
    assert {int(a["entity_id"]) for a in audit if a["entity"] == "opportunity"} == ids
    assert all(a["detail"]["sweep_id"] == swept.sweep_id and a["actor_id"] == user_id for a in audit)
    _assert_log_agrees(demo)
    # The as-of engine sees the sweep: at `now` the swept deals are no decision, just before it still open.
    timeline = load_org(demo).timeline.filter(pl.col("id").is_in(list(ids)))
    assert set(snapshot(timeline, now)["status"]) == {"no_decision"}
    assert set(snapshot(timeline, now - timedelta(seconds=1))["status"]) == {"open"}
    assert not hygiene_sweep.preview_sweep(demo, as_of=now + timedelta(seconds=1)).deals

    undone = hygiene_sweep.undo_sweep(demo, sweep_id=swept.sweep_id, user_email=email)
    assert sorted(undone.restored) == sorted(ids) and not undone.skipped
    restored = _rows(demo, tables.opportunities)
    skip = {"updated_at"}  # records the undo itself
    assert [{k: v for k, v in row.items() if k not in skip} for row in restored] == \
        [{k: v for k, v in row.items() if k not in skip} for row in before_opps]
    _assert_log_agrees(demo)
    reverse = _rows(demo, tables.opportunity_changes)[before_changes + len(new_changes):]
    assert len(reverse) == len(new_changes)
    assert all(c["reason"] == f"undo of hygiene sweep {swept.sweep_id}" for c in reverse)

    with pytest.raises(Conflict, match="already undone"):
        hygiene_sweep.undo_sweep(demo, sweep_id=swept.sweep_id)
    with pytest.raises(NotFound):
        hygiene_sweep.undo_sweep(demo, sweep_id="nosuchsweep")


def test_cli_hygiene_json_snooze_and_sweep(demo_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "--as-of", "2026-11-21", "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert set(document) == {"as_of", "deals"}
    assert document["as_of"].startswith("2026-11-21T23:59:59")
    deals = document["deals"]
    assert deals and [d["id"] for d in deals] == sorted(d["id"] for d in deals)
    for deal in deals:
        assert {"id", "external_id", "name", "owner_id", "amount", "reasons"} <= set(deal)
        assert deal["reasons"] and all(set(r) == {"code", "detail"} and r["code"] in service.CODES
                                       for r in deal["reasons"])
        assert isinstance(deal["amount"], float) and deal["external_id"].startswith("DEMO-OPP-")

    # Snooze one finding until 2026-12-01: gone on the 30th of November, back on the 1st of December.
    target = deals[0]
    code = target["reasons"][0]["code"]
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "snooze", str(target["id"]), "--code", code,
                     "--until", "2026-12-01", "--reason", "customer on holiday", "--json")
    assert result.code == 0, result.stderr

    def codes_on(day: str) -> list[str]:
        listed = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "--as-of", day, "--json").json()
        return next((
            [r["code"] for r in d["reasons"]] for d in listed["deals"] if d["id"] == target["id"]), [])

    assert code not in codes_on("2026-11-30")
    assert code in codes_on("2026-12-01")

    # Sweep preview, confirm and undo through the CLI.
    preview = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "sweep", "--json").json()
    assert set(preview) == {"as_of", "confirmed", "sweep_id", "deals", "skipped"} and not preview["confirmed"]
    confirmed = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "sweep", "--confirm", "--user",
                        _admin_email_url(demo_url), "--json").json()
    assert confirmed["sweep_id"], (len(preview["deals"]), confirmed)
    assert {d["id"] for d in confirmed["deals"]} == {d["id"] for d in preview["deals"]}
    result = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "undo", confirmed["sweep_id"], "--json")
    assert result.code == 0, result.stderr
    assert sorted(result.json()["restored"]) == sorted(d["id"] for d in preview["deals"])

    # Bad input: one clear line, exit 1.
    for args, message in [
        (("hygiene", "--as-of", "soon"), "is not a date"),
        (("hygiene", "snooze", "999999", "--code", "no_next_step", "--until", "2030-01-01", "--reason", "x"),
         "no opportunity with id 999999"),
        (("hygiene", "snooze", str(target["id"]), "--code", "bogus", "--until", "2030-01-01", "--reason", "x"),
         "unknown finding 'bogus'"),
        (("hygiene", "snooze", str(target["id"]), "--code", code, "--until", "someday", "--reason", "x"),
         "is not a date"),
        (("hygiene", "undo", "nosuchsweep"), "no sweep 'nosuchsweep'"),
        (("hygiene", "sweep", "--confirm", "--user", "nobody@example.com"), "no user with email"),
    ]:
        result = run_cli(capsys, monkeypatch, "--db", demo_url, *args)
        assert result.code == 1 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout

    table = run_cli(capsys, monkeypatch, "--db", demo_url, "hygiene", "--as-of", "2026-11-21")
    assert table.code == 0 and "aged_past_cycle" in table.stdout


def _admin_email_url(url: str) -> str:
    engine = make_engine(url)
    try:
        return _admin_email(engine)
    finally:
        engine.dispose()
