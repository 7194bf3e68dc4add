"""The playbook through the API: a deal's criteria and scorecards, ticking criteria and answering questions,
the YAML round trip, the gate analysis and the re-qualification list — each for every role."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from closewise.db.tables import criteria_checks, opportunities, qualification_answers, users
from tests.web.conftest import WebOrg, api_client

ROLES = ["admin", "leader", "manager", "rep", "viewer"]


def _deal_of(org: WebOrg, role: str, *, stage: str | None = None) -> int:
    owner = org.user_id(org.logins[role])
    query = sa.select(opportunities.c.id).where(opportunities.c.owner_id == owner, opportunities.c.status == "open")
    if stage is not None:
        query = query.where(opportunities.c.stage == stage)
    with org.engine.connect() as connection:
        return int(connection.execute(query.order_by(opportunities.c.id)).scalars().first())


def _other_team_deal(org: WebOrg) -> int:
    owner = org.user_id(org.logins["other_rep"])
    manager = sa.select(users.c.manager_id).where(users.c.id == owner).scalar_subquery()
    with org.engine.connect() as connection:
        return int(connection.execute(
            sa.select(opportunities.c.id).join(users, users.c.id == opportunities.c.owner_id)
            .where(users.c.manager_id == manager).order_by(opportunities.c.id)).scalars().first())


def _team_deal(org: WebOrg, role: str) -> int:
    """An open deal of someone below `role`'s user in the hierarchy."""
    me = api_client(org, role).get("/api/me").json()
    below = [u for u in me["visible_user_ids"] if u != me["id"]]
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id.in_(below), opportunities.c.status == "open").order_by(opportunities.c.id))
            .scalars().first())


def test_a_deal_shows_its_criteria_and_what_is_missing_to_advance(web_org: WebOrg) -> None:
    deal = _deal_of(web_org, "rep")
    body = api_client(web_org, "rep").get(f"/api/opportunities/{deal}/playbook").json()
    assert body["id"] == deal and body["exit_criteria"]
    stage_keys = {c["stage"] for c in body["exit_criteria"]}
    assert stage_keys == {body["stage"]}
    # Missing to advance = the current stage's criteria that are not done (the next stage is one step on).
    if body["next_stage"]:
        assert [c["key"] for c in body["missing_to_advance"]] == [c["key"] for c in body["exit_criteria"]
                                                                   if not c["done"]]
    assert {f["key"] for f in body["frameworks"]} == {"meddicc", "bant"}
    assert all(0 <= f["score"] <= 1 for f in body["frameworks"])


def test_ticking_a_criterion_is_recorded_with_who_and_marks_it_done(web_org: WebOrg) -> None:
    client = api_client(web_org, "rep")
    deal = _deal_of(web_org, "rep")
    state = client.get(f"/api/opportunities/{deal}/playbook").json()
    target = next((c for c in state["exit_criteria"] if c["kind"] == "checkbox"), None)
    if target is None:
        pytest.skip("the deal's stage has no checkbox criterion")
    with web_org.engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.count()).select_from(criteria_checks)
                                    .where(criteria_checks.c.opportunity_id == deal)).scalar_one()
    response = client.post(f"/api/opportunities/{deal}/criteria", json={"key": target["key"], "done": True})
    assert response.status_code == 200
    assert next(c for c in response.json()["exit_criteria"] if c["key"] == target["key"])["done"]
    with web_org.engine.connect() as connection:
        rows = connection.execute(sa.select(criteria_checks).where(criteria_checks.c.opportunity_id == deal)
                                  .order_by(criteria_checks.c.id)).mappings().all()
    assert len(rows) == before + 1
    assert rows[-1]["criterion_key"] == target["key"] and rows[-1]["checked_by"] == web_org.user_id(
        web_org.logins["rep"])
    unticked = client.post(f"/api/opportunities/{deal}/criteria", json={"key": target["key"], "done": False})
    assert not next(c for c in unticked.json()["exit_criteria"] if c["key"] == target["key"])["done"]


