"""The forecast call through the API and the page: submitting, adjusting, the scoped roll-up with the model
beside it once computed, the printable pack."""

from __future__ import annotations

import time

import pytest

from tests.web.conftest import WebOrg, api_client, page_client

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
PERIOD = "2026-Q4"


@pytest.mark.parametrize("role", ROLES)
def test_the_roll_up_holds_only_people_in_scope_and_adds_up(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    me = client.get("/api/me").json()
    response = client.get(f"/api/calls/rollup?period={PERIOD}")
    if role == "viewer":
        # A viewer carries no number: they are not part of any roll-up of their own.
        assert response.status_code == 404
        return
    assert response.status_code == 200, response.text
    body = response.json()
    if me["visible_user_ids"] is not None:
        assert {row["user_id"] for row in body["by_user"]} <= set(me["visible_user_ids"])
    assert body["team_commit"] == pytest.approx(sum(row["commit"] for row in body["by_user"]))
    assert body["team_best_case"] == pytest.approx(sum(row["best_case"] for row in body["by_user"]))


def test_submitting_and_adjusting_through_the_api(web_org: WebOrg) -> None:
    rep = api_client(web_org, "rep")
    created = rep.post("/api/calls", json={"period": PERIOD, "commit": 50000, "best_case": 80000, "notes": "<i>x</i>"})
    assert created.status_code == 201 and created.json()["kind"] == "submission"
    assert rep.post("/api/calls", json={"period": PERIOD, "commit": 9, "best_case": 1}).status_code == 422
    assert rep.post("/api/calls", json={"period": "2026-Q9", "commit": 1, "best_case": 1}).json()["where"] == "period"
    assert api_client(web_org, "viewer").post("/api/calls", json={"period": PERIOD, "commit": 1,
                                                                  "best_case": 1}).status_code == 403
    rep_id = web_org.user_id(web_org.logins["rep"])
    assert rep.post("/api/calls/adjustments", json={"subject_id": rep_id, "period": PERIOD, "commit": 1,
                                                   "best_case": 2, "note": "x"}).status_code == 403
    manager = api_client(web_org, "manager")
    team = manager.get("/api/me").json()["visible_user_ids"]
    outsider = web_org.user_id(web_org.logins["other_rep"])
    assert outsider not in team
    refused = manager.post("/api/calls/adjustments", json={"subject_id": outsider, "period": PERIOD, "commit": 1,
                                                          "best_case": 2, "note": "x"})
    assert refused.status_code == 404
    report = next(u for u in team if u != manager.get("/api/me").json()["id"])
    ok = manager.post("/api/calls/adjustments", json={"subject_id": report, "period": PERIOD, "commit": 1234,
                                                     "best_case": 2345, "note": "pushed to January"})
    assert ok.status_code == 201
    row = next(r for r in manager.get(f"/api/calls/rollup?period={PERIOD}").json()["by_user"]
               if r["user_id"] == report)
    assert row["source"] == "adjustment" and row["commit"] == 1234


def test_the_model_appears_beside_the_calls_once_computed(web_org: WebOrg) -> None:
    client = api_client(web_org, "leader")
    first = client.get(f"/api/calls/rollup?period={PERIOD}").json()
    deadline = time.monotonic() + 300
    body = first
    while body["model_status"] != "ready" and time.monotonic() < deadline:
        time.sleep(1)
        body = client.get(f"/api/calls/rollup?period={PERIOD}").json()
    assert body["model_status"] == "ready" and body["model"] is not None
    assert body["model"]["p10"] <= body["model"]["p50"] <= body["model"]["p90"]
    assert all(row["model"] is not None for row in body["by_user"])
    assert body["gap_deals"] is not None


@pytest.mark.parametrize("role", ["leader", "manager", "rep"])
def test_the_call_page_and_pack_render(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    page = client.get(f"/call?period={PERIOD}")
    assert page.status_code == 200 and "Team roll-up" in page.text and "Track record" in page.text
    pack = client.get(f"/call/pack?period={PERIOD}")
    assert pack.status_code == 200 and "Forecast call · 2026-Q4" in pack.text and "<nav" not in pack.text
    submitted = client.post("/call/submit", data={"period": PERIOD, "commit": "1000", "best_case": "2000",
                                                  "notes": "<script>alert(1)</script>",
                                                  "csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert submitted.status_code == 200 and "call is in" in submitted.text
    assert "<script>alert(1)</script>" not in submitted.text
