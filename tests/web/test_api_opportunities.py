"""`/api/opportunities` and `/api/playbook/stages` for every role: only in-scope deals (totals checked against an
independent SQL count of the visible owners' deals), 404 for out-of-scope and missing ids alike, filters and
paging, and edits (one change row per changed field, 403 for a viewer, 409 for a closed deal, 422 naming the
field)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import (
    accounts,
    activities,
    deal_scores,
    exit_criteria,
    opportunities,
    opportunity_changes,
    stages,
    users,
)
from tests.web.conftest import WebOrg, api_client, visible_owners

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
o = opportunities


@pytest.fixture(scope="module", autouse=True)
def viewer_with_a_team(web_org: WebOrg) -> None:
    """The fixture's viewer has nobody below them, so sees no deal; here a rep of the manager's team (not the rep
    login) reports to the viewer instead (the manager still sees them, one level further down), so a viewer's
    reads and refused writes have deals to work on."""
    give_viewer_a_team(web_org)


def give_viewer_a_team(org: WebOrg) -> None:
    manager, rep, viewer = (org.user_id(org.logins[role]) for role in ("manager", "rep", "viewer"))
    with org.engine.begin() as connection:
        reports = sa.select(sa.func.count()).select_from(users).where(users.c.manager_id == viewer)
        if connection.execute(reports).scalar():
            return
        member = connection.execute(
            sa.select(users.c.id).where(users.c.manager_id == manager, users.c.id != rep, users.c.id != viewer,
                                        users.c.role == "rep",
                                        sa.exists().where(o.c.owner_id == users.c.id, o.c.status == "open"))
            .order_by(users.c.id)).scalars().first()
        assert member is not None
        connection.execute(users.update().where(users.c.id == member).values(manager_id=viewer))


_CLIENTS: dict[tuple[str, str | None], TestClient] = {}


def client_of(org: WebOrg, role: str | None) -> TestClient:
    """One signed-in API client per role and org (a token costs an argon2 check; the tests only read it)."""
    key = (org.url, role)
    if key not in _CLIENTS:
        _CLIENTS[key] = api_client(org, role)
    return _CLIENTS[key]



def scoped(org: WebOrg, role: str, statement: sa.Select[Any]) -> sa.Select[Any]:
    owners = visible_owners(org, role)
    return statement if owners is None else statement.where(o.c.owner_id.in_(sorted(owners)))


def sql_ids(org: WebOrg, role: str, *conditions: sa.ColumnElement[bool]) -> set[int]:
    with org.engine.connect() as connection:
        return set(connection.execute(scoped(org, role, sa.select(o.c.id).where(*conditions))).scalars())


def sql_count(org: WebOrg, role: str, *conditions: sa.ColumnElement[bool]) -> int:
    with org.engine.connect() as connection:
        statement = scoped(org, role, sa.select(sa.func.count()).select_from(o).where(*conditions))
        return int(connection.execute(statement).scalar_one())


def every_item(client: TestClient, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get(f"/api/opportunities?limit=500&offset={len(items)}{query}")
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if len(items) >= body["total"] or not body["items"]:
            assert len(items) == body["total"]
            return items


def outside_deal(org: WebOrg, role: str) -> int:
    """A deal `role` may not see (for a role that sees everything: none exists, so a missing id)."""
    owners = visible_owners(org, role)
    with org.engine.connect() as connection:
        if owners is None:
            return int(connection.execute(sa.select(sa.func.max(o.c.id))).scalar_one()) + 1000
        return int(connection.execute(sa.select(o.c.id).where(o.c.owner_id.not_in(sorted(owners)))
                                      .order_by(o.c.id).limit(1)).scalar_one())


def inside_deal(org: WebOrg, role: str, *, status: str = "open") -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(scoped(org, role, sa.select(o.c.id).where(o.c.status == status))
                                      .order_by(o.c.id).limit(1)).scalar_one())


def missing_id(org: WebOrg) -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.max(o.c.id))).scalar_one()) + 1


@pytest.mark.parametrize("role", ROLES)
def test_the_list_holds_exactly_the_deals_the_role_sees(web_org: WebOrg, role: str) -> None:
    items = every_item(client_of(web_org, role))
    assert {item["id"] for item in items} == sql_ids(web_org, role)
    assert len(items) == sql_count(web_org, role)
    owners = visible_owners(web_org, role)
    if owners is not None:
        assert {item["owner_id"] for item in items} <= owners
    with web_org.engine.connect() as connection:
        scores = dict(connection.execute(sa.select(deal_scores.c.opportunity_id, deal_scores.c.p_win)).all())
    for item in items:
        assert item["win_probability"] == (pytest.approx(scores[item["id"]]) if item["id"] in scores else None)
        assert set(item) >= {"id", "external_id", "name", "owner_id", "stage", "status", "amount", "currency",
                             "close_date", "win_probability", "owner_name", "account_name", "forecast_category",
                             "probability", "p_close_in_period", "reasons"}


@pytest.mark.parametrize("role", ROLES)
def test_status_owner_and_stage_filters_count_like_sql(web_org: WebOrg, role: str) -> None:
    client = client_of(web_org, role)
    for status in ("open", "won", "lost", "no_decision"):
        body = client.get(f"/api/opportunities?status={status}&limit=1").json()
        assert body["total"] == sql_count(web_org, role, o.c.status == status), status
    me = web_org.user_id(web_org.logins[role])
    body = client.get(f"/api/opportunities?owner_id={me}&limit=500").json()
    assert body["total"] == sql_count(web_org, role, o.c.owner_id == me)
    assert all(item["owner_id"] == me for item in body["items"])
    body = client.get("/api/opportunities?stage=proposal&status=open&limit=500").json()
    assert body["total"] == sql_count(web_org, role, o.c.stage == "proposal", o.c.status == "open")
    assert all(item["stage"] == "proposal" for item in body["items"])


def test_an_owner_outside_the_scope_filters_to_nothing(web_org: WebOrg) -> None:
    other = web_org.user_id(web_org.logins["other_rep"])
    with web_org.engine.begin() as connection:
        if not connection.execute(sa.select(sa.func.count()).select_from(o).where(o.c.owner_id == other)).scalar():
            connection.execute(o.update().where(o.c.id == outside_deal(web_org, "rep")).values(owner_id=other))
    assert client_of(web_org, "rep").get(f"/api/opportunities?owner_id={other}").json() == {"items": [], "total": 0}
    assert client_of(web_org, "leader").get(f"/api/opportunities?owner_id={other}").json()["total"] >= 1


def test_search_dates_and_amounts_filter_like_sql(web_org: WebOrg) -> None:
    client = client_of(web_org, "manager")
    with web_org.engine.connect() as connection:
        rows = connection.execute(scoped(web_org, "manager", sa.select(o.c.id, o.c.name, accounts.c.name.label(
            "account"), o.c.close_date, o.c.amount).select_from(o.outerjoin(accounts, accounts.c.id == o.c.account_id))
        )).all()
    word = rows[0].name.split()[0]
    expected = {r.id for r in rows if word.lower() in r.name.lower() or word.lower() in (r.account or "").lower()}
    found = every_item(client, f"&q={word.lower()}")
    assert {item["id"] for item in found} == expected and expected
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    found = every_item(client, f"&close_from={start}&close_to={end}")
    assert {item["id"] for item in found} == {r.id for r in rows if r.close_date and start <= r.close_date <= end}
    found = every_item(client, "&min_amount=50000")
    assert {item["id"] for item in found} == {r.id for r in rows if r.amount is not None and r.amount >= 50000}


def test_pages_are_disjoint_sorted_and_cover_the_set(web_org: WebOrg) -> None:
    client = client_of(web_org, "leader")
    total = sql_count(web_org, "leader", o.c.status == "open")
    seen: list[dict[str, Any]] = []
    for offset in range(0, total, 40):
        body = client.get(f"/api/opportunities?status=open&sort=-amount&limit=40&offset={offset}").json()
        assert body["total"] == total
        seen += body["items"]
    assert len({item["id"] for item in seen}) == len(seen) == total
    amounts = [item["amount"] for item in seen if item["amount"] is not None]
    assert amounts == sorted(amounts, reverse=True)
    by_win = client.get("/api/opportunities?status=open&sort=-win_probability&limit=100").json()["items"]
    probabilities = [item["win_probability"] for item in by_win if item["win_probability"] is not None]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("query, where", [("sort=nope", "sort"), ("status=maybe", "status"), ("limit=0", "limit"),
                                          ("limit=501", "limit"), ("offset=-1", "offset"), ("stage=zzz", "stage"),
                                          ("close_from=2026-05-01&close_to=2026-01-01", "close_to"),
                                          ("min_amount=-5", "min_amount")])
def test_a_bad_filter_is_a_422_naming_it(web_org: WebOrg, query: str, where: str) -> None:
    response = client_of(web_org, "rep").get(f"/api/opportunities?{query}")
    assert response.status_code == 422
    assert response.json()["where"] == where


@pytest.mark.parametrize("role", ROLES)
def test_one_deal_its_changes_and_activities_in_scope(web_org: WebOrg, role: str) -> None:
    client = client_of(web_org, role)
    deal = inside_deal(web_org, role)
    body = client.get(f"/api/opportunities/{deal}").json()
    assert body["id"] == deal
    with web_org.engine.connect() as connection:
        stage, pipeline = connection.execute(sa.select(o.c.stage, o.c.pipeline).where(o.c.id == deal)).one()
        labels = list(connection.execute(
            sa.select(exit_criteria.c.label).join(stages, stages.c.id == exit_criteria.c.stage_id)
            .where(stages.c.key == stage, stages.c.pipeline == pipeline).order_by(exit_criteria.c.order)).scalars())
        change_ids = list(connection.execute(sa.select(opportunity_changes.c.id)
                                             .where(opportunity_changes.c.opportunity_id == deal)).scalars())
        activity_ids = set(connection.execute(sa.select(activities.c.id)
                                              .where(activities.c.opportunity_id == deal)).scalars())
    assert [c["label"] for c in body["exit_criteria"]] == labels
    assert all(set(c) >= {"key", "label", "done"} for c in body["exit_criteria"])
    changes = client.get(f"/api/opportunities/{deal}/changes").json()
    assert sorted(c["id"] for c in changes) == sorted(change_ids)
    assert [c["changed_at"] for c in changes] == sorted(c["changed_at"] for c in changes)
    assert {a["id"] for a in client.get(f"/api/opportunities/{deal}/activities").json()} == activity_ids


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("suffix", ["", "/changes", "/activities"])
def test_out_of_scope_and_missing_deals_answer_the_same_404(web_org: WebOrg, role: str, suffix: str) -> None:
    client = client_of(web_org, role)
    hidden, missing = outside_deal(web_org, role), missing_id(web_org)
    out = client.get(f"/api/opportunities/{hidden}{suffix}")
    gone = client.get(f"/api/opportunities/{missing}{suffix}")
    assert out.status_code == gone.status_code == 404
    assert out.json()["detail"].replace(str(hidden), "N") == gone.json()["detail"].replace(str(missing), "N")
    assert out.json()["where"] == gone.json()["where"]
    patched = client.patch(f"/api/opportunities/{hidden}", json={"next_step": "peek"})
    assert patched.status_code == 404
    assert patched.json()["detail"].replace(str(hidden), "N") == gone.json()["detail"].replace(str(missing), "N")


def test_without_a_token_every_route_is_401(web_org: WebOrg) -> None:
    client = client_of(web_org, None)
    deal = inside_deal(web_org, "leader")
    for method, path in [("GET", "/api/opportunities"), ("GET", f"/api/opportunities/{deal}"),
                         ("PATCH", f"/api/opportunities/{deal}"), ("GET", f"/api/opportunities/{deal}/changes"),
                         ("GET", f"/api/opportunities/{deal}/activities"), ("GET", "/api/playbook/stages")]:
        assert client.request(method, path, json={"next_step": "x"}).status_code == 401, path


def change_rows(org: WebOrg, deal: int, after_id: int) -> list[Any]:
    with org.engine.connect() as connection:
        return list(connection.execute(sa.select(opportunity_changes).where(
            opportunity_changes.c.opportunity_id == deal, opportunity_changes.c.id > after_id)
            .order_by(opportunity_changes.c.id)).all())


def last_change_id(org: WebOrg) -> int:
    with org.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(opportunity_changes.c.id), 0)))
                   .scalar_one())


@pytest.mark.parametrize("role", ["admin", "leader", "manager", "rep"])
def test_an_edit_writes_one_change_row_per_changed_field(web_org: WebOrg, role: str) -> None:
    client = client_of(web_org, role)
    deal = inside_deal(web_org, role)
    before = client.get(f"/api/opportunities/{deal}").json()
    stage = "negotiation" if before["stage"] != "negotiation" else "proposal"
    close = (date.fromisoformat(before["close_date"]) + timedelta(days=14)).isoformat()
    mark = last_change_id(web_org)
    edit = {"stage": stage, "amount": (before["amount"] or 0) + 1000, "close_date": close,
            "next_step": f"Call the CFO ({role})", "forecast_category": before["forecast_category"],
            "override_reason": "the buyer confirmed on the call"}
    response = client.patch(f"/api/opportunities/{deal}", json=edit)
    assert response.status_code == 200, response.text
    after = response.json()
    assert (after["stage"], after["amount"], after["close_date"], after["next_step"]) == (
        stage, edit["amount"], close, edit["next_step"])
    rows = change_rows(web_org, deal, mark)
    # forecast_category was given unchanged: no row for it. Entering the stage sets its default probability.
    stages = {s["key"]: s for s in client.get("/api/playbook/stages").json()}
    moved_probability = stages[stage]["default_probability"] != before["probability"]
    assert sorted(row.field for row in rows) == sorted(
        ["amount", "close_date", "next_step", "stage"] + (["probability"] if moved_probability else []))
    editor = web_org.user_id(web_org.logins[role])
    by_field = {row.field: row for row in rows}
    assert {(row.changed_by, row.source) for row in rows} == {(editor, "app")}
    assert {row.reason for f, row in by_field.items() if f != "stage"} == {"the buyer confirmed on the call"}
    # A forward move the playbook's gate would refuse goes through with the reason logged as an override.
    assert by_field["stage"].reason in ("the buyer confirmed on the call", None) or by_field["stage"].reason.startswith(
        "gate override: the buyer confirmed on the call")
    assert (by_field["stage"].old_value, by_field["stage"].new_value) == (before["stage"], stage)
    assert by_field["close_date"].new_value == close
    logged = client.get(f"/api/opportunities/{deal}/changes").json()
    assert {c["id"] for c in logged} >= {row.id for row in rows}
    # The same values again change nothing: 422, and no row is written.
    again = client.patch(f"/api/opportunities/{deal}", json=edit)
    assert again.status_code == 422
    assert change_rows(web_org, deal, mark) == rows


def test_a_viewer_may_read_but_not_edit(web_org: WebOrg) -> None:
    client = client_of(web_org, "viewer")
    deal = inside_deal(web_org, "viewer")
    assert client.get(f"/api/opportunities/{deal}").status_code == 200
    mark = last_change_id(web_org)
    response = client.patch(f"/api/opportunities/{deal}", json={"next_step": "sneaky"})
    assert response.status_code == 403
    assert change_rows(web_org, deal, mark) == []


def test_a_closed_deal_is_a_409(web_org: WebOrg) -> None:
    deal = inside_deal(web_org, "rep", status="lost")
    response = client_of(web_org, "rep").patch(f"/api/opportunities/{deal}", json={"next_step": "revive"})
    assert response.status_code == 409


@pytest.mark.parametrize("edit, where", [
    ({"stage": "signed-in-blood"}, "stage"),
    ({"amount": -1}, "amount"),
    ({"amount": "lots"}, "amount"),
    ({"close_date": "next tuesday"}, "close_date"),
    ({"forecast_category": "certain"}, "forecast_category"),
    ({"next_step": "x" * 2001}, "next_step"),
    ({"probability": 99}, "probability"),
    ({}, None),
    ({"override_reason": "only a reason"}, None),
])
def test_a_bad_edit_is_a_422_naming_the_field(web_org: WebOrg, edit: dict[str, Any], where: str | None) -> None:
    deal = inside_deal(web_org, "manager")
    mark = last_change_id(web_org)
    response = client_of(web_org, "manager").patch(f"/api/opportunities/{deal}", json=edit)
    assert response.status_code == 422, response.text
    assert response.json()["where"] == where
    assert change_rows(web_org, deal, mark) == []


def test_hostile_text_is_stored_as_given(web_org: WebOrg) -> None:
    client = client_of(web_org, "rep")
    deal = inside_deal(web_org, "rep")
    hostile = "<script>alert('x')</script> & \"quotes\" ' OR 1=1 --"
    assert client.patch(f"/api/opportunities/{deal}", json={"next_step": hostile}).status_code == 200
    assert client.get(f"/api/opportunities/{deal}").json()["next_step"] == hostile
    # LIKE wildcards in a search are taken literally (no deal or account name holds them).
    for wildcard in ("%", "_", "%' OR 1=1 --"):
        assert client.get("/api/opportunities", params={"q": wildcard}).json() == {"items": [], "total": 0}


@pytest.mark.parametrize("role", ROLES)
def test_the_playbook_stages_come_with_their_exit_criteria(web_org: WebOrg, role: str) -> None:
    body = client_of(web_org, role).get("/api/playbook/stages").json()
    with web_org.engine.connect() as connection:
        keys = list(connection.execute(sa.select(stages.c.key).where(stages.c.pipeline == "default")
                                       .order_by(stages.c.order)).scalars())
        criteria = connection.execute(sa.select(stages.c.key, exit_criteria.c.key.label("criterion"))
                                      .join(stages, stages.c.id == exit_criteria.c.stage_id)
                                      .order_by(exit_criteria.c.order)).all()
    assert [stage["key"] for stage in body] == keys
    assert [stage["order"] for stage in body] == sorted(stage["order"] for stage in body)
    for stage in body:
        assert set(stage) >= {"key", "name", "order", "exit_criteria", "default_probability", "forecast_category",
                              "days_to_rot", "guidance"}
        assert [c["key"] for c in stage["exit_criteria"]] == [row.criterion for row in criteria
                                                               if row.key == stage["key"]]
    assert client_of(web_org, role).get("/api/playbook/stages?pipeline=nope").status_code == 404
