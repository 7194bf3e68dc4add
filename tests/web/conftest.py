"""Fixtures for the web app and API: one demo org per test module (SQLite, or a fresh PostgreSQL database when
CLOSEWISE_TEST_DATABASE_URL is set) with stored deal scores, the app on it, and signed-in clients per role.

The demo org's logins (password `closewise-demo`) are a leader, an admin, a manager and a rep; the fixture adds
a viewer reporting to the manager and a second rep under another manager, so scope tests have someone to be
kept apart from."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.tables import users
from closewise.services.scoring import refresh_deal_scores
from closewise.services.users import add_user
from closewise.settings import Settings
from closewise.web.app import create_app
from tests.demo_org import DEMO_TODAY, demo_database

PASSWORD = "closewise-demo"
VIEWER = "vic.viewer@demo.closewise.io"
OTHER_REP = "otto.rep@demo.closewise.io"


@dataclass(frozen=True)
class WebOrg:
    url: str
    engine: Engine
    app: FastAPI
    logins: dict[str, str]  # role -> email (admin, leader, manager, rep, viewer, other_rep)

    def user_id(self, email: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(users.c.id).where(users.c.email == email)).scalar_one())


@pytest.fixture(scope="module")
def web_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebOrg]:
    folder: Path = tmp_path_factory.mktemp("web")
    with demo_database(folder) as (url, summary):
        engine = make_engine(url)
        logins = {login.role: login.email for login in summary.logins}
        with engine.connect() as connection:
            manager_id = connection.execute(
                sa.select(users.c.id).where(users.c.email == logins["manager"])).scalar_one()
            other_manager = connection.execute(
                sa.select(users.c.email).where(users.c.role == "manager", users.c.id != manager_id)
                .order_by(users.c.id)).scalars().first()
        add_user(engine, email=VIEWER, role="viewer", manager_email=logins["manager"], password=PASSWORD)
        add_user(engine, email=OTHER_REP, role="rep", manager_email=other_manager, password=PASSWORD)
        logins["viewer"], logins["other_rep"] = VIEWER, OTHER_REP
        refresh_deal_scores(engine)
        app = create_app(Settings(database_url=url), engine=engine)
        try:
            yield WebOrg(url, engine, app, logins)
        finally:
            engine.dispose()


def visible_owners(org: WebOrg, role: str) -> set[int] | None:
    """Whose records `role`'s login sees, walked here from the users table (None: everyone) — independently of
    `domain.scope`, so tests compare the app's scope with a rule of their own."""
    if role in ("admin", "leader"):
        return None
    with org.engine.connect() as connection:
        managers = dict(connection.execute(sa.select(users.c.id, users.c.manager_id)).all())
    seen = {org.user_id(org.logins[role])}
    while True:
        below = {user for user, manager in managers.items() if manager in seen} - seen
        if not below:
            return seen
        seen |= below


def api_client(org: WebOrg, role: str | None) -> TestClient:
    """A client with a bearer token of the demo login of `role` (None: no token)."""
    client = TestClient(org.app)
    if role is not None:
        response = client.post("/api/auth/token", data={"username": org.logins[role], "password": PASSWORD})
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def page_client(org: WebOrg, role: str) -> TestClient:
    """A browser-like client signed in through the login form as `role`; `.csrf` holds its CSRF token."""
    client = TestClient(org.app)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post("/login", data={"email": org.logins[role], "password": PASSWORD,
                                           "csrf_token": token.group(1), "next": "/deals"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    client.csrf = session_csrf(org, client)  # type: ignore[attr-defined]
    return client


def session_csrf(org: WebOrg, client: TestClient) -> str:
    """The CSRF token of the client's session, as the pages embed it in `<meta name="csrf-token">`."""
    from closewise.services.auth import session_principal
    from closewise.web.deps import SESSION_COOKIE

    principal = session_principal(org.engine, secret=client.cookies[SESSION_COOKIE])
    assert principal.csrf_token is not None
    return principal.csrf_token


@pytest.fixture(scope="module")
def demo_today() -> object:
    return DEMO_TODAY
