"""The Deals pages for every role: the list shows only in-scope deals (its count checked against SQL), filters
re-render through htmx, the deal page shows its timeline, activities, probability chart and exit criteria, and
the edit form writes through the change log with CSRF — and hostile text is shown escaped, never as markup."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from markupsafe import escape

from closewise.db.tables import activities, exit_criteria, opportunities, opportunity_changes, stages, users
from tests.web.conftest import WebOrg, page_client
from tests.web.test_api_opportunities import (
    give_viewer_a_team,
    inside_deal,
    last_change_id,
    missing_id,
    outside_deal,
    sql_count,
    visible_owners,
)

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
o = opportunities
_CLIENTS: dict[tuple[str, str], TestClient] = {}


@pytest.fixture(scope="module", autouse=True)
def viewer_with_a_team(web_org: WebOrg) -> None:
    give_viewer_a_team(web_org)


def browser(org: WebOrg, role: str) -> TestClient:
    """One signed-in browser-like client per role (signing in costs an argon2 check)."""
    key = (org.url, role)
    if key not in _CLIENTS:
        _CLIENTS[key] = page_client(org, role)
    return _CLIENTS[key]


def deal_links(text: str) -> set[int]:
    return {int(found) for found in re.findall(r'href="/deals/(\d+)"', text)}


def caption_total(text: str) -> int:
    found = re.search(r"Deals [\d,]+–[\d,]+ of ([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else 0


@pytest.mark.parametrize("role", ROLES)
def test_the_list_shows_only_in_scope_deals_and_counts_like_sql(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    response = client.get("/deals")
    assert response.status_code == 200
    text = response.text
    assert "<title>Deals · Closewise</title>" in text
    # The default view: open deals.
    assert caption_total(text) == sql_count(web_org, role, o.c.status == "open")
    owners = visible_owners(web_org, role)
    with web_org.engine.connect() as connection:
        shown = connection.execute(sa.select(o.c.owner_id, o.c.status).where(o.c.id.in_(deal_links(text)))).all()
    assert shown and all(row.status == "open" for row in shown)
    if owners is not None:
        assert {row.owner_id for row in shown} <= owners
    # Every status, second page: still counted like SQL, still in scope.
    every = client.get("/deals?status=all&page=2").text
    assert caption_total(every) == sql_count(web_org, role)
    with web_org.engine.connect() as connection:
        owners_shown = set(connection.execute(sa.select(o.c.owner_id).where(o.c.id.in_(deal_links(every)))).scalars())
    if owners is not None:
        assert owners_shown <= owners


@pytest.mark.parametrize("role", ROLES)
def test_the_owner_filter_offers_only_users_the_role_sees(web_org: WebOrg, role: str) -> None:
    text = browser(web_org, role).get("/deals").text
    select = re.search(r'<select name="owner">(.*?)</select>', text, re.S)
    assert select is not None
    offered = {int(v) for v in re.findall(r'<option value="(\d+)"', select.group(1))}
    owners = visible_owners(web_org, role)
    with web_org.engine.connect() as connection:
        everyone = set(connection.execute(sa.select(users.c.id)).scalars())
    assert offered <= (everyone if owners is None else owners)
    assert offered


def test_filters_come_back_as_an_htmx_fragment_with_the_count(web_org: WebOrg) -> None:
    client = browser(web_org, "manager")
    me = web_org.user_id(web_org.logins["manager"])
    team = sorted(visible_owners(web_org, "manager") or ())
    owner = next(u for u in team if u != me and sql_count(web_org, "manager", o.c.owner_id == u))
    url = f"/deals?status=all&owner={owner}&stage=&q=&close_from=2025-01-01&close_to=2026-12-31&min_amount=1000" \
          "&sort=-amount"
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="deal-sort"' in response.text  # a fragment, with the sort kept
    expected = sql_count(web_org, "manager", o.c.owner_id == owner, o.c.close_date >= date(2025, 1, 1),
                         o.c.close_date <= date(2026, 12, 31), o.c.amount >= 1000)
    assert caption_total(response.text) == expected
    # A history restore asks for the whole page.
    restored = client.get(url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restored.text
    # The form asks for exactly this: hx-get into the results, the address pushed.
    page = client.get("/deals").text
    assert 'hx-get="/deals"' in page and 'hx-target="#deal-results"' in page and 'hx-push-url="true"' in page


def test_the_count_and_total_amount_follow_the_filters(web_org: WebOrg) -> None:
    client = browser(web_org, "leader")
    text = client.get("/deals?status=won&min_amount=20000").text
    assert caption_total(text) == sql_count(web_org, "leader", o.c.status == "won", o.c.amount >= 20000)
    kpi = re.search(r'data-kpi="deals">([\d,]+)<', text)
    assert kpi is not None and int(kpi.group(1).replace(",", "")) == caption_total(text)


@pytest.mark.parametrize("url", ["/deals?close_from=yesterday", "/deals?min_amount=lots", "/deals?page=0",
                                 "/deals?sort=size", "/deals?status=maybe"])
def test_a_bad_filter_says_what_is_wrong(web_org: WebOrg, url: str) -> None:
    response = browser(web_org, "rep").get(url)
    assert response.status_code == 422
    assert "Something is wrong" in response.text


@pytest.mark.parametrize("role", ROLES)
def test_the_deal_page_shows_timeline_activities_chart_and_criteria(web_org: WebOrg, role: str) -> None:
    deal = busiest_deal(web_org, role)
    response = browser(web_org, role).get(f"/deals/{deal}")
    assert response.status_code == 200
    text = response.text
    with web_org.engine.connect() as connection:
        row = connection.execute(sa.select(o).where(o.c.id == deal)).one()
        labels = list(connection.execute(
            sa.select(exit_criteria.c.label).join(stages, stages.c.id == exit_criteria.c.stage_id)
            .where(stages.c.key == row.stage, stages.c.pipeline == row.pipeline)).scalars())
        changes = connection.execute(sa.select(sa.func.count()).select_from(opportunity_changes)
                                     .where(opportunity_changes.c.opportunity_id == deal)).scalar_one()
        subjects = list(connection.execute(sa.select(activities.c.subject)
                                           .where(activities.c.opportunity_id == deal)).scalars())
    assert str(escape(row.name)) in text
    assert labels and all(str(escape(label)) in text for label in labels)
    assert "Timeline of changes" in text and changes > 0
    assert text.count("<li><strong>") == changes  # one line per change-log row
    assert all(str(escape(s)) in text for s in subjects if s)
    chart = re.search(r'<script type="application/json" data-chart="deal-probability-chart">(.*?)</script>', text, re.S)
    assert chart is not None
    figure = json.loads(chart.group(1))
    names = [trace["name"] for trace in figure["data"]]
    assert names[:2] == ["CRM probability", "Model: win probability"]
    assert figure["data"][0]["line"]["shape"] == "hv"
    assert '/static-vendor/plotly.min.js' in text
    can_edit = role != "viewer"
    assert ('hx-patch="/deals/' in text) is can_edit


def busiest_deal(org: WebOrg, role: str) -> int:
    """The open deal `role` sees with the most change-log rows and at least one activity."""
    owners = visible_owners(org, role)
    c = opportunity_changes
    statement = (sa.select(o.c.id).join(c, c.c.opportunity_id == o.c.id).where(
        o.c.status == "open", sa.exists().where(activities.c.opportunity_id == o.c.id))
        .group_by(o.c.id).order_by(sa.func.count().desc(), o.c.id).limit(1))
    if owners is not None:
        statement = statement.where(o.c.owner_id.in_(sorted(owners)))
    with org.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


@pytest.mark.parametrize("role", ROLES)
def test_out_of_scope_and_missing_deal_pages_are_the_same_404(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    hidden, missing = outside_deal(web_org, role), missing_id(web_org)
    out, gone = client.get(f"/deals/{hidden}"), client.get(f"/deals/{missing}")
    assert out.status_code == gone.status_code == 404
    assert out.text.replace(f"id {hidden}", "id N") == gone.text.replace(f"id {missing}", "id N")
    assert f"no opportunity with id {hidden}" in out.text


def test_pages_need_a_session(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    for path in ("/deals", f"/deals/{inside_deal(web_org, 'leader')}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/deals")
    assert client.patch(f"/deals/{inside_deal(web_org, 'leader')}", data={"next_step": "x"},
                        follow_redirects=False).status_code == 303


def form_of(org: WebOrg, deal: int) -> dict[str, Any]:
    with org.engine.connect() as connection:
        row = connection.execute(sa.select(o).where(o.c.id == deal)).one()
    return {"stage": row.stage, "amount": "" if row.amount is None else str(row.amount),
            "close_date": row.close_date.isoformat() if row.close_date else "", "next_step": row.next_step or "",
            "forecast_category": row.forecast_category or "", "override_reason": ""}


def test_the_edit_form_patches_through_the_change_log(web_org: WebOrg) -> None:
    client = browser(web_org, "manager")
    deal = inside_deal(web_org, "manager")
    form = form_of(web_org, deal)
    mark = last_change_id(web_org)
    # Without the CSRF token: refused, nothing written.
    refused = client.patch(f"/deals/{deal}", data={**form, "next_step": "forged"}, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    changed = {**form, "next_step": "Book the security review", "override_reason": "agreed on the call"}
    response = client.patch(f"/deals/{deal}", data=changed,
                            headers={"HX-Request": "true", "X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert 'id="deal-body"' in response.text and "<html" not in response.text
    assert "Saved." in response.text and "Book the security review" in response.text
    with web_org.engine.connect() as connection:
        rows = connection.execute(sa.select(opportunity_changes).where(opportunity_changes.c.id > mark)).all()
    assert [(r.opportunity_id, r.field, r.new_value, r.reason, r.changed_by) for r in rows] == [
        (deal, "next_step", "Book the security review", "agreed on the call",
         web_org.user_id(web_org.logins["manager"]))]
    # Nothing different: the form says so, and writes nothing.
    same = client.patch(f"/deals/{deal}", data={**form_of(web_org, deal)},
                        headers={"HX-Request": "true", "X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert same.status_code == 200 and "Nothing changed" in same.text and 'class="flash error"' in same.text
    # A bad value, posted without JavaScript (the form's own token): 422 and the field named.
    bad = client.post(f"/deals/{deal}", data={**form_of(web_org, deal), "amount": "-5",
                                              "csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert bad.status_code == 422 and "Amount:" in bad.text and "<html" in bad.text
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(opportunity_changes)
                                  .where(opportunity_changes.c.id > mark)).scalar_one() == 1


def test_a_viewer_sees_no_form_and_cannot_patch(web_org: WebOrg) -> None:
    client = browser(web_org, "viewer")
    deal = inside_deal(web_org, "viewer")
    assert "Update the deal" not in client.get(f"/deals/{deal}").text
    mark = last_change_id(web_org)
    response = client.patch(f"/deals/{deal}", data={**form_of(web_org, deal), "next_step": "nope"},
                            headers={"X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert response.status_code == 403
    assert last_change_id(web_org) == mark


def test_a_closed_deal_has_no_form(web_org: WebOrg) -> None:
    client = browser(web_org, "rep")
    deal = inside_deal(web_org, "rep", status="won")
    text = client.get(f"/deals/{deal}").text
    assert "Update the deal" not in text and "closed deals are not edited" in text


HOSTILE = "<script>alert('cw')</script><img src=x onerror=alert(1)>\"'&"


def test_hostile_text_is_stored_and_shown_escaped(web_org: WebOrg) -> None:
    client = browser(web_org, "rep")
    deal = inside_deal(web_org, "rep")
    form = {**form_of(web_org, deal), "next_step": HOSTILE, "override_reason": HOSTILE}
    saved = client.patch(f"/deals/{deal}", data=form,
                         headers={"HX-Request": "true", "X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert saved.status_code == 200
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(o.c.next_step).where(o.c.id == deal)).scalar_one() == HOSTILE
    for text in (saved.text, client.get(f"/deals/{deal}").text):
        assert HOSTILE not in text and "<script>alert" not in text and "<img src=x" not in text
        assert str(escape(HOSTILE)) in text
    searched = client.get("/deals", params={"q": HOSTILE, "status": "all"})
    assert searched.status_code == 200
    assert "<script>alert" not in searched.text and "<img src=x" not in searched.text
    assert f'value="{escape(HOSTILE)}"' in searched.text
    assert "No deals match these filters" in searched.text
