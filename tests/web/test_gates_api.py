"""Stage gates through the API (issue 7): a forward move without the exit criteria is refused with them named
(409 `missing`), an override needs a reason and is logged, completing the criteria then lets the move
through, and skipping a stage needs that stage's criteria as well."""

from __future__ import annotations

import sqlalchemy as sa

from closewise.db.tables import criteria_checks, opportunities, opportunity_changes
from tests.web.conftest import WebOrg, api_client


def _fresh_deal(org: WebOrg, stage: str, nth: int) -> int:
    """The `nth` open deal of the demo rep (each test its own), put in `stage`, its criteria checks wiped so
    the gate starts closed."""
    owner = org.user_id(org.logins["rep"])
    with org.engine.begin() as connection:
        deal = connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id == owner, opportunities.c.status == "open")
            .order_by(opportunities.c.id.desc()).offset(nth)).scalars().first()
        assert deal is not None
        connection.execute(opportunities.update().where(opportunities.c.id == deal).values(
            stage=stage, next_step=None))
        connection.execute(criteria_checks.delete().where(criteria_checks.c.opportunity_id == deal))
    return int(deal)


def _stage_rows(org: WebOrg, deal: int) -> list[sa.Row[tuple[str | None, str | None, str | None]]]:
    with org.engine.connect() as connection:
        return list(connection.execute(sa.select(opportunity_changes.c.old_value, opportunity_changes.c.new_value,
                                                 opportunity_changes.c.reason).where(
            opportunity_changes.c.opportunity_id == deal, opportunity_changes.c.field == "stage",
            opportunity_changes.c.source == "app").order_by(opportunity_changes.c.id)).all())


def test_a_move_without_the_criteria_is_refused_with_them_named(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _fresh_deal(web_org, "discovery", 0)
    refused = client.patch(f"/api/opportunities/{deal}", json={"stage": "solution"})
    assert refused.status_code == 409
    body = refused.json()
    missing = {c["key"] for c in body["missing"]}
    # Discovery's checkbox criterion is certainly not met (its checks were wiped).
    assert "decision_criteria_known" in missing
    assert body["from_stage"] == "discovery" and body["to_stage"] == "solution"
    assert "decision_criteria_known" not in body["detail"] and "decision criteria" in body["detail"].lower()
    assert client.get(f"/api/opportunities/{deal}").json()["stage"] == "discovery"
    assert _stage_rows(web_org, deal) == []


def test_an_override_needs_a_reason_and_is_logged(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _fresh_deal(web_org, "discovery", 1)
    moved = client.patch(f"/api/opportunities/{deal}", json={"stage": "solution",
                                                             "override_reason": "CFO signed off in person"})
    assert moved.status_code == 200 and moved.json()["stage"] == "solution"
    (row,) = _stage_rows(web_org, deal)
    assert (row.old_value, row.new_value) == ("discovery", "solution")
    assert row.reason.startswith("gate override: CFO signed off in person (missing: ")
    assert "decision_criteria_known" in row.reason
    # The gate analysis counts it as an override.
    groups = {g["group"] for g in api_client(web_org, "leader").get("/api/playbook/gates").json()["groups"]}
    assert groups  # served; the override group appears once such a deal closes


def test_completing_the_criteria_lets_the_move_through(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _fresh_deal(web_org, "discovery", 2)
    state = client.get(f"/api/opportunities/{deal}/playbook").json()
    for criterion in state["missing_to_advance"]:
        ticked = client.post(f"/api/opportunities/{deal}/criteria", json={"key": criterion["key"], "done": True})
        assert ticked.status_code == 200, ticked.text
    assert client.get(f"/api/opportunities/{deal}/playbook").json()["missing_to_advance"] == []
    moved = client.patch(f"/api/opportunities/{deal}", json={"stage": "solution"})
    assert moved.status_code == 200, moved.text
    (row,) = _stage_rows(web_org, deal)
    assert row.reason is None  # no override needed
    # Entering the stage set its default category and probability.
    stages = {s["key"]: s for s in client.get("/api/playbook/stages").json()}
    assert moved.json()["forecast_category"] == stages["solution"]["forecast_category"]
    assert moved.json()["probability"] == stages["solution"]["default_probability"]


def test_skipping_a_stage_needs_its_criteria_too_and_moving_back_is_free(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _fresh_deal(web_org, "discovery", 3)
    for criterion in client.get(f"/api/opportunities/{deal}/playbook").json()["missing_to_advance"]:
        client.post(f"/api/opportunities/{deal}/criteria", json={"key": criterion["key"], "done": True})
    skip = client.patch(f"/api/opportunities/{deal}", json={"stage": "proposal"})
    assert skip.status_code == 409
    assert {c["stage"] for c in skip.json()["missing"]} == {"solution"}
    assert skip.json()["skipped"] == ["solution"]
    back = client.patch(f"/api/opportunities/{deal}", json={"stage": "qualification"})
    assert back.status_code == 200 and back.json()["stage"] == "qualification"


def test_the_deal_page_completes_criteria_in_place_then_the_move_goes_through(web_org: WebOrg) -> None:
    from tests.web.conftest import page_client

    client = page_client(web_org, "rep")
    deal = _fresh_deal(web_org, "discovery", 4)
    csrf = client.csrf  # type: ignore[attr-defined]
    refused = client.post(f"/deals/{deal}", data={"stage": "solution", "csrf_token": csrf})
    assert refused.status_code == 409 and "exit criteria not met" in refused.text
    page = client.get(f"/deals/{deal}").text
    assert f'action="/deals/{deal}/criteria"' in page
    state = api_client(web_org, "rep").get(f"/api/opportunities/{deal}/playbook").json()
    keys = [c["key"] for c in state["missing_to_advance"]]
    saved = client.post(f"/deals/{deal}/criteria", data={"key": keys, "done": keys, "csrf_token": csrf})
    assert saved.status_code == 200 and "Exit criteria saved." in saved.text
    moved = client.post(f"/deals/{deal}", data={"stage": "solution", "csrf_token": csrf})
    assert moved.status_code == 200 and "Saved." in moved.text
    assert api_client(web_org, "rep").get(f"/api/opportunities/{deal}").json()["stage"] == "solution"
