"""Coverage (analytics/coverage.py, coverage_learning.py, targets.py) on hand-made frames.

The org: one past quarter to learn from (2024-Q2, `lookback_periods=1`) and the quarter asked about,
2024-Q3, as of 2024-08-01 00:00 UTC, so 61 days are left and the comparable moments are 2024-Q2's end
minus 61 days (2024-05-01) and a week either side (91 / 13 = 7 days). Every past deal is open from
2024-04-01 to its June close, in one stage throughout, so each is seen at all three moments:

    H1 negotiation  100 USD  won 2024-06-10          H3 prospecting  200 USD  won 2024-06-20
    H2 negotiation  300 USD  lost 2024-06-12         H4 prospecting  800 USD  lost 2024-06-25

so r_negotiation = 100 / 400, r_prospecting = 200 / 1000 and the overall rate r = 300 / 1400. Now:

    C1 won 2024-07-15, 1,000 USD (closed-won so far)
    C2 open, negotiation, 400 EUR (rate 0.8 EUR per USD: 500 USD), close date 2024-09-30
    C3 open, prospecting, 500 USD, close date 2024-08-15 (won on 2024-08-20, after as_of)
    C4 open, prospecting, 999 USD, close date 2024-10-15 (outside the quarter)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.analytics.coverage import CoverageReport, CoverageSettings, CoverageStatus, coverage
from closewise.analytics.snapshots import build_timeline
from closewise.analytics.targets import target_from_quotas
from closewise.cli.coverage_commands import parse_amount
from closewise.domain.periods import FiscalCalendar
from closewise.errors import InvalidInput

CAL = FiscalCalendar()
Q3 = CAL.parse("2024-Q3")
AS_OF = datetime(2024, 8, 1)
RATES = pl.DataFrame(
    {"currency": ["EUR"], "rate": [0.8], "start_date": [None]},
    schema={"currency": pl.String, "rate": pl.Float64, "start_date": pl.Date},
)
STAGES = ["prospecting", "qualification", "negotiation"]
M = 2.0  # prior strength used in these tests
R = 300 / 1400


def _deal(
    i: int,
    created: datetime,
    stage: str,
    amount: float,
    close: date,
    *,
    status: str = "open",
    closed: datetime | None = None,
    currency: str = "USD",
    segment: str = "smb",
) -> dict[str, Any]:
    return {
        s.ID: i,
        s.OWNER_ID: 1,
        s.ACCOUNT_ID: None,
        s.STAGE: stage,
        s.STATUS: status,
        s.AMOUNT: amount,
        s.CURRENCY: currency,
        s.CLOSE_DATE: close,
        s.FORECAST_CATEGORY: "pipeline",
        s.PROBABILITY: None,
        s.NEXT_STEP: None,
        s.CREATED_AT: created,
        s.CLOSED_AT: closed,
        "segment": segment,
    }


def _org(future: str = "as planned") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Opportunities and their status log. `future` rewrites what happens after AS_OF."""
    april = datetime(2024, 4, 1)
    deals = [
        _deal(1, april, "negotiation", 100, date(2024, 6, 10), status="won", closed=datetime(2024, 6, 10)),
        _deal(2, april, "negotiation", 300, date(2024, 6, 12), status="lost", closed=datetime(2024, 6, 12)),
        _deal(3, april, "prospecting", 200, date(2024, 6, 20), status="won", closed=datetime(2024, 6, 20)),
        _deal(4, april, "prospecting", 800, date(2024, 6, 25), status="lost", closed=datetime(2024, 6, 25)),
        _deal(
            11,
            datetime(2024, 6, 1),
            "negotiation",
            1000,
            date(2024, 7, 15),
            status="won",
            closed=datetime(2024, 7, 15),
            segment="enterprise",
        ),
        _deal(12, datetime(2024, 7, 1), "negotiation", 400, date(2024, 9, 30), currency="EUR"),
        _deal(
            13, datetime(2024, 7, 1), "prospecting", 500, date(2024, 8, 15), status="won", closed=datetime(2024, 8, 20)
        ),
        _deal(14, datetime(2024, 7, 1), "prospecting", 999, date(2024, 10, 15)),
    ]
    changes = [(d[s.ID], "status", "open", d[s.STATUS], d[s.CLOSED_AT]) for d in deals if d[s.CLOSED_AT]]
    if future == "rewritten":
        # Deal 13 is lost instead; deal 12 advances, grows and is won; deal 14 is pulled into the quarter.
        deals[6].update({s.STATUS: "lost"})
        changes = [c if c[0] != 13 else (13, "status", "open", "lost", datetime(2024, 8, 20)) for c in changes]
        deals[5].update({s.STATUS: "won", s.AMOUNT: 4000.0, s.CLOSED_AT: datetime(2024, 9, 1)})
        changes += [
            (12, "amount", "400", "4000", datetime(2024, 8, 5)),
            (12, "status", "open", "won", datetime(2024, 9, 1)),
        ]
        deals[7].update({s.CLOSE_DATE: date(2024, 9, 1)})
        changes += [(14, "close_date", "2024-10-15", "2024-09-01", datetime(2024, 8, 2))]
    opportunities = pl.DataFrame(deals, schema={**s.OPPORTUNITY_SCHEMA, "segment": pl.String})
    log = pl.DataFrame(
        changes, schema=[s.OPPORTUNITY_ID, s.FIELD, s.OLD_VALUE, s.NEW_VALUE, s.CHANGED_AT], orient="row"
    ).with_columns(pl.col(s.CHANGED_AT).cast(s.TIMESTAMP))
    return opportunities, log


