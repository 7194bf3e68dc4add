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

Every deal sits in the playbook stage `proposal` (of qualification, proposal, negotiation) from its creation;
`test_stage_conversion_follows_each_deal_through_the_funnel` has a rep of its own whose deals move.
Forecast calls (`_submissions`) are described beside them.
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
    scorecards,
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
        (1, "call", datetime(2026, 11, 20), True),  # in the window
        (1, "meeting", datetime(2026, 10, 25), True),  # 28 days before: in
        (1, "EMAIL", datetime(2026, 11, 1), None),  # completion unknown: taken as done, in; type read in any case
        (1, "task", datetime(2026, 10, 20), True),  # 33 days before: out
        (1, "task", datetime(2026, 11, 21), False),  # not done: out
        (1, "task", datetime(2026, 11, 23), True),  # after AS_OF: out
        (2, None, datetime(2026, 11, 10), True),  # no type: "other"
    ]
    return pl.DataFrame(rows, schema={"owner_id": pl.Int64(), "type": pl.String(), "occurred_at": s.TIMESTAMP,
                                      "completed": pl.Boolean()}, orient="row")


STAGES = pl.DataFrame({"key": ["qualification", "proposal", "negotiation"], "order": [1, 2, 3]})
SUBMISSION_SCHEMA = {"id": pl.Int64(), "user_id": pl.Int64(), "period": pl.String(), "submitted_at": s.TIMESTAMP,
                     "commit": pl.Float64(), "best_case": pl.Float64(), "pipeline": pl.Float64(),
                     "kind": pl.String(), "subject_id": pl.Int64()}


def _submissions() -> pl.DataFrame:
    """Rep 1's wins by period, as known at each period's end: 2026-Q1 and March 2026 50 (B), October 2026 30 (A),
    2026-Q2 nothing. Rep 2 won nothing in a period that has ended by AS_OF (K's quarter is still running)."""
    rows = [
        (1, 1, "2026-Q1", datetime(2026, 1, 10), 80.0, "submission"),  # superseded by the next
        (2, 1, "2026-Q1", datetime(2026, 3, 20), 60.0, "submission"),  # final: (60 - 50) / 50 = +0.2
        (3, 1, "2026-Q1", datetime(2026, 4, 2), 999.0, "submission"),  # after the quarter ended: not a call on it
        (4, 2, "2026-Q1", datetime(2026, 3, 25), 5.0, "adjustment"),  # a manager's adjustment: not rep 1's call
        (5, 1, "2026-03", datetime(2026, 3, 1), 40.0, "submission"),  # (40 - 50) / 50 = -0.2
        (6, 1, "2026-10", datetime(2026, 10, 20), 20.0, "submission"),  # (20 - 30) / 30 = -1/3
        (7, 1, "2026-Q2", datetime(2026, 6, 1), 10.0, "submission"),  # nothing won: no error to score
        (8, 1, "2026-Q4", datetime(2026, 11, 2), 90.0, "submission"),  # not ended at AS_OF
        (9, 2, "2026-Q3", datetime(2026, 9, 1), 50.0, "submission"),  # rep 2 won nothing in Q3
        (10, 1, "not a period", datetime(2026, 3, 1), 1.0, "submission"),  # unreadable: skipped
    ]
    return pl.DataFrame([(i, u, p, at, c, c, None, k, None) for i, u, p, at, c, k in rows], schema=SUBMISSION_SCHEMA,
                        orient="row")


