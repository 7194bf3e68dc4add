"""The pipeline waterfall (analytics/waterfall.py) and the as-of pipeline (analytics/pipeline.py) on hand-made
change logs, and the identity start + flows = end on generated ones.

The hand-made org is one deal per situation the accounting distinguishes (see the waterfall module header),
with the window [START, END] = April 2026 and the period Q2 2026 (April-June). USD is the corporate currency;
EUR is worth 1/0.8 USD until 2026-05-01 and 1/1.0 from then on (dated rates), so the EUR deals show how a
deal's one rate keeps a moved close date from making flows of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.analytics import schema as s
from closewise.analytics.currency import RATES_SCHEMA
from closewise.analytics.pipeline import Grouping, open_deals, pipeline_by
from closewise.analytics.snapshots import build_timeline, snapshot
from closewise.analytics.waterfall import FLOWS, SIGN, Waterfall, waterfall
from closewise.domain.changes import Value, encode
from closewise.domain.enums import ChangeField
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.errors import InvalidInput

CAL = FiscalCalendar()
Q2 = CAL.parse("2026-Q2")
START = datetime(2026, 4, 1)
END = datetime(2026, 4, 30, 23, 59, 59)
BEFORE = datetime(2026, 3, 1)  # creation of the deals that exist at START
DURING = datetime(2026, 4, 15)
APR, MAY, JUL = date(2026, 4, 20), date(2026, 5, 20), date(2026, 7, 15)
RATES = pl.DataFrame(
    {"currency": ["EUR", "EUR", "EUR"], "rate": [0.9, 0.8, 1.0],
     "start_date": [None, date(2026, 1, 1), date(2026, 5, 1)]},
    schema=RATES_SCHEMA,
)


@dataclass
class Deal:
    id: int
    created_at: datetime
    amount: float | None
    close_date: date | None
    status: str = "open"
    currency: str = "USD"
    stage: str = "discovery"
    probability: float | None = 50.0
    changes: list[tuple[datetime, str, Value]] = field(default_factory=list)

    def then(self, when: datetime, **values: Value) -> Deal:
        self.changes.extend((when, name, value) for name, value in values.items())
        return self


def frames(deals: list[Deal]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The opportunities (current rows) and a consistent change log for `deals`."""
    rows: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    for deal in deals:
        values: dict[str, Value] = {"stage": deal.stage, "status": deal.status, "amount": deal.amount,
                                    "close_date": deal.close_date, "probability": deal.probability}
        for when, name, value in sorted(deal.changes, key=lambda change: change[0]):
            log.append({s.OPPORTUNITY_ID: deal.id, s.FIELD: name, s.CHANGED_AT: when,
                        s.OLD_VALUE: encode(ChangeField(name), values[name]),
                        s.NEW_VALUE: encode(ChangeField(name), value)})
            values[name] = value
        closed = [when for when, name, value in deal.changes if name == "status" and value != "open"]
        rows.append({s.ID: deal.id, s.OWNER_ID: deal.id % 3 + 1, s.ACCOUNT_ID: None, s.CURRENCY: deal.currency,
                     s.FORECAST_CATEGORY: None, s.NEXT_STEP: None, s.CREATED_AT: deal.created_at,
                     s.CLOSED_AT: max(closed) if values["status"] != "open" and closed else None, **values})
    opportunities = pl.DataFrame(rows, schema=dict(s.OPPORTUNITY_SCHEMA), orient="row")
    changes = pl.DataFrame(log, schema=dict(s.CHANGE_SCHEMA), orient="row")
    return opportunities, changes


def run(deals: list[Deal], *, period: bool, start: datetime = START, end: datetime = END) -> Waterfall:
    timeline = build_timeline(*frames(deals))
    return waterfall(timeline, start, end, rates=RATES, corporate="USD", period=Q2 if period else None)


def by_deal(result: Waterfall) -> dict[int, dict[str, float]]:
    detail: dict[int, dict[str, float]] = {}
    for row in result.deals.iter_rows(named=True):
        detail.setdefault(row[s.ID], {})[row["flow"]] = row["value"]
    return detail


