"""`/api/settings`, `/api/currency-rates` and `/api/quotas`: everyone reads the calendar and the currency, quotas
follow the caller's scope, only an admin or a leader changes anything, and every change is audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from closewise.db.tables import audit_log, currency_rates, org_settings, quotas, users
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.domain.timeutil import utcnow
from tests.web.conftest import WebOrg, api_client
from tests.web.test_users_api import expected_visible

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
WRITERS = {"admin", "leader"}


def stored_quota_ids(org: WebOrg, owners: set[int] | None) -> set[int]:
    """Quotas of `owners` (None: every quota, teams' included)."""
    query = sa.select(quotas.c.id)
    if owners is not None:
        query = query.where(quotas.c.user_id.in_(sorted(owners)))
    with org.engine.connect() as connection:
        return set(connection.execute(query).scalars())


@pytest.mark.parametrize("role", ROLES)
def test_everyone_reads_the_calendar_currency_and_rates(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    body = client.get("/api/settings").json()
    with web_org.engine.connect() as connection:
        stored = dict(connection.execute(sa.select(org_settings.c.key, org_settings.c.value)).all())
        rate_count = connection.execute(sa.select(sa.func.count()).select_from(currency_rates)).scalar_one()
    assert body["corporate_currency"] == stored.get("corporate_currency", "USD")
    calendar = FiscalCalendar(body["fiscal_year_start_month"], body["fiscal_year_name_by_end"])
    assert body["current_quarter"] == calendar.period_containing(utcnow().date(), PeriodKind.QUARTER).label
    assert len(client.get("/api/currency-rates").json()) == rate_count


@pytest.mark.parametrize("role", ROLES)
def test_quotas_follow_the_callers_scope(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    listed = client.get("/api/quotas").json()
    owners = None if role in ("admin", "leader") else expected_visible(web_org, role)
    assert {q["id"] for q in listed} == stored_quota_ids(web_org, owners)
    outside = stored_quota_ids(web_org, None) - {q["id"] for q in listed}
    for quota_id in sorted(outside)[:3]:
        assert client.get(f"/api/quotas/{quota_id}").status_code == 404
        if role in WRITERS:
            continue
        assert client.patch(f"/api/quotas/{quota_id}", json={"amount": 1}).status_code == 403


@pytest.mark.parametrize("role", ["manager", "rep", "viewer"])
def test_roles_without_manage_settings_change_nothing(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    me = web_org.user_id(web_org.logins[role])
    own = client.get("/api/quotas").json()
    assert client.patch("/api/settings", json={"fiscal_year_start_month": 4}).status_code == 403
    assert client.post("/api/currency-rates", json={"currency": "CHF", "rate": 0.9}).status_code == 403
    assert client.post("/api/quotas", json={"user_id": me, "period": "2031-Q1", "amount": 5}).status_code == 403
    if own:
        assert client.patch(f"/api/quotas/{own[0]['id']}", json={"amount": 1}).status_code == 403
        assert client.delete(f"/api/quotas/{own[0]['id']}").status_code == 403


def test_without_a_token_every_settings_route_answers_401(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    for method, path in (("GET", "/api/settings"), ("PATCH", "/api/settings"), ("GET", "/api/currency-rates"),
                         ("POST", "/api/currency-rates"), ("GET", "/api/quotas"), ("POST", "/api/quotas"),
                         ("GET", "/api/quotas/1"), ("PATCH", "/api/quotas/1"), ("DELETE", "/api/quotas/1")):
        assert client.request(method, path, json={}).status_code == 401, (method, path)


@pytest.mark.parametrize("role", sorted(WRITERS))
def test_a_quota_added_changed_and_deleted_shows_in_the_list(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    rep = web_org.user_id(web_org.logins["rep"])
    period = "2031-Q2" if role == "admin" else "2031-Q3"
    created = client.post("/api/quotas", json={"user_id": rep, "period": period, "amount": 120000})
    assert created.status_code == 201, created.text
    quota = created.json()
    org = client.get("/api/settings").json()
    calendar = FiscalCalendar(org["fiscal_year_start_month"], org["fiscal_year_name_by_end"])
    assert quota["period_start"] == calendar.parse(period).start.isoformat()
    assert quota["period_end"] == calendar.parse(period).last_day.isoformat()
    assert quota["currency"] == org["corporate_currency"]
    listed = client.get("/api/quotas", params={"period": period}).json()
    assert [(q["id"], q["amount"]) for q in listed] == [(quota["id"], 120000)]
    # The rep sees their own new quota.
    assert quota["id"] in {q["id"] for q in api_client(web_org, "rep").get("/api/quotas").json()}
    again = client.post("/api/quotas", json={"user_id": rep, "period": period, "amount": 1})
    assert again.status_code == 409
    changed = client.patch(f"/api/quotas/{quota['id']}", json={"amount": 150000.5})
    assert changed.status_code == 200 and changed.json()["amount"] == 150000.5
    assert client.get(f"/api/quotas/{quota['id']}").json()["amount"] == 150000.5
    assert client.delete(f"/api/quotas/{quota['id']}").status_code == 204
    assert client.get("/api/quotas", params={"period": period}).json() == []
    assert client.get(f"/api/quotas/{quota['id']}").status_code == 404
    with web_org.engine.connect() as connection:
        trail = connection.execute(sa.select(audit_log.c.action, audit_log.c.actor_id).where(
            audit_log.c.entity == "quota", audit_log.c.entity_id == str(quota["id"])).order_by(audit_log.c.id)).all()
    actor = web_org.user_id(web_org.logins[role])  # (an id freed by a delete may be used again: the last three)
    assert [(t.action, t.actor_id) for t in trail[-3:]] == [("quota.add", actor), ("quota.change", actor),
                                                       ("quota.delete", actor)]


def test_quota_input_is_checked(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    rep = web_org.user_id(web_org.logins["rep"])
    with web_org.engine.connect() as connection:
        team = connection.execute(sa.select(users.c.team_id).where(users.c.id == rep)).scalar_one()
    assert client.post("/api/quotas", json={"user_id": rep, "period": "Q7", "amount": 1}).json()["where"] == "period"
    both = client.post("/api/quotas", json={"user_id": rep, "team_id": team, "period": "2031-Q1", "amount": 1})
    assert both.status_code == 422
    assert client.post("/api/quotas", json={"period": "2031-Q1", "amount": 1}).status_code == 422
    assert client.post("/api/quotas", json={"user_id": rep, "period": "2031-Q1", "amount": -1}).status_code == 422
    unknown = client.post("/api/quotas", json={"user_id": rep, "period": "2031-Q1", "amount": 1, "currency": "XYZ"})
    assert unknown.status_code == 422 and unknown.json()["where"] == "currency"
    team_quota = client.post("/api/quotas", json={"team_id": team, "period": "2031", "amount": 9e6})
    assert team_quota.status_code == 201 and team_quota.json()["team_name"]
    # A team's quota has no owner: only those who see everything see it.
    assert team_quota.json()["id"] not in {q["id"] for q in api_client(web_org, "manager").get("/api/quotas").json()}


def test_the_calendar_changes_and_is_audited(web_org: WebOrg) -> None:
    client = api_client(web_org, "leader")
    changed = client.patch("/api/settings", json={"fiscal_year_start_month": 2, "fiscal_year_name_by_end": True})
    assert changed.status_code == 200
    body = changed.json()
    calendar = FiscalCalendar(2, True)
    quarter = calendar.period_containing(utcnow().date(), PeriodKind.QUARTER)
    assert body["current_quarter"] == quarter.label and body["current_quarter_start"] == quarter.start.isoformat()
    assert client.patch("/api/settings", json={"fiscal_year_start_month": 13}).status_code == 422
    with web_org.engine.connect() as connection:
        detail = connection.execute(sa.select(audit_log.c.detail).where(
            audit_log.c.action == "settings.change").order_by(audit_log.c.id.desc())).scalars().first()
    assert detail == {"fiscal_year_start_month": {"from": 1, "to": 2},
                      "fiscal_year_name_by_end": {"from": False, "to": True}}
    restored = client.patch("/api/settings", json={"fiscal_year_start_month": 1, "fiscal_year_name_by_end": False})
    assert restored.json()["fiscal_year_start_month"] == 1


def test_rates_are_added_and_a_new_corporate_currency_rebases_them(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    old = client.get("/api/settings").json()["corporate_currency"]
    added = client.post("/api/currency-rates", json={"currency": "chf", "rate": 0.9, "start_date": "2026-01-01"})
    assert added.status_code == 201 and added.json()["currency"] == "CHF"
    replaced = client.post("/api/currency-rates", json={"currency": "CHF", "rate": 0.88, "start_date": "2026-01-01"})
    assert replaced.status_code == 200 and replaced.json()["id"] == added.json()["id"]
    static = client.post("/api/currency-rates", json={"currency": "CHF", "rate": 0.95})
    assert static.status_code == 201 and static.json()["start_date"] is None
    assert client.post("/api/currency-rates", json={"currency": old, "rate": 2}).status_code == 422
    assert client.post("/api/currency-rates", json={"currency": "CHF", "rate": 0}).status_code == 422
    assert client.patch("/api/settings", json={"corporate_currency": "JPY"}).status_code == 409
    before = {(r["currency"], r["start_date"]): r["rate"] for r in client.get("/api/currency-rates").json()}
    switched = client.patch("/api/settings", json={"corporate_currency": "CHF"})
    assert switched.status_code == 200 and switched.json()["corporate_currency"] == "CHF"
    after = {(r["currency"], r["start_date"]): r["rate"] for r in client.get("/api/currency-rates").json()}
    # One old-currency unit was worth 1/0.88 CHF from 2026-01-01 (and 1/0.95 by the static rate).
    assert after[(old, "2026-01-01")] == pytest.approx(1 / 0.88)
    assert after[(old, None)] == pytest.approx(1 / 0.95)
    assert not any(code == "CHF" for code, _ in after)
    for (code, day), rate in before.items():
        if code != "CHF" and day == "2026-01-01":
            assert after[(code, day)] == pytest.approx(rate / 0.88)
    back = client.patch("/api/settings", json={"corporate_currency": old})
    assert back.status_code == 200
    restored = {(r["currency"], r["start_date"]): r["rate"] for r in client.get("/api/currency-rates").json()}
    assert set(restored) >= {key for key in before if key[1] in (None, "2026-01-01")}
    for key in before:
        if key in restored and key[1] in (None, "2026-01-01"):
            assert restored[key] == pytest.approx(before[key])
