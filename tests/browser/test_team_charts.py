"""The Team and Coaching pages in a real browser: the scorecard charts (attainment, win rate against attainment,
quarter by quarter, stage conversion, activity mix) are drawn for a leader, a rep's own quarters and stages for a
rep, and the coaching pages load — with no script error and nothing fetched from another host."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer

LEADER_CHARTS = ("team-attainment", "team-scatter", "team-trend", "team-stages", "team-mix")


def test_a_leader_sees_every_scorecard_chart_drawn(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["leader"])
    page = watched.page
    response = page.goto("/team")
    assert response is not None and response.status == 200
    for chart in LEADER_CHARTS:
        expect(page.locator(f"#{chart} .main-svg").first).to_be_attached()  # Plotly drew it
    heatmap = page.locator("#team-trend .heatmaplayer")
    expect(heatmap).to_have_count(1)
    watched.assert_clean()


def test_a_rep_sees_their_own_quarters_and_stages(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["rep"])
    page = watched.page
    response = page.goto("/team")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Your scorecard")
    for chart in ("team-trend", "team-stages"):
        expect(page.locator(f"#{chart} .main-svg").first).to_be_attached()
    expect(page.locator("#team-mix")).to_have_count(0)  # one rep: the mix is in the table
    watched.assert_clean()


def test_the_coaching_pages_load_cleanly(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["manager"])
    page = watched.page
    for path in ("/coaching/gap", "/coaching/ramp", "/coaching/reviews", "/coaching/plans"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        watched.assert_clean()