def _report(
    target: float = 3000.0, future: str = "as planned", as_of: datetime = AS_OF, **settings: Any
) -> CoverageReport:
    opportunities, changes = _org(future)
    return coverage(
        build_timeline(opportunities, changes),
        period=Q3,
        as_of=as_of,
        target=target,
        calendar=CAL,
        rates=RATES,
        corporate="USD",
        stage_order=STAGES,
        settings=CoverageSettings(lookback_periods=1, prior_deals=M, min_segment_wins=2, **settings),
    )


def _smoothed(n: int, observed: float) -> float:
    return (n * observed + M * R) / (n + M)


def test_closed_won_gap_and_pipeline_in_the_period() -> None:
    report = _report()
    assert report.history_periods == ["2024-Q2"]
    assert report.days_left == 61
    assert report.closed_won == pytest.approx(1000)  # C1 only: C3 is won after as_of
    assert report.gap == pytest.approx(2000)
    assert report.open_deals == 2  # C2 and C3; C4 closes after the quarter
    assert report.open_pipeline == pytest.approx(400 / 0.8 + 500)


def test_stage_conversion_is_the_smoothed_won_share_of_amount() -> None:
    report = _report()
    rows = {row.stage: row for row in report.by_stage}
    assert [row.stage for row in report.by_stage] == STAGES  # playbook order, stages without deals included
    assert report.overall_conversion == pytest.approx(R)
    assert rows["negotiation"].observed_conversion == pytest.approx(0.25)
    assert rows["negotiation"].history_deals == 2
    assert rows["negotiation"].conversion == pytest.approx(_smoothed(2, 0.25))
    assert rows["prospecting"].conversion == pytest.approx(_smoothed(2, 0.2))
    # A stage never seen gets the overall rate.
    assert rows["qualification"].observed_conversion is None
    assert rows["qualification"].conversion == pytest.approx(R)


def test_expected_bookings_needed_pipeline_and_ratios() -> None:
    report = _report()
    p_neg, p_pro = _smoothed(2, 0.25), _smoothed(2, 0.2)
    expected = 500 * p_neg + 500 * p_pro
    assert report.expected_from_pipeline == pytest.approx(expected)
    # Each deal a Bernoulli win of its amount: variance p (1 - p) a^2, summed.
    assert report.expected_from_pipeline_sd == pytest.approx(
        math.sqrt(p_neg * (1 - p_neg) * 500**2 + p_pro * (1 - p_pro) * 500**2)
    )
    remaining = 2000 - expected
    assert report.remaining_gap == pytest.approx(remaining)
    assert report.pipeline_needed == pytest.approx(remaining / R)
    needed = {row.stage: row.pipeline_needed for row in report.by_stage}
    assert needed["prospecting"] == pytest.approx(remaining / p_pro)
    assert needed["negotiation"] == pytest.approx(remaining / p_neg)
    assert report.coverage_ratio == pytest.approx(1000 / 2000)
    assert report.required_coverage_ratio == pytest.approx(1 / R)
    assert report.required_coverage_for_mix == pytest.approx(1000 / expected)
    assert sum(row.expected for row in report.by_stage) == pytest.approx(report.expected_from_pipeline)


def test_create_by_from_the_won_cycle_per_segment() -> None:
    report = _report()
    # Won by as_of: H1 70 days, H3 80 days (smb), C1 44 days (enterprise: one win, below min_segment_wins).
    cycles = {c.segment: c for c in report.cycles}
    assert set(cycles) == {"all", "smb"}
    assert cycles["all"].median_days == pytest.approx(70)
    assert cycles["all"].p25_days == pytest.approx(44 + 0.5 * (70 - 44))  # linear, position 0.5
    assert cycles["smb"].median_days == pytest.approx(75)
    assert report.create_by == date(2024, 7, 22)  # the last day, 2024-09-30, minus 70 days
    assert report.create_by_latest == date(2024, 8, 4)  # 57 days back