# Every situation, one deal each. Amounts differ so a wrong attribution cannot hide.
SCENARIO = [
    Deal(1, BEFORE, 100.0, APR).then(DURING, amount=150.0),  # increased 50
    Deal(2, BEFORE, 200.0, MAY).then(DURING, amount=120.0),  # decreased 80
    Deal(3, BEFORE, 300.0, MAY).then(DURING, close_date=JUL),  # pushed out of Q2 at 300
    # In Q3 at START, moved into Q2 with a new amount at the same instant: pulled in at 400, what it entered with.
    Deal(4, BEFORE, 380.0, JUL).then(DURING, close_date=MAY, amount=400.0),
    Deal(5, DURING, 500.0, MAY),  # created in the window, in Q2: created 500
    # Won, its amount rewritten as it closed: won at 600, its last amount in the pipeline.
    Deal(6, BEFORE, 600.0, APR).then(DURING, status="won", amount=650.0),
    Deal(7, BEFORE, 700.0, MAY).then(DURING, status="lost"),  # lost 700
    Deal(8, BEFORE, 800.0, MAY).then(DURING, status="no_decision"),  # no decision 800
    Deal(9, BEFORE, 900.0, JUL).then(DURING, amount=950.0),  # in Q3 throughout: no flow with the period
    Deal(10, DURING, 1000.0, JUL).then(DURING + timedelta(days=5), close_date=MAY),  # created in Q3, pulled in
    # Lost before the window, reopened in it closing in Q2: created again at 1,100.
    Deal(11, BEFORE, 1100.0, MAY).then(BEFORE + timedelta(days=1), status="lost").then(DURING, status="open"),
    # Pushed out and back in within the window: pushed out 1,200 then pulled in 1,200.
    Deal(12, BEFORE, 1200.0, MAY).then(DURING, close_date=JUL).then(DURING + timedelta(days=2), close_date=MAY),
    # EUR, April close date (1 EUR = 1/0.8 USD) moved to May (1/1.0): amount unchanged, so its only flow is the
    # revaluation of its start value to its one rate (May's): 1,000/0.8 - 1,000/1.0 = 250 decreased.
    Deal(13, BEFORE, 1000.0, APR, currency="EUR").then(DURING, close_date=MAY),
    # EUR, April close, raised to 1,200 then won, all at April's rate (its rate at START; it is not in the
    # pipeline at END): increased 200/0.8 = 250, won 1,200/0.8 = 1,500.
    Deal(14, BEFORE, 1000.0, APR, currency="EUR").then(DURING, amount=1200.0)
    .then(DURING + timedelta(days=1), status="won"),
    Deal(15, BEFORE, None, MAY).then(DURING, amount=50.0),  # no amount counts as 0: increased 50
    Deal(16, END + timedelta(seconds=1), 5000.0, MAY),  # created after the window: nothing
]


def test_each_situation_gets_its_flow_with_a_period() -> None:
    result = run(SCENARIO, period=True)
    assert by_deal(result) == {
        1: {"increased": 50.0},
        2: {"decreased": 80.0},
        3: {"pushed_out": 300.0},
        4: {"pulled_in": 400.0},
        5: {"created": 500.0},
        6: {"won": 600.0},
        7: {"lost": 700.0},
        8: {"no_decision": 800.0},
        10: {"pulled_in": 1000.0},
        11: {"created": 1100.0},
        12: {"pushed_out": 1200.0, "pulled_in": 1200.0},
        13: {"decreased": pytest.approx(250.0)},
        14: {"increased": pytest.approx(250.0), "won": pytest.approx(1500.0)},
        15: {"increased": 50.0},
    }
    # At START, in Q2: deals 1, 2, 3, 6, 7, 8, 12, 13 (1,000/0.8), 14 (1,000/0.8), 15 (0).
    assert result.start_value == pytest.approx(100 + 200 + 300 + 600 + 700 + 800 + 1200 + 1250 + 1250)
    # At END, in Q2: 1 (150), 2 (120), 4 (400), 5, 10, 11, 12, 13 (1,000/1.0), 15 (50).
    assert result.end_value == pytest.approx(150 + 120 + 400 + 500 + 1000 + 1100 + 1200 + 1000 + 50)
    assert result.flows == pytest.approx({
        "created": 500 + 1100, "increased": 50 + 250 + 50, "decreased": 80 + 250, "won": 600 + 1500,
        "lost": 700, "no_decision": 800, "pulled_in": 400 + 1000 + 1200, "pushed_out": 300 + 1200,
    })
    assert result.residual == pytest.approx(0.0, abs=1e-6)
    revaluation = result.deals.filter(pl.col("revaluation") > 0)
    assert revaluation[s.ID].to_list() == [13]


