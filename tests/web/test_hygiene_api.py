"""`/api/hygiene` for every role: the findings of the deals in the caller's scope only, snoozes (403 for a
viewer, 404 outside the scope, hidden until the resume date), and a manager's sweep that closes only their team's
dead deals, exactly those previewed, with the change and audit rows naming them, and its undo.

Expected sets are derived apart from the code under test: the scope by walking the `users.manager_id` hierarchy
in SQL, and the org-wide findings from the CLI's unscoped service call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from closewise.db.tables import audit_log, hygiene_snoozes, opportunities, opportunity_changes
from closewise.domain.timeutil import utcnow
from closewise.services import hygiene as service
from closewise.services import hygiene_sweep
from closewise.services.users import add_user
from tests.web.conftest import PASSWORD, WebOrg, api_client, visible_owners

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
EXTRA_CODES = frozenset({"no_next_step", "close_date_past", "stuck_in_stage", "aged_past_cycle", "no_activity",
                         "not_requalified", "pushed_often"})  # findings that do not go away with time



def owners_now(org: WebOrg) -> dict[int, int | None]:
    with org.engine.connect() as connection:
        return dict(connection.execute(sa.select(opportunities.c.id, opportunities.c.owner_id)).all())


def expected_ids(org: WebOrg, role: str, full: list[service.FlaggedDeal]) -> set[int]:
    owners, sees = owners_now(org), visible_owners(org, role)
    return {deal.id for deal in full if sees is None or owners[deal.id] in sees}


@pytest.mark.parametrize("role", ROLES)
def test_the_findings_are_those_of_the_deals_in_scope(web_org: WebOrg, role: str) -> None:
    # One moment for both (the end of today), so ages counted in days agree: the whole org as the CLI lists it.
    today = utcnow().date()
    full = service.review(web_org.engine, as_of=service.end_of_day(today)).deals
    response = api_client(web_org, role).get("/api/hygiene", params={"as_of": today.isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"as_of", "deals"}
    ids = {deal["id"] for deal in body["deals"]}
    assert ids == expected_ids(web_org, role, full)
    sees = visible_owners(web_org, role)
    for deal in body["deals"]:
        assert sees is None or deal["owner_id"] in sees
        assert deal["reasons"] and all(r["code"] in service.CODES for r in deal["reasons"])
    # Every deal keeps the findings the org-wide review gives it, whoever looks.
    by_id = {deal.id: [(r.code, r.detail) for r in deal.reasons] for deal in full}
    assert all([(r["code"], r["detail"]) for r in deal["reasons"]] == by_id[deal["id"]] for deal in body["deals"])
    if role == "manager":
        assert ids and len(ids) < len(full)
    if role == "viewer":
        assert ids == set()  # a viewer reporting to the manager sees only their own (no) deals


def test_a_past_day_is_reviewed_as_of_its_end_and_bad_days_are_refused(web_org: WebOrg) -> None:
    client = api_client(web_org, "leader")
    past = client.get("/api/hygiene", params={"as_of": "2026-09-30"})
    assert past.status_code == 200 and past.json()["as_of"].startswith("2026-09-30T23:59:59")
    assert client.get("/api/hygiene", params={"as_of": "soon"}).status_code == 422
    assert client.get("/api/hygiene", params={"as_of": "0001-01-01"}).status_code == 422


def test_every_hygiene_route_needs_a_token(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    assert client.get("/api/hygiene").status_code == 401
    assert client.post("/api/hygiene/snooze", json={}).status_code == 401
    assert client.post("/api/hygiene/sweep/preview").status_code == 401
    assert client.post("/api/hygiene/sweep/confirm", json={"ids": []}).status_code == 401
    assert client.post("/api/hygiene/sweep/abc/undo").status_code == 401


def _deal_of(org: WebOrg, role: str, *, inside: bool) -> dict[str, Any]:
    """A flagged deal (with a finding that lasts) inside or outside the role's scope."""
    owners, sees = owners_now(org), visible_owners(org, role)
    assert sees is not None
    for deal in service.review(org.engine).deals:
        if (owners[deal.id] in sees) == inside and any(r.code in EXTRA_CODES for r in deal.reasons):
            code = next(r.code for r in deal.reasons if r.code in EXTRA_CODES)
            return {"id": deal.id, "code": code}
    raise AssertionError(f"no flagged deal {'inside' if inside else 'outside'} the {role}'s scope")