def test_verdicts() -> None:
    short = _report()
    assert short.status is CoverageStatus.SHORT
    assert short.verdict.startswith("Short:") and "2024-08-04" in short.verdict
    assert _report(target=1000).status is CoverageStatus.REACHED
    assert _report(target=1100).status is CoverageStatus.ON_TRACK  # gap 100 < expected ~225
    late = _report(as_of=datetime(2024, 9, 1))
    assert late.status is CoverageStatus.LATE and "existing deals" in late.verdict
    assert short.notes  # four past deals only: flagged as rough


def test_the_future_does_not_change_the_answer() -> None:
    assert _report().to_dict() == _report(future="rewritten").to_dict()
    # ... while it does once it is in the past.
    later = datetime(2024, 9, 2)
    assert _report(as_of=later).closed_won != _report(future="rewritten", as_of=later).closed_won


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 0.0}, "positive"),
        ({"target": float("nan")}, "positive"),
        ({"as_of": datetime(2024, 10, 1)}, "ended"),
        ({"as_of": datetime(2024, 4, 10)}, "not enough history"),
    ],
)
def test_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _report(**kwargs)


def test_json_document_is_complete_and_finite() -> None:
    document = _report().to_dict()
    for key in (
        "period_start",
        "period_end",
        "as_of",
        "currency",
        "target",
        "closed_won",
        "gap",
        "open_pipeline",
        "expected_from_pipeline",
        "coverage_ratio",
        "required_coverage_ratio",
        "pipeline_needed",
        "by_stage",
        "create_by",
        "verdict",
    ):
        assert key in document
    assert document["period_end"] == "2024-09-30"
    assert document["by_stage"][0]["stage"] == "prospecting"


# --- targets from quotas ---------------------------------------------------------------------------------

USERS = pl.DataFrame(
    {"id": [1, 2, 3, 4], "manager_id": [None, 1, 1, 2]}, schema={"id": pl.Int64, "manager_id": pl.Int64}
)


def _quotas(rows: Sequence[tuple[int | None, int | None, date, date, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "user_id": pl.Int64,
            "team_id": pl.Int64,
            "period_start": pl.Date,
            "period_end": pl.Date,
            "amount": pl.Float64,
            "currency": pl.String,
        },
        orient="row",
    )


def test_target_is_the_top_of_the_quota_hierarchy() -> None:
    start, end = Q3.start, Q3.last_day
    # Leader 1 carries managers 2 and 3; rep 4 reports to 2. Team 9 repeats the sum.
    quotas = _quotas(
        [
            (1, None, start, end, 300, "USD"),
            (2, None, start, end, 200, "USD"),
            (3, None, start, end, 100, "USD"),
            (4, None, start, end, 200, "USD"),
            (None, 9, start, end, 300, "USD"),
        ]
    )
    found = target_from_quotas(quotas, USERS, Q3, RATES, corporate="USD")
    assert found is not None and (found.amount, found.scope) == (300, "users")
    # Without the leader, the managers are the top: 200 + 100; EUR converted.
    no_leader = quotas.filter(pl.col("user_id") != 1).with_columns(
        pl.when(pl.col("user_id") == 3).then(pl.lit("EUR")).otherwise("currency").alias("currency")
    )
    found = target_from_quotas(no_leader, USERS, Q3, RATES, corporate="USD")
    assert found is not None and found.amount == pytest.approx(200 + 100 / 0.8)
    teams_only = quotas.filter(pl.col("user_id").is_null())
    found = target_from_quotas(teams_only, USERS, Q3, RATES, corporate="USD")
    assert found is not None and (found.amount, found.scope) == (300, "teams")


def test_a_year_target_adds_its_quarters_but_not_months_inside_them() -> None:
    year = CAL.parse("2024")
    quarters = [CAL.quarter(2024, q) for q in range(1, 5)]
    rows = [(1, None, q.start, q.last_day, 100.0, "USD") for q in quarters]
    rows.append((1, None, date(2024, 1, 1), date(2024, 1, 31), 30.0, "USD"))  # a month inside Q1
    found = target_from_quotas(_quotas(rows), USERS, year, RATES, corporate="USD")
    assert found is not None and found.amount == 400
    assert target_from_quotas(_quotas([]), USERS, year, RATES, corporate="USD") is None


@pytest.mark.parametrize(
    ("text", "value"), [("1200000", 1.2e6), ("1,200,000", 1.2e6), ("1.2M", 1.2e6), ("500k", 5e5), (" 750.5 ", 750.5)]
)
def test_parse_amount(text: str, value: float) -> None:
    assert parse_amount(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-5", "0", "1e6", ""])
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="--target"):
        parse_amount(text)