def test_answers_change_the_score_and_unknown_is_a_finding(web_org: WebOrg) -> None:
    client = api_client(web_org, "manager")
    deal = _team_deal(web_org, "manager")
    first = client.post(f"/api/opportunities/{deal}/answers",
                        json={"framework": "bant", "question": "budget", "answer": "unknown", "evidence": "<b>?</b>"})
    assert first.status_code == 200
    assert {"framework": "bant", "question": "budget"} in first.json()["unknowns"]
    bant = next(f for f in first.json()["frameworks"] if f["key"] == "bant")
    with web_org.engine.connect() as connection:
        stored = connection.execute(sa.select(qualification_answers.c.evidence, qualification_answers.c.answered_by)
                                    .where(qualification_answers.c.opportunity_id == deal)
                                    .order_by(qualification_answers.c.id.desc())).first()
    assert stored is not None and stored.evidence == "<b>?</b>"
    assert stored.answered_by == web_org.user_id(web_org.logins["manager"])
    second = client.post(f"/api/opportunities/{deal}/answers",
                         json={"framework": "bant", "question": "budget", "answer": "yes"}).json()
    after = next(f for f in second["frameworks"] if f["key"] == "bant")
    # Budget went from unknown (0) to yes (1): the BANT score rises by 1/4.
    assert after["score"] == pytest.approx(bant["score"] + 0.25)
    assert {"framework": "bant", "question": "budget"} not in second["unknowns"]
    bad = client.post(f"/api/opportunities/{deal}/answers",
                      json={"framework": "bant", "question": "colour", "answer": "yes"})
    assert bad.status_code == 422 and bad.json()["where"] == "question"


