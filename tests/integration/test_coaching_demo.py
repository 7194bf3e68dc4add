"""Coaching on the demo org (docs/demo.md): the gap analysis recovers the behaviours the generator plants, the
ramp flags the planted slow starters, adopting a checklist item changes the playbook, and `closewise team gap /
ramp --json` keep their contract. Expected effects are the generator's documented parameters, checked against
the planted groups (`DemoSummary.planted`), not numbers copied from a run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.cli import app as cli_app
from closewise.cli import team_commands
from closewise.coaching import gap as gap_rules
from closewise.db.engine import make_engine
from closewise.db.tables import users
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.services import coaching_data, coaching_gap, coaching_ramp, team
from closewise.services.demo import DemoSummary
from closewise.services.playbook import current_playbook
from tests.cli_runner import run_cli
from tests.demo_org import DEMO_TODAY, demo_database

if not any(group.name == "team" for group in cli_app.app.registered_groups):
    team_commands.register(cli_app.app)

AS_OF = datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day)
EVERYONE = Scope(user_id=0, role=Role.ADMIN, owner_ids=None)


@dataclass(frozen=True)
class Demo:
    url: str
    engine: Engine
    summary: DemoSummary
    ids: dict[str, int]  # email -> user id
    data: coaching_data.CoachingData
    gap: coaching_gap.GapReport


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder: Path = tmp_path_factory.mktemp("coaching")
    with demo_database(folder) as (url, summary):
        engine = make_engine(url)
        with engine.connect() as connection:
            ids = {r.email: r.id for r in connection.execute(sa.select(users.c.email, users.c.id))}
        data = coaching_data.load(engine, scope=EVERYONE, as_of=AS_OF)
        report = coaching_gap.performance_gap(engine, scope=EVERYONE, as_of=AS_OF, data=data)
        try:
            yield Demo(url, engine, summary, ids, data, report)
        finally:
            engine.dispose()


def _metric(report: coaching_gap.GapReport, key: str) -> dict[str, object]:
    return next(m for m in report.metrics if m["metric"] == key)


def test_top_performers_follow_the_stated_rule(demo: Demo) -> None:
    report = demo.gap
    assert report.ranked_by == "attainment" and "top 25%" in report.rule
    eligible = [r for r in report.reps if r["eligible"]]
    ranked = sorted(eligible, key=lambda r: (-r["attainment"], -r["won_deals"], r["user_id"]))
    expected = {r["user_id"] for r in ranked[: -(-len(eligible) // 4)]}
    assert {p["id"] for p in report.top_performers} == expected
    # New hires are not ranked: the ramp compares them with their cohort.
    for email in demo.summary.planted["new_hires"]:
        row = next(r for r in report.reps if r["user_id"] == demo.ids[email])
        assert not row["eligible"] and not row["top"]
    # Bookings really are the ranking's basis: each top performer out-earns their quota more than any other rep.
    floor = min(p["attainment"] for p in report.top_performers)
    assert all(r["attainment"] < floor or r["top"] for r in eligible)


def test_top_performers_are_the_skilled_reps(demo: Demo) -> None:
    top = {p["id"] for p in demo.gap.top_performers}
    skilled = {demo.ids[e] for e in demo.summary.planted["top_skill"]}
    unskilled = {demo.ids[e] for e in demo.summary.planted["bottom_skill"]}
    assert len(top & skilled) >= len(top) // 2 + 1
    assert not top & unskilled


@pytest.mark.parametrize("key", ["contacts_engaged", "days_to_first_meeting", "criteria_met_rate",
                                 "qualification_score", "economic_buyer_engaged", "win_rate"])
def test_gap_recovers_the_planted_behaviours(demo: Demo, key: str) -> None:
    row = _metric(demo.gap, key)
    assert row["significant"] is True and row["favours_top"] is True, row
    assert row["q_value"] is not None and float(row["q_value"]) <= 0.05  # type: ignore[arg-type]


def test_discounting_is_not_planted_and_not_found(demo: Demo) -> None:
    # The generator discounts 30% of late-stage deals whatever the rep's skill: no real difference exists.
    assert _metric(demo.gap, "discount")["significant"] is False


def test_behaviour_measures_match_the_documented_planted_effects(demo: Demo) -> None:
    """docs/demo.md, measured on the planted skill quartiles with the same per-deal measures."""
    b = demo.data.behaviours
    top = b.filter(pl.col("owner_id").is_in([demo.ids[e] for e in demo.summary.planted["top_skill"]]))
    bottom = b.filter(pl.col("owner_id").is_in([demo.ids[e] for e in demo.summary.planted["bottom_skill"]]))
    assert float(top["contacts_engaged"].mean()) - float(bottom["contacts_engaged"].mean()) >= 0.4  # type: ignore[arg-type]
    meeting_top = top["days_to_first_meeting"].drop_nulls().median()
    meeting_bottom = bottom["days_to_first_meeting"].drop_nulls().median()
    assert float(meeting_top) < 0.75 * float(meeting_bottom)  # type: ignore[arg-type]
    won_top, won_bottom = top["won"].drop_nulls().mean(), bottom["won"].drop_nulls().mean()
    assert float(won_top) >= 1.5 * float(won_bottom)  # type: ignore[arg-type]


def test_checklist_comes_from_significant_behaviours(demo: Demo) -> None:
    significant = {m["metric"] for m in demo.gap.metrics
                   if m["significant"] and m["favours_top"] and m["kind"] == "behaviour"}
    items = demo.gap.checklist
    assert items and {i["metric"] for i in items} <= significant
    assert any(i["metric"] == "contacts_engaged" for i in items)
    stages = [s.key for s in demo.data.playbook.stages]
    assert all(i["stage"] in stages for i in items)


def test_ramp_flags_the_planted_slow_starters(demo: Demo) -> None:
    report = coaching_ramp.new_hire_ramp(demo.engine, scope=EVERYONE, as_of=AS_OF, data=demo.data)
    by_id = {h["rep_id"]: h for h in report.new_hires}
    slow = [demo.ids[e] for e in demo.summary.planted["slow_starters"]]
    assert slow
    for rep in slow:
        assert by_id[rep]["behind"], by_id[rep]
        assert by_id[rep]["figures"]["pipeline_index"] < 0.5 * by_id[rep]["norm"]["pipeline_index"]
    # Seasoned reps are never new hires.
    assert not {demo.ids[e] for e in demo.summary.planted["seasoned"]} & set(by_id)
    # The norm is a real cohort at each reported month.
    assert all(n["reps"] >= 3 for n in report.norm[:4])


def test_adopting_an_item_adds_an_exit_criterion(demo: Demo) -> None:
    item = next(i for i in demo.gap.checklist if i["adds_criterion"])
    leader = Scope(user_id=demo.ids[next(x.email for x in demo.summary.logins if x.role == "leader")],
                   role=Role.LEADER, owner_ids=None)
    adopted = coaching_gap.adopt_item(demo.engine, scope=leader, item_key=item["key"], as_of=AS_OF)
    assert adopted["adopted"]
    stage = current_playbook(demo.engine).stage(item["stage"])
    assert item["key"] in {c.key for c in stage.exit_criteria}
    again = coaching_gap.performance_gap(demo.engine, scope=EVERYONE, as_of=AS_OF, data=demo.data)
    assert next(i for i in again.checklist if i["key"] == item["key"])["adopted"]
    assert [a["item_key"] for a in again.adopted] == [item["key"]]


def test_team_gap_and_ramp_json_contract(demo: Demo, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(capsys, monkeypatch, "--db", demo.url, "team", "gap", "--as-of", DEMO_TODAY.isoformat(), "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert {"top_performers", "metrics", "checklist", "rule"} <= set(document)
    assert all({"id", "name"} <= set(p) for p in document["top_performers"])
    keys = {"metric", "top", "rest", "effect_size", "p_value", "significant"}
    assert all(keys <= set(m) for m in document["metrics"])
    ramp = run_cli(capsys, monkeypatch, "--db", demo.url, "team", "ramp", "--as-of", DEMO_TODAY.isoformat(), "--json")
    assert ramp.code == 0, ramp.stderr
    hires = ramp.json()["new_hires"]
    slow = {demo.ids[e] for e in demo.summary.planted["slow_starters"]}
    assert slow <= {h["rep_id"] for h in hires if h["behind"]}


def test_gap_rank_reps_without_quotas_uses_bookings(demo: Demo) -> None:
    reps = demo.data.org.users.filter(pl.col("role") == "rep")
    empty = pl.DataFrame(schema={"user_id": pl.Int64(), "quota": pl.Float64()})
    ranking = gap_rules.rank_reps(reps, demo.data.deals, empty, as_of=AS_OF)
    assert ranking.by == "bookings"
    table = ranking.table.filter(pl.col("eligible")).sort("rank")
    assert table["bookings"].to_list() == sorted(table["bookings"].to_list(), reverse=True)


def test_scorecard_forecast_labels_find_the_planted_forecasters(demo: Demo) -> None:
    """The generator plants reps with happy ears (calls inflated) and sandbaggers (deflated, docs/demo.md). The
    scorecards' forecast accuracy never names a rep for the opposite of what was planted, every rep it labels
    happy ears or sandbagger was planted so, and it finds some of each (not all: a sandbagger's call is floored at
    what they had already won, and a rep with few ended quarters with a win has few calls to judge)."""
    at = datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day, 23, 59, 59, tzinfo=UTC)
    report = team.team_scorecards(demo.engine, scope=EVERYONE, as_of=at)
    emails = {user_id: email for email, user_id in demo.ids.items()}
    happy, sandbaggers = set(demo.summary.planted["happy_ears"]), set(demo.summary.planted["sandbaggers"])
    labelled = {emails[card.user_id]: card.forecast_label for card in report.reps if card.user_id is not None}
    assert {e for e, label in labelled.items() if label == "happy_ears"} <= happy
    assert {e for e, label in labelled.items() if label == "sandbagger"} <= sandbaggers
    assert any(labelled.get(e) == "happy_ears" for e in happy)
    assert any(labelled.get(e) == "sandbagger" for e in sandbaggers)
    biases = {emails[c.user_id]: c.forecast_bias for c in report.reps if c.forecast_bias is not None}
    assert min(biases[e] for e in happy if e in biases) > max(biases[e] for e in sandbaggers if e in biases)
