"""`/api/users`: who sees whom (the hierarchy, worked out here independently), what only an admin may change,
the refusals that keep the hierarchy sound (cycles, the last admin), and passwords that never leave the server."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import audit_log, users
from tests.web.conftest import PASSWORD, WebOrg, api_client

ROLES = ["admin", "leader", "manager", "rep", "viewer"]


def expected_visible(org: WebOrg, role: str) -> set[int]:
    """Everyone for an admin or a leader; otherwise the user and everyone below them, walked from the table."""
    with org.engine.connect() as connection:
        managers = dict(connection.execute(sa.select(users.c.id, users.c.manager_id)).all())
    if role in ("admin", "leader"):
        return set(managers)
    seen = {org.user_id(org.logins[role])}
    grew = True
    while grew:
        below = {user for user, manager in managers.items() if manager in seen}
        grew = not below <= seen
        seen |= below
    return seen


def token_client(org: WebOrg, email: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(org.app)
    response = client.post("/api/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def no_secrets(value: Any) -> None:
    """No key named like a password and no argon2 hash anywhere in a JSON answer."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert "password" not in key.lower(), key
            no_secrets(item)
    elif isinstance(value, list):
        for item in value:
            no_secrets(item)
    elif isinstance(value, str):
        assert not value.startswith("$argon2"), value


