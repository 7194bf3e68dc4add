"""Stage gates through the API (issue 7): a forward move without the exit criteria is refused with them named
(409 `missing`), an override needs a reason and is logged, completing the criteria then lets the move
through, and skipping a stage needs that stage's criteria as well. A stage set to require a passing proposal
(issue 11) refuses the move until the deal's latest proposal passes its quality checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import yaml

from closewise.db.tables import (
    criteria_checks,
    opportunities,
    opportunity_changes,
    proposals,
    qualification_answers,
    users,
)
from closewise.playbook.gates import PASSING_PROPOSAL_KEY, PASSING_PROPOSAL_LABEL
from tests.web.conftest import WebOrg, api_client


def _fresh_deal(org: WebOrg, stage: str, nth: int, *, teammate: bool = False) -> int:
    """The `nth` open deal of the demo rep (each test its own; with `teammate`, of the manager's other reps, who
    hold more deals), put in `stage`, its criteria checks wiped so the gate starts closed."""
    rep = org.user_id(org.logins["rep"])
    owners = [rep]
    if teammate:
        manager = org.user_id(org.logins["manager"])
        with org.engine.connect() as connection:
            owners = list(connection.execute(sa.select(users.c.id).where(users.c.manager_id == manager,
                                                                         users.c.id != rep)).scalars())
    with org.engine.begin() as connection:
        deal = connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id.in_(owners), opportunities.c.status == "open")
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
    # The update form lists exactly what the API calls missing, and keeps the stage that was picked.
    expected = [c["key"] for c in api_client(web_org, "rep").get(f"/api/opportunities/{deal}/playbook").json()[
        "missing_to_advance"]]
    assert re.findall(r'<li data-key="([^"]+)"', refused.text) == expected
    assert re.search(r'<option value="solution" selected>', refused.text)
    page = client.get(f"/deals/{deal}").text
    assert f'action="/deals/{deal}/criteria"' in page
    state = api_client(web_org, "rep").get(f"/api/opportunities/{deal}/playbook").json()
    keys = [c["key"] for c in state["missing_to_advance"]]
    saved = client.post(f"/deals/{deal}/criteria", data={"key": keys, "done": keys, "csrf_token": csrf})
    assert saved.status_code == 200 and "Exit criteria saved." in saved.text
    moved = client.post(f"/deals/{deal}", data={"stage": "solution", "csrf_token": csrf})
    assert moved.status_code == 200 and "Saved." in moved.text
    assert api_client(web_org, "rep").get(f"/api/opportunities/{deal}").json()["stage"] == "solution"


@contextmanager
def _proposal_required(org: WebOrg, stage: str) -> Iterator[str]:
    """The stored playbook with `stage` requiring a passing proposal, put back as it was afterwards (the org is
    shared by this module's tests). Yields the YAML that was stored."""
    admin = api_client(org, "admin")
    original = admin.get("/api/playbook").text
    document = yaml.safe_load(original)
    for item in document["stages"]:
        item["requires_passing_proposal"] = item["key"] == stage
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    stored = admin.put("/api/playbook", content=text.encode(), headers={"Content-Type": "application/yaml"})
    assert stored.status_code == 200, stored.text
    try:
        yield stored.text
    finally:
        restored = admin.put("/api/playbook", content=original.encode(), headers={"Content-Type": "application/yaml"})
        assert restored.status_code == 200, restored.text


def test_the_proposal_option_round_trips_through_the_api_and_bad_values_name_their_stage(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    with _proposal_required(web_org, "proposal") as stored:
        exported = admin.get("/api/playbook").text
        assert exported == stored
        flags = {s["key"]: s["requires_passing_proposal"] for s in yaml.safe_load(exported)["stages"]}
        assert [key for key, on in flags.items() if on] == ["proposal"]
        listed = api_client(web_org, "rep").get("/api/playbook/stages").json()
        assert {s["key"]: s["requires_passing_proposal"] for s in listed} == flags
        # Nothing changes when a value is not a boolean; the error names the stage's place in the file.
        index = list(flags).index("proposal")
        bad = exported.replace("requires_passing_proposal: true", "requires_passing_proposal: sometimes")
        refused = admin.put("/api/playbook", content=bad.encode(), headers={"Content-Type": "application/yaml"})
        assert refused.status_code == 422
        assert refused.json()["where"] == f"body: stages[{index}].requires_passing_proposal"
        assert admin.get("/api/playbook").text == stored
    # Put back: the shipped playbook requires no proposal anywhere.
    assert "requires_passing_proposal: true" not in admin.get("/api/playbook").text
    assert not any(s["requires_passing_proposal"] for s in admin.get("/api/playbook/stages").json())


def test_leaving_a_stage_that_requires_it_needs_a_passing_proposal(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _fresh_deal(web_org, "proposal", 5)
    with web_org.engine.begin() as connection:  # no proposal yet, and no discovery answers to build one on
        connection.execute(proposals.delete().where(proposals.c.opportunity_id == deal))
        connection.execute(qualification_answers.delete().where(qualification_answers.c.opportunity_id == deal))
    with _proposal_required(web_org, "proposal"):
        # Everything else the Proposal stage asks for is done: its criteria ticked, its required field filled.
        state = client.get(f"/api/opportunities/{deal}/playbook").json()
        wanted = {c["key"]: c for c in state["missing_to_advance"]}
        assert wanted[PASSING_PROPOSAL_KEY]["label"] == PASSING_PROPOSAL_LABEL
        assert wanted[PASSING_PROPOSAL_KEY]["kind"] == "proposal" and not wanted[PASSING_PROPOSAL_KEY]["done"]
        for key, criterion in wanted.items():
            if criterion["kind"] in ("checkbox", "evidence"):
                assert client.post(f"/api/opportunities/{deal}/criteria", json={"key": key}).status_code == 200
        # It cannot be ticked: only a proposal that passes earns it.
        ticked = client.post(f"/api/opportunities/{deal}/criteria", json={"key": PASSING_PROPOSAL_KEY})
        assert ticked.status_code == 422
        assert client.patch(f"/api/opportunities/{deal}", json={"next_step": "Walk the CFO through the proposal"}
                            ).status_code == 200

        def refused_for() -> list[str]:
            refused = client.patch(f"/api/opportunities/{deal}", json={"stage": "negotiation"})
            assert refused.status_code == 409, refused.text
            assert client.get(f"/api/opportunities/{deal}").json()["stage"] == "proposal"
            assert PASSING_PROPOSAL_LABEL in refused.json()["detail"]
            return [c["key"] for c in refused.json()["missing"]]

        assert refused_for() == [PASSING_PROPOSAL_KEY]
        # The deal page says so too, with the way to earn it: generating a proposal.
        from tests.web.conftest import page_client

        pages = page_client(web_org, "rep")
        form = {"stage": "negotiation", "next_step": "Walk the CFO through the proposal",
                "csrf_token": pages.csrf}  # type: ignore[attr-defined]
        shown = pages.post(f"/deals/{deal}", data=form)
        assert shown.status_code == 409
        assert re.findall(r'<li data-key="([^"]+)"', shown.text) == [PASSING_PROPOSAL_KEY]
        assert PASSING_PROPOSAL_LABEL in shown.text and f'href="/proposals/{deal}">Generate a proposal' in shown.text
        # A proposal that fails its checks (discovery recorded no pain to cite) does not open the gate.
        failing = client.post(f"/api/proposals/{deal}", json={"format": "html"})
        assert failing.status_code == 201 and failing.json()["passed"] is False
        assert "cites_pains" in {c["key"] for c in failing.json()["checks"] if not c["passed"]}
        assert refused_for() == [PASSING_PROPOSAL_KEY]
        # Discovery captures the pain and the expected outcome; the next proposal cites them and passes.
        for question, evidence in (("identify_pain", "month-end close takes nine days of manual reconciliation"),
                                   ("metrics", "close the books in four days by the end of next quarter")):
            answered = client.post(f"/api/opportunities/{deal}/answers", json={
                "framework": "meddicc", "question": question, "answer": "yes", "evidence": evidence})
            assert answered.status_code == 200, answered.text
        passing = client.post(f"/api/proposals/{deal}", json={"format": "html"})
        assert passing.status_code == 201
        assert passing.json()["passed"] is True, [c for c in passing.json()["checks"] if not c["passed"]]
        assert client.get(f"/api/opportunities/{deal}/playbook").json()["missing_to_advance"] == []
        moved = client.patch(f"/api/opportunities/{deal}", json={"stage": "negotiation"})
        assert moved.status_code == 200, moved.text
    assert client.get(f"/api/opportunities/{deal}").json()["stage"] == "negotiation"
    (row,) = _stage_rows(web_org, deal)
    assert (row.old_value, row.new_value, row.reason) == ("proposal", "negotiation", None)


def test_without_the_option_no_proposal_is_needed(web_org: WebOrg) -> None:
    """The shipped playbook leaves it off: the same deal state moves on with no proposal at all."""
    client = api_client(web_org, "manager")
    deal = _fresh_deal(web_org, "proposal", 0, teammate=True)
    with web_org.engine.begin() as connection:
        connection.execute(proposals.delete().where(proposals.c.opportunity_id == deal))
    state = client.get(f"/api/opportunities/{deal}/playbook").json()
    assert PASSING_PROPOSAL_KEY not in {c["key"] for c in state["missing_to_advance"]}
    for criterion in state["missing_to_advance"]:
        if criterion["kind"] in ("checkbox", "evidence"):
            client.post(f"/api/opportunities/{deal}/criteria", json={"key": criterion["key"]})
    moved = client.patch(f"/api/opportunities/{deal}", json={"stage": "negotiation", "next_step": "Send terms"})
    assert moved.status_code == 200, moved.text


def test_the_deal_page_overrides_with_a_reason_and_its_timeline_says_what_was_missing(web_org: WebOrg) -> None:
    from tests.web.conftest import page_client

    client = page_client(web_org, "manager")
    deal = _fresh_deal(web_org, "discovery", 1, teammate=True)
    missing = api_client(web_org, "manager").get(f"/api/opportunities/{deal}/playbook").json()["missing_to_advance"]
    assert missing
    moved = client.post(f"/deals/{deal}", data={"stage": "solution", "override_reason": "Signed LOI <b>today</b>",
                                                "csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert moved.status_code == 200 and "Saved." in moved.text
    (row,) = _stage_rows(web_org, deal)
    assert row.reason.startswith("gate override: Signed LOI <b>today</b> (missing: ")
    page = client.get(f"/deals/{deal}").text
    event = page[page.index('class="timeline deal-timeline"'):]
    event = event[:event.index("</li>\n", event.index("Gate override"))]
    # One event for the edit (the stage and the probability it brought), the reason escaped, the labels in words.
    assert event.count('class="when"') == 1 and "Reason: Signed LOI &lt;b&gt;today&lt;/b&gt;" in event
    assert "Moved on without: " + "; ".join(c["label"] for c in missing) in event.replace("&#39;", "'")
