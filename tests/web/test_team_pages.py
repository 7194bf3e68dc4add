"""The Team page for every role: the scorecards of the reps in scope only (a rep sees their own row even though
the menu hides the link), the team filter, server-side sorting and the charts — the quarterly trend, stage
conversion and activity mix hold the reps in scope and their total, nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import users
from tests.demo_org import DEMO_TODAY
from tests.web.conftest import WebOrg, api_client, page_client
from tests.web.test_hygiene_api import ROLES
from tests.web.test_team_api import _reps_in_sight


def _names(org: WebOrg) -> dict[int, str]:
    with org.engine.connect() as connection:
        return {row.id: row.name for row in connection.execute(sa.select(users.c.id, users.c.name))}


def _row_names(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r'<td class="rep"><strong>([^<]+)</strong>', body)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_the_scorecards_of_its_reps(web_org: WebOrg, role: str) -> None:
    client = page_client(web_org, role)
    response = client.get("/team", params={"as_of": DEMO_TODAY.isoformat()})
    assert response.status_code == 200
    names = _names(web_org)
    expected = sorted(names[rep] for rep in _reps_in_sight(web_org, role, DEMO_TODAY))
    assert sorted(_row_names(response.text)) == expected
    menu = 'href="/team"' in response.text.split("</nav>", 1)[0]
    assert menu == (role != "rep")  # the link is hidden for reps; the route still answers with their own row
    if role == "rep":
        assert _row_names(response.text) == [names[web_org.user_id(web_org.logins["rep"])]]
    charts = 'data-chart="team-attainment"' in response.text
    assert charts == (len(expected) > 1)
    assert "<script>" not in response.text


def test_sorting_and_the_team_filter(web_org: WebOrg) -> None:
    client = page_client(web_org, "leader")
    by_name = _row_names(client.get("/team", params={"sort": "name", "order": "asc"}).text)
    assert by_name == sorted(by_name, key=str.lower) and len(by_name) > 3
    backwards = client.get("/team", params={"sort": "name", "order": "desc"})
    assert _row_names(backwards.text) == by_name[::-1]
    assert 'aria-sort="descending"' in backwards.text
    assert client.get("/team", params={"sort": "bogus"}).status_code == 200  # falls back to the default
    teams = re.findall(r'<option value="(\d+)"', client.get("/team").text)
    assert len(teams) >= 2
    one = client.get("/team", params={"team": teams[0]}).text
    assert 0 < len(_row_names(one)) < len(by_name)
    manager = page_client(web_org, "manager")
    assert manager.get("/team", params={"team": 987654}).status_code == 404
    anonymous = TestClient(web_org.app).get("/team", follow_redirects=False)
    assert anonymous.status_code == 303


def _chart(html: str, name: str) -> dict[str, Any] | None:
    found = re.search(rf'<script type="application/json" data-chart="{name}">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


def _process_names(html: str) -> list[str]:
    table = html.split('class="striped scorecards process"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<td class="rep">([^<]+)</td>', table)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_the_trend_stage_and_mix_of_its_reps_only(web_org: WebOrg, role: str) -> None:
    response = page_client(web_org, role).get("/team", params={"as_of": DEMO_TODAY.isoformat()})
    assert response.status_code == 200
    names = _names(web_org)
    expected = sorted(names[rep] for rep in _reps_in_sight(web_org, role, DEMO_TODAY))
    html = response.text
    if not expected:  # the viewer: no reps, no charts, no tables
        assert _chart(html, "team-trend") is None and "Pipeline and process" not in html
        return
    assert sorted(_process_names(html)) == expected
    trend, stages = _chart(html, "team-trend"), _chart(html, "team-stages")
    assert trend is not None and stages is not None
    if len(expected) == 1:  # a rep: their own quarters as bars, their stages as bars
        assert [t["type"] for t in trend["data"]] == ["bar", "scatter", "scatter"]
        assert len(trend["data"][0]["x"]) == 6 and stages["data"][0]["type"] == "bar"
        assert _chart(html, "team-mix") is None
        return
    total = re.search(r"<tfoot>\s*<tr>\s*<th scope=\"row\">([^<]+)</th>", html)
    assert total is not None
    for figure in (trend, stages):
        rows = figure["data"][0]["y"]
        assert sorted(rows[:-1]) == expected and rows[-1] == total.group(1)  # the total on top
    assert len(trend["data"][0]["x"]) == 6
    mix = _chart(html, "team-mix")
    assert mix is not None and sorted(mix["data"][0]["y"]) == expected
    assert [t["name"] for t in mix["data"]] == ["Calls", "Emails", "Meetings", "Tasks", "Other"]


def test_the_process_table_sorts_like_the_scorecards(web_org: WebOrg) -> None:
    html = page_client(web_org, "leader").get("/team", params={"sort": "slip_rate", "order": "desc"}).text
    assert 'aria-sort="descending"' in html
    assert _process_names(html) == _row_names(html)  # both tables follow the one order
    cards = api_client(web_org, "leader").get("/api/team").json()["reps"]
    rated = sorted((c for c in cards if c["slip_rate"] is not None), key=lambda c: (c["slip_rate"], c["name"]),
                   reverse=True)
    assert _process_names(html) == [c["name"] for c in rated] + [c["name"] for c in cards if c["slip_rate"] is None]