def _inputs(quotas: dict[int, float], *, trend_quotas: dict[tuple[int, date], float] | None = None,
            opportunities: pl.DataFrame | None = None, changes: pl.DataFrame | None = None) -> ScorecardInputs:
    if opportunities is None or changes is None:
        opportunities, changes = _org()
    findings = pl.DataFrame({"id": [5, 5, 6, 1], "code": ["no_next_step", "pushed_often", "no_activity",
                                                          "no_activity"]})  # the one on won A is not open
    by_quarter = trend_quotas or {}
    return ScorecardInputs(
        opportunities=opportunities, timeline=build_timeline(opportunities, changes), changes=changes,
        stages=STAGES, activities=_activities(), findings=findings,
        quotas=pl.DataFrame({"user_id": list(quotas), "quota": list(quotas.values())},
                            schema={"user_id": pl.Int64(), "quota": pl.Float64()}),
        trend_quotas=pl.DataFrame({"user_id": [u for u, _ in by_quarter], "period_start": [d for _, d in by_quarter],
                                   "quota": list(by_quarter.values())},
                                  schema={"user_id": pl.Int64(), "period_start": pl.Date(), "quota": pl.Float64()}),
        submissions=_submissions(), rates=RATES, corporate="USD", calendar=FiscalCalendar())


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


# --- pipeline created, activity mix, slippage, forecast accuracy ------------------------------------------


def test_pipeline_created_this_quarter_counts_what_was_opened_by_the_date() -> None:
    cards = _cards([1, 2, 3])
    # Rep 1 opened F (20 EUR = 40 USD) on 2026-10-05 and G (10) on 2026-10-01; E and A were opened in Q3.
    assert (cards[1]["created_quarter"], cards[1]["created_quarter_count"]) == (40.0 + 10.0, 2)
    # Rep 2 opened K (100) on 2026-10-01; it is won since, and still pipeline created this quarter.
    assert (cards[2]["created_quarter"], cards[2]["created_quarter_count"]) == (100.0, 1)
    assert (cards[3]["created_quarter"], cards[3]["created_quarter_count"]) == (0.0, 0)
    early = rep_scorecards(_inputs({}), reps=pl.Series([1]), as_of=datetime(2026, 10, 3), quarter=Q4).row(0, named=True)
    assert (early["created_quarter"], early["created_quarter_count"]) == (10.0, 1)  # F was not opened yet


def test_activity_mix_splits_the_window_s_activities_by_type() -> None:
    cards = _cards([1, 2])
    one, two = cards[1], cards[2]
    # The three activities of rep 1 counted in the 30 days: a call, a meeting and an email.
    assert (one["calls_30d"], one["meetings_30d"], one["emails_30d"], one["tasks_30d"]) == (1, 1, 1, 0)
    assert one["other_activities_30d"] == 0 and two["other_activities_30d"] == 1  # rep 2's has no type
    for card in (one, two):
        assert sum(card[name] for name in ("calls_30d", "emails_30d", "meetings_30d", "tasks_30d",
                                           "other_activities_30d")) == card["activities_30d"]


def test_slip_rate_is_the_share_of_the_year_s_deals_pushed_while_open() -> None:
    cards = _cards([1, 2, 3])
    # Rep 1 opened A, B, C, E, F, G after 2025-11-22 12:00 (D is older); E was pushed twice while open; A's
    # close date moved only at its closing (bookkeeping).
    assert (cards[1]["deals_12m"], cards[1]["pushed_deals_12m"]) == (6, 1)
    assert cards[1]["slip_rate"] == pytest.approx(1 / 6)
    assert (cards[2]["deals_12m"], cards[2]["pushed_deals_12m"], cards[2]["slip_rate"]) == (3, 0, 0.0)  # K, L, M
    assert cards[3]["deals_12m"] == 0 and cards[3]["slip_rate"] is None  # M was still rep 2's at AS_OF


