"""The playbook's gates and re-qualification list in a real browser (issue 7): a stage move with exit criteria
missing is refused and the page names them, an override with a reason goes through and the change log keeps
the reason, ticking the criteria in place lets the move through, and the re-qualification list as of a picked
day holds exactly the deals the API lists for that day.

Each gate test takes its own Discovery deal of the demo manager's team (the manager may edit them) and wipes
its criteria checks, so its gate starts closed. What the page should say is worked out before the click from
the playbook service and checked after it against the database (the stage stored, the change-log row)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import sqlalchemy as sa
from playwright.sync_api import expect

from closewise.db.tables import (
    criteria_checks,
    opportunities,
    opportunity_changes,
    qualification_answers,
    stages,
    users,
)
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc
from closewise.services import playbook
from closewise.services.hygiene import end_of_day
from tests.browser.conftest import PASSWORD, LiveServer, Watched
from tests.demo_org import DEMO_TODAY

EVERYONE = Scope(user_id=0, role=Role.ADMIN, owner_ids=None)
FROM, TO, TO_NAME = "discovery", "solution", "Solution / Demo"


def _team_deal(live: LiveServer, nth: int) -> int:
    """The `nth` open Discovery deal (by id) of the manager's team, its criteria checks wiped."""
    manager = live.user_id(live.logins["manager"])
    with live.engine.begin() as connection:
        team = sa.select(users.c.id).where(users.c.manager_id == manager).scalar_subquery()
        deal = connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id.in_(team), opportunities.c.status == "open", opportunities.c.stage == FROM)
            .order_by(opportunities.c.id).offset(nth)).scalars().first()
        assert deal is not None, f"the manager's team has fewer than {nth + 1} open Discovery deals"
        connection.execute(criteria_checks.delete().where(criteria_checks.c.opportunity_id == deal))
    return int(deal)


def _missing(live: LiveServer, deal: int) -> dict[str, str]:
    """What the playbook says is missing to move the deal on (key -> label), from the service, not the page."""
    state = playbook.deal_playbook(live.engine, scope=EVERYONE, deal_id=deal)
    assert state["stage"] == FROM and state["next_stage"] == TO
    return {c["key"]: c["label"] for c in state["missing_to_advance"]}


def _stored(live: LiveServer, deal: int) -> tuple[str, list[sa.Row[Any]]]:
    """The deal's stage and its stage changes made in the app, as the database holds them."""
    with live.engine.connect() as connection:
        stage = connection.execute(sa.select(opportunities.c.stage).where(opportunities.c.id == deal)).scalar_one()
        rows = list(connection.execute(sa.select(
            opportunity_changes.c.old_value, opportunity_changes.c.new_value, opportunity_changes.c.reason,
            opportunity_changes.c.changed_by).where(
            opportunity_changes.c.opportunity_id == deal, opportunity_changes.c.field == "stage",
            opportunity_changes.c.source == "app").order_by(opportunity_changes.c.id)).all())
    return stage, rows


def _open(new_page: Any, live: LiveServer, deal: int) -> Watched:
    watched: Watched = new_page()
    watched.sign_in(live.logins["manager"], next_path=f"/deals/{deal}")
    expect(watched.page.get_by_role("heading", level=1)).to_be_visible()
    expect(watched.page.locator("form.deal-edit")).to_be_visible()
    return watched


def _move(page: Any, stage_name: str, reason: str | None = None) -> None:
    form = page.locator("form.deal-edit")
    form.get_by_label("Stage").select_option(label=stage_name)
    if reason is not None:
        form.get_by_label("Reason").fill(reason)
    form.get_by_role("button", name="Save changes").click()


def _stage_shown(page: Any) -> Any:
    return page.locator(".deal-kpis .kpi", has_text="Stage").locator(".value")


def test_a_move_with_criteria_missing_is_refused_and_the_page_names_them(new_page: Any,
                                                                          live_server: LiveServer) -> None:
    deal = _team_deal(live_server, 0)
    watched = _open(new_page, live_server, deal)
    page = watched.page
    missing = _missing(live_server, deal)
    # The checkbox criterion is certainly missing: its checks were just wiped.
    assert "decision_criteria_known" in missing
    _move(page, TO_NAME)

    expect(page.get_by_role("alert")).to_contain_text(f"{len(missing)} exit criteria not met")
    refusal = page.locator("#gate-refused")
    expect(refusal).to_contain_text(f"Not moved to {TO_NAME}")
    items = refusal.locator("li")
    expect(items).to_have_count(len(missing))
    assert {item.get_attribute("data-key") for item in items.all()} == set(missing)
    for label in missing.values():
        expect(refusal.get_by_text(label)).to_be_visible()
    # Nothing moved: the page, the database and the change log all still say Discovery.
    expect(_stage_shown(page)).to_have_text("Discovery")
    stage, rows = _stored(live_server, deal)
    assert stage == FROM and rows == []
    # What was picked stays in the form, so a reason can be added and the move sent again.
    expect(page.locator("form.deal-edit").get_by_label("Stage")).to_have_value(TO)
    watched.assert_clean()