def test_without_a_period_close_dates_do_not_matter() -> None:
    result = run(SCENARIO, period=False)
    detail = by_deal(result)
    # The pushes and pulls are gone; what changed amount while open is increased / decreased.
    assert 3 not in detail and 12 not in detail
    assert detail[4] == {"increased": 20.0}
    assert detail[9] == {"increased": 50.0}
    assert detail[10] == {"created": 1000.0}
    assert result.flows["pulled_in"] == result.flows["pushed_out"] == 0.0
    assert result.residual == pytest.approx(0.0, abs=1e-6)


def test_start_and_end_are_the_pipeline_totals() -> None:
    timeline = build_timeline(*frames(SCENARIO))
    for period in (None, Q2):
        result = waterfall(timeline, START, END, rates=RATES, corporate="USD", period=period)
        for at, value in ((START, result.start_value), (END, result.end_value)):
            deals = open_deals(timeline, at, rates=RATES, corporate="USD", period=period)
            assert value == pytest.approx(float(deals["value"].sum()))


def test_the_window_must_be_forward() -> None:
    timeline = build_timeline(*frames(SCENARIO))
    with pytest.raises(InvalidInput, match="before the end"):
        waterfall(timeline, END, START, rates=RATES, corporate="USD")
    with pytest.raises(InvalidInput, match="before the end"):
        waterfall(timeline, START, START, rates=RATES, corporate="USD")


def test_an_empty_org_has_an_empty_waterfall() -> None:
    timeline = build_timeline(*frames([]))
    result = waterfall(timeline, START, END, rates=RATES, corporate="USD", period=Q2)
    assert result.start_value == result.end_value == 0.0
    assert result.flows == dict.fromkeys(FLOWS, 0.0)
    assert result.deals.is_empty()


# --- the pipeline as of a date ---------------------------------------------------------------------------


def test_pipeline_groups_by_stage_in_playbook_order_and_weights_by_probability() -> None:
    deals = [
        Deal(1, BEFORE, 100.0, APR, stage="proposal", probability=70.0),
        Deal(2, BEFORE, 200.0, MAY, stage="prospecting", probability=10.0),
        Deal(3, BEFORE, 300.0, JUL, stage="prospecting", probability=None),  # the stage default, 20
        Deal(4, BEFORE, 80.0, APR, stage="custom", currency="EUR"),  # not in the playbook: last; 80/0.8
        Deal(5, BEFORE, 999.0, APR, stage="proposal", status="won"),  # closed: not in the pipeline
    ]
    stages = pl.DataFrame({"key": ["prospecting", "proposal"], "name": ["Prospecting", "Proposal"], "order": [1, 5],
                           "default_probability": [20.0, 70.0]})
    open_now = open_deals(build_timeline(*frames(deals)), START, rates=RATES, corporate="USD", stages=stages)
    groups = pipeline_by(open_now, Grouping.STAGE, stages=stages)
    assert groups.rows() == [
        ("prospecting", "Prospecting", 2, 500.0, pytest.approx(200 * 0.1 + 300 * 0.2)),
        ("proposal", "Proposal", 1, 100.0, pytest.approx(70.0)),
        ("custom", "custom", 1, pytest.approx(100.0), pytest.approx(50.0)),
    ]
    quarters = pipeline_by(open_now, Grouping.PERIOD, calendar=CAL, period_kind=PeriodKind.QUARTER)
    assert quarters.select("key", "count").rows() == [("2026-Q2", 3), ("2026-Q3", 1)]
    months = pipeline_by(open_now, Grouping.PERIOD, calendar=CAL, period_kind=PeriodKind.MONTH)
    assert months.select("key", "count").rows() == [("2026-04", 2), ("2026-05", 1), ("2026-07", 1)]
    owners = pipeline_by(open_now, Grouping.OWNER)
    assert owners["total"].sum() == pytest.approx(open_now["value"].sum())
    assert owners["total"].to_list() == sorted(owners["total"].to_list(), reverse=True)


