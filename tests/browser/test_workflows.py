"""What a sales leader, a manager and a rep do in Closewise, in a real browser: open the forecast, filter deals,
snooze a hygiene finding, sweep dead deals, and see only their own part of the team.

Selectors are roles, labels and visible text (what a person sees), so a page can change its markup without
breaking these tests as long as it keeps saying the same things. Expected values come from the database.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from playwright.sync_api import expect

from closewise.db.tables import opportunities, users
from tests.browser.conftest import LiveServer

SLOW = 180_000  # ms: the forecast's first computation on a busy two-core machine


def _names(live: LiveServer) -> dict[int, str]:
    with live.engine.connect() as connection:
        return dict(connection.execute(sa.select(users.c.id, users.c.name)).all())


def test_the_forecast_computes_and_shows_its_figures(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["leader"], next_path="/forecast")
    page = watched.page
    expect(page.get_by_role("heading", level=1, name=re.compile("Forecast"))).to_be_visible()
    # The first visit may show "Computing the forecast…" and poll; the result replaces it.
    result = page.get_by_text("Chance of hitting the target")
    expect(result).to_be_visible(timeout=SLOW)
    for label in ("Closed won", "Most likely (P50)", "Expected", "Target", "Gap to target"):
        expect(page.locator(".kpi", has_text=label).first).to_be_visible()
    expect(page.get_by_role("heading", name="Computing the forecast…")).to_have_count(0)
    # The outcome chart is drawn by the vendored Plotly (an SVG inside the chart element).
    chart = page.get_by_role("img", name=re.compile("Chance of booking at least"))
    if chart.count():
        expect(chart.locator("svg").first).to_be_attached(timeout=30_000)
    watched.assert_clean()


def test_filtering_deals_by_owner_and_stage_updates_the_table_and_the_address(new_page: Any,
                                                                             live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["manager"], next_path="/deals")
    page = watched.page
    expect(page.get_by_role("heading", level=1, name="Deals")).to_be_visible()
    table = page.get_by_role("table")
    expect(table).to_be_visible()

    # Pick the owner with the most open deals in the manager's part of the team (from the database).
    manager_id = live_server.user_id(live_server.logins["manager"])
    names = _names(live_server)
    with live_server.engine.connect() as connection:
        team = {row.id for row in connection.execute(sa.select(users.c.id).where(users.c.manager_id == manager_id))}
        counts = connection.execute(
            sa.select(opportunities.c.owner_id, opportunities.c.stage, sa.func.count().label("n"))
            .where(opportunities.c.owner_id.in_(sorted(team | {manager_id})), opportunities.c.status == "open")
            .group_by(opportunities.c.owner_id, opportunities.c.stage).order_by(sa.desc("n"))).first()
    assert counts is not None, "the manager's team has no open deal"
    owner_id, stage, expected = counts

    page.get_by_label("Status").select_option("open")
    page.get_by_label("Owner").select_option(str(owner_id))
    expect(page).to_have_url(re.compile(rf"owner={owner_id}"))
    rows = table.locator("tbody tr")
    expect(rows.first).to_contain_text(names[owner_id])
    owner_cells = table.locator("tbody tr td:nth-child(2)")
    assert set(owner_cells.all_inner_texts()) == {names[owner_id]}

    page.get_by_label("Stage").select_option(stage)
    expect(page).to_have_url(re.compile(rf"stage={stage}"))
    expect(page.get_by_text(re.compile(rf"of {expected:,}\b"))).to_be_visible()
    query = parse_qs(urlsplit(page.url).query)
    assert query["owner"] == [str(owner_id)] and query["stage"] == [stage]
    assert query.get("status", ["open"]) == ["open"]  # open deals are the list's default
    assert set(owner_cells.all_inner_texts()) == {names[owner_id]}
    assert rows.count() == min(expected, rows.count()) and rows.count() > 0

    # The address is the filter: reloading it shows the same deals.
    page.reload()
    expect(page.get_by_label("Owner")).to_have_value(str(owner_id))
    expect(page.get_by_label("Stage")).to_have_value(stage)
    watched.assert_clean()


def test_snoozing_a_finding_hides_it(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["manager"], next_path="/hygiene")
    page = watched.page
    expect(page.get_by_role("heading", level=1, name=re.compile("hygiene", re.IGNORECASE))).to_be_visible()
    snooze = page.get_by_role("button", name=re.compile(r"^Snooze a finding of "))
    expect(snooze.first).to_be_visible()
    row = page.locator("tbody tr").filter(has=snooze).first
    deal_id = int((row.get_attribute("id") or "").removeprefix("deal-"))
    row.get_by_role("button", name=re.compile(r"^Snooze a finding of ")).click()
    finding = row.get_by_role("combobox", name=re.compile("^Finding"))
    code = finding.input_value()
    label = finding.locator("option:checked").inner_text()
    row.get_by_label("Reason").fill("customer on holiday until the 5th")
    row.get_by_role("button", name="Snooze finding").click()
    expect(row.get_by_text(re.compile(r"Snoozed .* until"))).to_be_visible()

    # Reloaded, the finding is gone from the deal's findings (or the deal from the list, if it was its only one).
    page.reload()
    expect(page.get_by_role("heading", level=1, name=re.compile("hygiene", re.IGNORECASE))).to_be_visible()
    findings = page.locator(f"#deal-{deal_id} .reasons li", has_text=label)
    expect(findings).to_have_count(0)
    expect(page.locator(f"#finding-{deal_id}-{code}")).to_have_count(0)
    watched.assert_clean()


def test_sweeping_dead_deals_previews_then_closes_them_as_no_decision(new_page: Any,
                                                                      live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["leader"], next_path="/hygiene")
    page = watched.page
    page.get_by_role("button", name="Preview sweep").click()
    confirm = page.get_by_role("button", name=re.compile(r"^Confirm sweep of \d+ deals?$"))
    expect(confirm).to_be_visible(timeout=60_000)
    preview = page.get_by_role("table").filter(has=page.get_by_text("Total"))
    links = preview.get_by_role("link")
    first = links.first.get_attribute("href")
    assert first is not None and first.startswith("/deals/")
    swept = int(first.rsplit("/", 1)[1])
    with live_server.engine.connect() as connection:
        before = connection.execute(sa.select(opportunities.c.status).where(opportunities.c.id == swept)).scalar_one()
    assert before == "open"  # nothing is written by the preview

    page.get_by_role("textbox", name=re.compile(r"^Reason \(optional")).fill("quarter-end clean-up")
    confirm.click()
    expect(page.get_by_role("status").filter(has_text=re.compile(r"Swept \d+ deals?"))).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Undo sweep")).to_be_visible()
    with live_server.engine.connect() as connection:
        after = connection.execute(sa.select(opportunities.c.status, opportunities.c.forecast_category)
                                   .where(opportunities.c.id == swept)).one()
    assert after.status == "no_decision"

    # The deal's page says so too.
    page.goto(f"/deals/{swept}")
    expect(page.get_by_text(re.compile("no decision", re.IGNORECASE)).first).to_be_visible()
    watched.assert_clean()


def test_a_rep_sees_only_their_own_deals(new_page: Any, live_server: LiveServer) -> None:
    rep_id = live_server.user_id(live_server.logins["rep"])
    names = _names(live_server)
    watched = new_page()
    watched.sign_in(live_server.logins["rep"], next_path="/deals?status=all")
    page = watched.page
    table = page.get_by_role("table")
    expect(table.locator("tbody tr").first).to_be_visible()
    assert set(table.locator("tbody tr td:nth-child(2)").all_inner_texts()) == {names[rep_id]}
    owner_options = page.get_by_label("Owner").locator("option").all_inner_texts()
    assert [o for o in owner_options if o.strip() and not o.startswith("Everyone")] == [names[rep_id]]

    # Another rep's deal answers as if it did not exist.
    other = live_server.user_id(live_server.logins["other_rep"])
    with live_server.engine.connect() as connection:
        theirs = connection.execute(sa.select(opportunities.c.id).where(opportunities.c.owner_id != rep_id)
                                    .order_by(opportunities.c.id)).scalars().first()
    assert theirs is not None and other != rep_id
    response = page.goto(f"/deals/{theirs}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_be_visible()
    missing = page.goto("/deals/987654321")
    assert missing is not None and missing.status == 404
    # The 404s are the answers expected here, not script errors.
    watched.console_errors[:] = [e for e in watched.console_errors if "404" not in e]
    watched.assert_clean()


def test_every_main_page_loads_cleanly_with_nothing_from_other_hosts(new_page: Any, live_server: LiveServer) -> None:
    with live_server.engine.connect() as connection:
        deal = connection.execute(sa.select(opportunities.c.id).where(opportunities.c.status == "open")
                                  .order_by(opportunities.c.id)).scalars().first()
    watched = new_page()
    watched.sign_in(live_server.logins["admin"])
    page = watched.page
    for path in ("/forecast", "/pipeline", "/hygiene", "/deals", f"/deals/{deal}", "/team", "/imports", "/settings"):
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        page.wait_for_load_state("networkidle")
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        watched.assert_clean()
