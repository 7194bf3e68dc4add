"""The forecast call on the demo org through the CLI: submissions and adjustments roll up to the sum of the
team's calls plus adjustments at every level (recomputed here from the stored rows), visibility holds, and
the accuracy of past calls finds the planted forecasters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.scope import scope_for
from closewise.db.tables import forecast_submissions, users
from closewise.services.demo import DemoSummary
from closewise.services.forecast_call import accuracy_report, rollup_report
from tests.cli_runner import run_cli
from tests.demo_org import demo_database

PERIOD = "2026-Q4"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, DemoSummary]]:
    with demo_database(tmp_path_factory.mktemp("calls")) as (url, summary):
        engine = make_engine(url)
        yield url, engine, summary
        engine.dispose()


def _hierarchy(engine: Engine) -> tuple[dict[int, int | None], dict[int, str], dict[int, str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(users.c.id, users.c.manager_id, users.c.role, users.c.email)).all()
    return ({r.id: r.manager_id for r in rows}, {r.id: r.role for r in rows}, {r.id: r.email for r in rows})


def _expected_team(engine: Engine, manager: int) -> float:
    """The roll-up rule recomputed from the stored rows: per direct report (admins and viewers skipped), the
    manager's latest adjustment, else the report's latest call, else the report's own roll-up."""
    managers, roles, _ = _hierarchy(engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(forecast_submissions).where(forecast_submissions.c.period == PERIOD)
                                  .order_by(forecast_submissions.c.submitted_at, forecast_submissions.c.id)).mappings()
        own: dict[int, float] = {}
        adjusted: dict[tuple[int, int], float] = {}
        for row in rows:
            if row["kind"] == "adjustment":
                adjusted[(row["user_id"], row["subject_id"])] = float(row["commit"])
            else:
                own[row["user_id"]] = float(row["commit"])
    carriers = {u for u, role in roles.items() if role not in ("admin", "viewer")}

    def reports(user: int) -> list[int]:
        return [u for u, boss in managers.items() if boss == user and u in carriers]

    def number(user: int, boss: int) -> float:
        if (boss, user) in adjusted:
            return adjusted[(boss, user)]
        if user in own:
            return own[user]
        return sum(number(r, user) for r in reports(user))

    return sum(number(r, manager) for r in reports(manager))


