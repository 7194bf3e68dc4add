"""The Pipeline page for every role: the role's pipeline by stage and by close month, coverage, and the
waterfall (the same numbers `GET /api/pipeline` gives them), with bad input said plainly."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from closewise.web.render import money
from tests.web.conftest import WebOrg, api_client, page_client
from tests.web.test_forecast_api import ROLES

QUARTER = "2026-Q4"


def charts(html: str) -> dict[str, dict[str, list[dict[str, object]]]]:
    return {m[1]: json.loads(m[2]) for m in re.finditer(
        r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', html, re.S)}


@pytest.mark.parametrize("role", ROLES)
def test_the_page_shows_the_roles_pipeline(web_org: WebOrg, role: str) -> None:
    response = page_client(web_org, role).get("/pipeline", params={"period": QUARTER})
    assert response.status_code == 200
    html = response.text
    document = api_client(web_org, role).get("/api/pipeline", params={"period": QUARTER}).json()
    assert money(document["total"], compact=True) in html
    assert money(document["closed_won"], compact=True) in html
    assert money(document["target"], compact=True) in html
    for group in document["by_stage"]:
        assert f"<th scope=\"row\">{group['label']}</th><td class=\"num\">{group['count']}</td>" in html
    figures = charts(html)
    if document["by_stage"]:
        assert figures["pl-stages"]["data"][0]["y"] == pytest.approx([g["total"] for g in document["by_stage"]])
    if document["by_close_month"]:
        assert sum(figures["pl-months"]["data"][0]["y"]) == pytest.approx(
            sum(g["total"] for g in document["by_close_month"]))
    if document["coverage"]:
        assert document["coverage"]["verdict"].split(";")[0] in html
    elif document["coverage_note"]:
        assert document["coverage_note"].split("'")[0] in html


@pytest.mark.parametrize("role", ["leader", "rep"])
def test_the_waterfall_for_chosen_dates(web_org: WebOrg, role: str) -> None:
    html = page_client(web_org, role).get(
        "/pipeline", params={"period": QUARTER, "from": "2026-10-15", "to": "2026-11-15"}).text
    document = api_client(web_org, role).get(
        "/api/pipeline/waterfall", params={"period": QUARTER, "from": "2026-10-15", "to": "2026-11-15"}).json()
    trace = charts(html)["pl-waterfall"]["data"][0]
    assert trace["type"] == "waterfall"
    assert trace["y"][0] == pytest.approx(document["start_value"])
    assert trace["y"][-1] == pytest.approx(document["end_value"])
    assert sum(trace["y"][:-1]) == pytest.approx(document["end_value"], abs=0.01)
    assert 'value="2026-10-15"' in html and 'value="2026-11-15"' in html


def test_waterfall_dates_in_either_order_and_a_bad_one_said_beside_the_rest(web_org: WebOrg) -> None:
    client = page_client(web_org, "manager")
    backward = client.get("/pipeline", params={"period": QUARTER, "from": "2026-11-15", "to": "2026-10-15"}).text
    assert 'name="from" type="date" value="2026-10-15"' in backward
    assert 'name="to" type="date" value="2026-11-15"' in backward
    response = client.get("/pipeline", params={"period": QUARTER, "from": "soon"})
    assert response.status_code == 200
    assert "from: &#39;soon&#39; is not a date like 2026-10-01" in response.text
    assert "pl-stages" in response.text


def test_a_bad_period_is_said_on_the_page(web_org: WebOrg) -> None:
    response = page_client(web_org, "rep").get("/pipeline", params={"period": "2026-00"})
    assert response.status_code == 422
    assert "period: month must be 1-12" in response.text


def test_the_pipeline_page_needs_a_session(web_org: WebOrg) -> None:
    response = TestClient(web_org.app).get("/pipeline", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
