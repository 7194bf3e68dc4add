"""`GET /api/team` for every role: the reps in the caller's scope only (a rep only themselves, a viewer nobody),
the team filter, and each scorecard figure recomputed here from the rows in SQL (the demo never reopens a deal
or moves it to another owner, so a deal's status and owner at a date follow from its record and `closed_at`)."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from closewise.db.tables import activities, currency_rates, opportunities, opportunity_changes, quotas, users
from closewise.domain.timeutil import as_utc
from closewise.services import hygiene
from tests.demo_org import DEMO_TODAY
from tests.web.conftest import WebOrg, api_client
from tests.web.test_hygiene_api import ROLES, visible_owners

AS_OF = datetime.combine(DEMO_TODAY, time.max, tzinfo=UTC)  # `?as_of=2026-11-22` means the end of that day


def _reps_in_sight(org: WebOrg, role: str, day: date) -> set[int]:
    sees = visible_owners(org, role)
    with org.engine.connect() as connection:
        rows = connection.execute(sa.select(users.c.id, users.c.hire_date).where(
            users.c.role == "rep", users.c.active)).all()
    return {row.id for row in rows if (sees is None or row.id in sees) and (row.hire_date is None
                                                                              or row.hire_date <= day)}


def _team(org: WebOrg, role: str, **params: Any) -> dict[str, Any]:
    response = api_client(org, role).get("/api/team", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_reps_in_its_scope(web_org: WebOrg, role: str) -> None:
    body = _team(web_org, role, as_of=DEMO_TODAY.isoformat())
    ids = {card["user_id"] for card in body["reps"]}
    assert ids == _reps_in_sight(web_org, role, DEMO_TODAY)
    assert body["quarter"] == "2026-Q4" and body["quarter_start"] == "2026-10-01"
    if role == "rep":
        assert ids == {web_org.user_id(web_org.logins["rep"])}
        own = body["reps"][0]
        assert {k: v for k, v in body["total"].items() if k not in ("user_id", "name", "team", "team_id")} == \
            {k: v for k, v in own.items() if k not in ("user_id", "name", "team", "team_id")}
    if role == "viewer":
        assert ids == set() and body["total"]["won_12m_count"] == 0
    if role == "manager":
        assert 1 < len(ids) < len(_reps_in_sight(web_org, "leader", DEMO_TODAY))


def test_the_route_needs_a_token(web_org: WebOrg) -> None:
    assert api_client(web_org, None).get("/api/team").status_code == 401


def test_the_team_filter(web_org: WebOrg) -> None:
    everyone = _team(web_org, "leader", as_of=DEMO_TODAY.isoformat())
    assert len(everyone["teams"]) >= 2
    first = everyone["teams"][0]["id"]
    one = _team(web_org, "leader", as_of=DEMO_TODAY.isoformat(), team_id=first)
    assert one["team_id"] == first and one["reps"]
    assert all(card["team_id"] == first for card in one["reps"])
    assert {c["user_id"] for c in one["reps"]} == {c["user_id"] for c in everyone["reps"] if c["team_id"] == first}
    assert one["total"]["won_12m_count"] == sum(c["won_12m_count"] for c in one["reps"])
    # A team the caller has no rep of is as unknown as a missing one.
    manager = _team(web_org, "manager", as_of=DEMO_TODAY.isoformat())
    theirs = {t["id"] for t in manager["teams"]}
    other = next(t["id"] for t in everyone["teams"] if t["id"] not in theirs)
    client = api_client(web_org, "manager")
    assert client.get("/api/team", params={"team_id": other}).status_code == 404
    assert client.get("/api/team", params={"team_id": 987654}).status_code == 404
    assert client.get("/api/team", params={"as_of": "0001-01-01"}).status_code == 422


# --- the figures, recomputed ----------------------------------------------------------------------------


def _rates(org: WebOrg) -> list[tuple[str, float, date | None]]:
    with org.engine.connect() as connection:
        return [(row.currency, row.rate, row.start_date) for row in connection.execute(
            sa.select(currency_rates.c.currency, currency_rates.c.rate, currency_rates.c.start_date))]


def _usd(amount: float | None, currency: str, day: date | None, rates: list[tuple[str, float, date | None]]) -> float:
    """Salesforce's rule: the dated rate in force on the day, else the static rate; corporate = amount / rate."""
    if amount is None:
        return 0.0
    if currency == "USD":
        return float(amount)
    dated = sorted((start, rate) for code, rate, start in rates if code == currency and start is not None)
    static = [rate for code, rate, start in rates if code == currency and start is None]
    in_force = [rate for start, rate in dated if day is not None and start <= day]
    rate = in_force[-1] if in_force else (static[-1] if static else dated[0][1])
    return float(amount) / rate


def _deals(org: WebOrg, owner: int) -> list[Any]:
    with org.engine.connect() as connection:
        return list(connection.execute(sa.select(opportunities).where(opportunities.c.owner_id == owner)))


