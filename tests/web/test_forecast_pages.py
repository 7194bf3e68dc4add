"""The Forecast page for every role: a progress bar polled with htmx while the forecast is computed, then the
key figures of the role's own forecast (the same as `GET /api/forecast` gives them), the deals driving it, the
baselines and the track record; bad periods said plainly."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from closewise.services.forecast_view import ForecastViews
from closewise.web.render import money, percent
from tests.web.conftest import WebOrg, api_client, page_client
from tests.web.test_forecast_api import ROLES, TRACK_MONTHS, quick_forecaster, ready

QUARTER = "2026-Q4"


@pytest.fixture(scope="module")
def views(web_org: WebOrg) -> Iterator[ForecastViews]:
    installed = ForecastViews(web_org.app.state.jobs, forecaster_factory=quick_forecaster, track_months=TRACK_MONTHS)
    web_org.app.state.forecast_views = installed
    yield installed


def settled(client: TestClient, path: str, *, timeout: float = 600) -> str:
    """The section at `path` once it no longer shows the progress bar (as htmx polls it)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path, headers={"HX-Request": "true"})
        assert response.status_code == 200, response.text
        if "fc-computing" not in response.text:
            return response.text
        assert 'aria-busy="true"' in response.text and "<progress" in response.text
        assert time.monotonic() < deadline
        time.sleep(0.5)


def charts(html: str) -> dict[str, object]:
    return {m[1]: json.loads(m[2]) for m in re.finditer(
        r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', html, re.S)}


def test_the_first_visit_shows_progress_polled_with_htmx(web_org: WebOrg, views: ForecastViews) -> None:
    client = page_client(web_org, "leader")
    page = client.get("/forecast", params={"period": "2026-12"})
    assert page.status_code == 200
    assert 'hx-get="/forecast/body?period=2026-12"' in page.text and 'hx-trigger="every 1s"' in page.text
    assert "<progress" in page.text
    body = settled(client, "/forecast/body?period=2026-12")
    assert 'id="forecast-body"' in body and "hx-trigger" not in body


@pytest.mark.parametrize("role", ROLES)
def test_the_page_shows_the_roles_forecast(web_org: WebOrg, views: ForecastViews, role: str) -> None:
    client = page_client(web_org, role)
    settled(client, f"/forecast/body?period={QUARTER}")
    html = client.get("/forecast", params={"period": QUARTER}).text
    document = ready(api_client(web_org, role), "/api/forecast", period=QUARTER)
    for key in ("closed_won", "p50", "p10", "p90", "expected"):
        assert money(document[key], compact=True) in html, key
    if document["probability_of_target"] is not None:
        assert f'<div class="fc-big">{percent(document["probability_of_target"])}</div>' in html
        assert money(document["target"], compact=True) in html
    else:
        assert "no quota is stored" in html
    for deal in document["deals"]:
        assert f'href="/deals/{deal["id"]}"' in html
    links = {int(i) for i in re.findall(r'href="/deals/(\d+)"', html)}
    assert links == {deal["id"] for deal in document["deals"]}  # no deal the role may not see
    for row in document["by_owner"]:
        assert money(row["p50"]) in html
    for baseline in document["baselines"].values():
        assert money(baseline, document["currency"]) in html
    if not document["ended"] and document["p90"] > document["p10"]:
        assert "fc-outcome" in charts(html)


def test_the_leader_sees_every_owner_and_a_rep_only_themselves(web_org: WebOrg, views: ForecastViews) -> None:
    leader = ready(api_client(web_org, "leader"), "/api/forecast", period=QUARTER)
    rep = page_client(web_org, "rep")
    settled(rep, f"/forecast/body?period={QUARTER}")
    html = rep.get("/forecast", params={"period": QUARTER}).text
    mine = web_org.user_id(web_org.logins["rep"])
    others = [row["name"] for row in leader["by_owner"] if row["owner_id"] != mine and row["name"]]
    assert others and not any(f"<th scope=\"row\">{name}</th>" in html for name in others)
    assert "your deals" in html


@pytest.mark.parametrize("role", ROLES)
def test_the_track_record_section(web_org: WebOrg, views: ForecastViews, role: str) -> None:
    client = page_client(web_org, role)
    section = settled(client, "/forecast/track")
    document = ready(api_client(web_org, role), "/api/forecast/track-record")
    assert f"the last {TRACK_MONTHS} months" in section
    assert percent(document["summary"]["coverage_p10_p90"]) in section
    assert percent(document["summary"]["p50_mape"]) in section
    figure = charts(section)["fc-track"]
    assert isinstance(figure, dict)
    actual = next(trace for trace in figure["data"] if trace["name"] == "Actual")
    assert actual["y"] == pytest.approx([row["actual"] for row in document["rows"]])


def test_a_bad_period_is_said_on_the_page(web_org: WebOrg) -> None:
    response = page_client(web_org, "manager").get("/forecast", params={"period": "2026-Q7"})
    assert response.status_code == 422
    assert re.search(r"period: period \S*2026-Q7\S* is not a month \(2023-05\), a quarter", response.text)


def test_the_forecast_page_needs_a_session(web_org: WebOrg) -> None:
    client = TestClient(web_org.app)
    for path in ("/forecast", "/forecast/body?period=2026-Q4", "/forecast/track"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_the_page_runs_no_inline_script(web_org: WebOrg, views: ForecastViews) -> None:
    client = page_client(web_org, "leader")
    settled(client, f"/forecast/body?period={QUARTER}")
    html = client.get("/forecast", params={"period": QUARTER}).text
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", html)
