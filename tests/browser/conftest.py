"""Browser tests: the demo org served by uvicorn on a free loopback port, driven by Debian's Chromium through
Playwright (its sync API). Playwright's own browser download is never used: CI installs Debian's `chromium`
through `scripts/setup --test`, and every test here is skipped, with the reason, when `/usr/bin/chromium` is
absent.

Every page a test opens is watched: a console error, an uncaught script error, or a request to any host but
this server fails the test (`Watched.assert_clean`), so a page that breaks its scripts or reaches for a CDN is
caught wherever it is opened."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.tables import users
from closewise.services.scoring import refresh_deal_scores
from closewise.services.users import add_user
from closewise.settings import Settings
from closewise.web.app import create_app
from tests.demo_org import demo_database

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "closewise-demo"
OTHER_REP = "otto.rep@demo.closewise.io"
VIEWPORT = {"width": 1440, "height": 900}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"needs Debian's Chromium at {CHROMIUM} (scripts/setup --test installs it; "
                                   "Playwright's own browser download is not used)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(skip)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    engine: Engine
    logins: dict[str, str]  # role -> email (admin, leader, manager, rep, other_rep)

    def user_id(self, email: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(users.c.id).where(users.c.email == email)).scalar_one())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo org (scores stored) behind a real HTTP server in a background thread."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    folder = tmp_path_factory.mktemp("browser")
    with demo_database(folder) as (url, summary):
        engine = make_engine(url)
        logins = {login.role: login.email for login in summary.logins}
        with engine.connect() as connection:
            manager_id = connection.execute(
                sa.select(users.c.id).where(users.c.email == logins["manager"])).scalar_one()
            other_manager = connection.execute(
                sa.select(users.c.email).where(users.c.role == "manager", users.c.id != manager_id)
                .order_by(users.c.id)).scalars().first()
        add_user(engine, email=OTHER_REP, role="rep", manager_email=other_manager, password=PASSWORD)
        logins["other_rep"] = OTHER_REP
        refresh_deal_scores(engine)
        app = create_app(Settings(database_url=url), engine=engine)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="on", access_log=False))
        thread = threading.Thread(target=server.run, name="closewise-live-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        try:
            yield LiveServer(f"http://127.0.0.1:{port}", engine, logins)
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox", "--disable-background-networking"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page with everything it logged and requested; `assert_clean` fails on console errors, uncaught script
    errors, or requests that left this server."""

    page: Any
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.page_errors, f"uncaught script errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.foreign_requests, f"requests to other hosts: {self.foreign_requests}"

    def sign_in(self, email: str, password: str = PASSWORD, *, next_path: str | None = None) -> None:
        target = f"{self.base_url}/login" + (f"?next={next_path}" if next_path else "")
        self.page.goto(target)
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state("networkidle")


def _watch(page: Any, base_url: str) -> Watched:
    watched = Watched(page, base_url)

    def on_console(message: Any) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} ({page.url})")

    def on_request(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.hostname not in _LOCAL_HOSTS:
            watched.foreign_requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(f"{error} ({page.url})"))
    page.on("request", on_request)
    return watched


@pytest.fixture()
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """`new_page()` gives a fresh, watched page in a context of its own (no cookies shared between calls)."""
    contexts: list[Any] = []

    def make() -> Watched:
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.base_url, locale="en-US",
                                      timezone_id="UTC")
        # The first forecast page of a live server can take tens of seconds on a loaded 2-core machine.
        context.set_default_timeout(60_000)
        contexts.append(context)
        return _watch(context.new_page(), live_server.base_url)

    yield make
    for context in contexts:
        context.close()