# --- the identity on generated change logs ---------------------------------------------------------------

T0 = datetime(2026, 1, 1)
# Half-day steps over three weeks, so creations, changes and window ends often meet; close dates mostly on
# either side of Q2's bounds and of the EUR rate change (May 1).
_times = st.integers(0, 40).map(lambda n: T0 + timedelta(days=n // 2, hours=12 * (n % 2)))
_created = st.integers(0, 12).map(lambda n: T0 + timedelta(days=n // 2, hours=12 * (n % 2)))  # most before START
_EDGES = [date(2026, 3, 31), date(2026, 4, 1), date(2026, 4, 30), date(2026, 5, 1), date(2026, 6, 30), date(2026, 7, 1)]
_days = st.sampled_from(_EDGES) | st.integers(0, 240).map(lambda n: date(2026, 1, 1) + timedelta(days=n))
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(["open", "open", "won", "lost", "no_decision"]),
    "amount": st.none() | st.sampled_from([0.0, 10.0, 250.0, 1000.0, 1234.5]),
    "close_date": st.none() | _days,
    "stage": st.sampled_from(["prospecting", "proposal"]),
}


@st.composite
def _deal(draw: st.DrawFn, deal_id: int) -> Deal:
    deal = Deal(deal_id, draw(_created), draw(_VALUES["amount"]), draw(_VALUES["close_date"]),
                status=draw(st.sampled_from(["open", "open", "open", "lost"])),
                currency=draw(st.sampled_from(["USD", "EUR"])))
    # Events of one to three fields at once: a deal closing with a new amount, pulled in at a new amount...
    events = st.tuples(_times, st.sets(st.sampled_from(sorted(_VALUES)), min_size=1, max_size=3))
    for when, names in draw(st.lists(events, min_size=1, max_size=6)):
        deal.then(when, **{name: draw(_VALUES[name]) for name in sorted(names)})
    return deal


def _rate(currency: str, day: date | None) -> float:
    """Independent of analytics.currency: RATES read by hand."""
    if currency == "USD":
        return 1.0
    if day is None or day < date(2026, 1, 1):
        return 0.9
    return 0.8 if day < date(2026, 5, 1) else 1.0


def _pipeline_total(opportunities: pl.DataFrame, changes: pl.DataFrame, at: datetime, period: bool) -> float:
    state = snapshot(build_timeline(opportunities, changes), at)
    total = 0.0
    for row in state.iter_rows(named=True):
        in_period = row[s.CLOSE_DATE] is not None and Q2.contains(row[s.CLOSE_DATE])
        if row[s.STATUS] == "open" and (in_period or not period):
            total += (row[s.AMOUNT] or 0.0) / _rate(row[s.CURRENCY], row[s.CLOSE_DATE])
    return total


@settings(deadline=None, max_examples=200)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=8, unique=True).flatmap(
    lambda ids: st.tuples(*(_deal(i) for i in ids))), _times, _times, st.booleans())
def test_flows_always_add_up(deals: tuple[Deal, ...], a: datetime, b: datetime, period: bool) -> None:
    start, end = min(a, b), max(a, b) + timedelta(hours=6)
    opportunities, changes = frames(list(deals))
    result = waterfall(build_timeline(opportunities, changes), start, end, rates=RATES, corporate="USD",
                       period=Q2 if period else None)
    scale = 1.0 + sum(abs(v) for v in result.flows.values()) + abs(result.start_value)
    assert result.residual == pytest.approx(0.0, abs=1e-9 * scale)
    assert result.start_value == pytest.approx(_pipeline_total(opportunities, changes, start, period))
    assert result.end_value == pytest.approx(_pipeline_total(opportunities, changes, end, period))
    assert all(value >= 0 for value in result.flows.values())
    if not period:
        assert result.flows["pulled_in"] == result.flows["pushed_out"] == 0.0
    # The detail is what the flows are made of.
    for name in FLOWS:
        detail = result.deals.filter(pl.col("flow") == name)["value"].sum()
        assert detail == pytest.approx(result.flows[name])
    assert set(SIGN) == set(FLOWS)
