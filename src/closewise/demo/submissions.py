"""Quotas and the forecast calls reps and managers submitted, from what the org actually won.

Quotas: a fully ramped rep's quarterly quota is 1.1 times the mean bookings (USD) of fully ramped reps of
the same segment over the past complete quarters, rounded to 5,000; a new rep's quota ramps linearly over
the plan's 120 days (a quarter of it at least). Slow starters get the same plan, which is why they fall
behind it. Managers, directors and the leader carry the sum of their reps' quotas, teams their members'.

Forecast calls: every Monday of each history quarter (before today) each rep with two weeks of tenure
submits `commit = max(won to date, bias * final * noise)` where `final` is what they will have won by the
quarter's end (for the current quarter: won to date plus their recent run rate for the remaining days),
`noise` is log-normal with sigma 0.30 at the start of the quarter shrinking to 0.05 at its end, and
`best_case = commit + bias * final * U(0.15, 0.45)`. First-line managers submit 92-100% of their reps'
sum; managers also file an `adjustment` of each happy-ears rep's number (85% of it) half the weeks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np

from closewise.demo.org import NORMAL_RAMP_DAYS, People
from closewise.demo.plan import CORPORATE_CURRENCY, BoolArray, DemoPlan, FloatArray, stream
from closewise.domain.enums import Role
from closewise.domain.periods import Period

Row = dict[str, Any]


def _days(plan: DemoPlan, period: Period) -> tuple[int, int]:
    """First day and the day after the last, relative to today."""
    return (period.start - plan.today).days, (period.end - plan.today).days


def quota_rows(plan: DemoPlan, people: People, won: FloatArray, first_team_id: int) -> list[Row]:
    """`won[r, d]`: USD won by rep r on window day d."""
    quarters = plan.quarters
    quarters = [*quarters, plan.calendar.next(quarters[-1])]
    hire = people.hire_day[people.rep_user]
    fallback = np.array([12_000.0, 45_000.0, 160_000.0]) * 5
    seg_quota = np.zeros(3)
    totals: list[FloatArray] = []
    ramped: list[BoolArray] = []
    for period in quarters[:-2]:
        first, stop = _days(plan, period)
        totals.append(won[:, max(first - plan.start_day, 0) : stop - plan.start_day].sum(axis=1))
        ramped.append(first - hire >= NORMAL_RAMP_DAYS)
    actual, full = np.stack(totals, axis=1), np.stack(ramped, axis=1)
    for segment in range(3):
        mask = full & (people.segment == segment)[:, None]
        mean = actual[mask].mean() if mask.any() else fallback[segment]
        seg_quota[segment] = max(5_000.0, round(1.1 * float(mean) / 5_000) * 5_000)

    rows: list[Row] = []
    user_totals = np.zeros((len(people.names), len(quarters)))
    team_totals = np.zeros((len(people.team_names), len(quarters)))
    rep_quota = np.zeros((len(hire), len(quarters)))
    for j, period in enumerate(quarters):
        first, stop = _days(plan, period)
        ramp = np.clip(((first + stop) / 2 - hire) / NORMAL_RAMP_DAYS, 0.25, 1.0)
        rep_quota[:, j] = np.where(hire < stop, np.round(seg_quota[people.segment] * ramp / 1_000) * 1_000, 0.0)
    for r, user in enumerate(people.rep_user.tolist()):
        node = user
        while node >= 0:
            user_totals[node] += rep_quota[r]
            node = int(people.manager[node])
        team_totals[people.team[user]] += rep_quota[r]
    for j, period in enumerate(quarters):
        common = {"period": period.label, "period_start": period.start, "period_end": period.last_day}
        for user in range(len(people.names)):
            if user_totals[user, j] > 0 and people.roles[user] is not Role.ADMIN:
                rows.append({"user_id": people.first_id + user, "team_id": None, "amount": float(user_totals[user, j]),
                             "currency": CORPORATE_CURRENCY, **common})  # fmt: skip
        for team in range(len(people.team_names)):
            rows.append({"user_id": None, "team_id": first_team_id + team, "amount": float(team_totals[team, j]),
                         "currency": CORPORATE_CURRENCY, **common})  # fmt: skip
    first_id = plan.ids.first("quotas")
    return [{"id": first_id + i, **row} for i, row in enumerate(rows)]


def submission_rows(plan: DemoPlan, people: People, won: FloatArray) -> Iterator[list[Row]]:
    """The calls quarter by quarter (ids continue from one quarter's rows to the next)."""
    rng = stream(plan.seed, "submissions")
    hire = people.hire_day[people.rep_user]
    n_reps = len(hire)
    rep_ids = people.rep_ids
    rep_manager = people.manager[people.rep_user]
    managers = np.unique(rep_manager)
    cumulative = np.concatenate((np.zeros((n_reps, 1)), np.cumsum(won, axis=1)), axis=1)

    def won_between(first: int, stop: int) -> FloatArray:
        a, b = max(first - plan.start_day, 0), max(stop - plan.start_day, 0)
        result: FloatArray = cumulative[:, b] - cumulative[:, a]
        return result

    quarters = plan.quarters
    past = np.stack([won_between(*_days(plan, q)) for q in quarters[:-1]], axis=1)
    next_id = plan.ids.first("forecast_submissions")
    for j, period in enumerate(quarters):
        rows: list[Row] = []
        first, stop = _days(plan, period)
        length = stop - first
        if j < len(quarters) - 1:
            final = past[:, j]
        else:
            recent = past[:, -3:].mean(axis=1)
            final = won_between(first, 0) + recent * max(stop, 0) / length
        monday = first + (7 - plan.date_of(first).weekday()) % 7
        while monday < min(stop, 0):
            progress = (monday - first) / length
            to_date = won_between(first, monday)
            sigma = 0.05 + 0.25 * (1.0 - progress)
            noise = np.exp(rng.normal(0.0, sigma, n_reps))
            commit = np.round(np.maximum(to_date, people.bias * final * noise) / 100) * 100
            best = commit + np.round(people.bias * final * rng.uniform(0.15, 0.45, n_reps) / 100) * 100
            active = hire <= monday - 14
            at = datetime.combine(plan.date_of(monday), time(16, 0), tzinfo=UTC)
            for r in np.flatnonzero(active).tolist():
                rows.append(_submission(int(rep_ids[r]), period.label, at, commit[r], best[r]))
            manager_commit = np.bincount(rep_manager, weights=commit * active, minlength=len(people.names))
            manager_best = np.bincount(rep_manager, weights=best * active, minlength=len(people.names))
            haircut = rng.uniform(0.92, 1.0, len(people.names))
            later = at + timedelta(hours=2)
            for m in managers.tolist():
                rows.append(
                    _submission(people.first_id + m, period.label, later, manager_commit[m] * haircut[m],
                                manager_best[m] * haircut[m])
                )  # fmt: skip
            adjust = active & people.happy_ears & (rng.random(n_reps) < 0.5)
            for r in np.flatnonzero(adjust).tolist():
                row = _submission(people.first_id + int(rep_manager[r]), period.label, later, 0.85 * commit[r],
                                  0.85 * best[r])  # fmt: skip
                rows.append({**row, "kind": "adjustment", "subject_id": int(rep_ids[r]),
                             "notes": "Haircut: this rep's calls run hot"})  # fmt: skip
            monday += 7
        yield [{"id": next_id + i, **row} for i, row in enumerate(rows)]
        next_id += len(rows)


def _submission(user_id: int, period: str, at: datetime, commit: float, best: float) -> Row:
    return {
        "user_id": user_id,
        "period": period,
        "submitted_at": at,
        "commit": float(round(commit, -2)),
        "best_case": float(round(best, -2)),
        "pipeline": None,
        "kind": "submission",
        "subject_id": None,
        "notes": None,
    }