def test_forecast_accuracy_scores_each_final_call_against_what_was_won() -> None:
    cards = _cards([1, 2])
    one = cards[1]
    # Scored calls: 2026-Q1 +0.2, 2026-03 -0.2, 2026-10 -1/3 (2026-Q2 had nothing won, 2026-Q4 has not ended).
    errors = [0.2, -0.2, -1 / 3]
    assert one["forecast_calls"] == 3
    assert one["forecast_mape"] == pytest.approx(sum(abs(e) for e in errors) / 3)
    assert one["forecast_bias"] == pytest.approx(-0.2)  # the median
    assert one["forecast_label"] == "sandbagger"  # commit / actual at the median is 0.8, under 0.92
    two = cards[2]
    assert (two["forecast_calls"], two["forecast_mape"], two["forecast_bias"], two["forecast_label"]) == \
        (0, None, None, None)
    # A year later those calls have left the trailing window, and 2026-Q4 has ended: its call of 90 against A 30
    # and G 10 won in it.
    later = rep_scorecards(_inputs({}), reps=pl.Series([1]), as_of=datetime(2027, 11, 22), quarter=Q4)
    row = later.row(0, named=True)
    assert (row["forecast_calls"], row["forecast_mape"]) == (1, pytest.approx((90 - 40) / 40))
    assert row["forecast_label"] == "happy_ears"


def test_the_scored_calls_keep_each_period_s_actual_and_only_what_had_ended() -> None:
    result = scorecards(_inputs({}), reps=pl.Series([1, 2]), as_of=AS_OF, quarter=Q4)
    calls = {(row["user_id"], row["period"]): row for row in result.calls.iter_rows(named=True)}
    assert set(calls) == {(1, "2026-Q1"), (1, "2026-03"), (1, "2026-10"), (1, "2026-Q2"), (2, "2026-Q3")}
    assert (calls[(1, "2026-Q1")]["commit"], calls[(1, "2026-Q1")]["actual"]) == (60.0, 50.0)
    assert calls[(1, "2026-Q2")]["actual"] == 0.0 and calls[(1, "2026-Q2")]["pct_error"] is None


def test_the_total_pools_the_new_figures_too() -> None:
    total = team_total(_inputs({}), reps=pl.Series([1, 2]), as_of=AS_OF, quarter=Q4)
    assert (total["created_quarter"], total["created_quarter_count"]) == (150.0, 3)
    assert total["slip_rate"] == pytest.approx(1 / 9)  # 1 pushed of 6 + 3 deals
    assert total["forecast_calls"] == 3 and total["forecast_bias"] == pytest.approx(-0.2)  # rep 2 adds no call
    assert total["activities_30d"] == total["calls_30d"] + total["emails_30d"] + total["meetings_30d"] \
        + total["tasks_30d"] + total["other_activities_30d"] == 4


# --- stage conversion -------------------------------------------------------------------------------------


def test_stage_conversion_when_every_deal_stays_in_one_stage() -> None:
    """With no stage changes, each deal entered `proposal` only; it advanced if won by AS_OF."""
    result = scorecards(_inputs({}), reps=pl.Series([1, 2, 3]), as_of=AS_OF, quarter=Q4)
    rows = {(r["user_id"], r["stage"]): r for r in result.stages.iter_rows(named=True)}
    # Rep 1's cohort A, B, C, E, F, G: A and B won, C lost, E, F and G still open (G is won only after AS_OF).
    one = rows[(1, "proposal")]
    assert (one["entered"], one["advanced"], one["pending"]) == (6, 2, 3)
    assert one["conversion_rate"] == pytest.approx(2 / 3)
    assert rows[(1, "qualification")]["entered"] == 0 and rows[(1, "qualification")]["conversion_rate"] is None
    # Rep 2: K won, L lost, M open. Rep 3 has a row per stage, all zero.
    assert (rows[(2, "proposal")]["advanced"], rows[(2, "proposal")]["pending"]) == (1, 1)
    assert all(rows[(3, stage)]["entered"] == 0 for stage in ("qualification", "proposal", "negotiation"))
    total = rows[(None, "proposal")]
    assert (total["entered"], total["advanced"], total["pending"]) == (9, 3, 4)
    assert total["conversion_rate"] == pytest.approx(3 / 5)
    cards = {row["user_id"]: row for row in result.reps.iter_rows(named=True)}
    assert (cards[1]["stage_decided"], cards[1]["stage_advanced"]) == (3, 2)
    assert result.total["stage_conversion"] == pytest.approx(3 / 5)


