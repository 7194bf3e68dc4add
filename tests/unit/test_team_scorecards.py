"""Rep scorecards (analytics/team.py) on small hand-built orgs whose every expected figure is worked out in the
comments beside it.

The org, seen at AS_OF = 2026-11-22 12:00 UTC (fiscal quarter 2026-Q4: 1 October to 31 December; the trailing
year starts 2025-11-22 12:00, the 30-day activity window 2026-10-23 12:00, the 90-day slip window
2026-08-24 12:00). Amounts in USD unless said; EUR converts at 0.5 EUR per USD (corporate = amount / rate).

Rep 1 (quota 120):
  A  won 2026-10-11, created 2026-09-01 (cycle 40 days), 30.  Its close date was set to the closing day *at*
     the closing: bookkeeping, not a slip.
  B  won 2026-03-02, created 2026-01-01 (cycle 60 days), 50: in the trailing year, not this quarter.
  C  lost 2026-05-01: closed in the trailing year.
  D  no decision 2025-06-01: closed before the trailing year, counts nowhere.
  E  open, 60, close date pushed 2026-10-15 -> 2026-11-10 (on 2026-10-01) -> 2026-12-15 (on 2026-11-01):
     slipped, and due this quarter.
  F  open, 20 EUR = 40 USD, due 2027-01-20 (next quarter).
  G  open at AS_OF, due 2026-11-30, 10; won only on 2026-11-25, after AS_OF: still open pipeline then.
Rep 2 (no quota):
  K  won 2026-11-01, created 2026-10-01 (cycle 31 days), 100.   L  lost 2026-11-02.
  M  open, 5, due 2027-02-01; owned by rep 2 at AS_OF, handed to rep 3 on 2026-11-23.
Rep 3 (quota 50): nothing at AS_OF (M arrives only later).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline
from closewise.analytics.team import (
    ScorecardInputs,
    ScorecardWindows,
    quarter_quotas,
    rep_scorecards,
    team_total,
)
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.errors import InvalidInput

AS_OF = datetime(2026, 11, 22, 12, 0)
Q4 = FiscalCalendar().period_containing(AS_OF.date(), PeriodKind.QUARTER)
RATES = pl.DataFrame({"currency": ["EUR"], "rate": [0.5], "start_date": [None]},
                     schema={"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()})


def _deal(id_: int, owner: int, status: str, amount: float, created: datetime, *, closed: datetime | None = None,
          close_date: date | None = None, currency: str = "USD") -> dict[str, Any]:
    return {s.ID: id_, s.OWNER_ID: owner, s.ACCOUNT_ID: None, s.STAGE: "proposal", s.STATUS: status,
            s.AMOUNT: amount, s.CURRENCY: currency, s.CLOSE_DATE: close_date or (closed.date() if closed else None),
            s.FORECAST_CATEGORY: "pipeline", s.PROBABILITY: None, s.NEXT_STEP: "call", s.CREATED_AT: created,
            s.CLOSED_AT: closed}


def _change(id_: int, field: str, old: str, new: str, at: datetime) -> dict[str, Any]:
    return {s.OPPORTUNITY_ID: id_, s.FIELD: field, s.OLD_VALUE: old, s.NEW_VALUE: new, s.CHANGED_AT: at}


def _org() -> tuple[pl.DataFrame, pl.DataFrame]:
    deals = [
        _deal(1, 1, "won", 30, datetime(2026, 9, 1), closed=datetime(2026, 10, 11)),  # A
        _deal(2, 1, "won", 50, datetime(2026, 1, 1), closed=datetime(2026, 3, 2)),  # B
        _deal(3, 1, "lost", 999, datetime(2026, 2, 1), closed=datetime(2026, 5, 1)),  # C
        _deal(4, 1, "no_decision", 7, datetime(2025, 1, 1), closed=datetime(2025, 6, 1)),  # D
        _deal(5, 1, "open", 60, datetime(2026, 8, 1), close_date=date(2026, 12, 15)),  # E
        _deal(6, 1, "open", 20, datetime(2026, 10, 5), close_date=date(2027, 1, 20), currency="EUR"),  # F
        _deal(7, 1, "won", 10, datetime(2026, 10, 1), closed=datetime(2026, 11, 25),
              close_date=date(2026, 11, 30)),  # G
        _deal(8, 2, "won", 100, datetime(2026, 10, 1), closed=datetime(2026, 11, 1)),  # K
        _deal(9, 2, "lost", 40, datetime(2026, 9, 1), closed=datetime(2026, 11, 2)),  # L
        _deal(10, 3, "open", 5, datetime(2026, 9, 1), close_date=date(2027, 2, 1)),  # M
    ]
    changes = [
        _change(1, "close_date", "2026-10-01", "2026-10-11", datetime(2026, 10, 11)),  # A: at the closing
        _change(5, "close_date", "2026-10-15", "2026-11-10", datetime(2026, 10, 1)),  # E: pushed
        _change(5, "close_date", "2026-11-10", "2026-12-15", datetime(2026, 11, 1)),  # E: pushed again
        _change(10, "owner_id", "2", "3", datetime(2026, 11, 23)),  # M: handed over after AS_OF
    ]
    opportunities = pl.DataFrame(deals, schema=dict(s.OPPORTUNITY_SCHEMA))
    return opportunities, pl.DataFrame(changes, schema=dict(s.CHANGE_SCHEMA))


def _activities() -> pl.DataFrame:
    rows = [
        (1, datetime(2026, 11, 20), True),  # in the window
        (1, datetime(2026, 10, 25), True),  # 28 days before: in
        (1, datetime(2026, 11, 1), None),  # completion unknown: taken as done, in
        (1, datetime(2026, 10, 20), True),  # 33 days before: out
        (1, datetime(2026, 11, 21), False),  # not done: out
        (1, datetime(2026, 11, 23), True),  # after AS_OF: out
        (2, datetime(2026, 11, 10), True),
    ]
    return pl.DataFrame(rows, schema={"owner_id": pl.Int64(), "occurred_at": s.TIMESTAMP, "completed": pl.Boolean()},
                        orient="row")


def _inputs(quotas: dict[int, float]) -> ScorecardInputs:
    opportunities, changes = _org()
    findings = pl.DataFrame({"id": [5, 5, 6, 1], "code": ["no_next_step", "pushed_often", "no_activity",
                                                          "no_activity"]})  # the one on won A is not open
    return ScorecardInputs(
        timeline=build_timeline(opportunities, changes), changes=changes, activities=_activities(),
        findings=findings,
        quotas=pl.DataFrame({"user_id": list(quotas), "quota": list(quotas.values())},
                            schema={"user_id": pl.Int64(), "quota": pl.Float64()}),
        rates=RATES, corporate="USD")


def _cards(reps: list[int]) -> dict[int, dict[str, Any]]:
    table = rep_scorecards(_inputs({1: 120.0, 3: 50.0}), reps=pl.Series(reps), as_of=AS_OF, quarter=Q4)
    return {row["user_id"]: row for row in table.iter_rows(named=True)}


def test_a_rep_with_every_kind_of_deal() -> None:
    one = _cards([1, 2, 3])[1]
    assert one["quota"] == 120.0
    assert (one["won_quarter"], one["won_quarter_count"]) == (30.0, 1)  # A only (G is won after AS_OF)
    assert one["attainment"] == pytest.approx(30 / 120)
    assert (one["won_12m"], one["won_12m_count"]) == (80.0, 2)  # A + B
    assert one["closed_12m"] == 3  # A, B, C (D closed before the trailing year)
    assert one["win_rate"] == pytest.approx(2 / 3)
    assert one["average_won"] == 40.0  # (30 + 50) / 2
    assert one["median_cycle_days"] == 50.0  # median of 40 and 60
    assert (one["open_pipeline"], one["open_deals"]) == (110.0, 3)  # E 60 + F 20 EUR = 40 + G 10
    assert one["pipeline_quarter"] == 70.0  # E and G are due this quarter, F next
    assert one["remaining_quota"] == 90.0  # 120 - 30
    assert one["coverage"] == pytest.approx(70 / 90)
    assert one["activities_30d"] == 3
    assert (one["findings"], one["flagged_deals"]) == (3, 2)  # E twice, F once; A is closed
    assert one["slipped_deals_90d"] == 1  # E; A's change came with its closing


def test_owners_are_those_at_the_date_and_missing_quotas_leave_ratios_empty() -> None:
    cards = _cards([1, 2, 3])
    two, three = cards[2], cards[3]
    # Rep 2: K won this quarter, L lost; M still theirs at AS_OF.
    assert (two["won_quarter"], two["closed_12m"], two["win_rate"]) == (100.0, 2, 0.5)
    assert (two["open_pipeline"], two["open_deals"]) == (5.0, 1)
    assert two["quota"] is None and two["attainment"] is None and two["remaining_quota"] is None
    assert two["coverage"] is None and two["median_cycle_days"] == 31.0
    assert two["activities_30d"] == 1
    # Rep 3: a quota and nothing else yet: 0% attained, no pipeline against 50 to go.
    assert (three["won_quarter"], three["attainment"], three["open_deals"]) == (0.0, 0.0, 0)
    assert (three["remaining_quota"], three["coverage"]) == (50.0, 0.0)
    assert three["win_rate"] is None and three["average_won"] is None and three["median_cycle_days"] is None


def test_a_rep_without_anything_gets_a_row_of_zeros_in_the_order_asked() -> None:
    table = rep_scorecards(_inputs({}), reps=pl.Series([99, 1]), as_of=AS_OF, quarter=Q4)
    assert table["user_id"].to_list() == [99, 1]
    empty = table.row(0, named=True)
    assert all(empty[name] == 0 for name in ("won_quarter", "won_12m", "open_pipeline", "activities_30d",
                                             "findings", "slipped_deals_90d", "closed_12m"))
    assert empty["quota"] is None and empty["win_rate"] is None and empty["coverage"] is None


def test_a_later_date_sees_later_events() -> None:
    """At 2026-11-26, G is won (this quarter) and M belongs to rep 3."""
    later = datetime(2026, 11, 26)
    table = rep_scorecards(_inputs({1: 120.0}), reps=pl.Series([1, 2, 3]), as_of=later, quarter=Q4)
    cards = {row["user_id"]: row for row in table.iter_rows(named=True)}
    assert (cards[1]["won_quarter"], cards[1]["won_quarter_count"]) == (40.0, 2)  # A 30 + G 10
    assert cards[1]["open_pipeline"] == 100.0  # E 60 + F 40
    assert (cards[2]["open_deals"], cards[3]["open_deals"]) == (0, 1)


def test_a_team_total_adds_the_parts_before_dividing() -> None:
    total = team_total(_inputs({1: 120.0, 3: 50.0}), reps=pl.Series([1, 2]), as_of=AS_OF, quarter=Q4)
    assert total["user_id"] is None
    assert total["quota"] == 120.0  # rep 2 has none
    assert total["won_quarter"] == 130.0  # A 30 + K 100
    assert total["attainment"] == pytest.approx(130 / 120)
    assert total["win_rate"] == pytest.approx(3 / 5)  # (2 + 1) / (3 + 2), not the mean of 2/3 and 1/2
    assert total["median_cycle_days"] == 40.0  # of 31, 40, 60
    assert total["remaining_quota"] == 0.0 and total["coverage"] is None  # quota met: nothing left to cover
    assert total["open_deals"] == 4 and total["activities_30d"] == 4


def test_windows_are_settings() -> None:
    short = rep_scorecards(_inputs({}), reps=pl.Series([1]), as_of=AS_OF, quarter=Q4,
                           windows=ScorecardWindows(trailing_days=100, activity_days=3, slip_days=30))
    row = short.row(0, named=True)
    assert row["closed_12m"] == 1 and row["won_12m"] == 30.0  # only A closed after 2026-08-14
    assert row["activities_30d"] == 1  # only 2026-11-20
    assert row["slipped_deals_90d"] == 1  # E's second push, 2026-11-01
    with pytest.raises(InvalidInput, match="slip_days"):
        ScorecardWindows(slip_days=0)


QUOTA_SCHEMA = {"user_id": pl.Int64(), "team_id": pl.Int64(), "period_start": pl.Date(), "period_end": pl.Date(),
                "amount": pl.Float64(), "currency": pl.String()}


def test_quarter_quotas_prefer_the_quarter_then_add_up_months() -> None:
    rows = [
        (1, None, date(2026, 10, 1), date(2026, 12, 31), 300.0, "USD"),  # rep 1's quarter: wins
        (1, None, date(2026, 10, 1), date(2026, 10, 31), 90.0, "USD"),  # ... over its months
        (2, None, date(2026, 10, 1), date(2026, 10, 31), 10.0, "USD"),  # rep 2: months only
        (2, None, date(2026, 11, 1), date(2026, 11, 30), 20.0, "EUR"),  # 20 EUR = 40 USD
        (2, None, date(2026, 11, 1), date(2026, 11, 15), 5.0, "USD"),  # inside November's: left out
        (None, 7, date(2026, 10, 1), date(2026, 12, 31), 999.0, "USD"),  # a team's: not a rep's
        (3, None, date(2026, 7, 1), date(2026, 9, 30), 50.0, "USD"),  # another quarter
    ]
    quotas = pl.DataFrame(rows, schema=QUOTA_SCHEMA, orient="row")
    table = quarter_quotas(quotas, Q4, RATES, corporate="USD")
    assert dict(zip(table["user_id"], table["quota"], strict=True)) == {1: 300.0, 2: 50.0}
    assert quarter_quotas(quotas.clear(), Q4, RATES, corporate="USD").height == 0
