"""Leads on the demo org (seed 7, today 2026-11-22; docs/demo.md plants speed-to-lead effects, acceptance,
recycling with re-engage dates and come-backs), on SQLite or PostgreSQL (CLOSEWISE_TEST_DATABASE_URL).

Expected values come from SQL on the `leads` table and from a brute-force minute-by-minute count of business
hours, never from the code under test. The read-only checks run first; the tests that write (verdicts, routing)
touch leads of their own choosing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.cli import app as cli_app
from closewise.cli import leads_commands
from closewise.db.engine import make_engine
from closewise.db.tables import lead_events, leads, users
from closewise.domain.timeutil import naive_utc
from closewise.errors import Conflict, InvalidInput, NotFound
from closewise.services import lead_routing, lead_verdicts
from closewise.services import leads as service
from tests.cli_runner import run_cli
from tests.demo_org import DEMO_TODAY, demo_database

if not any(group.name == "leads" for group in cli_app.app.registered_groups):
    leads_commands.register(cli_app.app)

AS_OF = datetime.combine(DEMO_TODAY, time.min, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    folder: Path = tmp_path_factory.mktemp("leads")
    with demo_database(folder) as (url, _summary):
        engine = make_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


def _rows(engine: Engine, query: sa.Select) -> list[sa.Row]:  # type: ignore[type-arg]
    with engine.connect() as connection:
        return list(connection.execute(query))


def brute_business_minutes(start: datetime, end: datetime, zone: str) -> int:
    """Minutes m in [start, end) whose local time is Mon-Fri 09:00-17:00 in `zone`, counted one by one."""
    tz = ZoneInfo(zone)
    moment = start.replace(tzinfo=UTC)
    stop = end.replace(tzinfo=UTC)
    count = 0
    while moment < stop:
        local = moment.astimezone(tz)
        if local.weekday() < 5 and time(9) <= local.time() < time(17):
            count += 1
        moment += timedelta(minutes=1)
    return count


def test_sla_states_follow_business_hours_in_the_leads_time_zone(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    data = service.load(engine)
    report = service.sla(engine, data=data, as_of=AS_OF, days=None, limit=10_000)
    rows = data.speed(AS_OF)
    stored = {row.id: row for row in _rows(engine, sa.select(leads.c.id, leads.c.created_at, leads.c.first_touch_at,
                                                              leads.c.timezone, leads.c.status))}
    assert report["summary"]["leads"] == len(stored) == rows.height
    # A sample of touched leads answered within three days: the working minutes match a minute-by-minute count.
    touched = rows.filter(rows["response_minutes"].is_not_null() & (rows["response_minutes"] < 3 * 1440))
    for row in touched.sample(40, seed=3).iter_rows(named=True):
        lead = stored[row["id"]]
        expected = brute_business_minutes(naive_utc(lead.created_at), naive_utc(lead.first_touch_at), lead.timezone)
        assert row["business_minutes"] == pytest.approx(expected, abs=1.0), row["id"]
        assert row["state"] == ("met" if expected <= 60 else "late") or abs(expected - 60) <= 1
    # Untouched leads: overdue, and open when still new or working.
    untouched = {i for i, lead in stored.items() if lead.first_touch_at is None}
    assert untouched and set(rows.filter(rows["state"] == "overdue")["id"].to_list()) == untouched
    assert {row["id"] for row in report["breaches"] if row["state"] == "overdue"} == untouched
    summary = report["summary"]
    assert summary["met"] + summary["late"] + summary["overdue"] + summary["pending"] == summary["leads"]
    assert sum(row["breaches"] for row in report["by_owner"]) == summary["breaches"] == report["breaches_total"]
    assert sum(row["leads"] for row in report["by_source"]) == summary["leads"]


def test_open_breaches_are_escalated_to_the_owners_manager(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    report = service.sla(engine, as_of=AS_OF, days=None, limit=10_000)
    managers = dict(_rows(engine, sa.select(users.c.id, users.c.manager_id)))
    stored = {row.id: row for row in _rows(engine, sa.select(leads.c.id, leads.c.owner_id, leads.c.status,
                                                              leads.c.first_touch_at))}
    expected = {i for i, lead in stored.items() if lead.first_touch_at is None and lead.status in ("new", "working")}
    escalated = {lead["id"]: group["manager_id"] for group in report["escalations"] for lead in group["leads"]}
    assert expected and set(escalated) == expected
    for lead_id, manager in escalated.items():
        owner = stored[lead_id].owner_id
        assert manager == (managers[owner] or owner)
    assert sum(group["breaches"] for group in report["escalations"]) == len(expected)


def test_faster_response_converts_better_as_planted(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    effect = service.response_effect(engine, as_of=AS_OF, min_age_days=30)
    cutoff = naive_utc(AS_OF) - timedelta(days=30)
    counts: dict[str, list[int]] = {}
    for row in _rows(engine, sa.select(leads.c.created_at, leads.c.first_touch_at, leads.c.status)):
        if naive_utc(row.created_at) > cutoff:
            continue
        if row.first_touch_at is None:
            bucket = "never touched"
        else:
            minutes = (naive_utc(row.first_touch_at) - naive_utc(row.created_at)).total_seconds() / 60
            bucket = "< 1 h" if minutes < 60 else "1-24 h" if minutes < 1440 else "1-3 days" if minutes < 4320 \
                else "> 3 days"
        tally = counts.setdefault(bucket, [0, 0])
        tally[0] += 1
        tally[1] += row.status == "converted"
    by_bucket = {row["bucket"]: row for row in effect["buckets"]}
    for bucket, (n, k) in counts.items():
        assert (by_bucket[bucket]["leads"], by_bucket[bucket]["converted"]) == (n, k), bucket
    rate = {bucket: k / n for bucket, (n, k) in counts.items()}
    later = (counts["1-3 days"][1] + counts["> 3 days"][1]) / (counts["1-3 days"][0] + counts["> 3 days"][0])
    # docs/demo.md: ~1.5x between the first two buckets, ~3x between "< 1 h" and "over a day".
    assert rate["< 1 h"] > rate["1-24 h"] > later
    assert effect["hour_vs_day"] == pytest.approx(rate["< 1 h"] / rate["1-24 h"])
    assert effect["hour_vs_day"] >= 1.3 and effect["hour_vs_later"] >= 2.0
    fast, slow = by_bucket["< 1 h"], by_bucket["> 3 days"]
    assert fast["low"] > slow["rate"] and fast["low"] <= fast["rate"] <= fast["high"]
    # Not a source-mix artefact: observed over expected falls with the delay.
    assert by_bucket["< 1 h"]["vs_expected"] > 1.2 > by_bucket["1-24 h"]["vs_expected"] > \
        by_bucket["1-3 days"]["vs_expected"]


def test_recycled_leads_carry_reasons_and_dates_and_come_backs_are_counted(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    report = service.recycle(engine, today=DEMO_TODAY, limit=100_000)
    recycled = _rows(engine, sa.select(leads.c.id, leads.c.recycle_reason, leads.c.re_engage_at)
                     .where(leads.c.status == "recycled"))
    assert report["in_nurture"] == len(recycled) > 0
    assert {row.id for row in recycled} == {row["id"] for row in report["nurture"]}
    assert all(row.recycle_reason in ("no_budget", "timing", "no_response") and row.re_engage_at for row in recycled)
    assert report["due"] == sum(1 for row in recycled if row.re_engage_at <= DEMO_TODAY)
    dates = [row["re_engage_at"] for row in report["nurture"]]
    assert dates == sorted(dates)
    back = _rows(engine, sa.select(leads.c.id, leads.c.status).where(leads.c.recycled_count > 0))
    assert report["come_backs"]["came_back"] == len(back) > 0
    assert report["come_backs"]["converted"] == sum(1 for row in back if row.status == "converted")
    turned = _rows(engine, sa.select(leads.c.recycle_reason, sa.func.count()).where(
        leads.c.status.in_(["rejected", "recycled"])).group_by(leads.c.recycle_reason))
    assert {row["reason"]: row["total"] for row in report["reasons"]} == dict(turned)


def test_cli_contracts(demo: tuple[str, Engine], capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    funnel = run_cli(capsys, monkeypatch, "--db", url, "leads", "funnel", "--json")
    assert funnel.code == 0, funnel.stderr
    body = funnel.json()
    total = _rows(engine, sa.select(sa.func.count()).select_from(leads))[0][0]
    won = _rows(engine, sa.text("SELECT count(*) FROM leads l JOIN opportunities o ON o.lead_id = l.id "
                                "WHERE o.status = 'won'"))[0][0]
    assert body["leads"] == total and body["won"] == won
    assert body["conversion_rate"] == pytest.approx(won / total)
    for row in body["by_source"]:
        assert {"source", "leads", "won", "conversion_rate"} <= set(row)
    sla = run_cli(capsys, monkeypatch, "--db", url, "leads", "sla", "--as-of", "2026-11-21", "--json")
    assert sla.code == 0, sla.stderr
    assert {"as_of", "policy", "summary", "by_owner", "by_source", "breaches", "escalations"} <= set(sla.json())
    for command in (["effect"], ["quality"], ["recycle"], ["rules"], ["policy"]):
        result = run_cli(capsys, monkeypatch, "--db", url, "leads", *command, "--json")
        assert result.code == 0, (command, result.stderr)
        result.json()
    bad = run_cli(capsys, monkeypatch, "--db", url, "leads", "policy", "--hours", "weekdays 9-5")
    assert bad.code == 1 and bad.stderr.count("\n") == 1 and "business hours" in bad.stderr


def _pick(engine: Engine, status: str, *, skip: int = 0) -> int:
    return int(_rows(engine, sa.select(leads.c.id).where(leads.c.status == status).order_by(leads.c.id)
                     .offset(skip).limit(1))[0][0])


def test_verdicts_accept_reject_to_nurture_and_come_back(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    rep = _rows(engine, sa.select(users.c.email).where(users.c.role == "rep").order_by(users.c.id).limit(1))[0][0]
    today = datetime.now(UTC).date()
    first, second, third = (_pick(engine, "working", skip=i) for i in range(3))

    accepted = lead_verdicts.accept(engine, lead_id=first, user_email=rep, note="budget confirmed")
    assert accepted["status"] == "accepted" and accepted["accepted_at"] is not None
    assert [e["kind"] for e in accepted["events"] if e["origin"] == "app"] == ["accepted"]

    timing = lead_verdicts.reject(engine, lead_id=second, reason="timing", user_email=rep)
    assert timing["status"] == "recycled" and timing["reason"] == "timing"
    assert timing["re_engage_at"] == today + timedelta(days=90)
    assert {e["kind"] for e in timing["events"] if e["origin"] == "app"} == {"rejected", "recycled"}

    closed = lead_verdicts.reject(engine, lead_id=third, reason="not_a_fit", user_email=rep)
    assert closed["status"] == "rejected" and closed["re_engage_at"] is None
    with pytest.raises(InvalidInput):
        lead_verdicts.reject(engine, lead_id=first, reason="timing", re_engage_at=today)
    with pytest.raises(InvalidInput):
        lead_verdicts.reject(engine, lead_id=first, reason="no money")

    count = timing["recycled_count"]
    back = lead_verdicts.give_back(engine, lead_id=second, user_email=rep)
    assert back["status"] == "working" and back["recycled_count"] == count + 1 and back["re_engage_at"] is None
    assert "returned" in [e["kind"] for e in back["events"]]
    assert lead_verdicts.accept(engine, lead_id=second)["status"] == "accepted"

    converted = _pick(engine, "converted")
    with pytest.raises(Conflict):
        lead_verdicts.accept(engine, lead_id=converted)
    with pytest.raises(NotFound):
        lead_verdicts.accept(engine, lead_id=10**12)
    written = _rows(engine, sa.select(lead_events.c.lead_id, lead_events.c.kind, lead_events.c.user_id)
                    .where(lead_events.c.lead_id.in_([first, second, third])))
    assert {(row.lead_id, row.kind) for row in written} >= {(first, "accepted"), (second, "rejected"),
                                                            (second, "recycled"), (second, "returned"),
                                                            (third, "rejected")}
    assert all(row.user_id is not None for row in written if row.lead_id == first)


def _add_leads(engine: Engine, specs: list[tuple[str, str]]) -> list[int]:
    """New unassigned leads (country, source), a minute apart, returning their ids in order."""
    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    ids = []
    with engine.begin() as connection:
        for i, (country, source) in enumerate(specs):
            result = connection.execute(leads.insert().values(
                source="test", external_id=f"ROUTE-{uuid_suffix()}-{i}", name=f"Routed {i}", country=country,
                lead_source=source, status="new", created_at=start + timedelta(minutes=i), recycled_count=0))
            ids.append(int(result.inserted_primary_key[0]))
    return ids


_counter = iter(range(10_000))


def uuid_suffix() -> int:
    return next(_counter)


def test_routing_round_robin_territory_and_capacity(demo: tuple[str, Engine], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    reps = _rows(engine, sa.select(users.c.id, users.c.email).where(users.c.role == "rep", users.c.active)
                 .order_by(users.c.id))
    ids = [row.id for row in reps]
    email = {row.id: row.email for row in reps}
    german, referral, anyone = ids[:2], ids[2:5], ids[5:8]
    rules = tmp_path / "rules.yml"
    rules.write_text(f"""