def test_an_override_with_a_reason_goes_through_and_the_change_log_keeps_it(new_page: Any,
                                                                             live_server: LiveServer) -> None:
    deal = _team_deal(live_server, 1)
    watched = _open(new_page, live_server, deal)
    page = watched.page
    missing = _missing(live_server, deal)
    assert missing
    reason = "CFO signed off in person at the 20 November review"
    _move(page, TO_NAME, reason)

    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(_stage_shown(page)).to_have_text(TO_NAME)
    stage, rows = _stored(live_server, deal)
    assert stage == TO
    (row,) = rows
    assert (row.old_value, row.new_value) == (FROM, TO)
    assert row.changed_by == live_server.user_id(live_server.logins["manager"])
    given, keys = playbook.parse_override(row.reason) or ("", [])
    assert row.reason.startswith("gate override: ") and given == reason and set(keys) == set(missing)

    # The timeline shows it, newest first, with what was missing in words; still there after a reload.
    for _ in range(2):
        latest = page.locator(".deal-timeline > li").first
        expect(latest).to_contain_text("Gate override")
        expect(latest).to_contain_text(f"Reason: {reason}")
        expect(latest).to_contain_text(f"Discovery → {TO_NAME}")
        moved_without = latest.get_by_text(re.compile("^Moved on without: "))
        expect(moved_without).to_be_visible()
        shown = moved_without.inner_text().removeprefix("Moved on without: ").split("; ")
        assert sorted(shown) == sorted(missing.values())
        page.reload()
    watched.assert_clean()


def test_ticking_the_criteria_in_place_then_lets_the_move_through(new_page: Any, live_server: LiveServer) -> None:
    deal = _team_deal(live_server, 2)
    watched = _open(new_page, live_server, deal)
    page = watched.page
    missing = _missing(live_server, deal)
    _move(page, TO_NAME)
    expect(page.locator("#gate-refused li")).to_have_count(len(missing))

    criteria = page.locator("form.criteria-form")
    total = criteria.locator("li").count()
    for label in missing.values():
        box = criteria.get_by_label(label)
        expect(box).not_to_be_checked()
        box.check()
    criteria.get_by_role("button", name="Save criteria").click()
    expect(page.get_by_role("status")).to_contain_text("Exit criteria saved.")
    expect(page.get_by_text(f"{total} of {total} met")).to_be_visible()
    for label in missing.values():
        expect(page.locator("form.criteria-form").get_by_label(label)).to_be_checked()
    # Each tick is stored as a check by the manager; the service now sees nothing missing.
    with live_server.engine.connect() as connection:
        checks = connection.execute(sa.select(criteria_checks.c.criterion_key, criteria_checks.c.done,
                                              criteria_checks.c.checked_by)
                                    .where(criteria_checks.c.opportunity_id == deal)).all()
    manager = live_server.user_id(live_server.logins["manager"])
    assert {(c.criterion_key, c.done, c.checked_by) for c in checks} == {(key, True, manager) for key in missing}
    assert _missing(live_server, deal) == {}

    _move(page, TO_NAME)
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(page.locator("#gate-refused")).to_have_count(0)
    expect(_stage_shown(page)).to_have_text(TO_NAME)
    stage, rows = _stored(live_server, deal)
    assert stage == TO and [(r.old_value, r.new_value, r.reason) for r in rows] == [(FROM, TO, None)]
    watched.assert_clean()


def _api_due(live: LiveServer, role: str, day: date | None) -> list[dict[str, Any]]:
    """`GET /api/playbook/requalification` over HTTP with `role`'s bearer token."""
    login = urlencode({"username": live.logins[role], "password": PASSWORD}).encode()
    with urlopen(Request(f"{live.base_url}/api/auth/token", data=login), timeout=60) as response:
        token = json.load(response)["access_token"]
    query = f"?{urlencode({'as_of': day.isoformat()})}" if day else ""
    request = Request(f"{live.base_url}/api/playbook/requalification{query}",
                      headers={"Authorization": f"Bearer {token}"})
    with urlopen(request, timeout=120) as response:
        return list(json.load(response)["deals"])