@pytest.mark.parametrize("role", ROLES)
def test_each_role_lists_exactly_the_users_it_may_see(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    response = client.get("/api/users")
    assert response.status_code == 200
    listed = {u["id"] for u in response.json()}
    assert listed == expected_visible(web_org, role)
    no_secrets(response.json())
    # A user outside the scope answers 404, exactly like one that does not exist.
    outsiders = expected_visible(web_org, "admin") - listed
    for outsider in sorted(outsiders)[:3]:
        assert client.get(f"/api/users/{outsider}").status_code == 404
    assert client.get("/api/users/987654").status_code == 404
    me = web_org.user_id(web_org.logins[role])
    assert client.get(f"/api/users/{me}").json()["email"] == web_org.logins[role]


@pytest.mark.parametrize("role", ["leader", "manager", "rep", "viewer"])
def test_only_an_admin_adds_or_changes_users(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    target = web_org.user_id(web_org.logins["rep"])
    created = client.post("/api/users", json={"email": f"new.{role}@demo.closewise.io", "role": "rep"})
    assert created.status_code == 403
    assert client.patch(f"/api/users/{target}", json={"role": "viewer"}).status_code == 403
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(users.c.role).where(users.c.id == target)).scalar_one() == "rep"


def test_without_a_token_every_user_route_answers_401(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    assert client.get("/api/users").status_code == 401
    assert client.get("/api/users/1").status_code == 401
    assert client.post("/api/users", json={"email": "a@b.io", "role": "rep"}).status_code == 401
    assert client.patch("/api/users/1", json={"role": "rep"}).status_code == 401


def test_an_admin_adds_a_user_whose_password_is_an_argon2_hash_never_returned(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    manager_id = web_org.user_id(web_org.logins["manager"])
    response = admin.post("/api/users", json={"email": "New.Hire@Demo.Closewise.io", "role": "rep",
                                              "manager_id": manager_id, "password": "s3cret-enough"})
    assert response.status_code == 201, response.text
    body = response.json()
    no_secrets(body)
    assert body["email"] == "new.hire@demo.closewise.io" and body["manager_id"] == manager_id
    assert body["name"] == "New Hire" and body["active"]
    with web_org.engine.connect() as connection:
        stored = connection.execute(sa.select(users.c.password_hash).where(users.c.id == body["id"])).scalar_one()
        actor = connection.execute(sa.select(audit_log.c.actor_id).where(
            audit_log.c.action == "user.add", audit_log.c.entity_id == str(body["id"]))).scalar_one()
    assert stored.startswith("$argon2id$") and "s3cret-enough" not in stored
    assert actor == web_org.user_id(web_org.logins["admin"])
    # They can sign in, and now appear in their manager's scope.
    token_client(web_org, "new.hire@demo.closewise.io", "s3cret-enough")
    manager_sees = {u["id"] for u in api_client(web_org, "manager").get("/api/users").json()}
    assert body["id"] in manager_sees
    # The same email again, a bad role, a short password, an unknown manager: one clear message each.
    again = admin.post("/api/users", json={"email": "new.hire@demo.closewise.io", "role": "rep"})
    assert again.status_code == 409 and again.json()["where"] == "email"
    assert admin.post("/api/users", json={"email": "x1@demo.closewise.io", "role": "boss"}).status_code == 422
    short = admin.post("/api/users", json={"email": "x2@demo.closewise.io", "role": "rep", "password": "short"})
    assert short.status_code == 422 and "8" in short.json()["detail"]
    ghost = admin.post("/api/users", json={"email": "x3@demo.closewise.io", "role": "rep", "manager_id": 987654})
    assert ghost.status_code == 422 and ghost.json()["where"] == "manager_id"


def test_a_manager_who_reports_to_the_user_is_refused_as_a_cycle(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    manager = web_org.user_id(web_org.logins["manager"])
    with web_org.engine.connect() as connection:
        report = connection.execute(sa.select(users.c.id).where(users.c.manager_id == manager)
                                    .order_by(users.c.id)).scalars().first()
        before = dict(connection.execute(sa.select(users.c.id, users.c.manager_id)).all())
    assert report is not None
    cycle = admin.patch(f"/api/users/{manager}", json={"manager_id": report})
    assert cycle.status_code == 409 and "cycle" in cycle.json()["detail"]
    itself = admin.patch(f"/api/users/{manager}", json={"manager_id": manager})
    assert itself.status_code == 409
    with web_org.engine.connect() as connection:
        assert dict(connection.execute(sa.select(users.c.id, users.c.manager_id)).all()) == before


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(web_org: WebOrg) -> None:
    with web_org.engine.connect() as connection:
        admins = connection.execute(sa.select(users.c.id).where(users.c.role == "admin",
                                                                users.c.active.is_(True))).scalars().all()
    assert admins == [web_org.user_id(web_org.logins["admin"])]
    admin = api_client(web_org, "admin")
    demoted = admin.patch(f"/api/users/{admins[0]}", json={"role": "leader"})
    assert demoted.status_code == 409 and "last active admin" in demoted.json()["detail"]
    assert admin.patch(f"/api/users/{admins[0]}", json={"active": False}).status_code == 409
    # With a second admin, the first may step down; the second then is the last one.
    second = admin.post("/api/users", json={"email": "deputy.admin@demo.closewise.io", "role": "admin",
                                            "password": PASSWORD}).json()
    deputy = token_client(web_org, "deputy.admin@demo.closewise.io")
    assert deputy.patch(f"/api/users/{admins[0]}", json={"role": "leader"}).status_code == 200
    assert deputy.patch(f"/api/users/{second['id']}", json={"role": "rep"}).status_code == 409
    assert deputy.patch(f"/api/users/{admins[0]}", json={"role": "admin"}).json()["role"] == "admin"


def test_a_role_change_takes_effect_on_the_users_next_request(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    created = admin.post("/api/users", json={"email": "switcher@demo.closewise.io", "role": "rep",
                                             "password": PASSWORD}).json()
    them = token_client(web_org, "switcher@demo.closewise.io")
    assert [u["id"] for u in them.get("/api/users").json()] == [created["id"]]
    assert them.get("/api/me").json()["role"] == "rep"
    assert admin.patch(f"/api/users/{created['id']}", json={"role": "leader"}).status_code == 200
    # The same token, the next request: a leader's scope (everyone) and actions.
    assert {u["id"] for u in them.get("/api/users").json()} == expected_visible(web_org, "admin")
    assert "manage_settings" in them.get("/api/me").json()["may"]
    with web_org.engine.connect() as connection:
        change = connection.execute(sa.select(audit_log.c.actor_id, audit_log.c.detail).where(
            audit_log.c.action == "user.change", audit_log.c.entity_id == str(created["id"]))).one()
    assert change.actor_id == web_org.user_id(web_org.logins["admin"])
    assert change.detail == {"role": {"from": "rep", "to": "leader"}}


def test_deactivating_signs_the_user_out_and_reactivating_lets_them_back(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    created = admin.post("/api/users", json={"email": "leaver@demo.closewise.io", "role": "rep",
                                             "password": PASSWORD}).json()
    them = token_client(web_org, "leaver@demo.closewise.io")
    assert admin.patch(f"/api/users/{created['id']}", json={"active": False}).json()["active"] is False
    assert them.get("/api/me").status_code == 401
    refused = TestClient(web_org.app).post("/api/auth/token", data={"username": "leaver@demo.closewise.io",
                                                                    "password": PASSWORD})
    assert refused.status_code == 401
    assert admin.patch(f"/api/users/{created['id']}", json={"active": True}).json()["active"] is True
    token_client(web_org, "leaver@demo.closewise.io")
    me = web_org.user_id(web_org.logins["admin"])
    assert admin.patch(f"/api/users/{me}", json={"active": False}).status_code == 409


def test_a_password_reset_stores_a_new_hash_and_ends_the_old_tokens(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    created = admin.post("/api/users", json={"email": "forgetful@demo.closewise.io", "role": "rep",
                                             "password": PASSWORD}).json()
    them = token_client(web_org, "forgetful@demo.closewise.io")
    response = admin.patch(f"/api/users/{created['id']}", json={"password": "brand-new-pass"})
    assert response.status_code == 200
    no_secrets(response.json())
    assert them.get("/api/me").status_code == 401
    token_client(web_org, "forgetful@demo.closewise.io", "brand-new-pass")
    with web_org.engine.connect() as connection:
        stored = connection.execute(sa.select(users.c.password_hash).where(users.c.id == created["id"])).scalar_one()
    assert stored.startswith("$argon2id$")
    assert admin.patch(f"/api/users/{created['id']}", json={"password": "short"}).status_code == 422


def test_a_manager_can_be_removed_with_null(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    manager_id = web_org.user_id(web_org.logins["manager"])
    created = admin.post("/api/users", json={"email": "orphan@demo.closewise.io", "role": "rep",
                                             "manager_id": manager_id}).json()
    assert admin.patch(f"/api/users/{created['id']}", json={"name": "Orphan Annie"}).json()["manager_id"] == manager_id
    cleared = admin.patch(f"/api/users/{created['id']}", json={"manager_id": None}).json()
    assert cleared["manager_id"] is None and cleared["name"] == "Orphan Annie"
