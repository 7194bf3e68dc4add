"""Signing in through a real browser: the right password opens the app, a wrong one says so."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer


def test_a_leader_signs_in_and_lands_on_the_forecast(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["leader"])
    page = watched.page
    expect(page).to_have_url(re.compile(r"/forecast"))
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    watched.assert_clean()


def test_a_wrong_password_shows_the_message_and_stays_on_the_form(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["rep"], "not-the-password")
    page = watched.page
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    # The 401 of the form is the answer the page expects, not a script error; nothing else may be logged.
    watched.console_errors[:] = [e for e in watched.console_errors if "401" not in e]
    watched.assert_clean()


def test_signing_out_ends_the_session(new_page: Any, live_server: LiveServer) -> None:
    watched = new_page()
    watched.sign_in(live_server.logins["manager"])
    page = watched.page
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/forecast")
    expect(page).to_have_url(re.compile(r"/login\?next=/forecast"))
    watched.assert_clean()