def _page_rows(page: Any) -> list[dict[str, str]]:
    table = page.get_by_role("table", name=re.compile("^Re-qualification due as of"))
    expect(table).to_be_visible()
    cells: list[list[str]] = table.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [r.id, ...Array.from(r.cells).map(c => c.innerText.trim())])")
    return [{"id": row[0].removeprefix("due-"), "owner": row[2], "stage": row[3], "last": row[4], "due_on": row[5],
             "status": row[6].split()[0]} for row in cells]


def _as_api(rows: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {(str(r["id"]), r["owner"] or "—", r["stage"], (r["last_qualified_at"] or "never")[:10], r["due_on"],
             r["status"]) for r in rows}


def _as_page(rows: list[dict[str, str]]) -> set[tuple[str, ...]]:
    return {(r["id"], r["owner"], r["stage"], r["last"], r["due_on"], r["status"]) for r in rows}


def _check_each_row_from_the_tables(live: LiveServer, rows: list[dict[str, str]], day: date) -> None:
    """Each row's dates and status worked out again from the raw tables: last qualified = the latest answer
    given by the end of `day` (else never, and the clock runs from creation), due = that + the cadence of the
    stage shown, overdue once that moment has passed, else due within 7 days."""
    moment = end_of_day(day)
    assert moment is not None
    with live.engine.connect() as connection:
        cadence = dict(connection.execute(sa.select(stages.c.key, stages.c.requalify_days)).all())
        for row in rows:
            deal = int(row["id"])
            last = connection.execute(sa.select(sa.func.max(qualification_answers.c.answered_at)).where(
                qualification_answers.c.opportunity_id == deal,
                qualification_answers.c.answered_at <= moment)).scalar()
            created = connection.execute(sa.select(opportunities.c.created_at)
                                         .where(opportunities.c.id == deal)).scalar_one()
            since: datetime = as_utc(last) if last is not None else as_utc(created)
            due_at = since + timedelta(days=cadence[row["stage"]])
            assert row["last"] == (since.date().isoformat() if last is not None else "never"), row
            assert row["due_on"] == due_at.date().isoformat(), row
            expected = "overdue" if moment > due_at else "due"
            assert row["status"] == expected, row
            if expected == "due":
                assert due_at.date() <= day + timedelta(days=7), row


def test_the_requalification_list_as_of_a_day_is_the_one_the_api_computes(new_page: Any,
                                                                           live_server: LiveServer) -> None:
    day = DEMO_TODAY - timedelta(days=21)
    expected = _api_due(live_server, "manager", day)
    # The day matters: the list a month back is not today's (else a page ignoring it would pass).
    assert expected and _as_api(expected) != _as_api(_api_due(live_server, "manager", None))

    watched = new_page()
    watched.sign_in(live_server.logins["manager"], next_path="/playbook")
    page = watched.page
    expect(page.get_by_role("heading", level=1, name="Playbook")).to_be_visible()
    filters = page.get_by_role("form", name="Playbook filters")
    filters.get_by_label("As of").fill(day.isoformat())
    filters.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"as_of={day.isoformat()}"))
    expect(page.get_by_text(f"Re-qualification due as of {day.isoformat()}")).to_be_visible()
    rows = _page_rows(page)
    assert _as_page(rows) == _as_api(expected)
    assert len(rows) == len(expected)  # no deal listed twice
    overdue = sum(1 for r in expected if r["status"] == "overdue")
    expect(page.get_by_text(f"{len(expected)} deals: {overdue} overdue, {len(expected) - overdue} due")).to_be_visible()
    _check_each_row_from_the_tables(live_server, rows, day)

    # One rep's list: the same day, only their deals.
    owner_id, owner = max(((r["owner_id"], r["owner"]) for r in expected),
                          key=lambda o: sum(1 for r in expected if r["owner_id"] == o[0]))
    filters = page.get_by_role("form", name="Playbook filters")
    expect(filters.get_by_label("As of")).to_have_value(day.isoformat())
    filters.get_by_label("Re-qualification of").select_option(str(owner_id))
    filters.get_by_role("button", name="Show").click()
    expect(page.get_by_text(f"Re-qualification due as of {day.isoformat()} · {owner}")).to_be_visible()
    theirs = [r for r in expected if r["owner_id"] == owner_id]
    assert _as_page(_page_rows(page)) == _as_api(theirs) and len(theirs) < len(expected)
    watched.assert_clean()