@pytest.mark.parametrize("role", ROLES)
def test_writes_and_scope_per_role(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    outside = _other_team_deal(web_org)
    missing = client.get("/api/opportunities/999999999/playbook")
    out = client.get(f"/api/opportunities/{outside}/playbook")
    if role in ("admin", "leader"):
        assert out.status_code == 200
    else:
        assert out.status_code == 404 and out.json() == {**missing.json(), "detail": out.json()["detail"]}
        assert out.json()["detail"].replace(str(outside), "N") == missing.json()["detail"].replace("999999999", "N")
    if role == "viewer":
        # The fixture's viewer has nobody below them: they see no deal, so a write is a 404 before it is a 403.
        assert client.post(f"/api/opportunities/{outside}/criteria", json={"key": "meeting_booked"}).status_code == 404
        return
    own = _deal_of(web_org, "rep") if role in ("admin", "leader", "rep") else _team_deal(web_org, role)
    tick = client.post(f"/api/opportunities/{own}/criteria", json={"key": "meeting_booked", "done": True})
    assert tick.status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_and_leaders_replace_the_playbook(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    text = client.get("/api/playbook")
    assert text.status_code == 200 and "exit_criteria" in text.text
    response = client.put("/api/playbook", content=text.text.encode(), headers={"Content-Type": "application/yaml"})
    assert response.status_code == (200 if role in ("admin", "leader") else 403)


def test_a_bad_playbook_is_refused_with_its_place_and_nothing_changes(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    before = client.get("/api/playbook").text
    broken = before.replace("kind: checkbox", "kind: wish", 1)
    response = client.put("/api/playbook", content=broken.encode(), headers={"Content-Type": "application/yaml"})
    assert response.status_code == 422 and response.json()["where"].startswith("body: stages[")
    assert client.get("/api/playbook").text == before


@pytest.mark.parametrize("role", ROLES)
def test_the_requalification_list_holds_only_visible_deals(web_org: WebOrg, role: str) -> None:
    me = api_client(web_org, role).get("/api/me").json()
    rows = api_client(web_org, role).get("/api/playbook/requalification").json()["deals"]
    if me["visible_user_ids"] is not None:
        assert {row["owner_id"] for row in rows} <= set(me["visible_user_ids"])
    assert all(row["status"] in ("due", "overdue") for row in rows)


def test_the_gate_analysis_is_served(web_org: WebOrg) -> None:
    body = api_client(web_org, "leader").get("/api/playbook/gates?as_of=2026-11-22").json()
    assert [s["stage"] for s in body["stages"]][:4] == ["prospecting", "qualification", "discovery", "solution"]
    assert all(s["met_win_rate"] >= s["unmet_win_rate"] for s in body["stages"][:4])


def test_a_viewer_who_sees_a_deal_still_cannot_change_it(web_org: WebOrg) -> None:
    from closewise.domain.enums import Role
    from closewise.domain.scope import Scope
    from closewise.errors import Forbidden
    from closewise.services.playbook import answer_question, set_criterion

    deal = _deal_of(web_org, "rep")
    owner = web_org.user_id(web_org.logins["rep"])
    viewer = Scope(user_id=web_org.user_id(web_org.logins["viewer"]), role=Role.VIEWER, owner_ids=frozenset({owner}))
    with pytest.raises(Forbidden):
        set_criterion(web_org.engine, scope=viewer, deal_id=deal, key="meeting_booked", done=True)
    with pytest.raises(Forbidden):
        answer_question(web_org.engine, scope=viewer, deal_id=deal, framework="bant", question="budget", answer="yes")


@pytest.mark.parametrize("role", ROLES)
def test_the_playbook_page_renders_for_every_role(web_org: WebOrg, role: str) -> None:
    from tests.web.conftest import page_client

    client = page_client(web_org, role)
    response = client.get("/playbook")
    assert response.status_code == 200
    assert "Do the gates matter?" in response.text and "Re-qualification due" in response.text
    editable = 'name="yaml_text"' in response.text
    assert editable == (role in ("admin", "leader"))


def test_saving_the_playbook_page_needs_csrf_and_the_right_role(web_org: WebOrg) -> None:
    from tests.web.conftest import page_client

    leader = page_client(web_org, "leader")
    text = api_client(web_org, "leader").get("/api/playbook").text
    assert leader.post("/playbook", data={"yaml_text": text}).status_code == 403  # no CSRF token
    saved = leader.post("/playbook", data={"yaml_text": text, "csrf_token": leader.csrf})  # type: ignore[attr-defined]
    assert saved.status_code == 200 and "Saved: 6 stages" in saved.text
    broken = leader.post("/playbook", data={"yaml_text": text.replace("kind: checkbox", "kind: <script>", 1),
                                            "csrf_token": leader.csrf})  # type: ignore[attr-defined]
    assert broken.status_code == 422 and "unknown kind" in broken.text and "<script>" not in broken.text
    manager = page_client(web_org, "manager")
    refused = manager.post("/playbook", data={"yaml_text": text, "csrf_token": manager.csrf})  # type: ignore[attr-defined]
    assert refused.status_code == 403


def test_flags_list_open_deals_that_skipped_criteria_on_the_way(web_org: WebOrg) -> None:
    from datetime import datetime

    from closewise.db.playbook import load_checks
    from closewise.playbook.gate_effect import advances
    from closewise.services.org_data import load_org
    from closewise.services.playbook import current_playbook

    flagged = api_client(web_org, "leader").get("/api/playbook/flags").json()
    # Independently: open deals with any advance judged unmet by the gate-analysis rule.
    org = load_org(web_org.engine, activities=False)
    with web_org.engine.connect() as connection:
        checks = load_checks(connection)
    open_ids = set(org.opportunities.filter(org.opportunities["status"] == "open")["id"].to_list())
    judged = advances(org.changes, checks, current_playbook(web_org.engine), as_of=datetime(2100, 1, 1))
    expected = {row["opportunity_id"] for row in judged.filter(~judged["met"]).iter_rows(named=True)} & open_ids
    assert {row["id"] for row in flagged} == expected and expected
    rep_ids = set(api_client(web_org, "rep").get("/api/me").json()["visible_user_ids"])
    mine = {row["id"] for row in api_client(web_org, "rep").get("/api/playbook/flags").json()}
    owners = dict(zip(org.opportunities["id"].to_list(), org.opportunities["owner_id"].to_list(), strict=True))
    assert mine == {deal for deal in expected if owners[deal] in rep_ids}


def test_the_playbook_page_lists_requalification_as_of_a_day_and_for_one_owner(web_org: WebOrg) -> None:
    import re

    from tests.web.conftest import page_client

    client = page_client(web_org, "manager")
    api = api_client(web_org, "manager")
    day = "2026-11-01"

    def listed(query: str) -> list[int]:
        response = client.get(f"/playbook{query}")
        assert response.status_code == 200, response.text
        return [int(found) for found in re.findall(r'<tr id="due-(\d+)"', response.text)]

    expected = api.get(f"/api/playbook/requalification?as_of={day}").json()["deals"]
    today = api.get("/api/playbook/requalification").json()["deals"]
    assert {r["id"] for r in expected} != {r["id"] for r in today}  # the day changes the list
    assert listed(f"?as_of={day}") == [r["id"] for r in expected]  # same deals, same order (soonest due first)
    assert sorted(listed("")) == sorted(r["id"] for r in today)
    # The form's empty fields (no day, everyone) are the defaults, not errors.
    assert sorted(listed("?as_of=&owner=")) == sorted(r["id"] for r in today)
    owner = expected[0]["owner_id"]
    assert listed(f"?as_of={day}&owner={owner}") == [r["id"] for r in expected if r["owner_id"] == owner]
    # Someone the manager does not see lists nothing, rather than their deals.
    outsider = web_org.user_id(web_org.logins["other_rep"])
    assert listed(f"?owner={outsider}") == []
    for bad, where in (("?as_of=yesterday", "as_of"), ("?owner=me", "owner"), ("?as_of=1492-10-12", "as_of")):
        refused = client.get(f"/playbook{bad}")
        assert refused.status_code == 422 and f"{where}: " in refused.text, (bad, refused.status_code)