def _snooze(client: Any, deal: dict[str, Any], *, days: int = 3) -> Any:
    until = (utcnow().date() + timedelta(days=days)).isoformat()
    return client.post("/api/hygiene/snooze", json={"opportunity_id": deal["id"], "code": deal["code"],
                                                    "until": until, "reason": "customer on holiday"})


def test_snoozing_needs_the_right_and_the_deal_in_scope(web_org: WebOrg) -> None:
    outside = _deal_of(web_org, "manager", inside=False)
    # A viewer may not snooze at all; a manager cannot reach another team's deal: 404 as for no deal.
    assert _snooze(api_client(web_org, "viewer"), outside).status_code == 403
    response = _snooze(api_client(web_org, "manager"), outside)
    assert response.status_code == 404
    missing = _snooze(api_client(web_org, "manager"), {"id": 987_654_321, "code": outside["code"]})
    assert missing.status_code == 404
    assert response.json()["detail"] == f"no opportunity with id {outside['id']}"
    assert missing.json()["detail"] == "no opportunity with id 987654321"
    with web_org.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(hygiene_snoozes).where(
            hygiene_snoozes.c.opportunity_id == outside["id"])).scalar_one()
    assert count == 0
    # Bad input on a deal in scope is a 422 that names the field.
    inside = _deal_of(web_org, "manager", inside=True)
    bad = api_client(web_org, "manager").post("/api/hygiene/snooze", json={
        "opportunity_id": inside["id"], "code": "bogus", "until": "2030-01-01", "reason": "x"})
    assert bad.status_code == 422 and "unknown finding" in bad.json()["detail"]
    past = api_client(web_org, "manager").post("/api/hygiene/snooze", json={
        "opportunity_id": inside["id"], "code": inside["code"], "until": "2020-01-01", "reason": "x"})
    assert past.status_code == 422 and "is not after today" in past.json()["detail"]


def test_a_snooze_hides_the_finding_until_its_resume_date(web_org: WebOrg) -> None:
    deal = _deal_of(web_org, "manager", inside=True)
    client = api_client(web_org, "manager")
    response = _snooze(client, deal, days=3)
    assert response.status_code == 201, response.text
    made = response.json()
    manager_id = web_org.user_id(web_org.logins["manager"])
    assert made["created_by"] == manager_id and made["code"] == deal["code"]

    def codes(as_of: str | None = None) -> list[str]:
        listed = client.get("/api/hygiene", params={"as_of": as_of} if as_of else {}).json()["deals"]
        return next(([r["code"] for r in d["reasons"]] for d in listed if d["id"] == deal["id"]), [])

    assert deal["code"] not in codes()
    resume = utcnow().date() + timedelta(days=3)
    assert deal["code"] not in codes((resume - timedelta(days=1)).isoformat())
    assert deal["code"] in codes(resume.isoformat())
    with web_org.engine.connect() as connection:
        row = connection.execute(sa.select(hygiene_snoozes).where(hygiene_snoozes.c.id == made["id"])).one()
    assert row.created_by == manager_id and row.reason == "customer on holiday"


