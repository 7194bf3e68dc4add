"""The playbook on the demo org: the planted gate effect is found, re-qualification agrees with the hygiene
finding, and the YAML export/import round trip and its refusals work through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.services.hygiene import review
from closewise.services.playbook import current_playbook, gate_analysis, requalification_due
from tests.cli_runner import run_cli
from tests.demo_org import demo_database

EVERYTHING = Scope(user_id=0, role=Role.ADMIN, owner_ids=None)
AS_OF = datetime(2026, 11, 22, 23, 59, 59)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    with demo_database(tmp_path_factory.mktemp("playbook")) as (url, _summary):
        engine = make_engine(url)
        yield url, engine
        engine.dispose()


def test_deals_that_left_a_stage_without_its_criteria_win_less(demo: tuple[str, Engine]) -> None:
    # docs/demo.md plants it: for each of the first four stages, closed deals that left it with all its
    # criteria checked win at least 1.3x as often as those that did not.
    effect = gate_analysis(demo[1], scope=EVERYTHING, as_of=AS_OF)
    first_four = effect.stages.head(4)
    assert first_four["stage"].to_list() == ["prospecting", "qualification", "discovery", "solution"]
    for row in first_four.iter_rows(named=True):
        assert row["met_deals"] >= 30 and row["unmet_deals"] >= 30, row
        assert row["met_win_rate"] >= 1.3 * row["unmet_win_rate"], row


def test_overdue_requalification_is_the_hygiene_finding(demo: tuple[str, Engine]) -> None:
    rows = requalification_due(demo[1], scope=EVERYTHING, as_of=AS_OF)
    overdue = {row["id"] for row in rows if row["status"] == "overdue"}
    flagged = {deal.id for deal in review(demo[1], as_of=AS_OF).deals
               if any(reason.code == "not_requalified" for reason in deal.reasons)}
    assert overdue and overdue == flagged
    assert all(row["status"] in ("due", "overdue") for row in rows)


def test_a_rep_sees_only_their_own_due_deals(demo: tuple[str, Engine]) -> None:
    everyone = requalification_due(demo[1], scope=EVERYTHING, as_of=AS_OF)
    owner = everyone[0]["owner_id"]
    mine = requalification_due(demo[1], scope=Scope(user_id=owner, role=Role.REP, owner_ids=frozenset({owner})),
                               as_of=AS_OF)
    assert {row["id"] for row in mine} == {row["id"] for row in everyone if row["owner_id"] == owner}


def test_export_then_import_changes_nothing_and_bad_files_are_refused(
    demo: tuple[str, Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, engine = demo
    before = current_playbook(engine)
    path = tmp_path / "playbook.yml"
    assert run_cli(capsys, monkeypatch, "--db", url, "playbook", "export", "--out", str(path)).code == 0
    imported = run_cli(capsys, monkeypatch, "--db", url, "playbook", "import", str(path))
    assert imported.code == 0 and "Imported 6 stages" in imported.stdout
    assert current_playbook(engine) == before
    # Dropping a stage that still holds open deals is refused, and nothing changes.
    text = path.read_text(encoding="utf-8")
    start = text.index("- key: negotiation")
    (tmp_path / "short.yml").write_text(text[:start] + text[text.index("frameworks:"):], encoding="utf-8")
    refused = run_cli(capsys, monkeypatch, "--db", url, "playbook", "import", str(tmp_path / "short.yml"))
    assert refused.code != 0 and "stage 'negotiation' still holds" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert current_playbook(engine) == before
    # A changed cadence is stored.
    (tmp_path / "faster.yml").write_text(text.replace("requalify_days: 7", "requalify_days: 5"), encoding="utf-8")
    assert run_cli(capsys, monkeypatch, "--db", url, "playbook", "import", str(tmp_path / "faster.yml")).code == 0
    assert current_playbook(engine).stage("negotiation").requalify_days == 5
    assert run_cli(capsys, monkeypatch, "--db", url, "playbook", "import", str(path)).code == 0


def test_the_gates_command_prints_the_lift(demo: tuple[str, Engine], capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(capsys, monkeypatch, "--db", demo[0], "playbook", "gates", "--as-of", "2026-11-22", "--json")
    assert result.code == 0
    stages = pl.DataFrame(result.json()["stages"])
    effect = gate_analysis(demo[1], scope=EVERYTHING, as_of=AS_OF)
    assert stages["met_deals"].to_list() == effect.stages["met_deals"].to_list()
