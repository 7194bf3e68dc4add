"""The settings page for every role: an admin manages users, quotas, the calendar and currencies; a leader sees
users read-only and manages the rest; everyone else is refused. Forms post through htmx with the session's
CSRF token (or as plain posts), re-render their section, and refuse what the API refuses."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import audit_log, org_settings, quotas, users
from tests.web.conftest import WebOrg, page_client

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
_CLIENTS: dict[tuple[str, str], TestClient] = {}


def browser(org: WebOrg, role: str) -> TestClient:
    key = (org.url, role)
    if key not in _CLIENTS:
        _CLIENTS[key] = page_client(org, role)
    return _CLIENTS[key]


def htmx(client: TestClient) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", ROLES)
def test_the_settings_page_opens_for_admins_and_leaders_only(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    response = client.get("/settings")
    if role not in ("admin", "leader"):
        assert response.status_code == 403
        assert 'href="/settings"' not in client.get("/deals").text  # nor is it in their menu
        return
    assert response.status_code == 200
    text = response.text
    for section in ("users", "quotas", "calendar", "currencies"):
        assert f'id="{section}"' in text
    with web_org.engine.connect() as connection:
        names = connection.execute(sa.select(users.c.name)).scalars().all()
    assert all(name in text for name in names)
    user_forms = re.findall(r'action="/settings/users[^"]*"', text)
    if role == "admin":
        assert 'action="/settings/users"' in user_forms and len(user_forms) > len(names)
    else:
        assert user_forms == []  # the users section is read-only for a leader
        assert 'action="/settings/quotas"' in text and 'action="/settings/calendar"' in text
    assert "password_hash" not in text and "$argon2" not in text


def test_a_page_without_a_session_sends_to_the_sign_in(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    response = client.get("/settings", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_posts_without_the_csrf_token_are_refused(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    response = client.post("/settings/users", data={"email": "csrf@demo.closewise.io", "role": "rep"})
    assert response.status_code == 403
    with web_org.engine.connect() as connection:
        found = connection.execute(sa.select(users.c.id).where(users.c.email == "csrf@demo.closewise.io")).first()
    assert found is None


@pytest.mark.parametrize("role", ["manager", "rep", "viewer"])
def test_roles_without_settings_cannot_post_anything(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    rep = web_org.user_id(web_org.logins["rep"])
    for path, data in (("/settings/users", {"email": "x@demo.closewise.io", "role": "rep"}),
                       (f"/settings/users/{rep}", {"role": "viewer"}),
                       ("/settings/quotas", {"owner": f"user:{rep}", "period": "2032-Q1", "amount": "1"}),
                       ("/settings/calendar", {"start_month": "4"}),
                       ("/settings/rates", {"currency": "SEK", "rate": "10"})):
        assert client.post(path, data=data, headers=htmx(client)).status_code == 403, path


def test_a_leader_cannot_change_users_from_the_page(web_org: WebOrg) -> None:
    client = browser(web_org, "leader")
    rep = web_org.user_id(web_org.logins["rep"])
    assert client.post(f"/settings/users/{rep}", data={"role": "viewer", "manager_id": ""},
                       headers=htmx(client)).status_code == 403
    assert client.post(f"/settings/users/{rep}/active", data={"active": "0"}, headers=htmx(client)).status_code == 403
    with web_org.engine.connect() as connection:
        stored = connection.execute(sa.select(users.c.role, users.c.active).where(users.c.id == rep)).one()
    assert tuple(stored) == ("rep", True)


def test_an_admin_adds_a_user_and_changes_their_role_through_htmx(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    manager = web_org.user_id(web_org.logins["manager"])
    added = client.post("/settings/users", headers=htmx(client), data={
        "email": "page.user@demo.closewise.io", "name": "Page User", "role": "rep", "manager_id": str(manager),
        "password": "page-password"})
    assert added.status_code == 200
    assert 'id="users"' in added.text and "page.user@demo.closewise.io was added" in added.text
    with web_org.engine.connect() as connection:
        row = connection.execute(
            sa.select(users).where(users.c.email == "page.user@demo.closewise.io")).mappings().one()
    assert row["manager_id"] == manager and row["password_hash"].startswith("$argon2id$")
    edit = client.get(f"/settings/users/{row['id']}/edit", headers={"HX-Request": "true"})
    assert edit.status_code == 200 and f'id="role-{row["id"]}"' in edit.text
    changed = client.post(f"/settings/users/{row['id']}", headers=htmx(client),
                          data={"role": "manager", "manager_id": ""})
    assert changed.status_code == 200 and "next request" in changed.text
    with web_org.engine.connect() as connection:
        after = connection.execute(sa.select(users.c.role, users.c.manager_id).where(users.c.id == row["id"])).one()
        actor = connection.execute(sa.select(audit_log.c.actor_id).where(
            audit_log.c.action == "user.change", audit_log.c.entity_id == str(row["id"]))).scalar_one()
    assert after == ("manager", None) and actor == web_org.user_id(web_org.logins["admin"])


def test_the_page_refuses_a_manager_cycle_and_the_last_admin_with_a_message(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    manager = web_org.user_id(web_org.logins["manager"])
    with web_org.engine.connect() as connection:
        report = connection.execute(sa.select(users.c.id).where(users.c.manager_id == manager)
                                    .order_by(users.c.id)).scalars().first()
        role_before = connection.execute(sa.select(users.c.role).where(users.c.id == manager)).scalar_one()
    cycle = client.post(f"/settings/users/{manager}", headers=htmx(client),
                        data={"role": role_before, "manager_id": str(report)})
    assert cycle.status_code == 409 and 'id="users"' in cycle.text and "cycle" in cycle.text
    admin = web_org.user_id(web_org.logins["admin"])
    last = client.post(f"/settings/users/{admin}", headers=htmx(client), data={"role": "leader", "manager_id": ""})
    assert last.status_code == 409 and "last active admin" in last.text
    # A plain form post (no htmx) gets the whole page with the message.
    plain = client.post(f"/settings/users/{admin}", data={"role": "leader", "manager_id": "",
                                                           "csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert plain.status_code == 409 and "<h1>Settings</h1>" in plain.text and "last active admin" in plain.text


@pytest.mark.parametrize("role", ["admin", "leader"])
def test_quotas_are_added_edited_and_deleted_from_the_page(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    rep = web_org.user_id(web_org.logins["rep"])
    period = "2032-Q1" if role == "admin" else "2032-Q2"
    added = client.post("/settings/quotas", headers=htmx(client),
                        data={"owner": f"user:{rep}", "period": period, "amount": "75,000", "currency": ""})
    assert added.status_code == 200 and "The quota was added" in added.text
    with web_org.engine.connect() as connection:
        quota = connection.execute(sa.select(quotas).where(quotas.c.user_id == rep, quotas.c.period == period)
                                   ).mappings().one()
    assert quota["amount"] == 75000
    assert f'action="/settings/quotas/{quota["id"]}"' in added.text  # the section now shows that period
    listed = client.get("/settings/quotas", params={"period": period}, headers={"HX-Request": "true"})
    assert listed.status_code == 200 and f'value="{75000:.2f}"' in listed.text
    edited = client.post(f"/settings/quotas/{quota['id']}", headers=htmx(client),
                         data={"amount": "80000", "period": period})
    assert edited.status_code == 200 and "The quota is saved" in edited.text
    bad = client.post(f"/settings/quotas/{quota['id']}", headers=htmx(client), data={"amount": "lots"})
    assert bad.status_code == 422 and "Amount must be a number" in bad.text
    deleted = client.post(f"/settings/quotas/{quota['id']}/delete", headers=htmx(client), data={"period": period})
    assert deleted.status_code == 200 and "The quota was deleted" in deleted.text
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(quotas.c.id).where(quotas.c.id == quota["id"])).first() is None


def test_the_calendar_and_a_rate_are_saved_from_the_page(web_org: WebOrg) -> None:
    client = browser(web_org, "leader")
    saved = client.post("/settings/calendar", headers=htmx(client), data={"start_month": "4", "name_by_end": "1"})
    assert saved.status_code == 200 and "The fiscal calendar is saved" in saved.text
    with web_org.engine.connect() as connection:
        stored = dict(connection.execute(sa.select(org_settings.c.key, org_settings.c.value)).all())
    assert stored["fiscal_year_start_month"] == "4" and stored["fiscal_year_name_by_end"] == "1"
    restored = client.post("/settings/calendar", headers=htmx(client), data={"start_month": "1"})
    assert restored.status_code == 200
    rate = client.post("/settings/rates", headers=htmx(client),
                       data={"currency": "sek", "rate": "10.5", "start_date": "2026-06-01"})
    assert rate.status_code == 200 and "SEK" in rate.text and "The rate is saved" in rate.text
    bad_day = client.post("/settings/rates", headers=htmx(client),
                          data={"currency": "SEK", "rate": "10", "start_date": "June"})
    assert bad_day.status_code == 422 and "is not a date" in bad_day.text
    plain = client.post("/settings/calendar", data={"start_month": "1", "csrf_token": client.csrf},  # type: ignore[attr-defined]
                        follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/settings#calendar"
