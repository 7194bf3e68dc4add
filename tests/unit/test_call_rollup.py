"""Roll-ups of forecast calls: at every level the team number is the sum of the team's submissions plus the
manager's adjustments (a property over random hierarchies), and accuracy of calls against outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.calls.accuracy import call_accuracy, final_calls, track_record
from closewise.calls.rollup import Call, reports_of, rollup

T0 = datetime(2026, 10, 5)


@st.composite
def orgs(draw: st.DrawFn) -> tuple[dict[int, int | None], dict[int, Call], dict[tuple[int, int], Call]]:
    size = draw(st.integers(2, 14))
    managers: dict[int, int | None] = {1: None}
    for user in range(2, size + 1):
        managers[user] = draw(st.integers(1, user - 1))  # a tree: everyone reports to an earlier user
    amounts = st.integers(0, 1000).map(float)
    calls = {user: Call(c, c + extra, T0) for user in managers
             if draw(st.booleans()) for c, extra in [(draw(amounts), draw(amounts))]}
    adjustments = {(boss, user): Call(draw(amounts), draw(amounts) + 1000, T0)
                   for user, boss in managers.items() if boss is not None and draw(st.integers(0, 3)) == 0}
    return managers, calls, adjustments


@settings(max_examples=200, deadline=None)
@given(orgs())
def test_every_level_sums_its_reports_submissions_plus_adjustments(
        org: tuple[dict[int, int | None], dict[int, Call], dict[tuple[int, int], Call]]) -> None:
    managers, calls, adjustments = org
    reports = reports_of(managers)
    for manager in reports:
        result = rollup(manager, managers, calls, adjustments)

        def number(user: int, boss: int) -> float:
            """Worked out independently: the boss's adjustment, else the user's call, else their roll-up."""
            if (boss, user) in adjustments:
                return adjustments[(boss, user)].commit
            if user in calls:
                return calls[user].commit
            return sum(number(r, user) for r in reports.get(user, []))

        assert result.commit == pytest.approx(sum(number(r, manager) for r in reports[manager]))
        assert [row.user_id for row in result.rows] == reports[manager]
        # Who has not called: everyone below the manager without a call of their own.
        below: set[int] = set()
        todo = list(reports[manager])
        while todo:
            user = todo.pop()
            below.add(user)
            todo.extend(reports.get(user, []))
        assert set(result.missing) == {user for user in below if user not in calls}


def test_an_adjustment_replaces_the_number_and_a_silent_manager_rolls_up() -> None:
    managers: dict[int, int | None] = {1: None, 2: 1, 3: 2, 4: 2, 5: 1}
    calls = {3: Call(100, 150, T0), 4: Call(50, 60, T0), 5: Call(70, 90, T0)}
    # 2 has not called: 2's number is 3 + 4 = 150; 1 adjusted 5 down to 40.
    result = rollup(1, managers, calls, {(1, 5): Call(40, 50, T0, "too hopeful")})
    rows = {row.user_id: row for row in result.rows}
    assert rows[2].source == "rollup" and rows[2].commit == 150 and rows[2].team_commit == 150
    assert rows[5].source == "adjustment" and rows[5].commit == 40 and rows[5].own == calls[5]
    assert result.commit == 190 and result.best_case == 210 + 50
    assert result.missing == [2]


def test_accuracy_compares_the_last_call_before_the_end_with_the_subtree_won() -> None:
    subs = pl.DataFrame({
        "id": [1, 2, 3, 4], "user_id": [3, 3, 2, 3], "period": ["2026-Q3"] * 4,
        "submitted_at": [T0 - timedelta(days=d) for d in (60, 10, 9, -1)],
        "commit": [80.0, 120.0, 200.0, 999.0], "best_case": [90.0, 130.0, 220.0, 999.0],
        "kind": ["submission"] * 4, "subject_id": [None] * 4,
    })
    calls = final_calls(subs, {"2026-Q3": T0})
    # The call after the end (999) does not count; 3's last call before it is 120.
    assert dict(zip(calls["user_id"].to_list(), calls["commit"].to_list(), strict=True)) == {2: 200.0, 3: 120.0}
    won = pl.DataFrame({"owner_id": [3, 4], "period": ["2026-Q3", "2026-Q3"], "won": [100.0, 60.0]})
    accuracy = call_accuracy(calls, won, {1: None, 2: 1, 3: 2, 4: 2})
    rows = {row["user_id"]: row for row in accuracy.iter_rows(named=True)}
    # 3 called 120 and won 100: +20%. 2's team (2, 3, 4) won 160 against a call of 200: +25%.
    assert rows[3]["pct_error"] == pytest.approx(0.2) and rows[2]["actual"] == 160.0
    assert rows[2]["pct_error"] == pytest.approx(0.25)
    record = {row["user_id"]: row["label"] for row in track_record(accuracy).iter_rows(named=True)}
    assert record == {2: "happy_ears", 3: "happy_ears"}
