"""Proposals, differentiation and prospecting over the API and pages, for every role."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from closewise.db.tables import opportunities, proposals
from tests.web.conftest import WebOrg, api_client, page_client

ROLES = ("admin", "leader", "manager", "rep", "viewer")


def _owner_ids(org: WebOrg, role: str) -> set[int]:
    client = api_client(org, role)
    return {row["owner_id"] for row in client.get("/api/proposals/candidates").json()}


def test_needs_a_token(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    for path in ("/api/proposals/candidates", "/api/differentiation", "/api/prospecting", "/api/proposals/1"):
        assert client.get(path).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_candidates_are_scoped(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    response = client.get("/api/proposals/candidates")
    assert response.status_code == 200
    rows = response.json()
    me = web_org.user_id(web_org.logins[role])
    if role == "rep":
        assert rows and {r["owner_id"] for r in rows} == {me}
    if role in ("admin", "leader"):
        with web_org.engine.connect() as connection:
            open_in_stage = connection.execute(sa.select(sa.func.count()).select_from(opportunities).where(
                opportunities.c.status == "open",
                opportunities.c.stage.in_(["solution", "proposal", "negotiation"]))).scalar_one()
        assert len(rows) == open_in_stage


def test_rep_sees_own_deal_and_404_outside(web_org: WebOrg) -> None:
    rep = api_client(web_org, "rep")
    mine = rep.get("/api/proposals/candidates").json()[0]
    response = rep.get(f"/api/proposals/{mine['id']}")
    assert response.status_code == 200 and mine["account"] in response.json()["executive_summary"]
    other = api_client(web_org, "other_rep")
    assert other.get(f"/api/proposals/{mine['id']}").status_code == 404
    assert other.post(f"/api/proposals/{mine['id']}", json={"format": "html"}).status_code == 404
    assert other.get(f"/api/proposals/{mine['id']}/document?format=html").status_code == 404
    assert rep.get(f"/api/proposals/{2**40}").status_code == 404


def test_generate_and_download(web_org: WebOrg) -> None:
    rep = api_client(web_org, "rep")
    deal = rep.get("/api/proposals/candidates").json()[0]
    response = rep.post(f"/api/proposals/{deal['id']}", json={"format": "docx"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert {c["key"] for c in body["checks"]} >= {"names_customer", "cites_pains", "no_placeholders"}
    download = rep.get(body["download"])
    assert download.status_code == 200 and download.content[:2] == b"PK"
    assert download.content == _stored_bytes(web_org, body["id"])
    history = rep.get(f"/api/proposals/{deal['id']}/history").json()
    assert history[0]["id"] == body["id"]
    assert api_client(web_org, "viewer").post(f"/api/proposals/{deal['id']}", json={"format": "html"}
                                              ).status_code in (403, 404)


def _stored_bytes(org: WebOrg, proposal_id: int) -> bytes:
    with org.engine.connect() as connection:
        return bytes(connection.execute(sa.select(proposals.c.content).where(proposals.c.id == proposal_id)
                                        ).scalar_one())


def test_a_generated_proposal_is_served_as_stored_after_the_deal_changes(web_org: WebOrg) -> None:
    """The download of a generated proposal is the stored document, byte for byte: a later edit of the deal's
    amount changes the draft (built from the deal as it is now) but not the proposal already generated."""
    rep = api_client(web_org, "rep")
    deal = rep.get("/api/proposals/candidates").json()[0]
    body = rep.post(f"/api/proposals/{deal['id']}", json={"format": "html"}).json()
    before = rep.get(body["download"])
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/html")
    assert before.content == _stored_bytes(web_org, body["id"])
    assert "attachment" in before.headers["content-disposition"]
    old_amount = deal["amount"]
    new_amount = round((old_amount or 10_000) + 12_345)
    assert rep.patch(f"/api/opportunities/{deal['id']}", json={"amount": new_amount}).status_code == 200
    try:
        after = rep.get(body["download"])
        assert after.status_code == 200 and after.content == before.content
        draft = rep.get(f"/api/proposals/{deal['id']}/document?format=html")
        assert f"{new_amount:,.0f}" in draft.text and f"{new_amount:,.0f}" not in after.text
        history = rep.get(f"/api/proposals/{deal['id']}/history").json()
        assert next(h for h in history if h["id"] == body["id"])["download"] == body["download"]
        page = page_client(web_org, "rep")
        shown = page.get(f"/proposals/{deal['id']}/history/{body['id']}/document")
        assert shown.status_code == 200 and shown.content == before.content
        assert body["download"].removeprefix("/api") in page.get(f"/proposals/{deal['id']}").text
    finally:
        rep.patch(f"/api/opportunities/{deal['id']}", json={"amount": old_amount})


def test_a_stored_proposal_is_scoped_to_its_deal_and_owner(web_org: WebOrg) -> None:
    rep = api_client(web_org, "rep")
    deals = rep.get("/api/proposals/candidates").json()
    body = rep.post(f"/api/proposals/{deals[0]['id']}", json={"format": "html"}).json()
    assert api_client(web_org, "other_rep").get(body["download"]).status_code == 404
    assert page_client(web_org, "other_rep").get(body["download"].removeprefix("/api")).status_code == 404
    assert api_client(web_org, "leader").get(body["download"]).status_code == 200
    other_deal = next((d for d in deals if d["id"] != deals[0]["id"]), None)
    if other_deal is not None:  # a proposal id under another deal of the caller's is not found either
        assert rep.get(f"/api/proposals/{other_deal['id']}/history/{body['id']}/document").status_code == 404
    assert rep.get(f"/api/proposals/{deals[0]['id']}/history/{2**40}/document").status_code == 404


def test_viewer_cannot_generate(web_org: WebOrg) -> None:
    """A viewer may change nothing: generating answers 403 (writes are authorised before the deal is looked up)."""
    deal = api_client(web_org, "leader").get("/api/proposals/candidates").json()[0]
    viewer = api_client(web_org, "viewer")
    assert viewer.post(f"/api/proposals/{deal['id']}", json={"format": "html"}).status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_differentiation_and_prospecting(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    diff = client.get("/api/differentiation")
    assert diff.status_code == 200
    for row in diff.json()["competitors"]:
        assert row["closed"] == row["won"] + row["lost"] + row["no_decision"]
        assert row["points"]
    plan = client.get("/api/prospecting?limit=10")
    assert plan.status_code == 200
    me = web_org.user_id(web_org.logins[role])
    if role == "rep":
        assert {t["owner_id"] for t in plan.json()["targets"]} <= {me}
        assert [r["rep_id"] for r in plan.json()["reps"]] == [me]


def test_library_writes_need_manage_settings(web_org: WebOrg) -> None:
    point = {"competitor": "Gong", "persona": "champion", "headline": "Our line", "detail": "Why we win."}
    assert api_client(web_org, "rep").post("/api/differentiation/points", json=point).status_code == 403
    assert api_client(web_org, "leader").post("/api/differentiation/points", json=point).status_code == 201
    gong = next(c for c in api_client(web_org, "leader").get("/api/differentiation").json()["competitors"]
                if c["competitor"] == "Gong")
    assert any(p["headline"] == "Our line" and p["source"] == "org" for p in gong["points"])
    cadence = {"name": "Test cadence", "accounts_per_rep": 4,
               "steps": [{"week": 1, "day": 1, "kind": "call", "label": "Call"}]}
    assert api_client(web_org, "manager").post("/api/prospecting/cadences", json=cadence).status_code == 403
    assert api_client(web_org, "admin").post("/api/prospecting/cadences", json=cadence).status_code == 201
    assert api_client(web_org, "admin").post("/api/prospecting/cadences", json=cadence).status_code == 409


@pytest.mark.parametrize("role", ROLES)
def test_pages(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    for path in ("/proposals", "/differentiation", "/prospecting"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    rows = api_client(web_org, role).get("/api/proposals/candidates").json()
    if rows:
        detail = client.get(f"/proposals/{rows[0]['id']}")
        assert detail.status_code == 200 and rows[0]["account"] in detail.text
        shows_button = "Generate proposal" in detail.text
        assert shows_button == (role != "viewer")


def test_page_generate_needs_csrf_and_scope(web_org: WebOrg) -> None:
    rep = page_client(web_org, "rep")
    deal = api_client(web_org, "rep").get("/api/proposals/candidates").json()[0]
    assert rep.post(f"/proposals/{deal['id']}", data={"format": "html"}).status_code == 403
    ok = rep.post(f"/proposals/{deal['id']}", data={"format": "html", "csrf_token": rep.csrf},  # type: ignore[attr-defined]
                  follow_redirects=False)
    assert ok.status_code == 303
    other = page_client(web_org, "other_rep")
    assert other.get(f"/proposals/{deal['id']}").status_code == 404
    assert other.post(f"/proposals/{deal['id']}", data={"format": "html", "csrf_token": other.csrf}  # type: ignore[attr-defined]
                      ).status_code == 404


def test_openapi_describes_every_proposals_answer(web_org: WebOrg) -> None:
    """Every JSON answer of these routes has a schema in the OpenAPI document (the contract test then checks the
    bodies against it): none is a bare object."""
    document = api_client(web_org, None).get("/api/openapi.json").json()
    paths = {path: spec for path, spec in document["paths"].items()
             if path.startswith(("/api/proposals", "/api/differentiation", "/api/prospecting"))}
    assert len(paths) >= 8
    for path, spec in paths.items():
        for method, operation in spec.items():
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None:
                    assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path, schema)
