"""Each hygiene finding on hand-made frames, where every threshold is set up so that one deal sits just past
it and another just short of it; plus snooze expiry and the sweep rule (analytics.hygiene)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from closewise.analytics import hygiene as h
from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline
from closewise.errors import InvalidInput

AT = datetime(2026, 6, 30, 12, 0)
STAGES = pl.DataFrame(
    {"key": ["prospecting", "discovery", "custom"], "days_to_rot": [21, 30, None], "requalify_days": [30, 10, None]},
    schema={"key": pl.String(), "days_to_rot": pl.Int64(), "requalify_days": pl.Int64()},
)
NO_ACTIVITY = pl.DataFrame(schema=h.ACTIVITY_SCHEMA)
NO_CHANGES = s.empty_changes()


def ago(days: float) -> datetime:
    return AT - timedelta(days=days)


def deal(
    id_: int, *, created: float = 5, stage: str = "prospecting", status: str = "open", closed: float | None = None,
    amount: float = 1000.0, close_date: date = date(2026, 7, 31), next_step: str | None = "call them",
    segment: str = "smb",
) -> dict[str, Any]:
    return {
        s.ID: id_, s.OWNER_ID: 1, s.ACCOUNT_ID: 1, s.STAGE: stage, s.STATUS: status, s.AMOUNT: amount,
        s.CURRENCY: "USD", s.CLOSE_DATE: close_date, s.FORECAST_CATEGORY: "pipeline", s.PROBABILITY: 10.0,
        s.NEXT_STEP: next_step, s.CREATED_AT: ago(created), s.CLOSED_AT: None if closed is None else ago(closed),
        "segment": segment,
    }


def change(id_: int, field: str, old: str | None, new: str | None, days_ago: float) -> dict[str, Any]:
    return {s.OPPORTUNITY_ID: id_, s.FIELD: field, s.OLD_VALUE: old, s.NEW_VALUE: new, s.CHANGED_AT: ago(days_ago)}


def frames(
    deals: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]] = ()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    opportunities = pl.DataFrame(list(deals), schema={**s.OPPORTUNITY_SCHEMA, "segment": pl.String()})
    log = pl.DataFrame(list(changes), schema=dict(s.CHANGE_SCHEMA)) if changes else NO_CHANGES
    return build_timeline(opportunities, log), log


def run(
    deals: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]] = (), *, activities: pl.DataFrame = NO_ACTIVITY,
    answers: pl.DataFrame | None = None, settings: h.HygieneSettings | None = None, code: str | None = None,
) -> dict[int, str]:
    """{deal id: detail} of one finding code."""
    timeline, log = frames(deals, changes)
    found = h.findings(timeline, as_of=AT, stages=STAGES, changes=log, activities=activities, answers=answers,
                       settings=settings)
    return {row["id"]: row["detail"] for row in found.filter(pl.col("code") == code).iter_rows(named=True)}


def won(first_id: int, cycles: Sequence[int], segment: str = "smb") -> list[dict[str, Any]]:
    """Deals won before AT, each after the given number of days (closed 200 days ago, created before that)."""
    return [deal(first_id + i, created=200 + c, closed=200, status="won", segment=segment)
            for i, c in enumerate(cycles)]


def test_aged_past_cycle_org_wide() -> None:
    # Ten wins with cycles 10, 20, ..., 100 days: the 90th percentile (linear) sits at rank 0.9 x 9 = 8.1,
    # between 90 and 100, so 91 days. Fewer than 30 wins in the segment: the org-wide figure is used.
    history = won(100, range(10, 101, 10))
    found = run([*history, deal(1, created=92), deal(2, created=90)], code="aged_past_cycle")
    assert set(found) == {1}
    assert found[1] == "open 92 days; 90% of won deals closed within 91 days (from 10 wins, org-wide)"


def test_aged_past_cycle_per_segment() -> None:
    # With 5 wins enough per segment: smb cycles 10..50 give p90 = 46, enterprise 60..100 give 96.
    history = won(100, [10, 20, 30, 40, 50], "smb") + won(200, [60, 70, 80, 90, 100], "enterprise")
    settings = h.HygieneSettings(min_won_per_segment=5)
    deals = [deal(1, created=47, segment="smb"), deal(2, created=47, segment="enterprise"),
             deal(3, created=97, segment="enterprise"), deal(4, created=95, segment="other")]
    found = run([*history, *deals], settings=settings, code="aged_past_cycle")
    # Deal 4's segment has no wins: org-wide p90 of the ten cycles is 91.
    assert set(found) == {1, 3, 4}
    assert "within 46 days (from 5 wins, segment smb)" in found[1]
    assert "within 96 days (from 5 wins, segment enterprise)" in found[3]
    assert "within 91 days (from 10 wins, org-wide)" in found[4]
    timeline, _ = frames([*history, *deals])
    thresholds = h.learned_cycle_thresholds(timeline, as_of=AT, settings=settings)
    assert thresholds.filter(pl.col("segment") == "smb")["cycle_days"][0] == pytest.approx(46.0)


def test_wins_after_as_of_do_not_teach_the_cycle() -> None:
    # Only deals won by AT count: a win 1 day in the future is invisible, so no threshold and no finding.
    future_win = deal(9, created=400, status="won", closed=-1)
    assert run([future_win, deal(1, created=300)], code="aged_past_cycle") == {}


def test_stuck_in_stage_with_days_to_rot() -> None:
    # Discovery rots after 30 days; time counts from entering the stage, not from creation.
    changes = [change(1, "stage", "prospecting", "discovery", 31), change(2, "stage", "prospecting", "discovery", 29)]
    deals = [deal(1, created=60, stage="discovery"), deal(2, created=60, stage="discovery")]
    found = run(deals, changes, code="stuck_in_stage")
    assert found == {1: "in discovery for 31 days, past its days-to-rot of 30 days"}


def test_stuck_in_stage_learned_default() -> None:
    # "custom" has no days_to_rot: four deals left it forwards after 10, 20, 30 and 40 days, so the learned
    # p90 is at rank 0.9 x 3 = 2.7: 30 + 0.7 x 10 = 37 days. A deal that was lost from it does not count.
    history, changes = [], []
    for i, stay in enumerate([10, 20, 30, 40]):
        # They moved on to a stage with no days_to_rot and no exits to learn from: no finding there.
        history.append(deal(10 + i, created=100 + stay, stage="later"))
        changes += [change(10 + i, "stage", "custom", "later", 100)]
    history.append(deal(20, created=300, stage="custom", status="lost", closed=100))
    changes.append(change(20, "status", "open", "lost", 100))
    deals = [deal(1, created=38, stage="custom"), deal(2, created=36, stage="custom")]
    settings = h.HygieneSettings(min_stage_exits=4)
    found = run([*history, *deals], changes, settings=settings, code="stuck_in_stage")
    assert found == {1: "in custom for 38 days, past the learned default (4 stays that left it) of 37 days"}
    # Below min_stage_exits there is no learned default and no finding.
    assert run([*history, *deals], changes, settings=h.HygieneSettings(min_stage_exits=5), code="stuck_in_stage") == {}


def test_close_date_past() -> None:
    found = run([deal(1, close_date=date(2026, 6, 29)), deal(2, close_date=date(2026, 6, 30))], code="close_date_past")
    assert found == {1: "expected close date 2026-06-29 is 1 days in the past"}


def test_pushed_often_counts_only_pushes_known_by_as_of() -> None:
    # Deal 1: three pushes of 10 days. Deal 2: two pushes and a pull-in. Deal 3: a third push after AT.
    def pushes(id_: int, moves: list[tuple[str, str]], days: list[float]) -> list[dict[str, Any]]:
        return [change(id_, "close_date", old, new, d) for (old, new), d in zip(moves, days, strict=True)]

    three = [("2026-05-01", "2026-05-11"), ("2026-05-11", "2026-05-21"), ("2026-05-21", "2026-05-31")]
    changes = (
        pushes(1, three, [50, 40, 30])
        + pushes(2, [*three[:2], ("2026-05-21", "2026-05-15")], [50, 40, 30])
        + pushes(3, three, [50, 40, -1])
    )
    deals = [deal(i, created=60, close_date=date(2026, 7, 31)) for i in (1, 2, 3)]
    found = run(deals, changes, code="pushed_often")
    assert found == {1: "close date pushed out 3 times (threshold 3), 30 days in all"}


def test_no_activity() -> None:
    activities = pl.DataFrame(
        [(1, ago(31), True), (2, ago(29), True), (3, ago(40), True), (3, ago(5), False), (4, ago(-3), True)],
        schema=h.ACTIVITY_SCHEMA, orient="row",
    )
    # 1: last 31 days ago. 2: 29 days ago. 3: only an uncompleted task since day 40. 4: an activity after AT
    # and none before, counted from creation 35 days ago. 5: created 20 days ago, never worked: too young.
    deals = [deal(i, created=35) for i in (1, 2, 3, 4)] + [deal(5, created=20)]
    found = run(deals, activities=activities, code="no_activity")
    assert set(found) == {1, 3, 4}
    assert found[1] == "no activity for 31 days, the last on 2026-05-30 (threshold 30)"
    assert found[4] == "no activity in the 35 days since it was created (threshold 30)"


def test_no_next_step() -> None:
    found = run([deal(1, next_step=None), deal(2, next_step="  "), deal(3)], code="no_next_step")
    assert set(found) == {1, 2}


def test_amount_changed() -> None:
    # Within 30 days: 10,000 -> 12,000 -> 16,000 is +60% (> 50%); 10,000 -> 14,000 is +40%; a doubling
    # 40 days ago is outside the window; 10,000 -> 4,000 is -60%.
    changes = [
        change(1, "amount", "10000.0", "12000.0", 20), change(1, "amount", "12000.0", "16000.0", 10),
        change(2, "amount", "10000.0", "14000.0", 10),
        change(3, "amount", "5000.0", "10000.0", 40),
        change(4, "amount", "10000.0", "4000.0", 1),
    ]
    deals = [deal(i, created=60) for i in (1, 2, 3, 4)]
    found = run(deals, changes, code="amount_changed")
    assert found == {
        1: "amount changed from 10,000 to 16,000 USD (+60%) in the last 30 days (threshold ±50%)",
        4: "amount changed from 10,000 to 4,000 USD (-60%) in the last 30 days (threshold ±50%)",
    }


def test_not_requalified() -> None:
    # Discovery asks every 10 days; prospecting every 30; "custom" has no cadence: the default 30.
    answers = pl.DataFrame([(1, ago(11)), (2, ago(9)), (1, ago(-2))], schema=h.ANSWER_SCHEMA, orient="row")
    deals = [deal(1, created=50, stage="discovery"), deal(2, created=50, stage="discovery"),
             deal(3, created=31, stage="custom"), deal(4, created=29, stage="prospecting")]
    found = run(deals, answers=answers, code="not_requalified")
    assert found == {
        1: "last qualified 11 days ago, on 2026-06-19 (discovery asks every 10 days)",
        3: "never qualified in the 31 days since it was created (custom asks every 30 days)",
    }
    # An org without any answer does not use scorecards: no finding at all.
    assert run(deals, answers=None, code="not_requalified") == {}
    assert run(deals, answers=answers.filter(pl.col("opportunity_id") < 0), code="not_requalified") == {}


def test_only_deals_open_at_as_of_and_sorted() -> None:
    deals = [deal(2, next_step=None), deal(1, next_step=None, close_date=date(2026, 1, 1)),
             deal(3, next_step=None, status="lost", closed=1)]
    timeline, log = frames(deals)
    found = h.findings(timeline, as_of=AT, stages=STAGES, changes=log, activities=NO_ACTIVITY)
    assert found.select("id", "code").rows() == [(1, "close_date_past"), (1, "no_next_step"), (2, "no_next_step")]


def test_snoozes_hide_until_the_resume_date() -> None:
    found = pl.DataFrame({"id": [1, 1, 2], "code": ["no_next_step", "close_date_past", "no_next_step"],
                          "detail": ["a", "b", "c"]})
    snoozes = pl.DataFrame(
        [(1, "no_next_step", date(2026, 7, 3), ago(1)), (2, "no_next_step", date(2026, 8, 1), ago(-1))],
        schema=h.SNOOZE_SCHEMA, orient="row",
    )
    # Hidden on the days before 3 July; back on 3 July. Deal 2's snooze is made after AT: not yet known.
    assert h.apply_snoozes(found, snoozes, as_of=AT)["detail"].to_list() == ["b", "c"]
    # On 2 July deal 2's snooze (made on 1 July) hides it too.
    assert h.apply_snoozes(found, snoozes, as_of=datetime(2026, 7, 2, 23, 59))["detail"].to_list() == ["b"]
    assert h.apply_snoozes(found, snoozes, as_of=datetime(2026, 7, 3))["detail"].to_list() == ["a", "b"]
    # A later snooze of the same finding replaces the earlier one (here: it ends sooner).
    shorter = pl.concat([snoozes, pl.DataFrame([(1, "no_next_step", date(2026, 6, 30), ago(0.5))],
                                               schema=h.SNOOZE_SCHEMA, orient="row")])
    assert h.apply_snoozes(found, shorter, as_of=AT)["detail"].to_list() == ["a", "b", "c"]


def test_dead_deals_rule() -> None:
    rows = [(1, "aged_past_cycle"), (1, "no_activity"), (2, "stuck_in_stage"), (2, "no_activity"),
            (3, "aged_past_cycle"), (4, "no_activity"), (4, "close_date_past")]
    found = pl.DataFrame([(i, c, f"{c} of {i}") for i, c in rows], schema=h.FINDINGS_SCHEMA, orient="row")
    dead = h.dead_deals(found)
    assert dead["id"].to_list() == [1, 2]
    assert [r["code"] for r in dead["reasons"][0]] == ["aged_past_cycle", "no_activity"]


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidInput, match="cycle_percentile"):
        h.HygieneSettings(cycle_percentile=1.5)
    with pytest.raises(InvalidInput, match="pushes"):
        h.HygieneSettings(pushes=0)


def test_a_reopened_deal_keeps_its_stage_clock() -> None:
    # In discovery since 40 days ago, closed as no decision 10 days ago and reopened 5 days ago (an undone
    # sweep): still 40 days in discovery, past its 30-day rot.
    changes = [change(1, "stage", "prospecting", "discovery", 40), change(1, "status", "open", "no_decision", 10),
               change(1, "status", "no_decision", "open", 5)]
    found = run([deal(1, created=60, stage="discovery")], changes, code="stuck_in_stage")
    assert found == {1: "in discovery for 40 days, past its days-to-rot of 30 days"}
