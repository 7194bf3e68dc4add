"""`/api/leads` for every role: the funnel, SLA, response effect, quality, recycle and list cover only the leads in
the caller's scope; a lead outside it answers 404 like a missing one; verdicts need `edit_deal` (403 for a viewer),
routing and its rules `manage_settings`; 401 without a token.

Expected sets come from SQL: the scope by walking `users.manager_id`, the counts from the `leads` table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from closewise.db.tables import lead_events, leads
from closewise.domain.timeutil import utcnow
from tests.web.conftest import WebOrg, api_client, visible_owners

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
READS = ["/api/leads", "/api/leads/funnel", "/api/leads/sla", "/api/leads/response-effect", "/api/leads/quality",
         "/api/leads/recycle"]



def lead_rows(org: WebOrg) -> list[Any]:
    with org.engine.connect() as connection:
        return list(connection.execute(sa.select(leads.c.id, leads.c.owner_id, leads.c.status, leads.c.lead_source)))


def visible_leads(org: WebOrg, role: str) -> list[Any]:
    sees = visible_owners(org, role)
    return [row for row in lead_rows(org) if sees is None or row.owner_id in sees]


def outside_lead(org: WebOrg, role: str, status: str | None = None) -> int:
    sees = visible_owners(org, role)
    assert sees is not None
    return next(row.id for row in lead_rows(org)
                if row.owner_id is not None and row.owner_id not in sees and (status is None or row.status == status))


@pytest.mark.parametrize("path", READS)
def test_every_read_needs_a_token(web_org: WebOrg, path: str) -> None:
    assert api_client(web_org, None).get(path).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_reads_cover_the_callers_leads_only(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    expected = visible_leads(web_org, role)
    sees = visible_owners(web_org, role)

    funnel = client.get("/api/leads/funnel")
    assert funnel.status_code == 200, funnel.text
    body = funnel.json()
    assert body["leads"] == len(expected)
    by_source: dict[str, int] = {}
    for row in expected:
        by_source[row.lead_source or "(none)"] = by_source.get(row.lead_source or "(none)", 0) + 1
    assert {row["source"]: row["leads"] for row in body["by_source"]} == by_source

    listed = client.get("/api/leads", params={"limit": 1000})
    assert listed.status_code == 200
    assert listed.json()["total"] == len(expected)
    assert all(sees is None or item["owner_id"] in sees for item in listed.json()["items"])

    sla = client.get("/api/leads/sla", params={"days": 3660})
    assert sla.status_code == 200, sla.text
    assert sla.json()["summary"]["leads"] == len(expected)
    assert all(sees is None or row["owner_id"] in sees for row in sla.json()["by_owner"])
    assert all(sees is None or lead["owner_id"] in sees for lead in sla.json()["breaches"])

    effect = client.get("/api/leads/response-effect")
    assert effect.status_code == 200
    assert effect.json()["leads"] <= len(expected)
    recycle = client.get("/api/leads/recycle")
    assert recycle.status_code == 200
    assert recycle.json()["in_nurture"] == sum(1 for row in expected if row.status == "recycled")
    quality = client.get("/api/leads/quality")
    assert quality.status_code == 200
    assert sum(row["leads"] for row in quality.json()) == len(expected)
    if role == "manager":
        assert 0 < len(expected) < len(lead_rows(web_org))
    if role == "viewer":
        assert expected == []


@pytest.mark.parametrize("role", ["manager", "rep"])
def test_a_lead_outside_the_scope_is_not_found(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    outside = outside_lead(web_org, role, "working")
    missing = client.get("/api/leads/999999999")
    hidden = client.get(f"/api/leads/{outside}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(str(outside), "N") == missing.json()["detail"].replace("999999999", "N")
    assert client.post(f"/api/leads/{outside}/accept").status_code == 404
    assert client.post(f"/api/leads/{outside}/reject", json={"reason": "timing"}).status_code == 404


def test_a_lead_in_scope_has_its_history(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    mine = visible_leads(web_org, "rep")
    lead = next(row for row in mine if row.status == "converted")
    body = client.get(f"/api/leads/{lead.id}").json()
    kinds = [event["kind"] for event in body["events"]]
    assert kinds[0] == "created" and "first_touch" in kinds and "converted" in kinds
    assert body["converted_opportunity_id"] is not None


def test_verdicts_by_role(web_org: WebOrg) -> None:
    rep_leads = [row for row in visible_leads(web_org, "rep") if row.status in ("new", "working")]
    assert len(rep_leads) >= 3
    viewer = api_client(web_org, "viewer")
    assert viewer.post(f"/api/leads/{rep_leads[0].id}/accept").status_code == 403
    assert viewer.post(f"/api/leads/{rep_leads[0].id}/reject", json={"reason": "timing"}).status_code == 403

    rep = api_client(web_org, "rep")
    accepted = rep.post(f"/api/leads/{rep_leads[0].id}/accept", json={"note": "qualified on the call"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert rep.post(f"/api/leads/{rep_leads[0].id}/accept").status_code == 409  # already accepted

    assert rep.post(f"/api/leads/{rep_leads[1].id}/reject", json={"reason": "no money"}).status_code == 422
    when = (utcnow().date() + timedelta(days=200)).isoformat()
    nurtured = rep.post(f"/api/leads/{rep_leads[1].id}/reject", json={"reason": "no_budget", "re_engage_at": when})
    assert nurtured.status_code == 200, nurtured.text
    assert (nurtured.json()["status"], nurtured.json()["re_engage_at"]) == ("recycled", when)
    back = rep.post(f"/api/leads/{rep_leads[1].id}/return")
    assert back.status_code == 200 and back.json()["status"] == "working"

    manager = api_client(web_org, "manager")  # a lead of someone in the manager's team
    me = web_org.user_id(web_org.logins["manager"])
    team_lead = next(row for row in visible_leads(web_org, "manager")
                     if row.status in ("new", "working") and row.owner_id != me)
    closed = manager.post(f"/api/leads/{team_lead.id}/reject", json={"reason": "not_a_fit", "nurture": False})
    assert closed.status_code == 200 and closed.json()["status"] == "rejected"
    with web_org.engine.connect() as connection:
        authors = dict(connection.execute(sa.select(lead_events.c.lead_id, lead_events.c.user_id).where(
            lead_events.c.lead_id == team_lead.id, lead_events.c.kind == "rejected")).all())
    assert authors == {team_lead.id: me}


@pytest.mark.parametrize("role", ROLES)
def test_routing_needs_manage_settings(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    allowed = role in ("admin", "leader")
    preview = client.post("/api/leads/route", params={"dry_run": True})
    assert preview.status_code == (200 if allowed else 403), preview.text
    rules = client.get("/api/leads/routing-rules")
    assert rules.status_code == (200 if allowed else 403)
    if allowed:
        assert preview.json()["dry_run"] is True


def test_rules_round_trip_through_the_api(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    rep = web_org.logins["rep"]
    body = {"rules": [{"name": "UK", "method": "territory", "countries": ["United Kingdom"], "members": [rep]}]}
    saved = client.put("/api/leads/routing-rules", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules"][0]["members"] == [rep]
    bad = client.put("/api/leads/routing-rules", json={"rules": [{"name": "X", "method": "territory",
                                                                  "members": [rep]}]})
    assert bad.status_code == 422
    assert client.put("/api/leads/routing-rules", json={"rules": []}).json() == {"rules": []}


def test_openapi_documents_the_lead_routes(web_org: WebOrg) -> None:
    paths = api_client(web_org, None).get("/api/openapi.json").json()["paths"]
    for path in ("/api/leads/funnel", "/api/leads/sla", "/api/leads/{lead_id}/accept", "/api/leads/{lead_id}/reject",
                 "/api/leads/route"):
        assert path in paths
