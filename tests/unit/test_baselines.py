"""The three forecast baselines (closewise.ml.baselines) on a hand-made org.

The org (USD corporate; EUR at the static rate 0.8 EUR per USD, so 1 EUR = 1.25 USD), period Q4 2026
= [2026-10-01, 2027-01-01), 92 days, looked at as of 2026-11-16 00:00 (46 days in: half of it remains):

| deal | what | in the corporate currency |
|---|---|---|
| 1 | won 2026-08-15 | 30,000 |
| 2 | won 2026-09-10, 12,000 EUR | 15,000 |
| 3 | won 2026-10-20 (in Q4) | 15,000 |
| 4 | won 2026-11-05 (in Q4) | 10,000 |
| 5 | won 2026-07-20 (before the run-rate window) | 99,000 |
| 6 | lost 2026-09-05 | (50,000, never counted) |
| 7 | open, closes 2026-12-15, probability 60, commit | 40,000 |
| 8 | open, closes 2026-11-30, probability 20, pipeline, 10,000 EUR | 12,500 |
| 9 | open, closes 2027-01-15 (after Q4), probability 90, commit | (100,000, not in Q4) |
| 10 | open, closes 2026-12-01, no probability, stage proposal (playbook default 70), best case | 20,000 |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.analytics.currency import RATES_SCHEMA
from closewise.analytics.snapshots import build_timeline
from closewise.domain.changes import Value, encode
from closewise.domain.enums import ChangeField
from closewise.domain.periods import FiscalCalendar
from closewise.ml import baselines as b

CAL = FiscalCalendar()
Q4 = CAL.parse("2026-Q4")
AS_OF = datetime(2026, 11, 16)
RATES = pl.DataFrame({"currency": ["EUR"], "rate": [0.8], "start_date": [None]}, schema=RATES_SCHEMA)
STAGES = pl.DataFrame({"key": ["discovery", "proposal"], "default_probability": [35.0, 70.0]})


@dataclass
class Deal:
    id: int
    created_at: datetime
    amount: float
    close_date: date
    probability: float | None = 50.0
    category: str = "pipeline"
    currency: str = "USD"
    stage: str = "discovery"
    status: str = "open"
    changes: list[tuple[datetime, str, Value]] = field(default_factory=list)

    def then(self, when: datetime, **values: Value) -> Deal:
        self.changes.extend((when, name, value) for name, value in values.items())
        return self

    def closes(self, when: datetime, status: str) -> Deal:
        closed = "closed" if status == "won" else "omitted"
        return self.then(when, status=status, close_date=when.date(), forecast_category=closed)


def frames(deals: list[Deal]) -> pl.DataFrame:
    """The timeline of `deals`: current rows and a consistent change log."""
    rows: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    for deal in deals:
        values: dict[str, Value] = {
            "stage": deal.stage,
            "status": deal.status,
            "amount": deal.amount,
            "close_date": deal.close_date,
            "probability": deal.probability,
            "forecast_category": deal.category,
        }
        for when, name, value in sorted(deal.changes, key=lambda change: change[0]):
            log.append(
                {
                    s.OPPORTUNITY_ID: deal.id,
                    s.FIELD: name,
                    s.CHANGED_AT: when,
                    s.OLD_VALUE: encode(ChangeField(name), values[name]),
                    s.NEW_VALUE: encode(ChangeField(name), value),
                }
            )
            values[name] = value
        closed = [when for when, name, value in deal.changes if name == "status" and value != "open"]
        rows.append(
            {
                s.ID: deal.id,
                s.OWNER_ID: 1,
                s.ACCOUNT_ID: None,
                s.CURRENCY: deal.currency,
                s.NEXT_STEP: None,
                s.CREATED_AT: deal.created_at,
                s.CLOSED_AT: max(closed) if values["status"] != "open" and closed else None,
                **values,
            }
        )
    opportunities = pl.DataFrame(rows, schema=dict(s.OPPORTUNITY_SCHEMA), orient="row")
    changes = pl.DataFrame(log, schema=dict(s.CHANGE_SCHEMA), orient="row")
    return build_timeline(opportunities, changes)


def org(*, later: bool = False) -> list[Deal]:
    """The org of the module header; with `later`, also what happened after AS_OF."""
    d = date(2026, 12, 31)
    deals = [
        Deal(1, datetime(2026, 6, 1), 30_000, d).closes(datetime(2026, 8, 15, 10), "won"),
        Deal(2, datetime(2026, 6, 15), 12_000, d, currency="EUR").closes(datetime(2026, 9, 10, 10), "won"),
        Deal(3, datetime(2026, 7, 1), 15_000, d).closes(datetime(2026, 10, 20, 10), "won"),
        Deal(4, datetime(2026, 8, 1), 10_000, d).closes(datetime(2026, 11, 5, 10), "won"),
        Deal(5, datetime(2026, 6, 1), 99_000, d).closes(datetime(2026, 7, 20, 10), "won"),
        Deal(6, datetime(2026, 6, 1), 50_000, d).closes(datetime(2026, 9, 5, 10), "lost"),
        Deal(7, datetime(2026, 9, 1), 40_000, date(2026, 12, 15), probability=60, category="commit"),
        Deal(8, datetime(2026, 9, 15), 10_000, date(2026, 11, 30), probability=20, currency="EUR"),
        Deal(9, datetime(2026, 9, 20), 100_000, date(2027, 1, 15), probability=90, category="commit"),
        Deal(10, datetime(2026, 10, 10), 20_000, date(2026, 12, 1), None, "best_case", stage="proposal"),
    ]
    if later:
        # After AS_OF: deal 7 is lost, deal 8 grows and is called commit, deal 9 is pulled into Q4, deal 4 is
        # reopened, and a new deal is created and won.
        deals[6].closes(datetime(2026, 11, 20), "lost")
        deals[7].then(datetime(2026, 11, 18), amount=30_000.0, forecast_category="commit", probability=90.0)
        deals[8].then(datetime(2026, 11, 17), close_date=date(2026, 12, 20))
        deals[3].then(datetime(2026, 11, 25), status="open")
        deals.append(Deal(11, datetime(2026, 11, 17), 70_000, d).closes(datetime(2026, 11, 18), "won"))
    return deals


def test_baselines_by_hand() -> None:
    result = b.baselines(frames(org()), period=Q4, as_of=AS_OF, rates=RATES, corporate="USD", stages=STAGES)
    # Closed-won so far in Q4: deals 3 and 4.
    assert result.closed_won == pytest.approx(15_000 + 10_000)
    # M = Aug-Oct (deals 1, 2, 3) / 3 = (30,000 + 15,000 + 15,000) / 3 = 20,000; half of Q4's 3 months remain:
    # 25,000 + 20,000 × 3 × 0.5.
    assert b.remaining_fraction(Q4, AS_OF) == pytest.approx(46 / 92)
    assert result.run_rate_3 == pytest.approx(25_000 + 20_000 * 3 * 0.5)
    # 25,000 + 40,000 × 0.6 (deal 7) + 12,500 × 0.2 (deal 8) + 20,000 × 0.7 (deal 10, playbook default).
    assert result.crm_weighted == pytest.approx(25_000 + 24_000 + 2_500 + 14_000)
    # 25,000 + deal 7 (the only commit deal closing in Q4).
    assert result.commit == pytest.approx(25_000 + 40_000)
    assert result.as_dict() == {"run_rate_3": result.run_rate_3, "crm_weighted": result.crm_weighted,
                                "commit": result.commit}  # fmt: skip


def test_a_deal_without_probability_counts_zero_without_a_playbook() -> None:
    assert b.crm_weighted(frames(org()), period=Q4, as_of=AS_OF, rates=RATES, corporate="USD") == pytest.approx(
        25_000 + 24_000 + 2_500
    )


def test_later_changes_do_not_alter_a_baseline() -> None:
    now = b.baselines(frames(org()), period=Q4, as_of=AS_OF, rates=RATES, corporate="USD", stages=STAGES)
    known_later = b.baselines(
        frames(org(later=True)), period=Q4, as_of=AS_OF, rates=RATES, corporate="USD", stages=STAGES
    )
    assert known_later == now


def test_before_the_period_nothing_is_closed_and_the_whole_period_remains() -> None:
    start = datetime(2026, 10, 1)
    result = b.baselines(frames(org(later=True)), period=Q4, as_of=start, rates=RATES, corporate="USD")
    assert result.closed_won == 0.0
    # Window July-September: deals 5, 1, 2 = (99,000 + 30,000 + 15,000) / 3 = 48,000 a month, for 3 months.
    assert result.run_rate_3 == pytest.approx(48_000 * 3)
    assert b.monthly_run_rate(frames(org()), as_of=start, rates=RATES, corporate="USD") == pytest.approx(48_000)


def test_an_ended_period_is_its_closed_won_total() -> None:
    # By 2027-01-05, with the later events: deals 3, 11 won in Q4 (deal 4 was reopened): 15,000 + 70,000.
    result = b.baselines(frames(org(later=True)), period=Q4, as_of=datetime(2027, 1, 5), rates=RATES,
                         corporate="USD", stages=STAGES)  # fmt: skip
    assert result.closed_won == pytest.approx(85_000)
    assert result.run_rate_3 == result.crm_weighted == result.commit == result.closed_won


def test_months_before_the_org_existed_are_left_out_of_the_run_rate() -> None:
    # The org's first deal is created 2026-09-15: as of 2026-11-16 only September and October (the months
    # ending after that) are averaged, so M = 8,000 / 2.
    young = frames([Deal(1, datetime(2026, 9, 15), 8_000, date(2026, 12, 1)).closes(datetime(2026, 10, 10), "won")])
    assert b.monthly_run_rate(young, as_of=AS_OF, rates=RATES, corporate="USD") == pytest.approx(4_000)
    empty = frames([])
    assert b.baselines(empty, period=Q4, as_of=AS_OF, rates=RATES, corporate="USD").run_rate_3 == 0.0


def test_a_month_is_scaled_by_its_own_length() -> None:
    # November 2026 as of 2026-11-16 00:00: 15 of 30 days elapsed; closed so far deal 4 (10,000);
    # M = 20,000 over one month: 10,000 + 20,000 × 1 × 0.5.
    november = CAL.parse("2026-11")
    assert b.period_months(november) == 1 and b.period_months(Q4) == 3 and b.period_months(CAL.parse("2026")) == 12
    assert b.run_rate_3(frames(org()), period=november, as_of=AS_OF, rates=RATES, corporate="USD") == pytest.approx(
        10_000 + 20_000 * 0.5
    )
    # Commit deals closing in November: none (deal 7 closes in December); so closed-won so far.
    assert b.commit(frames(org()), period=november, as_of=AS_OF, rates=RATES, corporate="USD") == pytest.approx(10_000)
