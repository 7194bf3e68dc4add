"""Rolling forecast calls up the hierarchy.

Each person submits a call for a period (commit and best case; the latest submission counts). A manager's
team number is the sum, over their direct reports, of each report's number, where a report's number is:

- the manager's adjustment of it, when the manager made one (the latest; it replaces the report's number,
  and the difference is shown as the adjustment), else
- the report's own call (a first-line or second-line manager's call is their judgement of their own team),
  else, for a report who manages people and has not called, the arithmetic roll-up of their own team,
  else 0 — and the report is listed as not submitted.

So at every level the roll-up is the sum of the team's submissions plus the adjustments, which the tests
check. Everything is as of a moment: later submissions are not seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import polars as pl

Source = Literal["submission", "adjustment", "rollup", "missing"]


@dataclass(frozen=True)
class Call:
    commit: float
    best_case: float
    at: datetime
    notes: str | None = None


@dataclass(frozen=True)
class RollupRow:
    user_id: int
    manages: bool
    own: Call | None  # the person's own latest call
    adjustment: Call | None  # the manager's latest adjustment of this person's number
    team_commit: float | None  # for a manager: their own team's roll-up
    team_best_case: float | None
    commit: float  # the number that counts upward
    best_case: float
    source: Source


@dataclass(frozen=True)
class Rollup:
    manager_id: int
    commit: float
    best_case: float
    rows: list[RollupRow]  # the manager's direct reports
    missing: list[int] = field(default_factory=list)  # everyone below the manager without a call


def latest_calls(submissions: pl.DataFrame, *, period: str, as_of: datetime) -> tuple[
        dict[int, Call], dict[tuple[int, int], Call]]:
    """The latest own call per user, and the latest adjustment per (manager, subject), for `period`."""
    known = submissions.filter(pl.col("period") == period, pl.col("submitted_at") <= as_of).sort("submitted_at", "id")
    notes = "notes" in known.columns
    calls: dict[int, Call] = {}
    adjustments: dict[tuple[int, int], Call] = {}
    for row in known.iter_rows(named=True):
        call = Call(float(row["commit"]), float(row["best_case"]), row["submitted_at"],
                    row["notes"] if notes else None)
        if row["kind"] == "adjustment" and row["subject_id"] is not None:
            adjustments[(row["user_id"], row["subject_id"])] = call
        elif row["kind"] == "submission":
            calls[row["user_id"]] = call
    return calls, adjustments


def reports_of(managers: Mapping[int, int | None]) -> dict[int, list[int]]:
    reports: dict[int, list[int]] = {}
    for user, manager in sorted(managers.items()):
        if manager is not None and manager != user:
            reports.setdefault(manager, []).append(user)
    return reports


def rollup(manager_id: int, managers: Mapping[int, int | None], calls: Mapping[int, Call],
           adjustments: Mapping[tuple[int, int], Call]) -> Rollup:
    """The roll-up of `manager_id`'s team (see the module header). A person with no reports rolls up to
    their own call."""
    reports = reports_of(managers)
    seen: set[int] = set()

    def team(user: int) -> tuple[float, float, list[RollupRow], list[int]]:
        if user in seen:  # a cycle in imported hierarchy data: count nobody twice
            return 0.0, 0.0, [], []
        seen.add(user)
        rows: list[RollupRow] = []
        missing: list[int] = []
        commit = best = 0.0
        for report in reports.get(user, []):
            own = calls.get(report)
            manages = bool(reports.get(report))
            sub_commit = sub_best = None
            if manages:
                sub_commit, sub_best, _, below = team(report)
                missing.extend(below)
            adjustment = adjustments.get((user, report))
            if adjustment is not None:
                number, source = (adjustment.commit, adjustment.best_case), "adjustment"
            elif own is not None:
                number, source = (own.commit, own.best_case), "submission"
            elif manages:
                number, source = (sub_commit or 0.0, sub_best or 0.0), "rollup"
            else:
                number, source = (0.0, 0.0), "missing"
            if own is None:
                missing.append(report)
            rows.append(RollupRow(report, manages, own, adjustment, sub_commit, sub_best, number[0], number[1],
                                  source))  # type: ignore[arg-type]
            commit += number[0]
            best += number[1]
        return commit, best, rows, missing

    if not reports.get(manager_id):
        own = calls.get(manager_id)
        row = RollupRow(manager_id, False, own, None, None, None, own.commit if own else 0.0,
                        own.best_case if own else 0.0, "submission" if own else "missing")
        return Rollup(manager_id, row.commit, row.best_case, [row], [] if own else [manager_id])
    commit, best, rows, missing = team(manager_id)
    return Rollup(manager_id, commit, best, rows, sorted(set(missing)))