def test_the_roll_up_is_the_sum_of_calls_plus_adjustments_at_every_level(
        demo: tuple[str, Engine, DemoSummary], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine, _ = demo
    managers, roles, emails = _hierarchy(engine)
    bosses = sorted({boss for user, boss in managers.items() if boss is not None and roles[user] != "admin"})
    assert len(bosses) >= 3
    for boss in bosses:
        result = run_cli(capsys, monkeypatch, "--db", url, "call", "rollup", "--period", PERIOD, "--manager",
                         emails[boss], "--no-model", "--json")
        assert result.code == 0, result.stderr
        assert result.json()["team_commit"] == pytest.approx(_expected_team(engine, boss)), emails[boss]


def test_a_submission_and_an_adjustment_move_the_roll_up(
        demo: tuple[str, Engine, DemoSummary], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine, _ = demo
    managers, roles, emails = _hierarchy(engine)
    rep = next(u for u, role in sorted(roles.items()) if role == "rep" and managers[u] is not None)
    boss = managers[rep]
    assert boss is not None
    submitted = run_cli(capsys, monkeypatch, "--db", url, "call", "submit", "--user", emails[rep], "--period", PERIOD,
                        "--commit", "123456", "--best-case", "150000", "--notes", "two deals in legal")
    assert submitted.code == 0, submitted.stderr
    after = run_cli(capsys, monkeypatch, "--db", url, "call", "rollup", "--period", PERIOD, "--manager",
                    emails[boss], "--no-model", "--json").json()
    row = next(r for r in after["by_user"] if r["user_id"] == rep)
    assert row["submitted"]["commit"] == 123456 and row["submitted"]["notes"] == "two deals in legal"
    assert after["team_commit"] == pytest.approx(_expected_team(engine, boss))
    adjusted = run_cli(capsys, monkeypatch, "--db", url, "call", "adjust", "--manager", emails[boss], "--user",
                       emails[rep], "--period", PERIOD, "--commit", "100000", "--best-case", "120000",
                       "--note", "legal never closes in December")
    assert adjusted.code == 0, adjusted.stderr
    final = run_cli(capsys, monkeypatch, "--db", url, "call", "rollup", "--period", PERIOD, "--manager",
                    emails[boss], "--no-model", "--json").json()
    row = next(r for r in final["by_user"] if r["user_id"] == rep)
    assert row["source"] == "adjustment" and row["commit"] == 100000
    assert final["team_commit"] == pytest.approx(after["team_commit"] - 123456 + 100000)


def test_bad_calls_are_refused_in_one_line(demo: tuple[str, Engine, DemoSummary], capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine, _ = demo
    managers, roles, emails = _hierarchy(engine)
    rep = next(u for u, role in sorted(roles.items()) if role == "rep")
    stranger = next(u for u, role in sorted(roles.items()) if role == "rep" and managers[u] != managers[rep])
    boss = managers[rep]
    assert boss is not None
    cases = [
        ("call", "submit", "--user", emails[rep], "--period", "2026-Q7", "--commit", "1", "--best-case", "2"),
        ("call", "submit", "--user", emails[rep], "--period", PERIOD, "--commit", "5", "--best-case", "2"),
        ("call", "adjust", "--manager", emails[boss], "--user", emails[stranger], "--period", PERIOD,
         "--commit", "1", "--best-case", "2", "--note", "x"),
        ("call", "adjust", "--manager", emails[rep], "--user", emails[rep], "--period", PERIOD,
         "--commit", "1", "--best-case", "2", "--note", "x"),
    ]
    for args in cases:
        result = run_cli(capsys, monkeypatch, "--db", url, *args)
        assert result.code != 0 and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


def test_a_manager_sees_only_their_own_team(demo: tuple[str, Engine, DemoSummary]) -> None:
    _, engine, _ = demo
    managers, roles, _ = _hierarchy(engine)
    first_line = next(u for u, role in sorted(roles.items()) if role == "manager"
                      and any(boss == u and roles[x] == "rep" for x, boss in managers.items()))
    with engine.connect() as connection:
        scope = scope_for(connection, user_id=first_line)
    report = rollup_report(engine, scope=scope, period=PERIOD)
    assert {row["user_id"] for row in report["by_user"]} <= set(scope.owner_ids or ())
    top = next(u for u, boss in managers.items() if boss is None)
    with pytest.raises(Exception, match="no user with id"):
        rollup_report(engine, scope=scope, period=PERIOD, manager_id=top)
    accuracy = accuracy_report(engine, scope=scope)
    assert {row["user_id"] for row in accuracy["calls"]} <= set(scope.owner_ids or ())


def test_the_track_record_finds_the_planted_forecasters(demo: tuple[str, Engine, DemoSummary]) -> None:
    _, engine, summary = demo
    from closewise.domain.enums import Role
    from closewise.domain.scope import Scope

    report = accuracy_report(engine, scope=Scope(user_id=0, role=Role.ADMIN, owner_ids=None))
    _, _, emails = _hierarchy(engine)
    labels = {emails[row["user_id"]]: row for row in report["track_record"]}
    happy = [labels[e] for e in summary.planted["happy_ears"] if e in labels and labels[e]["periods"] >= 3]
    sandbag = [labels[e] for e in summary.planted["sandbaggers"] if e in labels and labels[e]["periods"] >= 3]
    assert happy and sandbag
    # Planted happy ears call high, sandbaggers low: their median signed errors sit on either side of zero.
    assert sum(row["bias"] > 0 for row in happy) >= 0.7 * len(happy)
    assert sum(row["bias"] < 0 for row in sandbag) >= 0.7 * len(sandbag)
    # Every call is of an ended period, and its error is call minus actual.
    for row in report["calls"]:
        assert row["error"] == pytest.approx(row["commit"] - row["actual"])
