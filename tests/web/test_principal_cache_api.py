"""The app keeps who is asking for a few seconds (`services.auth.PrincipalCache`, `web.deps`): through the API,
a revoked token and a deactivated user stop working at once when the change goes through the app, and within
`PRINCIPAL_CACHE_SECONDS` when it comes from another process; signing out ends the session at once."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.tables import api_tokens, users
from closewise.services.auth import PRINCIPAL_CACHE_SECONDS, PrincipalCache, issue_token
from closewise.services.users import add_user
from closewise.settings import Settings
from closewise.web.app import create_app
from closewise.web.deps import SESSION_COOKIE
from tests.integration.test_principal_cache import Clock

PASSWORD = "a-long-enough-password"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(engine: Engine, database_url: str, clock: Clock) -> FastAPI:
    made = create_app(Settings(database_url=database_url), engine=engine)
    made.state.principals = PrincipalCache(clock=clock.monotonic, now=clock.now)
    return made


@pytest.fixture
def admin_id(engine: Engine) -> int:
    return add_user(engine, email="ada.admin@example.com", role="admin", password=PASSWORD).id


def bearer(engine: Engine, user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(engine, user_id=user_id, minutes=60).secret}"}


def test_a_token_revoked_by_another_process_works_until_the_window_ends(
        app: FastAPI, engine: Engine, database_url: str, clock: Clock, admin_id: int) -> None:
    client = TestClient(app)
    headers = bearer(engine, admin_id)
    assert client.get("/api/me", headers=headers).status_code == 200
    elsewhere = make_engine(database_url)
    try:
        with elsewhere.begin() as connection:
            connection.execute(api_tokens.delete())
    finally:
        elsewhere.dispose()
    assert client.get("/api/me", headers=headers).status_code == 200  # cached: the other process said nothing
    clock.advance(PRINCIPAL_CACHE_SECONDS)
    assert client.get("/api/me", headers=headers).status_code == 401


def test_deactivating_a_user_through_the_app_ends_their_token_at_once(
        app: FastAPI, engine: Engine, admin_id: int) -> None:
    client = TestClient(app)
    rep = add_user(engine, email="ray.rep@example.com", role="rep", password=PASSWORD)
    admin, theirs = bearer(engine, admin_id), bearer(engine, rep.id)
    assert client.get("/api/me", headers=theirs).status_code == 200
    changed = client.patch(f"/api/users/{rep.id}", json={"active": False}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert client.get("/api/me", headers=theirs).status_code == 401


def test_a_role_change_through_the_app_shows_in_the_next_answer(app: FastAPI, engine: Engine,
                                                                admin_id: int) -> None:
    client = TestClient(app)
    rep = add_user(engine, email="ray.rep@example.com", role="rep", password=PASSWORD)
    theirs = bearer(engine, rep.id)
    assert client.get("/api/me", headers=theirs).json()["role"] == "rep"
    with engine.begin() as connection:  # what any code path of this process writing the users table does
        connection.execute(users.update().where(users.c.id == rep.id).values(role="viewer"))
    assert client.get("/api/me", headers=theirs).json()["role"] == "viewer"


def test_signing_out_ends_the_session_at_once(app: FastAPI, engine: Engine, admin_id: int) -> None:
    client = TestClient(app)
    form = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    signed_in = client.post("/login", data={"email": "ada.admin@example.com", "password": PASSWORD,
                                            "csrf_token": csrf.group(1), "next": "/deals"}, follow_redirects=False)
    assert signed_in.status_code == 303
    session = client.cookies[SESSION_COOKIE]
    page = client.get("/deals", follow_redirects=False)
    assert page.status_code == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    out = client.post("/logout", headers={"X-CSRF-Token": token.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set(SESSION_COOKIE, session)  # the cookie replayed after signing out
    again = client.get("/deals", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
