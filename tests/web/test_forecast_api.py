"""`GET /api/forecast` and `GET /api/forecast/track-record` for every role: 202 while computing then 200, each
role's numbers equal to what their own deals say (read here with SQL), the leader's equal to the org forecast
computed independently, ended periods known exactly, and bad input named.

The forecaster calibrates on 4 past periods and the track record covers 3 months (the app's defaults are 12
and 12) so the module runs in seconds; what is checked does not depend on those numbers."""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import currency_rates, opportunities, org_settings, quotas
from closewise.domain.timeutil import naive_utc
from closewise.ml.forecaster import PeriodForecaster
from closewise.services.forecast_view import ForecastViews
from closewise.services.org_data import load_org
from tests.web.conftest import WebOrg, api_client, visible_owners

ROLES = ("admin", "leader", "manager", "rep", "viewer")
QUARTER = "2026-Q4"  # the demo's current quarter (DEMO_TODAY is 2026-11-22)
ENDED = "2026-Q2"
CALIBRATION_PERIODS = 4
TRACK_MONTHS = 3


def quick_forecaster() -> PeriodForecaster:
    return PeriodForecaster(calibration_periods=CALIBRATION_PERIODS)


@pytest.fixture(scope="module")
def views(web_org: WebOrg) -> Iterator[ForecastViews]:
    """The app's forecasts, made before the first request with the quicker forecaster."""
    installed = ForecastViews(web_org.app.state.jobs, forecaster_factory=quick_forecaster, track_months=TRACK_MONTHS)
    web_org.app.state.forecast_views = installed
    yield installed


def ready(client: TestClient, path: str, *, timeout: float = 600, **params: Any) -> dict[str, Any]:
    """The 200 answer of `path`, asking again while it answers 202 (as the Retry-After header says)."""
    deadline = clock.monotonic() + timeout
    while True:
        response = client.get(path, params=params)
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "computing"
        assert int(response.headers["Retry-After"]) > 0
        assert clock.monotonic() < deadline, "the forecast took too long"
        clock.sleep(0.5)


# --- independent readings of the demo org ----------------------------------------------------------------------



def corporate_converter(org: WebOrg) -> Any:
    """`convert(amount, currency, day)` in the corporate currency: the dated rate in force that day, else the
    static one, else the currency's first dated rate (the Salesforce convention DESIGN.md describes)."""
    with org.engine.connect() as connection:
        corporate = connection.execute(
            sa.select(org_settings.c.value).where(org_settings.c.key == "corporate_currency")).scalar_one()
        rows = connection.execute(
            sa.select(currency_rates.c.currency, currency_rates.c.rate, currency_rates.c.start_date)).all()

    def convert(amount: float | None, currency: str, day: date | None) -> float:
        if currency == corporate:
            return float(amount or 0)
        dated = sorted((r.start_date, r.rate) for r in rows if r.currency == currency and r.start_date is not None)
        static = [r.rate for r in rows if r.currency == currency and r.start_date is None]
        applying = [rate for start, rate in dated if day is not None and start <= day]
        rate = applying[-1] if applying else static[-1] if static else dated[0][1]
        return float(amount or 0) / float(rate)

    return convert


def deal_rows(org: WebOrg, owners: set[int] | None, *status: str) -> list[Any]:
    o = opportunities
    query = sa.select(o.c.id, o.c.owner_id, o.c.status, o.c.amount, o.c.currency, o.c.close_date, o.c.closed_at,
                      o.c.stage).where(o.c.status.in_(status))
    if owners is not None:
        query = query.where(o.c.owner_id.in_(sorted(owners)))
    with org.engine.connect() as connection:
        return list(connection.execute(query).all())


def won_between(org: WebOrg, owners: set[int] | None, start: date, end: date, *, by: datetime | None = None) -> float:
    """Won deals of `owners` closed in [start, end] (by `by`), in the corporate currency at their close date."""
    convert = corporate_converter(org)
    total = 0.0
    for row in deal_rows(org, owners, "won"):
        closed = naive_utc(row.closed_at) if isinstance(row.closed_at, datetime) else row.closed_at
        if start <= closed.date() <= end and (by is None or closed <= by):
            total += convert(row.amount, row.currency, row.close_date)
    return total


def own_quota(org: WebOrg, user_id: int, period: str) -> float | None:
    with org.engine.connect() as connection:
        row = connection.execute(sa.select(quotas.c.amount, quotas.c.currency).where(
            quotas.c.user_id == user_id, quotas.c.period == period)).first()
    return None if row is None else corporate_converter(org)(float(row.amount), row.currency, None)


# --- the contract --------------------------------------------------------------------------------------------


