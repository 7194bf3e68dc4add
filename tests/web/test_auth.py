"""Signing in and out: the API's bearer tokens and the pages' session cookies, their expiry, CSRF, and the
scope each role gets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import api_tokens, users, web_sessions
from closewise.domain.timeutil import utcnow
from closewise.web.deps import SESSION_COOKIE
from tests.web.conftest import PASSWORD, WebOrg, api_client, page_client


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    wrong = client.post("/api/auth/token", data={"username": web_org.logins["rep"], "password": "not-it-at-all"})
    unknown = client.post("/api/auth/token", data={"username": "nobody@example.com", "password": "whatever1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong email or password"
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


def test_every_api_route_but_the_token_needs_a_bearer_token(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer made-up"}).status_code == 401
    schema = client.get("/api/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method in methods:
            if path == "/api/auth/token":
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            response = client.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path, response.status_code)


@pytest.mark.parametrize("role", ["admin", "leader", "manager", "rep", "viewer"])
def test_me_tells_the_role_and_the_scope(web_org: WebOrg, role: str) -> None:
    me = api_client(web_org, role).get("/api/me").json()
    assert me["email"] == web_org.logins[role]
    assert me["role"] == role
    me_id = web_org.user_id(web_org.logins[role])
    if role in ("admin", "leader"):
        assert me["sees_everything"] and me["visible_user_ids"] is None
        return
    # Everyone else sees themselves and everyone below them in the hierarchy, worked out here independently.
    with web_org.engine.connect() as connection:
        managers = dict(connection.execute(sa.select(users.c.id, users.c.manager_id)).all())
    expected = {me_id}
    grew = True
    while grew:
        below = {user for user, manager in managers.items() if manager in expected}
        grew = not below <= expected
        expected |= below
    assert set(me["visible_user_ids"]) == expected
    if role == "viewer":
        assert me["may"] == []
    if role == "rep":
        assert expected == {me_id}


def test_an_expired_token_is_refused(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    assert client.get("/api/me").status_code == 200
    with web_org.engine.begin() as connection:
        connection.execute(api_tokens.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get("/api/me")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post("/login", data={"email": web_org.logins["manager"], "password": PASSWORD,
                                           "csrf_token": token.group(1), "next": "/deals"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/deals"
    cookie = response.headers["set-cookie"].lower()
    assert f"{SESSION_COOKIE}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "max-age=" in cookie
    secret = client.cookies[SESSION_COOKIE]
    # Sign out without the session's CSRF token: refused, the session lives on.
    assert client.post("/logout", data={}).status_code == 403
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one() >= 1
    from tests.web.conftest import session_csrf

    out = client.post("/logout", data={"csrf_token": session_csrf(web_org, client)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    from closewise.errors import AuthError
    from closewise.services.auth import session_principal

    with pytest.raises(AuthError):
        session_principal(web_org.engine, secret=secret)


def test_the_login_form_refuses_a_post_without_its_token_and_never_redirects_off_site(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    refused = client.post("/login", data={"email": web_org.logins["rep"], "password": PASSWORD,
                                          "csrf_token": "forged"}, follow_redirects=False)
    assert refused.status_code == 403 and SESSION_COOKIE not in client.cookies
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post("/login", data={"email": web_org.logins["rep"], "password": PASSWORD,
                                           "csrf_token": token.group(1), "next": "//evil.example/steal"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/forecast"


def test_a_wrong_password_on_the_form_says_so_without_signing_in(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post("/login", data={"email": web_org.logins["rep"], "password": "wrong-password",
                                           "csrf_token": token.group(1)})
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert SESSION_COOKIE not in client.cookies


def test_an_expired_session_sends_the_browser_back_to_sign_in(web_org: WebOrg) -> None:
    client = page_client(web_org, "leader")
    with web_org.engine.begin() as connection:
        connection.execute(web_sessions.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get("/deals?status=open", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/deals%3Fstatus%3Dopen"


def test_repeated_wrong_passwords_lock_the_address_for_a_while(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    email = web_org.logins["viewer"]
    for _ in range(web_org.app.state.throttle.limit):
        assert client.post("/api/auth/token", data={"username": email, "password": "guess-guess"}).status_code == 401
    locked = client.post("/api/auth/token", data={"username": email, "password": PASSWORD})
    assert locked.status_code == 401 and "too many failed sign-ins" in locked.json()["detail"]
    web_org.app.state.throttle.succeeded(email)  # let the other tests of this module sign in as the viewer


def test_pages_carry_security_headers(web_org: WebOrg) -> None:
    response = TestClient(web_org.app).get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_vendored_front_end_is_served_locally(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    page = client.get("/login").text
    for asset in re.findall(r'(?:src|href)="(/static[^"]+)"', page):
        assert client.get(asset).status_code == 200, asset
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    plotly = client.get("/static-vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
