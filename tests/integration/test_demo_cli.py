"""The foundation's acceptance path, exactly as a user runs it: `closewise init`, `closewise demo --no-serve
--seed 7`, `closewise status --json`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli_runner import run_cli

Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch

# The minimums for the default demo org.
MINIMUMS = {"opportunities": 1_000, "opportunity_changes": 5_000, "users": 20, "activities": 1_000, "leads": 500}


def test_init_demo_status(new_database_url: Callable[[], str], capsys: Cap, monkeypatch: Mp) -> None:
    statuses = []
    for _ in range(2):
        url = new_database_url()
        assert run_cli(capsys, monkeypatch, "--db", url, "init").code == 0
        built = run_cli(capsys, monkeypatch, "--db", url, "demo", "--no-serve", "--seed", "7", "--today", "2026-11-22")
        assert built.code == 0, built.stderr
        assert "closewise-demo" in built.stdout  # the demo logins are printed
        status = run_cli(capsys, monkeypatch, "--db", url, "status", "--json").json()
        for name, minimum in MINIMUMS.items():
            assert isinstance(status[name], int) and status[name] >= minimum, name
        statuses.append(status)
    # The same seed and day give the same org (counts here; tests/integration/test_demo.py compares every row).
    first, second = ({k: v for k, v in s.items() if k != "database"} for s in statuses)
    assert first == second

    again = run_cli(capsys, monkeypatch, "--db", url, "demo", "--no-serve", "--seed", "7")
    assert again.code == 1 and len(again.stderr.strip().splitlines()) == 1  # refuses to build over an org


def test_a_history_outside_the_range_is_one_line_and_builds_nothing(
        new_database_url: Callable[[], str], capsys: Cap, monkeypatch: Mp) -> None:
    url = new_database_url()
    refused = run_cli(capsys, monkeypatch, "--db", url, "demo", "--no-serve", "--history-quarters", "21")
    assert refused.code == 1
    assert refused.stderr.strip().splitlines() == [
        "error: --history-quarters: the history must be 4 to 20 quarters, got 21"]
    assert run_cli(capsys, monkeypatch, "--db", url, "status", "--json").json()["opportunities"] == 0