@pytest.mark.parametrize("role", ["rep", "viewer"])
def test_reps_and_viewers_cannot_sweep(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    assert client.post("/api/hygiene/sweep/preview").status_code == 403
    assert client.post("/api/hygiene/sweep/confirm", json={"ids": [1]}).status_code == 403
    assert client.post("/api/hygiene/sweep/whatever/undo").status_code == 403


@pytest.mark.parametrize("role", ["admin", "leader", "manager"])
def test_the_sweep_preview_lists_only_dead_deals_in_scope(web_org: WebOrg, role: str) -> None:
    everything = hygiene_sweep.preview_sweep(web_org.engine).deals
    response = api_client(web_org, role).post("/api/hygiene/sweep/preview")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["confirmed"] is False and body["sweep_id"] is None
    assert {d["id"] for d in body["deals"]} == expected_ids(web_org, role, everything)
    assert body["total_amount"] == pytest.approx(sum(d["amount"] or 0 for d in body["deals"]), abs=0.01)
    assert all({"aged_past_cycle", "stuck_in_stage"} & {r["code"] for r in d["reasons"]} and
               "no_activity" in {r["code"] for r in d["reasons"]} for d in body["deals"])


def _status(org: WebOrg, ids: set[int]) -> dict[int, str]:
    with org.engine.connect() as connection:
        rows = connection.execute(sa.select(opportunities.c.id, opportunities.c.status)
                                  .where(opportunities.c.id.in_(sorted(ids)))).all()
    return {row.id: row.status for row in rows}


def test_a_manager_sweeps_exactly_the_previewed_team_deals_and_undoes_it(web_org: WebOrg) -> None:
    manager = api_client(web_org, "manager")
    manager_id = web_org.user_id(web_org.logins["manager"])
    sees = visible_owners(web_org, "manager")
    assert sees is not None
    owners = owners_now(web_org)
    everything = {d.id for d in hygiene_sweep.preview_sweep(web_org.engine).deals}
    others = {deal for deal in everything if owners[deal] not in sees}
    assert others, "the demo must have dead deals outside the manager's team for this test to mean anything"

    previewed = [d["id"] for d in manager.post("/api/hygiene/sweep/preview").json()["deals"]]
    assert len(previewed) >= 2 and all(owners[deal] in sees for deal in previewed)
    # Between the preview and the confirmation one deal comes back to life (its idle finding is snoozed), and
    # the request also names another team's dead deal: neither may be swept.
    revived = previewed[0]
    assert _snooze(manager, {"id": revived, "code": "no_activity"}, days=30).status_code == 201
    intruder = min(others)
    before_changes = _last_id(web_org, opportunity_changes)
    confirmed = manager.post("/api/hygiene/sweep/confirm",
                             json={"ids": [*previewed, intruder], "reason": "quarter-end clean-up"})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    swept = {d["id"] for d in body["deals"]}
    assert body["confirmed"] and body["sweep_id"]
    assert swept == set(previewed) - {revived}
    assert set(body["skipped"]) == {revived, intruder}
    assert set(_status(web_org, swept).values()) == {"no_decision"}
    assert set(_status(web_org, others).values()) == {"open"}  # other teams' dead deals stay open
    assert _status(web_org, {revived})[revived] == "open"

    with web_org.engine.connect() as connection:
        changes = connection.execute(sa.select(opportunity_changes).where(
            opportunity_changes.c.id > before_changes)).all()
        audit = connection.execute(sa.select(audit_log).where(audit_log.c.action == "hygiene.sweep")).all()
    assert {c.opportunity_id for c in changes} == swept
    assert all(c.changed_by == manager_id and c.source == "sweep" and "quarter-end clean-up" in c.reason
               for c in changes)
    mine = [a for a in audit if a.detail["sweep_id"] == body["sweep_id"]]
    assert {int(a.entity_id) for a in mine if a.entity == "opportunity"} == swept
    assert all(a.actor_id == manager_id for a in mine)

    # Undo: a rep may not, a manager with nobody below sees none of it (404), the sweeping manager may.
    assert api_client(web_org, "rep").post(f"/api/hygiene/sweep/{body['sweep_id']}/undo").status_code == 403
    add_user(web_org.engine, email="nora.lonely@demo.closewise.io", role="manager", password=PASSWORD)
    web_org.logins["lonely"] = "nora.lonely@demo.closewise.io"
    lonely = api_client(web_org, "lonely").post(f"/api/hygiene/sweep/{body['sweep_id']}/undo")
    assert lonely.status_code == 404
    undone = manager.post(f"/api/hygiene/sweep/{body['sweep_id']}/undo")
    assert undone.status_code == 200, undone.text
    assert set(undone.json()["restored"]) == swept and undone.json()["skipped"] == []
    assert set(_status(web_org, swept).values()) == {"open"}
    again = manager.post(f"/api/hygiene/sweep/{body['sweep_id']}/undo")
    assert again.status_code == 409
    assert manager.post("/api/hygiene/sweep/nosuchsweep/undo").status_code == 404


def test_confirming_nothing_writes_nothing(web_org: WebOrg) -> None:
    before = _count(web_org, opportunity_changes)
    response = api_client(web_org, "leader").post("/api/hygiene/sweep/confirm", json={"ids": []})
    assert response.status_code == 200
    assert response.json()["sweep_id"] is None and response.json()["deals"] == []
    assert _count(web_org, opportunity_changes) == before


def _count(org: WebOrg, table: sa.Table) -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _last_id(org: WebOrg, table: sa.Table) -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one())
