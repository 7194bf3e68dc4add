"""The pure lead functions on small hand-made frames: business hours across weekends, time zones and a DST change,
SLA states, the Wilson interval, routing methods, verdict transitions, the funnel's counting and event merging."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from closewise.domain.enums import RecycleReason
from closewise.errors import Conflict, InvalidInput
from closewise.leads import events, funnel, recycle, routing, sla
from closewise.leads.hours import BusinessHours, add_working_minutes, working_minutes
from closewise.leads.response_effect import wilson
from closewise.leads.schema import EVENTS, LEADS, OPPORTUNITIES

NY = ZoneInfo("America/New_York")
HOURS = BusinessHours()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_friday_afternoon_to_monday_morning_is_one_working_hour() -> None:
    # Fri 2026-11-20 16:30 New York (21:30 UTC) to Mon 09:30 New York (14:30 UTC).
    assert working_minutes(utc("2026-11-20 21:30"), utc("2026-11-23 14:30"), NY, HOURS) == pytest.approx(60)
    assert add_working_minutes(utc("2026-11-20 21:30"), 60, NY, HOURS) == datetime(2026, 11, 23, 14, 30)


def test_the_same_instants_count_differently_in_another_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end = utc("2026-11-18 07:00"), utc("2026-11-18 10:00")  # 08:00-11:00 Berlin, 02:00-05:00 New York
    assert working_minutes(start, end, berlin, HOURS) == pytest.approx(120)
    assert working_minutes(start, end, NY, HOURS) == 0


def test_long_spans_and_dst_changes() -> None:
    # Two whole weeks plus across the end of US daylight saving (2026-11-01): 10 working days of 8 hours.
    start, end = datetime(2026, 10, 26, 9, 0, tzinfo=NY), datetime(2026, 11, 9, 9, 0, tzinfo=NY)
    assert working_minutes(start.astimezone(UTC), end.astimezone(UTC), NY, HOURS) == pytest.approx(10 * 8 * 60)
    holiday = BusinessHours(holidays=frozenset({date(2026, 11, 26)}))
    thursday = datetime(2026, 11, 26, 10, 0, tzinfo=NY).astimezone(UTC)
    assert add_working_minutes(thursday, 30, NY, holiday) == datetime(2026, 11, 27, 14, 30)  # Fri 09:30 NY


def test_business_hours_parse_and_describe() -> None:
    hours = BusinessHours.parse("sun-thu 08:00-16:30")
    assert hours.weekdays == frozenset({6, 0, 1, 2, 3}) and hours.end == time(16, 30)
    assert BusinessHours.parse(BusinessHours().describe()) == BusinessHours()
    assert BusinessHours.parse("Mon,Wed,Fri 9:00-12:00").describe() == "Mon,Wed,Fri 09:00-12:00"
    for bad in ("weekdays 9-5", "Mon-Fri 17:00-09:00", "Mon-Fun 09:00-17:00"):
        with pytest.raises(InvalidInput):
            BusinessHours.parse(bad)


def _leads(rows: list[dict[str, object]]) -> pl.DataFrame:
    base = {name: None for name in LEADS}
    return pl.DataFrame([{**base, "recycled_count": 0, **row} for row in rows], schema=LEADS)


def test_sla_states() -> None:
    created = datetime(2026, 11, 18, 14, 0)  # Wed 09:00 New York
    frame = _leads([
        {"id": 1, "status": "working", "timezone": "America/New_York", "created_at": created,
         "first_touch_at": created + timedelta(minutes=45)},
        {"id": 2, "status": "working", "timezone": "America/New_York", "created_at": created,
         "first_touch_at": created + timedelta(hours=3)},
        {"id": 3, "status": "new", "timezone": "America/New_York", "created_at": created},
        {"id": 4, "status": "new", "timezone": "Nowhere/Else", "created_at": datetime(2026, 11, 18, 23, 0)},
    ])
    rows = sla.speed_to_lead(frame, sla.SlaPolicy(), datetime(2026, 11, 18, 23, 30, tzinfo=UTC))
    assert rows["state"].to_list() == ["met", "late", "overdue", "pending"]
    assert rows["open"].to_list() == [False, False, True, False]
    assert rows["zone"].to_list()[3] == "UTC"  # an unknown zone falls back to the org's
    summary = sla.summarise(rows).row(0, named=True)
    assert (summary["met"], summary["breaches"], summary["met_rate"]) == (1, 2, pytest.approx(1 / 3))
    users = pl.DataFrame({"id": [7], "manager_id": [None]}, schema={"id": pl.Int64, "manager_id": pl.Int64})
    assert sla.escalations(rows, users)["id"].to_list() == [3]


def test_wilson_interval() -> None:
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)
    assert wilson(0, 0) == (None, None)
    assert wilson(0, 20)[0] == 0.0


def test_routing_methods() -> None:
    leads = pl.DataFrame({"id": [1, 2, 3, 4, 5], "country": ["Germany", "Germany", "France", "France", "Peru"],
                          "lead_source": ["web"] * 5, "created_at": [datetime(2026, 1, 1, 0, i) for i in range(5)]})
    rules = [routing.Rule("DE", routing.Method.TERRITORY, (10, 11), countries=frozenset({"germany"}),
                          last_member_id=10),
             routing.Rule("Cap", routing.Method.CAPACITY, (20, 21), sources=frozenset({"web"}), max_open=3)]
    result = routing.route(leads, rules, {20: 2, 21: 1})
    owners = dict(zip(result.assignments["lead_id"], result.assignments["owner_id"], strict=True))
    assert owners == {1: 11, 2: 10, 3: 21, 4: 20, 5: 21}
    assert result.pointers["DE"] == 10
    full = routing.route(leads.head(1).with_columns(pl.lit("Peru").alias("country")),
                         [routing.Rule("Cap", routing.Method.CAPACITY, (20,), max_open=1)], {20: 1})
    assert full.assignments["owner_id"].to_list() == [None]
    assert "capacity" in full.assignments["reason"][0]
    fallback = routing.route(leads, [], {}, fallback=(1, 2), fallback_last=2)
    assert fallback.assignments["owner_id"].to_list() == [1, 2, 1, 2, 1]
    with pytest.raises(InvalidInput):
        routing.Rule("T", routing.Method.TERRITORY, (1,))


def test_verdicts() -> None:
    today = date(2026, 11, 22)
    assert recycle.accept("working").status.value == "accepted"
    assert recycle.accept("recycled").returned
    with pytest.raises(Conflict):
        recycle.accept("converted")
    timing = recycle.reject("new", RecycleReason.TIMING, today=today)
    assert (timing.status.value, timing.re_engage_at) == ("recycled", today + timedelta(days=90))
    assert recycle.reject("new", RecycleReason.NOT_A_FIT, today=today).status.value == "rejected"
    assert recycle.reject("new", RecycleReason.NOT_A_FIT, today=today,
                          re_engage_at=date(2027, 6, 1)).status.value == "recycled"
    assert recycle.reject("new", RecycleReason.NO_BUDGET, today=today, nurture=False).status.value == "rejected"
    with pytest.raises(InvalidInput):
        recycle.reject("new", RecycleReason.TIMING, today=today, re_engage_at=today)
    with pytest.raises(Conflict):
        recycle.give_back("working")
    assert recycle.parse_reason("Not a fit") is RecycleReason.NOT_A_FIT


def test_funnel_counts_each_stage_once_and_links_both_ways() -> None:
    t0 = datetime(2026, 1, 1)
    leads = _leads([
        {"id": 1, "lead_source": "web", "status": "converted", "created_at": t0, "accepted_at": t0 + timedelta(1)},
        {"id": 2, "lead_source": "web", "status": "converted", "created_at": t0, "converted_opportunity_id": 101},
        {"id": 3, "lead_source": "web", "status": "rejected", "created_at": t0, "recycle_reason": "timing"},
        {"id": 4, "lead_source": None, "status": "accepted", "created_at": t0},
    ])
    opps = pl.DataFrame([
        {"id": 100, "lead_id": 1, "status": "won", "created_at": t0 + timedelta(2), "closed_at": t0 + timedelta(10),
         "amount_corporate": 500.0},
        {"id": 101, "lead_id": None, "status": "lost", "created_at": t0 + timedelta(3), "closed_at": None,
         "amount_corporate": 900.0},
    ], schema={**{k: v for k, v in OPPORTUNITIES.items() if k in ("id", "lead_id", "status", "created_at",
                                                                  "closed_at")}, "amount_corporate": pl.Float64})
    outcomes = funnel.lead_outcomes(leads, opps)
    overall = funnel.funnel(outcomes).row(0, named=True)
    assert (overall["leads"], overall["accepted"], overall["opportunities"], overall["won"]) == (4, 3, 2, 1)
    assert overall["revenue"] == 500.0 and overall["days_to_win"] == pytest.approx(10)
    by_source = {row["lead_source"]: row for row in funnel.funnel(outcomes, "lead_source").iter_rows(named=True)}
    assert by_source["web"]["conversion_rate"] == pytest.approx(1 / 3) and by_source["(none)"]["won"] == 0


def test_app_events_replace_the_fields_they_wrote() -> None:
    when = datetime(2026, 3, 1, 12)
    leads = _leads([{"id": 1, "status": "accepted", "owner_id": 5, "created_at": when - timedelta(1),
                     "accepted_at": when}])
    app = pl.DataFrame([{"lead_id": 1, "kind": "accepted", "occurred_at": when, "user_id": 9, "owner_id": 5,
                         "reason": None, "re_engage_at": None, "note": None}],
                       schema=EVENTS)
    history = events.lead_events(events.with_first_touch(leads, pl.DataFrame(
        schema={"lead_id": pl.Int64, "owner_id": pl.Int64, "type": pl.String, "occurred_at": pl.Datetime("us"),
                "completed": pl.Boolean})), app)
    assert history["kind"].to_list() == ["created", "accepted"]
    assert history.filter(pl.col("kind") == "accepted")["user_id"].to_list() == [9]
