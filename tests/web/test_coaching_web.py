"""Coaching API and pages for every role: reads hold only what the caller may see (ids checked against the
hierarchy in SQL), out-of-scope ids answer 404 like missing ones, writes are authorised by the role's actions
(`coach`: managers and up, for the reps they see; `follow_up`: a rep's own commitments; `manage_settings`:
leaders and admins adopt checklist items) — a role without the action gets 403 whatever it aims at — and
every route needs credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import opportunities, users
from closewise.domain.scope import subtree
from tests.web.conftest import WebOrg, api_client, page_client

ROLES = ("admin", "leader", "manager", "rep", "viewer")
AS_OF = "2026-11-22"


def _visible(org: WebOrg, role: str) -> set[int] | None:
    """The user ids a role's login sees, from the users table (None: everyone)."""
    if role in ("admin", "leader"):
        return None
    with org.engine.connect() as connection:
        managers = {r.id: r.manager_id for r in connection.execute(sa.select(users.c.id, users.c.manager_id))}
    return set(subtree(org.user_id(org.logins[role]), managers))


def _team_rep(org: WebOrg) -> int:
    """A rep in the demo manager's team (the demo rep login is in another team)."""
    manager = org.user_id(org.logins["manager"])
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(users.c.id).where(users.c.manager_id == manager,
                                                                  users.c.role == "rep").order_by(users.c.id)
                                      ).scalars().first())


def _deal_of(org: WebOrg, owner: int) -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id == owner, opportunities.c.status == "open").order_by(opportunities.c.id)
        ).scalars().first())


@pytest.fixture(scope="module")
def clients(web_org: WebOrg) -> Iterator[dict[str, TestClient]]:
    yield {role: api_client(web_org, role) for role in (*ROLES, "other_rep")}


@pytest.mark.parametrize("path", ["/api/coaching/gap", "/api/coaching/ramp", "/api/coaching/reviews",
                                  "/api/coaching/plans", "/api/coaching/plans/1", "/api/coaching/reps/1/skills"])
def test_api_needs_a_token(web_org: WebOrg, path: str) -> None:
    assert api_client(web_org, None).get(path).status_code == 401