def _expected(org: WebOrg, owner: int, at: datetime, quarter_start: date, quarter_end: date) -> dict[str, Any]:
    rates = _rates(org)
    year_ago, month_ago, slip_since = at - timedelta(days=365), at - timedelta(days=30), at - timedelta(days=90)
    deals = [d for d in _deals(org, owner) if as_utc(d.created_at) <= at]
    # When each deal closed, for those closed by `at` (the rest were open then).
    closed_at = {d.id: as_utc(d.closed_at) for d in deals if d.closed_at is not None and as_utc(d.closed_at) <= at}
    won_year = [d for d in deals if d.status == "won" and d.id in closed_at and closed_at[d.id] > year_ago]
    closed_year = [d for d in deals if d.id in closed_at and closed_at[d.id] > year_ago]
    q_start = datetime.combine(quarter_start, time.min, tzinfo=UTC)
    won_quarter = [d for d in won_year if closed_at[d.id] >= q_start]
    open_now = [d for d in deals if d.id not in closed_at]
    due = [d for d in open_now if d.close_date is not None and quarter_start <= d.close_date <= quarter_end]
    with org.engine.connect() as connection:
        quota = connection.execute(sa.select(quotas.c.amount).where(
            quotas.c.user_id == owner, quotas.c.period_start == quarter_start,
            quotas.c.period_end == quarter_end)).scalar()
        acts = connection.execute(sa.select(activities.c.occurred_at).where(
            activities.c.owner_id == owner, activities.c.completed, activities.c.opportunity_id.is_not(None))).all()
        pushes = connection.execute(sa.select(opportunity_changes.c.opportunity_id, opportunity_changes.c.changed_at,
                                              opportunity_changes.c.old_value, opportunity_changes.c.new_value)
                                    .join(opportunities, opportunities.c.id == opportunity_changes.c.opportunity_id)
                                    .where(opportunities.c.owner_id == owner,
                                           opportunity_changes.c.field == "close_date")).all()
    slipped = {p.opportunity_id for p in pushes
               if slip_since < as_utc(p.changed_at) <= at and p.old_value and p.new_value
               and p.new_value[:10] > p.old_value[:10]
               and (p.opportunity_id not in closed_at or as_utc(p.changed_at) < closed_at[p.opportunity_id])}
    won_q_amount = sum(_usd(d.amount, d.currency, d.close_date, rates) for d in won_quarter)
    return {
        "won_quarter_count": len(won_quarter),
        "won_quarter": won_q_amount,
        "quota": quota,
        "attainment": won_q_amount / quota if quota else None,
        "won_12m_count": len(won_year),
        "won_12m": sum(_usd(d.amount, d.currency, d.close_date, rates) for d in won_year),
        "closed_12m": len(closed_year),
        "win_rate": len(won_year) / len(closed_year) if closed_year else None,
        "median_cycle_days": statistics.median(
            (closed_at[d.id] - as_utc(d.created_at)).total_seconds() / 86400 for d in won_year
        ) if won_year else None,
        "open_deals": len(open_now),
        "open_pipeline": sum(_usd(d.amount, d.currency, d.close_date, rates) for d in open_now),
        "pipeline_quarter": sum(_usd(d.amount, d.currency, d.close_date, rates) for d in due),
        "activities_30d": sum(1 for (when,) in acts if month_ago < as_utc(when) <= at),
        "slipped_deals_90d": len(slipped & {d.id for d in deals}),
    }


def _check(card: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if value is None or card[name] is None:
            assert card[name] == value, (card["name"], name, card[name], value)
        elif name == "median_cycle_days":
            assert card[name] == pytest.approx(value, abs=0.05), (card["name"], name)
        else:
            assert card[name] == pytest.approx(value, abs=0.02), (card["name"], name, card[name], value)


def test_every_figure_of_a_managers_reps_matches_sql(web_org: WebOrg) -> None:
    body = _team(web_org, "manager", as_of=DEMO_TODAY.isoformat())
    start, end = date.fromisoformat(body["quarter_start"]), date.fromisoformat(body["quarter_end"])
    assert body["reps"]
    busy = 0
    for card in body["reps"]:
        expected = _expected(web_org, card["user_id"], AS_OF, start, end)
        _check(card, expected)
        busy += expected["closed_12m"] > 0
    assert busy >= 3  # the check saw reps with real records
    # The total adds the parts: its win rate is all wins over all closings.
    total = body["total"]
    assert total["won_12m_count"] == sum(c["won_12m_count"] for c in body["reps"])
    assert total["win_rate"] == pytest.approx(total["won_12m_count"] / sum(c["closed_12m"] for c in body["reps"]))


def test_the_findings_per_rep_are_the_hygiene_reviews(web_org: WebOrg) -> None:
    review = hygiene.review(web_org.engine, as_of=AS_OF)
    owners = {deal.id: deal.owner_id for deal in review.deals}
    body = _team(web_org, "leader", as_of=DEMO_TODAY.isoformat())
    for card in body["reps"]:
        mine = [deal for deal in review.deals if owners[deal.id] == card["user_id"]]
        assert card["flagged_deals"] == len(mine)
        assert card["findings"] == sum(len(deal.reasons) for deal in mine)


def test_a_past_date_uses_only_what_was_known_then(web_org: WebOrg) -> None:
    day = date(2026, 6, 30)
    at = datetime.combine(day, time.max, tzinfo=UTC)
    body = _team(web_org, "leader", as_of=day.isoformat())
    assert body["quarter"] == "2026-Q2"
    assert {c["user_id"] for c in body["reps"]} == _reps_in_sight(web_org, "leader", day)  # hired later: absent
    start, end = date.fromisoformat(body["quarter_start"]), date.fromisoformat(body["quarter_end"])
    checked = 0
    for card in body["reps"][:6]:
        expected = _expected(web_org, card["user_id"], at, start, end)
        # The amount and close date of a deal still open then may have changed since, which the records here
        # do not tell: the open amounts as of then are the as-of engine's (tests/unit/test_team_scorecards.py);
        # the counts and the closed deals' figures are checked here.
        for name in ("pipeline_quarter", "open_pipeline"):
            expected.pop(name)
        _check(card, expected)
        checked += 1
    assert checked