rules:
  - name: DACH
    method: territory
    countries: [Germany]
    members: [{email[german[0]]}, {email[german[1]]}]
  - name: Referrals
    method: capacity
    sources: [referral]
    members: [{", ".join(email[m] for m in referral)}]
  - name: Everyone else
    method: round_robin
    members: [{", ".join(email[m] for m in anyone)}]
    max_open: 1000
""", encoding="utf-8")
    set_rules = run_cli(capsys, monkeypatch, "--db", url, "leads", "rules", "--set", str(rules), "--json")
    assert set_rules.code == 0, set_rules.stderr
    assert [rule["name"] for rule in set_rules.json()] == ["DACH", "Referrals", "Everyone else"]

    specs = [("Germany", "web"), ("Germany", "referral"), ("United States", "referral"), ("France", "web"),
             ("Germany", "event"), ("United States", "web"), ("United States", "referral"), ("Spain", "content")]
    new = _add_leads(engine, specs)
    with engine.connect() as connection:
        load = dict(connection.execute(sa.select(leads.c.owner_id, sa.func.count()).where(
            leads.c.status.in_(["new", "working"]), leads.c.owner_id.is_not(None)).group_by(leads.c.owner_id)).all())

    preview = run_cli(capsys, monkeypatch, "--db", url, "leads", "route", "--dry-run", "--json")
    assert preview.code == 0, preview.stderr
    assert preview.json()["dry_run"] and len(preview.json()["routed"]) == len(new)
    owned = sa.select(sa.func.count()).where(leads.c.id.in_(new), leads.c.owner_id.is_not(None))
    assert _rows(engine, owned)[0][0] == 0

    result = lead_routing.route(engine)
    owner = {row["lead_id"]: (row["owner_id"], row["rule"]) for row in result["routed"]}
    assert set(owner) == set(new) and not result["unrouted"]
    # Territory: German leads alternate between the two DACH members, whatever their source.
    assert [owner[new[i]] for i in (0, 1, 4)] == [(german[0], "DACH"), (german[1], "DACH"), (german[0], "DACH")]
    # Capacity: each referral goes to the referral member with the fewest open leads at that moment.
    running = {m: load.get(m, 0) for m in referral}
    for i in (2, 6):
        least = min(referral, key=lambda m: (running[m], referral.index(m)))
        assert owner[new[i]] == (least, "Referrals")
        running[least] += 1
    # Round robin: the rest in turn.
    assert [owner[new[i]][0] for i in (3, 5, 7)] == anyone
    stored = dict(_rows(engine, sa.select(leads.c.id, leads.c.owner_id).where(leads.c.id.in_(new))))
    assert stored == {lead: owner[lead][0] for lead in new}
    assigned = _rows(engine, sa.select(lead_events.c.lead_id).where(lead_events.c.kind == "assigned",
                                                                     lead_events.c.lead_id.in_(new)))
    assert sorted(row.lead_id for row in assigned) == sorted(new)
    assert lead_routing.route(engine)["routed"] == []  # nothing left to route

    # The round robin carries on where it stopped, run after run.
    later = _add_leads(engine, [("France", "web")])
    assert lead_routing.route(engine)["routed"][0]["owner_id"] == anyone[0]
    assert later

    # With no rules, the active reps take turns.
    lead_routing.set_rules(engine, "rules: []")
    fallback = _add_leads(engine, [("Italy", "web"), ("Italy", "web")])
    routed = lead_routing.route(engine)["routed"]
    assert [row["lead_id"] for row in routed] == fallback
    assert all(row["owner_id"] in ids and row["rule"] == "default round robin" for row in routed)
    assert routed[0]["owner_id"] != routed[1]["owner_id"]


def test_rules_are_validated(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    rep = _rows(engine, sa.select(users.c.email).where(users.c.role == "rep").order_by(users.c.id).limit(1))[0][0]
    with pytest.raises(InvalidInput, match="territory"):
        lead_routing.set_rules(engine, f"rules: [{{name: T, method: territory, members: [{rep}]}}]")
    with pytest.raises(InvalidInput, match="no active user"):
        lead_routing.set_rules(engine, "rules: [{name: T, method: round_robin, members: [nobody@x.io]}]")
    with pytest.raises(InvalidInput, match="unknown method"):
        lead_routing.set_rules(engine, "rules: [{name: T, method: lottery, members: []}]")


def test_policy_changes_the_sla(demo: tuple[str, Engine]) -> None:
    _, engine = demo
    before = service.sla(engine, as_of=AS_OF, days=30)["summary"]
    policy = service.set_policy(engine, minutes=240, business_hours="Mon-Fri 08:00-18:00")
    assert policy.describe().startswith("first touch within 4 working hours, Mon-Fri 08:00-18:00")
    after = service.sla(engine, as_of=AS_OF, days=30)["summary"]
    assert after["leads"] == before["leads"] and after["met"] >= before["met"]
    with pytest.raises(InvalidInput):
        service.set_policy(engine, timezone="Mars/Olympus")
    service.set_policy(engine, minutes=60, business_hours="Mon-Fri 09:00-17:00")