def test_writes_need_a_token(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    assert client.post("/api/coaching/reviews", json={"deal_id": 1, "note": "x"}).status_code == 401
    assert client.post("/api/coaching/plans", json={"rep_id": 1, "title": "x"}).status_code == 401
    assert client.post("/api/coaching/checklist/coach_contacts_engaged/adopt").status_code == 401
    assert client.patch("/api/coaching/commitments/1", json={"done": True}).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_gap_holds_only_reps_in_sight(web_org: WebOrg, clients: dict[str, TestClient], role: str) -> None:
    response = clients[role].get("/api/coaching/gap", params={"as_of": AS_OF})
    assert response.status_code == 200, response.text
    body = response.json()
    seen = _visible(web_org, role)
    ids = {r["user_id"] for r in body["reps"]}
    if seen is not None:
        assert ids <= seen
    else:
        assert len(ids) >= 20 and body["top_performers"] and body["checklist"]
    assert {p["id"] for p in body["top_performers"]} <= ids
    assert body["rule"].startswith("Top performers")


@pytest.mark.parametrize("role", ROLES)
def test_ramp_and_reviews_hold_only_what_is_in_sight(web_org: WebOrg, clients: dict[str, TestClient],
                                                      role: str) -> None:
    seen = _visible(web_org, role)
    ramp = clients[role].get("/api/coaching/ramp", params={"as_of": AS_OF})
    assert ramp.status_code == 200, ramp.text
    reviews = clients[role].get("/api/coaching/reviews", params={"as_of": AS_OF})
    assert reviews.status_code == 200, reviews.text
    hires = {h["rep_id"] for h in ramp.json()["new_hires"]}
    curves = {c["rep_id"] for c in ramp.json()["curves"]}
    owners = {i["owner_id"] for i in reviews.json()["items"]}
    if seen is not None:
        assert hires <= seen and curves <= seen and owners <= seen
    else:
        assert hires and owners
    for item in reviews.json()["items"]:
        assert item["questions"] and item["reasons"]


def test_reviews_of_another_managers_team_are_not_found(web_org: WebOrg, clients: dict[str, TestClient]) -> None:
    with web_org.engine.connect() as connection:
        mine = web_org.user_id(web_org.logins["manager"])
        other = connection.execute(sa.select(users.c.id).where(users.c.role == "manager", users.c.id != mine)
                                   .order_by(users.c.id)).scalars().first()
    assert clients["manager"].get("/api/coaching/reviews", params={"manager_id": other}).status_code == 404
    assert clients["leader"].get("/api/coaching/reviews", params={"manager_id": other}).status_code == 200


def test_review_notes_and_next_steps_are_authorised_by_role(web_org: WebOrg, clients: dict[str, TestClient]) -> None:
    rep = web_org.user_id(web_org.logins["rep"])
    team_rep = _team_rep(web_org)
    in_team = _deal_of(web_org, team_rep)
    body: dict[str, Any] = {"deal_id": in_team, "note": "Tested the champion", "next_step": "Meet the CFO",
                            "due_on": "2026-12-01"}
    made = clients["manager"].post("/api/coaching/reviews", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["rep_id"] == team_rep
    # The demo rep's deal is outside the manager's team: not found; the rep and the viewer may not coach.
    own = {**body, "deal_id": _deal_of(web_org, rep)}
    assert clients["manager"].post("/api/coaching/reviews", json=own).status_code == 404
    assert clients["rep"].post("/api/coaching/reviews", json=own).status_code == 403
    assert clients["viewer"].post("/api/coaching/reviews", json=body).status_code == 403
    by_leader = clients["leader"].post("/api/coaching/reviews", json=own)
    assert by_leader.status_code == 201, by_leader.text
    step = by_leader.json()["commitment_id"]
    # The rep sees their next step and marks it done; another rep cannot see it; the manager cannot either.
    listed = clients["rep"].get("/api/coaching/reviews", params={"as_of": AS_OF}).json()["next_steps"]
    assert step in {s["id"] for s in listed}
    assert made.json()["commitment_id"] not in {s["id"] for s in listed}
    for role in ("other_rep", "manager"):
        assert clients[role].patch(f"/api/coaching/commitments/{step}", json={"done": True}).status_code == 404
    assert clients["viewer"].patch(f"/api/coaching/commitments/{step}", json={"done": True}).status_code == 403
    done = clients["rep"].patch(f"/api/coaching/commitments/{step}", json={"done": True, "follow_up": "Met her"})
    assert done.status_code == 200, done.text
    assert done.json()["done_at"] is not None and done.json()["follow_up"] == "Met her"
    assert clients["rep"].patch(f"/api/coaching/commitments/{step}", json={}).status_code == 422


def test_plans_are_written_by_coaches_and_read_in_scope(web_org: WebOrg, clients: dict[str, TestClient]) -> None:
    rep = _team_rep(web_org)
    login_rep = web_org.user_id(web_org.logins["rep"])
    manager = web_org.user_id(web_org.logins["manager"])
    body = {"rep_id": rep, "title": "Win more mid-funnel", "review_on": "2027-02-01",
            "commitments": [{"text": "Engage three contacts on every new deal", "due_on": "2026-12-15"}]}
    assert clients["rep"].post("/api/coaching/plans", json={**body, "rep_id": login_rep}).status_code == 403
    assert clients["rep"].post("/api/coaching/plans", json=body).status_code == 403  # a rep never coaches
    viewer = web_org.user_id(web_org.logins["viewer"])
    assert clients["viewer"].post("/api/coaching/plans", json={**body, "rep_id": viewer}).status_code == 403
    assert clients["manager"].post("/api/coaching/plans", json={**body, "rep_id": login_rep}).status_code == 404
    assert clients["manager"].post("/api/coaching/plans", json={**body, "rep_id": manager}).status_code == 403
    made = clients["manager"].post("/api/coaching/plans", json=body)
    assert made.status_code == 201, made.text
    plan = made.json()
    assert plan["skills"] and plan["commitments"][0]["status"] in ("open", "due")
    assert {p["metric"] for p in plan["progress"]} == {s["metric"] for s in plan["skills"]}
    plan_id = plan["id"]
    assert clients["rep"].get(f"/api/coaching/plans/{plan_id}").status_code == 404  # another team's rep
    assert clients["other_rep"].get(f"/api/coaching/plans/{plan_id}").status_code == 404
    assert clients["viewer"].get(f"/api/coaching/plans/{plan_id}").status_code == 404
    assert clients["admin"].get(f"/api/coaching/plans/{plan_id}").status_code == 200
    assert plan_id in {p["id"] for p in clients["leader"].get("/api/coaching/plans").json()}
    assert plan_id not in {p["id"] for p in clients["other_rep"].get("/api/coaching/plans").json()}
    assert clients["rep"].post(f"/api/coaching/plans/{plan_id}/notes", json={"body": "x"}).status_code == 403
    # The rep's own plan, written by the leader: the rep reads it but cannot write to it.
    own = clients["leader"].post("/api/coaching/plans", json={**body, "rep_id": login_rep})
    assert own.status_code == 201, own.text
    assert clients["rep"].get(f"/api/coaching/plans/{own.json()['id']}").status_code == 200
    assert clients["rep"].post(f"/api/coaching/plans/{own.json()['id']}/notes", json={"body": "x"}).status_code == 403
    noted = clients["manager"].post(f"/api/coaching/plans/{plan_id}/notes", json={"body": "1:1 went well"})
    assert noted.status_code == 201
    added = clients["manager"].post(f"/api/coaching/plans/{plan_id}/commitments",
                                    json={"text": "Book the EB early", "due_on": "2027-01-10"})
    assert added.status_code == 201, added.text
    assert clients["manager"].get(f"/api/coaching/reps/{rep}/skills").status_code == 200
    assert clients["rep"].get(f"/api/coaching/reps/{login_rep}/skills").status_code == 200
    assert clients["other_rep"].get(f"/api/coaching/reps/{rep}/skills").status_code == 404
    closed = clients["manager"].post(f"/api/coaching/plans/{plan_id}/close", json={"outcome": "done"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert clients["manager"].post(f"/api/coaching/plans/{plan_id}/close", json={}).status_code == 409
    assert clients["manager"].get("/api/coaching/plans/999999").status_code == 404


def test_only_leaders_and_admins_adopt_checklist_items(web_org: WebOrg, clients: dict[str, TestClient]) -> None:
    items = clients["leader"].get("/api/coaching/gap", params={"as_of": AS_OF}).json()["checklist"]
    item = next(i for i in items if i["adds_criterion"] and not i["adopted"])
    path = f"/api/coaching/checklist/{item['key']}/adopt"
    for role in ("manager", "rep", "viewer"):
        assert clients[role].post(path).status_code == 403
    adopted = clients["leader"].post(path)
    assert adopted.status_code == 201, adopted.text
    assert clients["admin"].post(path).status_code == 409
    stages = clients["rep"].get("/api/playbook/stages").json()
    keys = {c["key"] for s in stages if s["key"] == item["stage"] for c in s["exit_criteria"]}
    assert item["key"] in keys
    assert clients["leader"].post("/api/coaching/checklist/coach_nothing/adopt").status_code == 404


def test_openapi_documents_the_coaching_routes(clients: dict[str, TestClient]) -> None:
    paths = clients["admin"].get("/api/openapi.json").json()["paths"]
    for path in ("/api/coaching/gap", "/api/coaching/ramp", "/api/coaching/reviews", "/api/coaching/plans",
                 "/api/coaching/plans/{plan_id}", "/api/coaching/checklist/{item_key}/adopt"):
        assert path in paths


@pytest.mark.parametrize("role", ROLES)
def test_pages_render_for_every_role(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    for path in ("/coaching/gap", "/coaching/ramp", "/coaching/reviews", "/coaching/plans"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "<script>" not in response.text  # CSP: no inline scripts
    assert client.get("/coaching", follow_redirects=False).status_code == 303


def test_pages_need_a_session_and_csrf(web_org: WebOrg) -> None:
    anonymous = TestClient(web_org.app)
    assert anonymous.get("/coaching/gap", follow_redirects=False).status_code in (302, 303, 307)
    manager = page_client(web_org, "manager")
    rep = _team_rep(web_org)
    deal = _deal_of(web_org, rep)
    assert manager.post("/coaching/reviews", data={"deal_id": deal, "note": "x"}).status_code == 403
    saved = manager.post("/coaching/reviews", data={"deal_id": deal, "note": "From the page", "next_step": "Call",
                                                    "due_on": "2026-12-20", "csrf_token": manager.csrf},  # type: ignore[attr-defined]
                         follow_redirects=False)
    assert saved.status_code == 303
    page = manager.get("/coaching/reviews")
    assert "From the page" in page.text
    made = manager.post("/coaching/plans", data={"rep_id": rep, "title": "Page plan", "commitment": "Do X",
                                                 "due_on": "2026-12-30", "csrf_token": manager.csrf},  # type: ignore[attr-defined]
                        follow_redirects=False)
    assert made.status_code == 303
    plan_page = manager.get(made.headers["location"])
    assert plan_page.status_code == 200 and "Page plan" in plan_page.text and "Do X" in plan_page.text
    other = page_client(web_org, "other_rep")
    assert other.get(made.headers["location"]).status_code == 404
    viewer = page_client(web_org, "viewer")
    own = web_org.user_id(web_org.logins["viewer"])
    assert viewer.post("/coaching/plans", data={"rep_id": own, "title": "t", "csrf_token": viewer.csrf}  # type: ignore[attr-defined]
                       ).status_code == 403
    assert viewer.post("/coaching/plans", data={"rep_id": rep, "title": "t", "csrf_token": viewer.csrf}  # type: ignore[attr-defined]
                       ).status_code == 403


def _plan_for(org: WebOrg, clients: dict[str, TestClient], rep: int) -> int:
    made = clients["leader"].post("/api/coaching/plans", json={"rep_id": rep, "title": "Matrix plan"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


@pytest.mark.parametrize("role", ["rep", "viewer"])
def test_roles_without_coach_are_refused_every_coaching_write(web_org: WebOrg, clients: dict[str, TestClient],
                                                              role: str) -> None:
    """Even aimed at records they can see (the rep's own deal and plan), a rep and a viewer write nothing: 403."""
    rep = web_org.user_id(web_org.logins["rep"])
    me = web_org.user_id(web_org.logins[role])
    plan = _plan_for(web_org, clients, rep)
    client = clients[role]
    writes = [
        client.post("/api/coaching/reviews", json={"deal_id": _deal_of(web_org, rep), "note": "n"}),
        client.post("/api/coaching/plans", json={"rep_id": me, "title": "t"}),
        client.post(f"/api/coaching/plans/{plan}/commitments", json={"text": "t"}),
        client.post(f"/api/coaching/plans/{plan}/notes", json={"body": "b"}),
        client.post(f"/api/coaching/plans/{plan}/close", json={}),
    ]
    assert [w.status_code for w in writes] == [403] * len(writes), [w.text for w in writes]
    assert all("cannot coach" in w.json()["detail"] for w in writes)
    assert clients["leader"].get(f"/api/coaching/plans/{plan}").json()["status"] == "active"  # nothing changed
    pages = page_client(web_org, role)
    form = {"csrf_token": pages.csrf}  # type: ignore[attr-defined]
    assert pages.post(f"/coaching/plans/{plan}/notes", data={**form, "body": "b"}).status_code == 403
    assert pages.post("/coaching/reviews", data={**form, "deal_id": _deal_of(web_org, rep), "note": "n"}
                      ).status_code == 403


@pytest.mark.parametrize("role", ["manager", "leader", "admin"])
def test_coaches_write_within_their_scope(web_org: WebOrg, clients: dict[str, TestClient], role: str) -> None:
    """A coach writes for the reps they see; a rep outside their scope is as unknown as a missing one (404)."""
    inside = _team_rep(web_org)
    outside = web_org.user_id(web_org.logins["rep"])  # the demo rep login is in another manager's team
    seen = _visible(web_org, role)
    client = clients[role]
    for rep in (inside, outside):
        plan = _plan_for(web_org, clients, rep)
        in_scope = seen is None or rep in seen
        expected = (201, 201, 201, 200) if in_scope else (404, 404, 404, 404)
        answers = (
            client.post("/api/coaching/reviews", json={"deal_id": _deal_of(web_org, rep), "note": f"{role} review"}),
            client.post(f"/api/coaching/plans/{plan}/commitments", json={"text": "Practise the demo"}),
            client.post(f"/api/coaching/plans/{plan}/notes", json={"body": "Good 1:1"}),
            client.post(f"/api/coaching/plans/{plan}/close", json={"outcome": "done"}),
        )
        assert tuple(a.status_code for a in answers) == expected, (rep, [a.text for a in answers])
    assert client.post("/api/coaching/plans", json={"rep_id": web_org.user_id(web_org.logins[role]),
                                                    "title": "self"}).status_code == 403
