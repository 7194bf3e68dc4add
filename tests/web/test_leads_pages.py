"""The Leads page and a lead's page for every role: only the caller's leads are counted, a lead outside the scope
is 404, the accept / reject / came-back forms need the session's CSRF token and `edit_deal`, and routing shows
only to those who may run it. Counts are checked against SQL."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import leads
from tests.web.conftest import WebOrg, page_client
from tests.web.test_leads_api import outside_lead, visible_leads

ROLES = ["admin", "leader", "manager", "rep", "viewer"]


def test_signed_out_goes_to_login(web_org: WebOrg) -> None:
    response = TestClient(web_org.app).get("/leads", follow_redirects=False)
    assert response.status_code in (302, 303, 307) and "/login" in response.headers["location"]


@pytest.mark.parametrize("role", ROLES)
def test_the_page_counts_the_callers_leads(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    response = client.get("/leads")
    assert response.status_code == 200, response.text
    html = response.text
    expected = visible_leads(web_org, role)
    won_note = re.search(r"(\d+) of ([\d,]+) leads, all time", html)
    assert won_note is not None and int(won_note.group(2).replace(",", "")) == len(expected)
    assert "<script>" not in html and "onclick" not in html  # CSP: no inline scripts or handlers
    if expected:
        assert 'data-chart="leads-funnel"' in html and 'data-chart="leads-effect"' in html
    assert ('id="routing"' in html) == (role in ("admin", "leader"))
    assert ('action="/leads/' in html and '/accept"' in html) == (role != "viewer" and bool(
        [row for row in expected if row.status in ("new", "working")]))


def test_a_lead_page_in_and_out_of_scope(web_org: WebOrg) -> None:
    client = page_client(web_org, "rep")
    mine = next(row for row in visible_leads(web_org, "rep") if row.status == "converted")
    page = client.get(f"/leads/{mine.id}")
    assert page.status_code == 200 and "History" in page.text and "Converted to an opportunity" in page.text
    assert client.get(f"/leads/{outside_lead(web_org, 'rep')}").status_code == 404


def test_verdict_forms_need_csrf_and_permission(web_org: WebOrg) -> None:
    open_leads = [row for row in visible_leads(web_org, "rep") if row.status in ("new", "working")]
    target, other = open_leads[-1].id, open_leads[-2].id
    rep = page_client(web_org, "rep")
    assert rep.post(f"/leads/{target}/accept").status_code == 403  # no CSRF token
    accepted = rep.post(f"/leads/{target}/accept", headers={"X-CSRF-Token": rep.csrf, "HX-Request": "true"})
    assert accepted.status_code == 200, accepted.text
    assert f'id="lead-{target}"' in accepted.text and "was accepted" in accepted.text

    posted = rep.post(f"/leads/{other}/reject", data={"csrf_token": rep.csrf, "reason": "timing", "nurture": "auto"},
                      follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == f"/leads/{other}"
    with web_org.engine.connect() as connection:
        status, reason = connection.execute(sa.select(leads.c.status, leads.c.recycle_reason)
                                            .where(leads.c.id == other)).one()
    assert (status, reason) == ("recycled", "timing")
    came_back = rep.post(f"/leads/{other}/return", headers={"X-CSRF-Token": rep.csrf, "HX-Request": "true"})
    assert came_back.status_code == 200 and "came back" in came_back.text

    bad = rep.post(f"/leads/{target}/reject", headers={"X-CSRF-Token": rep.csrf, "HX-Request": "true"},
                   data={"reason": "timing", "re_engage_at": "2001-01-01", "nurture": "yes"})
    assert bad.status_code == 200 and "flash error" in bad.text  # shown in place, nothing written

    outside = outside_lead(web_org, "rep", "working")
    assert rep.post(f"/leads/{outside}/accept", headers={"X-CSRF-Token": rep.csrf}).status_code == 404
    viewer = page_client(web_org, "viewer")
    assert viewer.post(f"/leads/{target}/accept", headers={"X-CSRF-Token": viewer.csrf}).status_code == 403


def test_routing_from_the_page(web_org: WebOrg) -> None:
    with web_org.engine.begin() as connection:
        connection.execute(leads.insert().values(source="test", external_id="PAGE-ROUTE-1", name="Page Route",
                                                 country="Germany", lead_source="web", status="new",
                                                 created_at=sa.func.now(), recycled_count=0))
    admin = page_client(web_org, "admin")
    preview = admin.post("/leads/route", data={"dry_run": "true"}, headers={"X-CSRF-Token": admin.csrf})
    assert preview.status_code == 200 and "Would route 1 lead" in preview.text
    done = admin.post("/leads/route", data={"dry_run": "false"}, headers={"X-CSRF-Token": admin.csrf})
    assert done.status_code == 200 and "Routed 1 lead" in done.text
    rep = page_client(web_org, "rep")
    assert rep.post("/leads/route", data={"dry_run": "true"}, headers={"X-CSRF-Token": rep.csrf}).status_code == 403