def test_the_forecast_answers_202_with_progress_until_it_is_ready(web_org: WebOrg, views: ForecastViews) -> None:
    client = api_client(web_org, "leader")
    first = client.get("/api/forecast", params={"period": QUARTER})
    assert first.status_code == 202
    body = first.json()
    assert body["status"] == "computing" and body["kind"] == "forecast"
    assert body["progress"] is None or 0 <= body["progress"] <= 1
    assert first.headers["Retry-After"] == "2"
    document = ready(client, "/api/forecast", period=QUARTER)
    for key in ("period_start", "period_end", "as_of", "currency", "closed_won", "p10", "p50", "p90", "expected",
                "target", "probability_of_target", "by_owner", "deals"):
        assert key in document
    assert (document["period_start"], document["period_end"]) == ("2026-10-01", "2026-12-31")
    # Anyone asking for the same forecast afterwards shares the computation: no second wait.
    assert api_client(web_org, "rep").get("/api/forecast", params={"period": QUARTER}).status_code == 200


def test_the_openapi_documents_the_202_and_its_retry_after(web_org: WebOrg) -> None:
    schema = TestClient(web_org.app).get("/api/openapi.json").json()
    for path in ("/api/forecast", "/api/forecast/track-record"):
        computing = schema["paths"][path]["get"]["responses"]["202"]
        assert "Retry-After" in computing["headers"]
        assert computing["content"]["application/json"]["schema"]["$ref"].endswith("/Computing")
    assert "200" in schema["paths"]["/api/forecast"]["get"]["responses"]


def test_the_leaders_forecast_is_the_org_forecast(web_org: WebOrg, views: ForecastViews) -> None:
    document = ready(api_client(web_org, "leader"), "/api/forecast", period=QUARTER)
    org = load_org(web_org.engine)
    at = datetime.fromisoformat(document["as_of"])
    target = own_quota(web_org, web_org.user_id(web_org.logins["leader"]), QUARTER)  # the top of the hierarchy
    expected = quick_forecaster().forecast(org, org.calendar.parse(QUARTER), at, target=target)
    assert document["target"] == pytest.approx(target)
    assert document["target_source"] == "quota"
    for q, key in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
        assert document[key] == pytest.approx(expected.quantile(q))
    assert document["expected"] == pytest.approx(expected.expected)
    assert document["probability_of_target"] == pytest.approx(expected.probability_of_target)
    assert document["closed_won"] == pytest.approx(won_between(web_org, None, date(2026, 10, 1), date(2026, 12, 31),
                                                               by=naive_utc(at)))
    assert document["open_deals"] == expected.inputs.deals.height
    assert document["new_business"] is not None


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_forecast_of_their_own_deals(web_org: WebOrg, views: ForecastViews, role: str) -> None:
    document = ready(api_client(web_org, role), "/api/forecast", period=QUARTER)
    owners = visible_owners(web_org, role)
    at = naive_utc(datetime.fromisoformat(document["as_of"]))
    assert document["closed_won"] == pytest.approx(
        won_between(web_org, owners, date(2026, 10, 1), date(2026, 12, 31), by=at))
    open_ids = {row.id for row in deal_rows(web_org, owners, "open")}
    assert {deal["id"] for deal in document["deals"]} <= open_ids
    if owners is not None:
        assert {row["owner_id"] for row in document["by_owner"]} <= owners
        assert document["new_business"] is None  # deals not created yet belong to no one they see
        # Nothing but their deals: the expected total is closed won plus their deals' expectations.
        assert document["expected"] == pytest.approx(document["closed_won"] + sum(
            row["expected"] - row["closed_won"] for row in document["by_owner"]))
    assert document["closed_won"] <= document["p10"] + 1e-6
    assert document["p10"] <= document["p50"] <= document["p90"]
    assert document["by_owner"] == sorted(document["by_owner"], key=lambda r: (-r["expected"], r["owner_id"]))
    for row in document["by_owner"]:
        assert row["target"] == pytest.approx(own_quota(web_org, row["owner_id"], QUARTER))


@pytest.mark.parametrize("role", ["manager", "rep"])
def test_a_manager_and_a_rep_are_measured_against_their_own_quota(web_org: WebOrg, views: ForecastViews,
                                                                  role: str) -> None:
    document = ready(api_client(web_org, role), "/api/forecast", period=QUARTER)
    # The manager's own quota row carries their reports'; the rep's is theirs.
    assert document["target"] == pytest.approx(own_quota(web_org, web_org.user_id(web_org.logins[role]), QUARTER))
    assert document["gap_to_target"] == pytest.approx(max(document["target"] - document["closed_won"], 0.0))


def test_a_given_target_replaces_the_quota(web_org: WebOrg, views: ForecastViews) -> None:
    client = api_client(web_org, "manager")
    document = ready(client, "/api/forecast", period=QUARTER, target=1)
    assert document["target"] == 1 and document["target_source"] == "given"
    assert document["probability_of_target"] == 1.0


