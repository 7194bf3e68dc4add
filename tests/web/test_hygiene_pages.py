"""The Hygiene page for every role: only deals in scope, write controls only for roles that may write, CSRF on
every form, and the htmx snooze and sweep (preview, confirm exactly the preview, undo) as a browser runs them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import audit_log, opportunities
from closewise.domain.timeutil import utcnow
from closewise.services import hygiene as service
from tests.web.conftest import WebOrg, page_client
from tests.web.test_hygiene_api import ROLES, expected_ids, visible_owners

HTMX = {"HX-Request": "true"}


def _rows(html: str) -> set[int]:
    return {int(found) for found in re.findall(r'<tr id="deal-(\d+)"', html)}


@pytest.mark.parametrize("role", ROLES)
def test_the_page_lists_the_deals_in_scope_with_controls_for_the_role(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    today = utcnow().date()
    response = client.get("/hygiene", params={"as_of": today.isoformat()})
    assert response.status_code == 200
    full = service.review(web_org.engine, as_of=service.end_of_day(today)).deals
    assert _rows(response.text) == expected_ids(web_org, role, full)
    live = client.get("/hygiene").text
    snooze_forms = 'hx-post="/hygiene/snooze"' in live
    sweep_button = 'hx-post="/hygiene/sweep/preview"' in live
    assert snooze_forms == (role in ("admin", "leader", "manager", "rep") and bool(_rows(live)))
    assert sweep_button == (role in ("admin", "leader", "manager"))
    # A past day is for reading: no write controls.
    assert 'hx-post="/hygiene/snooze"' not in response.text and "Preview sweep" not in response.text
    assert "<script>" not in live and "onclick" not in live  # CSP: no inline scripts


def test_the_page_filters_by_finding_and_needs_a_session(web_org: WebOrg) -> None:
    client = page_client(web_org, "leader")
    everything = _rows(client.get("/hygiene").text)
    idle = _rows(client.get("/hygiene", params={"code": "no_activity"}).text)
    assert idle and idle < everything
    anonymous = TestClient(web_org.app).get("/hygiene", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_writes_need_the_csrf_token_and_the_right(web_org: WebOrg) -> None:
    rep = page_client(web_org, "rep")
    form = {"opportunity_id": "1", "code": "no_next_step", "until": "2030-01-01", "reason": "x"}
    assert rep.post("/hygiene/snooze", data=form).status_code == 403  # no CSRF token
    assert rep.post("/hygiene/sweep/preview", headers={"X-CSRF-Token": rep.csrf}).status_code == 403  # type: ignore[attr-defined]
    viewer = page_client(web_org, "viewer")
    refused = viewer.post("/hygiene/snooze", data={**form, "csrf_token": viewer.csrf})  # type: ignore[attr-defined]
    assert refused.status_code == 403


def test_a_rep_snoozes_a_finding_of_their_own_deal_with_htmx(web_org: WebOrg) -> None:
    rep = page_client(web_org, "rep")
    sees = visible_owners(web_org, "rep")
    assert sees is not None
    page = rep.get("/hygiene").text
    deal_id = min(_rows(page))
    code = re.search(rf'<li id="finding-{deal_id}-([a-z_]+)"', page)
    assert code is not None
    headers = {**HTMX, "X-CSRF-Token": rep.csrf}  # type: ignore[attr-defined]
    until = (utcnow().date() + timedelta(days=300)).isoformat()
    bad = rep.post("/hygiene/snooze", headers=headers,
                   data={"opportunity_id": deal_id, "code": code.group(1), "until": until, "reason": " "})
    assert bad.status_code == 200 and "say why" in bad.text  # shown in place
    done = rep.post("/hygiene/snooze", headers=headers,
                    data={"opportunity_id": deal_id, "code": code.group(1), "until": until, "reason": "on holiday"})
    assert done.status_code == 200
    assert f'id="finding-{deal_id}-{code.group(1)}" hx-swap-oob="outerHTML"' in done.text
    assert "Snoozed" in done.text
    after = rep.get("/hygiene").text
    assert f'id="finding-{deal_id}-{code.group(1)}"' not in after and "on holiday" in after  # in the snoozed list
    # Another team's deal answers 404, as a missing one.
    with web_org.engine.connect() as connection:
        other = connection.execute(sa.select(opportunities.c.id).where(
            opportunities.c.owner_id.not_in(sorted(sees))).limit(1)).scalar_one()
    outside = rep.post("/hygiene/snooze", headers=headers,
                       data={"opportunity_id": other, "code": "no_next_step", "until": until, "reason": "x"})
    assert outside.status_code == 404


def test_a_manager_previews_confirms_and_undoes_a_sweep_in_the_page(web_org: WebOrg) -> None:
    manager = page_client(web_org, "manager")
    headers = {**HTMX, "X-CSRF-Token": manager.csrf}  # type: ignore[attr-defined]
    sees = visible_owners(web_org, "manager")
    preview = manager.post("/hygiene/sweep/preview", headers=headers)
    assert preview.status_code == 200
    ids = [int(found) for found in re.findall(r'name="ids" value="(\d+)"', preview.text)]
    assert ids and "Confirm sweep of" in preview.text
    with web_org.engine.connect() as connection:
        owners = dict(connection.execute(sa.select(opportunities.c.id, opportunities.c.owner_id)
                                         .where(opportunities.c.id.in_(ids))).all())
    assert sees is not None and all(owner in sees for owner in owners.values())
    confirm = manager.post("/hygiene/sweep/confirm", headers=headers, data={"ids": ids, "reason": "tidy"})
    assert confirm.status_code == 200 and "Undo sweep" in confirm.text
    sweep_id = re.search(r'hx-post="/hygiene/sweep/([0-9a-f]+)/undo"', confirm.text)
    assert sweep_id is not None
    with web_org.engine.connect() as connection:
        statuses = set(connection.execute(sa.select(opportunities.c.status)
                                          .where(opportunities.c.id.in_(ids))).scalars())
        actors = set(connection.execute(sa.select(audit_log.c.actor_id).where(
            audit_log.c.action == "hygiene.sweep")).scalars())
    assert statuses == {"no_decision"}
    assert actors == {web_org.user_id(web_org.logins["manager"])}
    undo = manager.post(f"/hygiene/sweep/{sweep_id.group(1)}/undo", headers=headers)
    assert undo.status_code == 200 and f"{len(ids)} deal" in undo.text and "reopened" in undo.text
    twice = manager.post(f"/hygiene/sweep/{sweep_id.group(1)}/undo", headers=headers)
    assert twice.status_code == 200 and "already undone" in twice.text
    with web_org.engine.connect() as connection:
        statuses = set(connection.execute(sa.select(opportunities.c.status)
                                          .where(opportunities.c.id.in_(ids))).scalars())
    assert statuses == {"open"}
    cancel = manager.get("/hygiene/sweep", headers=HTMX)
    assert cancel.status_code == 200 and "Preview sweep" in cancel.text
