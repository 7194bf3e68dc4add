"""Stored deal scores and their honest history: `closewise score --backfill-weeks N` refits the deal models as
of each of the last N week starts and keeps one point per deal open then, each equal to what models fitted on
only the data known at that moment say; the current run alone fills `deal_scores`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from closewise.db.tables import deal_score_history, deal_scores, opportunities, opportunity_changes
from closewise.domain.periods import PeriodKind
from closewise.domain.timeutil import as_utc
from closewise.errors import InvalidInput
from closewise.ml.frames import OrgFrames
from closewise.ml.scorer import DealScorer
from closewise.services.org_data import load_org
from closewise.services.scoring import ScoringRun, score_deals, week_starts
from tests.cli_runner import run_cli
from tests.web.conftest import WebOrg

WEEKS = 3


@pytest.fixture(scope="module")
def backfilled(web_org: WebOrg, demo_today: date) -> ScoringRun:
    now = datetime.combine(demo_today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
    return score_deals(web_org.engine, as_of=now, backfill_weeks=WEEKS)


def test_week_starts_are_the_mondays_before_now() -> None:
    sunday_evening = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    assert week_starts(sunday_evening, 3) == [datetime(2026, 11, d, tzinfo=UTC) for d in (2, 9, 16)]
    monday_midnight = datetime(2026, 11, 16, tzinfo=UTC)  # a week start is not before itself
    assert week_starts(monday_midnight, 1) == [datetime(2026, 11, 9, tzinfo=UTC)]
    assert week_starts(sunday_evening, 0) == []
    with pytest.raises(InvalidInput):
        week_starts(sunday_evening, -1)


def history_by_moment(web_org: WebOrg) -> dict[datetime, list[tuple[int, float]]]:
    points: dict[datetime, list[tuple[int, float]]] = defaultdict(list)
    with web_org.engine.connect() as connection:
        for row in connection.execute(sa.select(deal_score_history.c.as_of, deal_score_history.c.opportunity_id,
                                                deal_score_history.c.p_win)):
            points[as_utc(row.as_of)].append((row.opportunity_id, row.p_win))
    return points


def open_at(web_org: WebOrg, moment: datetime) -> set[int]:
    """The deals open at `moment`, by the change log's reconstruction rule, computed here from SQL: created by
    then, and the status then (the last status change at or before it, else the first change's old value, else
    the current status) is open."""
    naive = moment.replace(tzinfo=None)
    with web_org.engine.connect() as connection:
        deals = connection.execute(sa.select(opportunities.c.id, opportunities.c.created_at,
                                             opportunities.c.status)).all()
        changes = connection.execute(
            sa.select(opportunity_changes.c.opportunity_id, opportunity_changes.c.changed_at,
                      opportunity_changes.c.old_value, opportunity_changes.c.new_value)
            .where(opportunity_changes.c.field == "status")
            .order_by(opportunity_changes.c.changed_at, opportunity_changes.c.id)).all()
    by_deal: dict[int, list[tuple[datetime, str | None, str | None]]] = defaultdict(list)
    for change in changes:
        by_deal[change.opportunity_id].append((change.changed_at.replace(tzinfo=None), change.old_value,
                                               change.new_value))
    found = set()
    for deal in deals:
        if deal.created_at.replace(tzinfo=None) > naive:
            continue
        log = by_deal.get(deal.id, [])
        before = [new for at, _, new in log if at <= naive]
        status = before[-1] if before else (log[0][1] if log else deal.status)
        if status == "open":
            found.add(deal.id)
    return found


def test_the_backfill_keeps_one_point_per_open_deal_per_week(web_org: WebOrg, backfilled: ScoringRun) -> None:
    points = history_by_moment(web_org)
    weeks = [moment for moment, _ in backfilled.history]
    assert weeks == week_starts(backfilled.as_of, WEEKS)
    assert all(moment.weekday() == 0 and moment.time() == datetime.min.time() for moment in weeks)
    for moment, count in backfilled.history:
        ids = [deal for deal, _ in points[moment]]
        assert len(ids) == len(set(ids)) == count
        assert set(ids) == open_at(web_org, moment), moment
        assert all(0.0 <= p <= 1.0 for _, p in points[moment])


def test_each_point_comes_only_from_what_was_known_then(web_org: WebOrg, backfilled: ScoringRun) -> None:
    """The point of one week equals a fit and a score on the org rolled back to that week (`known_at`): nothing
    that happened after its `as_of` went into it."""
    moment = backfilled.history[0][0]
    org = load_org(web_org.engine)
    then = OrgFrames.of(org).known_at(moment.replace(tzinfo=None))
    quarter = org.calendar.period_containing(moment.date(), PeriodKind.QUARTER)
    naive = moment.replace(tzinfo=None)
    scores = DealScorer().fit(then, as_of=naive).score(then, as_of=naive, period_start=quarter.start,
                                                       period_end=quarter.end, reasons=False)
    expected = dict(zip(scores["id"].to_list(), scores["p_win"].to_list(), strict=True))
    stored = dict(history_by_moment(web_org)[moment])
    assert stored.keys() == expected.keys()
    assert all(stored[deal] == pytest.approx(expected[deal], abs=1e-9) for deal in stored)
    with web_org.engine.connect() as connection:
        created = dict(connection.execute(sa.select(opportunities.c.id, opportunities.c.created_at)).all())
    assert all(created[deal].replace(tzinfo=None) <= naive for deal in stored)


def test_only_the_current_run_fills_deal_scores(web_org: WebOrg, backfilled: ScoringRun) -> None:
    with web_org.engine.connect() as connection:
        current = connection.execute(sa.select(deal_scores.c.opportunity_id, deal_scores.c.as_of,
                                               deal_scores.c.p_win)).all()
    assert len(current) == backfilled.deals
    assert {as_utc(row.as_of) for row in current} == {backfilled.as_of}
    assert set(history_by_moment(web_org)[backfilled.as_of]) == {(row.opportunity_id, row.p_win) for row in current}
    assert {row.opportunity_id for row in current} == open_at(web_org, backfilled.as_of)


def test_a_second_backfill_replaces_its_weeks_and_keeps_the_rest(web_org: WebOrg, backfilled: ScoringRun) -> None:
    before = history_by_moment(web_org)
    again = score_deals(web_org.engine, as_of=backfilled.as_of, backfill_weeks=1)
    after = history_by_moment(web_org)
    assert after.keys() == before.keys()
    for moment in after:
        now, then = dict(after[moment]), dict(before[moment])
        assert now.keys() == then.keys() and len(after[moment]) == len(before[moment]), moment
        assert all(now[deal] == pytest.approx(then[deal]) for deal in now), moment
    assert again.history == backfilled.history[-1:]


def test_the_score_command_backfills_with_progress_and_json(web_org: WebOrg, backfilled: ScoringRun,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(capsys, monkeypatch, "--db", web_org.url, "score", "--backfill-weeks", "1", "--json")
    assert result.code == 0, result.stderr
    body = result.json()
    assert len(body["history"]) == 1 and body["deals"] >= 1
    assert datetime.fromisoformat(body["history"][0]["as_of"]).weekday() == 0
    refused = run_cli(capsys, monkeypatch, "--db", web_org.url, "score", "--backfill-weeks", "-2")
    assert refused.code != 0 and "Traceback" not in refused.stderr


def test_the_deal_page_draws_the_weekly_points(web_org: WebOrg, backfilled: ScoringRun) -> None:
    from closewise.db.scope import scope_for
    from closewise.services.deals import probability_history

    points = history_by_moment(web_org)
    every_week = set.intersection(*({deal for deal, _ in points[moment]} for moment, _ in backfilled.history))
    deal = min(every_week)  # open in every backfilled week
    with web_org.engine.connect() as connection:
        scope = scope_for(connection, user_id=web_org.user_id(web_org.logins["leader"]))
    history = probability_history(web_org.engine, scope=scope, deal_id=deal)
    moments = [datetime.fromisoformat(p["as_of"]) for p in history["model"]]
    assert moments == sorted(moments) and set(moment for moment, _ in backfilled.history) <= set(moments)
    steps = history["crm"]
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    assert all(s["probability"] is None or 0 <= s["probability"] <= 1 for s in steps)