def _funnel() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rep 5's deals, moving through qualification (1), proposal (2), negotiation (3):
    P1 created 2026-06-01, proposal 07-01, negotiation 08-01, won 09-01;  P2 created 06-01, proposal 07-10,
    lost 08-10;  P3 created 10-01, still in qualification;  P4 created 05-01, lost 05-20 in qualification;
    P5 created 2025-01-01 (before the trailing year), proposal, won: not in the cohort."""
    deals = [
        {**_deal(21, 5, "won", 10, datetime(2026, 6, 1), closed=datetime(2026, 9, 1)), s.STAGE: "negotiation"},
        {**_deal(22, 5, "lost", 10, datetime(2026, 6, 1), closed=datetime(2026, 8, 10)), s.STAGE: "proposal"},
        {**_deal(23, 5, "open", 10, datetime(2026, 10, 1), close_date=date(2026, 12, 1)),
         s.STAGE: "qualification"},
        {**_deal(24, 5, "lost", 10, datetime(2026, 5, 1), closed=datetime(2026, 5, 20)), s.STAGE: "qualification"},
        {**_deal(25, 5, "won", 10, datetime(2025, 1, 1), closed=datetime(2025, 3, 1)), s.STAGE: "proposal"},
    ]
    changes = [
        _change(21, "stage", "qualification", "proposal", datetime(2026, 7, 1)),
        _change(21, "stage", "proposal", "negotiation", datetime(2026, 8, 1)),
        _change(22, "stage", "qualification", "proposal", datetime(2026, 7, 10)),
        _change(25, "stage", "qualification", "proposal", datetime(2025, 2, 1)),
    ]
    return (pl.DataFrame(deals, schema=dict(s.OPPORTUNITY_SCHEMA)),
            pl.DataFrame(changes, schema=dict(s.CHANGE_SCHEMA)))


def test_stage_conversion_follows_each_deal_through_the_funnel() -> None:
    opportunities, changes = _funnel()
    result = scorecards(_inputs({}, opportunities=opportunities, changes=changes), reps=pl.Series([5]),
                        as_of=AS_OF, quarter=Q4)
    rows = {r["stage"]: r for r in result.stages.iter_rows(named=True) if r["user_id"] == 5}
    # qualification: P1-P4 entered; P1 and P2 moved on; P3 is undecided; P4 was lost there.
    assert (rows["qualification"]["entered"], rows["qualification"]["advanced"],
            rows["qualification"]["pending"]) == (4, 2, 1)
    assert rows["qualification"]["conversion_rate"] == pytest.approx(2 / 3)
    # proposal: P1 moved on, P2 was lost there.  negotiation: P1 won.
    assert (rows["proposal"]["entered"], rows["proposal"]["advanced"]) == (2, 1)
    assert (rows["negotiation"]["entered"], rows["negotiation"]["advanced"]) == (1, 1)
    card = result.reps.row(0, named=True)
    assert (card["stage_decided"], card["stage_advanced"]) == (3 + 2 + 1, 2 + 1 + 1)
    assert card["stage_conversion"] == pytest.approx(4 / 6)
    # Before P1 reached negotiation (2026-07-15), it is pending in proposal, and P3 did not exist yet.
    early = scorecards(_inputs({}, opportunities=opportunities, changes=changes), reps=pl.Series([5]),
                       as_of=datetime(2026, 7, 15), quarter=Q4)
    before = {r["stage"]: r for r in early.stages.iter_rows(named=True) if r["user_id"] == 5}
    assert (before["qualification"]["entered"], before["qualification"]["advanced"]) == (3, 2)  # P1, P2, P4
    assert (before["proposal"]["entered"], before["proposal"]["pending"]) == (2, 2)
    assert before["negotiation"]["entered"] == 0


# --- the trend over quarters -------------------------------------------------------------------------------


def test_the_trend_gives_each_rep_the_last_six_quarters() -> None:
    quotas = {(1, date(2026, 7, 1)): 100.0, (1, date(2026, 10, 1)): 120.0}
    result = scorecards(_inputs({1: 120.0}, trend_quotas=quotas), reps=pl.Series([1, 2]), as_of=AS_OF, quarter=Q4)
    trend = {(r["user_id"], r["quarter"]): r for r in result.trend.iter_rows(named=True)}
    labels = ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert [r["quarter"] for r in result.trend.iter_rows(named=True) if r["user_id"] == 1] == labels
    assert [trend[(1, q)]["partial"] for q in labels] == [False] * 5 + [True]
    q1 = trend[(1, "2026-Q1")]  # B won 50 (created 01-01); C (999) opened 02-01
    assert (q1["won"], q1["won_count"], q1["closed_count"], q1["win_rate"]) == (50.0, 1, 1, 1.0)
    assert (q1["created"], q1["created_count"]) == (50.0 + 999.0, 2)
    assert q1["quota"] is None and q1["attainment"] is None
    assert (q1["call"], q1["call_actual"], q1["call_error"]) == (60.0, 50.0, pytest.approx(0.2))
    q2 = trend[(1, "2026-Q2")]  # C lost; a call of 10 with nothing won
    assert (q2["won"], q2["closed_count"], q2["win_rate"], q2["average_won"]) == (0.0, 1, 0.0, None)
    assert (q2["call"], q2["call_actual"], q2["call_error"]) == (10.0, 0.0, None)
    q3 = trend[(1, "2026-Q3")]  # nothing closed; A (30) and E (60) opened; quota 100
    assert (q3["won"], q3["closed_count"], q3["win_rate"], q3["created"], q3["attainment"]) == \
        (0.0, 0, None, 90.0, 0.0)
    q4 = trend[(1, "2026-Q4")]  # to date: A won 30 (G only after AS_OF); F and G opened
    assert (q4["won"], q4["won_count"], q4["created"], q4["quota"]) == (30.0, 1, 50.0, 120.0)
    assert q4["attainment"] == pytest.approx(30 / 120) and q4["call"] is None  # the quarter has not ended
    assert trend[(1, "2025-Q3")]["closed_count"] == 0  # D closed in 2025-Q2, before the trend
    # The total per quarter adds the reps: Q4 has A and K won, L lost.
    total = trend[(None, "2026-Q4")]
    assert (total["won"], total["won_count"], total["closed_count"]) == (130.0, 2, 3)
    assert total["win_rate"] == pytest.approx(2 / 3) and total["quota"] == 120.0
    # Q3's total call is rep 2's 50 against rep 2's nothing: no error to score.
    assert (trend[(None, "2026-Q3")]["call"], trend[(None, "2026-Q3")]["call_error"]) == (50.0, None)
    assert (trend[(None, "2026-Q1")]["call"], trend[(None, "2026-Q1")]["call_actual"]) == (60.0, 50.0)


def test_the_trend_knows_only_what_was_known_at_the_date() -> None:
    later = scorecards(_inputs({}), reps=pl.Series([1]), as_of=datetime(2026, 11, 26), quarter=Q4)
    q4 = next(r for r in later.trend.iter_rows(named=True) if r["user_id"] == 1 and r["quarter"] == "2026-Q4")
    assert (q4["won"], q4["won_count"]) == (40.0, 2)  # A 30 and G 10, won 2026-11-25
    short = scorecards(_inputs({}), reps=pl.Series([1]), as_of=AS_OF, quarter=Q4,
                       windows=ScorecardWindows(trend_quarters=2))
    assert short.trend.filter(pl.col("user_id") == 1)["quarter"].to_list() == ["2026-Q3", "2026-Q4"]