@pytest.mark.parametrize("role", ROLES)
def test_an_ended_period_is_its_closed_won(web_org: WebOrg, views: ForecastViews, role: str) -> None:
    document = ready(api_client(web_org, role), "/api/forecast", period=ENDED)
    booked = won_between(web_org, visible_owners(web_org, role), date(2026, 4, 1), date(2026, 6, 30))
    assert document["ended"]
    assert document["p10"] == document["p50"] == document["p90"] == document["expected"] == pytest.approx(booked)
    assert document["closed_won"] == pytest.approx(booked)
    assert document["deals"] == []


def test_as_of_a_past_day_forecasts_with_what_was_known_then(web_org: WebOrg, views: ForecastViews) -> None:
    document = ready(api_client(web_org, "rep"), "/api/forecast", period=QUARTER, as_of="2026-11-01")
    at = datetime(2026, 11, 1, 23, 59, 59, 999999)
    assert document["as_of"].startswith("2026-11-01T23:59:59")
    assert document["closed_won"] == pytest.approx(
        won_between(web_org, visible_owners(web_org, "rep"), date(2026, 10, 1), date(2026, 12, 31), by=at))


@pytest.mark.parametrize("params", [{"period": "2026-13"}, {"period": "Q5"}, {"period": "soon"}, {},
                                    {"period": "0000-Q1"}, {"period": "2999"}])
def test_a_bad_period_is_a_422_naming_period(web_org: WebOrg, params: dict[str, str]) -> None:
    response = api_client(web_org, "leader").get("/api/forecast", params=params)
    assert response.status_code == 422
    assert response.json()["where"] == "period"


@pytest.mark.parametrize("params", [{"as_of": "yesterday"}, {"as_of": "2026-02-30"}, {"target": "-5"},
                                    {"target": "nan"}])
def test_a_bad_as_of_or_target_is_a_422_naming_it(web_org: WebOrg, views: ForecastViews,
                                                  params: dict[str, str]) -> None:
    response = api_client(web_org, "leader").get("/api/forecast", params={"period": QUARTER, **params})
    assert response.status_code == 422
    assert response.json()["where"] == next(iter(params))


def test_the_forecast_needs_a_token(web_org: WebOrg) -> None:
    for path in ("/api/forecast?period=2026-Q4", "/api/forecast/track-record"):
        assert api_client(web_org, None).get(path).status_code == 401


# --- the track record ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_track_record_is_of_the_roles_own_deals(web_org: WebOrg, views: ForecastViews, role: str) -> None:
    document = ready(api_client(web_org, role), "/api/forecast/track-record")
    owners = visible_owners(web_org, role)
    rows = document["rows"]
    assert len(rows) == TRACK_MONTHS == document["summary"]["periods"]
    assert [row["period_end"] for row in rows] == sorted(row["period_end"] for row in rows)
    assert rows[-1]["period_end"] < date.today().isoformat()  # only months that have ended
    for row in rows:
        start, end = date.fromisoformat(row["period_start"]), date.fromisoformat(row["period_end"])
        assert row["actual"] == pytest.approx(won_between(web_org, owners, start, end))
        assert row["as_of"].startswith(row["period_start"])  # made on the month's first day
        assert row["p10"] <= row["p50"] <= row["p90"]
    inside = [row["p10"] <= row["actual"] <= row["p90"] for row in rows]
    assert document["summary"]["coverage_p10_p90"] == pytest.approx(sum(inside) / len(inside))
    assert set(document["summary"]["baselines"]) == {"run_rate_3", "crm_weighted", "commit"}


def test_the_leaders_track_record_matches_the_backtest(web_org: WebOrg, views: ForecastViews) -> None:
    from closewise.ml.backtest import run_backtest

    document = ready(api_client(web_org, "leader"), "/api/forecast/track-record")
    org = load_org(web_org.engine)
    first, last = document["rows"][0], document["rows"][-1]
    ended = datetime.combine(date.fromisoformat(last["period_end"]) + timedelta(days=1), time.min)
    result = run_backtest(org, kind=org.calendar.parse(first["period"]).kind,
                          start=date.fromisoformat(first["period_start"]), end=date.fromisoformat(last["period_start"]),
                          known_at=ended, forecaster=quick_forecaster())
    summary = result.summary()
    for mine, theirs in zip(document["rows"], result.rows, strict=True):
        assert mine["period"] == theirs.period.label
        assert (mine["p10"], mine["p50"], mine["p90"], mine["actual"]) == pytest.approx(
            (theirs.p10, theirs.p50, theirs.p90, theirs.actual))
        assert mine["baselines"] == pytest.approx(theirs.baselines)
    assert document["summary"]["p50_mape"] == pytest.approx(summary["p50_mape"])
