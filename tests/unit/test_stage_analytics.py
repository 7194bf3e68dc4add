"""Stage analytics (analytics/stages.py, cycle.py, slippage.py, history.py) on small hand-made frames.

Every expected number is worked out from the deals drawn in the comments. Days are counted from T0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from closewise.analytics import history
from closewise.analytics import schema as s
from closewise.analytics.cycle import sales_cycle, velocity
from closewise.analytics.slippage import deal_slippage, slippage
from closewise.analytics.stages import stage_conversion, time_in_stage
from closewise.errors import InvalidInput

T0 = datetime(2025, 1, 1)
STAGES = pl.DataFrame({"key": ["a", "b", "c"], "name": ["A", "B", "C"], "order": [1, 2, 3]})


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def opportunities(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """An opportunities frame: each row gives id, created (day), stage, status and optionally closed (day),
    owner, amount, currency, segment; other columns take plain defaults."""
    records = []
    for row in rows:
        records.append(
            {
                s.ID: row["id"],
                s.OWNER_ID: row.get("owner", 1),
                s.ACCOUNT_ID: None,
                s.STAGE: row["stage"],
                s.STATUS: row["status"],
                s.AMOUNT: float(row.get("amount", 1000.0)),
                s.CURRENCY: row.get("currency", "USD"),
                s.CLOSE_DATE: None,
                s.FORECAST_CATEGORY: None,
                s.PROBABILITY: None,
                s.NEXT_STEP: None,
                s.CREATED_AT: day(row["created"]),
                s.CLOSED_AT: day(row["closed"]) if "closed" in row else None,
                "segment": row.get("segment", "smb"),
            }
        )
    return pl.DataFrame(records, schema={**s.OPPORTUNITY_SCHEMA, "segment": pl.String()})


def changes(rows: list[tuple[int, str, str | None, str | None, float]]) -> pl.DataFrame:
    """A changes frame from (opportunity, field, old, new, day) tuples, in log order."""
    return pl.DataFrame(
        [
            {s.OPPORTUNITY_ID: o, s.FIELD: f, s.OLD_VALUE: old, s.NEW_VALUE: new, s.CHANGED_AT: day(d)}
            for o, f, old, new, d in rows
        ],
        schema=dict(s.CHANGE_SCHEMA),
    )


def by_stage(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["stage"]: row for row in frame.to_dicts()}


# Five deals through stages a → b → c:
#   1: created in a (day 0), → b day 2, → c day 5, won day 9
#   2: created in a (day 0), → b day 4, lost day 10
#   3: created in a (day 0), lost day 3
#   4: created in b (day 1, e.g. a converted lead), → c day 3, still open
#   5: created in a (day 0), no change, still open
#   6: created in a on day 20 (after the as-of dates used below, except NOW)
FUNNEL_OPPS = opportunities(
    [
        {"id": 1, "created": 0, "stage": "c", "status": "won", "closed": 9},
        {"id": 2, "created": 0, "stage": "b", "status": "lost", "closed": 10},
        {"id": 3, "created": 0, "stage": "a", "status": "lost", "closed": 3},
        {"id": 4, "created": 1, "stage": "c", "status": "open"},
        {"id": 5, "created": 0, "stage": "a", "status": "open"},
        {"id": 6, "created": 20, "stage": "a", "status": "open"},
    ]
)
FUNNEL_LOG = changes(
    [
        (1, "stage", "a", "b", 2),
        (1, "stage", "b", "c", 5),
        (1, "status", "open", "won", 9),
        (2, "stage", "a", "b", 4),
        (2, "status", "open", "lost", 10),
        (3, "status", "open", "lost", 3),
        (4, "stage", "b", "c", 3),
    ]
)
NOW = day(30)


def test_stage_conversion_counts_and_rates() -> None:
    rows = by_stage(stage_conversion(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=NOW))
    assert list(rows) == ["a", "b", "c"]  # playbook order
    a, b, c = rows["a"], rows["b"], rows["c"]
    # a: entered by 1, 2, 3, 5, 6; moved on: 1, 2; undecided: 5, 6 (open, still in a). 2 of 3 decided moved on.
    assert (a["entered"], a["advanced"], a["pending"]) == (5, 2, 2)
    assert a["conversion_rate"] == pytest.approx(2 / 3)
    # Their outcomes: 1 won, 2 and 3 lost, 5 and 6 open, so 1 win among 3 closed.
    assert (a["won"], a["lost"], a["no_decision"], a["open"]) == (1, 2, 0, 2)
    assert a["win_rate_from_stage"] == pytest.approx(1 / 3)
    assert a["median_days_to_close_won"] == pytest.approx(9.0)  # deal 1: day 0 → day 9
    # b: entered by 1, 2, 4 (created in it); moved on: 1 (to c, won) and 4 (to c); 2 lost from b.
    assert (b["entered"], b["advanced"], b["pending"]) == (3, 2, 0)
    assert b["conversion_rate"] == pytest.approx(2 / 3)
    assert (b["won"], b["lost"], b["open"]) == (1, 1, 1)
    assert b["win_rate_from_stage"] == pytest.approx(1 / 2)
    assert b["median_days_to_close_won"] == pytest.approx(7.0)  # deal 1: day 2 → day 9
    # c: entered by 1 and 4; 1 won (moving on from the last stage is winning), 4 undecided.
    assert (c["entered"], c["advanced"], c["pending"], c["conversion_rate"]) == (2, 1, 1, 1.0)
    assert c["win_rate_from_stage"] == 1.0
    assert c["median_days_to_close_won"] == pytest.approx(4.0)


def test_time_in_stage_counts_deals_that_moved_on() -> None:
    rows = by_stage(time_in_stage(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=NOW))
    # a: deal 1 spent 2 days, deal 2 4 days before moving on; deal 3 was lost from a (left out).
    # Linear interpolation over [2, 4]: median 3, p75 3.5, p90 3.8. Open in a now: 5 and 6.
    a = rows["a"]
    assert (a["deals"], a["in_stage_now"]) == (2, 2)
    assert (a["median_days"], a["p75_days"], a["p90_days"]) == pytest.approx((3.0, 3.5, 3.8))
    # b: deal 1 3 days (2 → 5), deal 4 2 days (1 → 3); deal 2 was lost from b.
    assert rows["b"]["deals"] == 2 and rows["b"]["median_days"] == pytest.approx(2.5)
    # c: deal 1 won after 4 days; deal 4 is still in c.
    assert (rows["c"]["deals"], rows["c"]["median_days"], rows["c"]["in_stage_now"]) == (1, 4.0, 1)


def test_stage_analytics_use_only_what_was_known_at_as_of() -> None:
    as_of = day(6)
    # At day 6: deal 1 is in c (its win on day 9 is not known), deal 2 in b (lost on day 10, later), deal 3
    # lost (day 3), deal 4 in c, deal 5 in a; deal 6 does not exist yet.
    rows = by_stage(stage_conversion(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=as_of))
    assert (rows["a"]["entered"], rows["a"]["advanced"], rows["a"]["pending"]) == (4, 2, 1)
    assert (rows["a"]["won"], rows["a"]["lost"], rows["a"]["open"]) == (0, 1, 3)
    assert rows["a"]["win_rate_from_stage"] == 0.0  # one closed (lost), none won
    assert rows["c"]["median_days_to_close_won"] is None
    timing = by_stage(time_in_stage(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=as_of))
    assert timing["c"]["deals"] == 0 and timing["c"]["in_stage_now"] == 2

    # Anything logged after as_of changes nothing: drop it, or add wild later changes.
    truncated = FUNNEL_LOG.filter(pl.col(s.CHANGED_AT) <= as_of)
    wild = pl.concat(
        [
            FUNNEL_LOG,
            changes(
                [
                    (5, "stage", "a", "c", 7),
                    (5, "status", "open", "won", 8),
                    (4, "stage", "c", "a", 7),
                    (3, "status", "lost", "open", 7),
                ]
            ),
        ]
    )
    for log in (truncated, wild):
        assert stage_conversion(FUNNEL_OPPS, log, STAGES, as_of=as_of).equals(
            stage_conversion(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=as_of)
        )
        assert time_in_stage(FUNNEL_OPPS, log, STAGES, as_of=as_of).equals(
            time_in_stage(FUNNEL_OPPS, FUNNEL_LOG, STAGES, as_of=as_of)
        )


def test_deal_closed_without_logged_status_is_open_until_its_closed_at() -> None:
    opps = opportunities([{"id": 1, "created": 0, "stage": "b", "status": "won", "closed": 10}])
    empty = s.empty_changes()
    before = history.deal_outcomes(opps, empty, as_of=day(5)).row(0, named=True)
    after = history.deal_outcomes(opps, empty, as_of=day(10)).row(0, named=True)
    assert (before["status"], before["closed_at"]) == ("open", None)
    assert (after["status"], after["closed_at"]) == ("won", day(10))


def test_reopened_deal_counts_from_its_last_closing() -> None:
    opps = opportunities([{"id": 1, "created": 0, "stage": "b", "status": "won", "closed": 12}])
    log = changes(
        [(1, "status", "open", "lost", 3), (1, "status", "lost", "open", 5), (1, "status", "open", "won", 12)]
    )
    assert history.deal_outcomes(opps, log, as_of=day(4)).row(0, named=True)["status"] == "lost"
    assert history.deal_outcomes(opps, log, as_of=day(6)).row(0, named=True)["status"] == "open"
    final = history.deal_outcomes(opps, log, as_of=day(20)).row(0, named=True)
    assert (final["status"], final["closed_at"]) == ("won", day(12))


# Sales cycle: smb wins after 10, 20 and 30 days; one enterprise win after 100 days and one loss.
CYCLE_OPPS = opportunities(
    [
        {"id": 1, "created": 0, "stage": "c", "status": "won", "closed": 10, "segment": "smb"},
        {"id": 2, "created": 0, "stage": "c", "status": "won", "closed": 20, "segment": "smb"},
        {"id": 3, "created": 5, "stage": "c", "status": "won", "closed": 35, "segment": "smb"},
        {"id": 4, "created": 0, "stage": "c", "status": "won", "closed": 100, "segment": "enterprise"},
        {"id": 5, "created": 0, "stage": "a", "status": "lost", "closed": 50, "segment": "enterprise"},
    ]
)
CYCLE_LOG = changes(
    [
        (i, "status", "open", st, d)
        for i, st, d in [(1, "won", 10), (2, "won", 20), (3, "won", 35), (4, "won", 100), (5, "lost", 50)]
    ]
)


def test_sales_cycle_per_segment_falls_back_to_the_org() -> None:
    rows = {
        r["segment"]: r
        for r in sales_cycle(CYCLE_OPPS, CYCLE_LOG, as_of=NOW + timedelta(days=100), min_won=2).to_dicts()
    }
    # smb has 3 ≥ 2 wins: its own [10, 20, 30] → median 20, p75 25, p90 28.
    smb = rows["smb"]
    assert (smb["won"], smb["basis"]) == (3, "own")
    assert (smb["median_days"], smb["p75_days"], smb["p90_days"]) == pytest.approx((20, 25, 28))
    # enterprise has 1 < 2 wins: the org's [10, 20, 30, 100] → median 25, p75 at position 2.25 = 30 + 0.25 × 70,
    # p90 at 2.7 = 30 + 0.7 × 70; its own median (100) is kept beside.
    ent = rows["enterprise"]
    assert (ent["won"], ent["basis"], ent["own_median_days"]) == (1, "org", 100.0)
    assert (ent["median_days"], ent["p75_days"], ent["p90_days"]) == pytest.approx((25, 47.5, 79))
    org = sales_cycle(CYCLE_OPPS, CYCLE_LOG, as_of=NOW + timedelta(days=100), by=None).row(0, named=True)
    assert (org["won"], org["median_days"]) == (4, 25.0)
    # At day 30 only the first two wins are known: 10 and 20 days.
    early = sales_cycle(CYCLE_OPPS, CYCLE_LOG, as_of=day(30), by=None).row(0, named=True)
    assert (early["won"], early["median_days"]) == (2, 15.0)


def test_velocity_formula_per_owner_and_org() -> None:
    # Owner 1: open deals 10 and 11; in the window two wins (1,000 USD after 10 days; 1,500 EUR = 3,000 USD at
    # 0.5 EUR per USD, after 30 days) and two losses. Owner 2: one open deal, one loss.
    opps = opportunities(
        [
            {"id": 1, "created": 100, "stage": "c", "status": "won", "closed": 110, "amount": 1000},
            {"id": 2, "created": 100, "stage": "c", "status": "won", "closed": 130, "amount": 1500, "currency": "EUR"},
            {"id": 3, "created": 100, "stage": "a", "status": "lost", "closed": 120},
            {"id": 4, "created": 100, "stage": "a", "status": "lost", "closed": 120},
            {"id": 5, "created": 100, "stage": "a", "status": "lost", "closed": 120, "owner": 2},
            {"id": 10, "created": 150, "stage": "a", "status": "open"},
            {"id": 11, "created": 150, "stage": "b", "status": "open"},
            {"id": 12, "created": 150, "stage": "a", "status": "open", "owner": 2},
        ]
    )
    log = changes(
        [
            (i, "status", "open", st, d)
            for i, st, d in [(1, "won", 110), (2, "won", 130), (3, "lost", 120), (4, "lost", 120), (5, "lost", 120)]
        ]
    )
    rates = pl.DataFrame(
        {"currency": ["EUR"], "rate": [0.5], "start_date": [None]},
        schema={"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()},
    )
    as_of = day(200)
    rows = {r["owner_id"]: r for r in velocity(opps, log, rates, as_of=as_of, corporate="USD").to_dicts()}
    one = rows[1]
    # 2 open × (2 won / 4 closed) × 2,000 average won ÷ 20 days (median of 10 and 30) = 100 a day.
    assert (one["open_deals"], one["closed"], one["won"]) == (2, 4, 2)
    assert (one["win_rate"], one["average_won_amount"], one["cycle_days"]) == pytest.approx((0.5, 2000, 20))
    assert one["velocity_per_day"] == pytest.approx(100.0)
    assert rows[2]["win_rate"] == 0.0 and rows[2]["velocity_per_day"] == 0.0  # closed deals, no win
    org = velocity(opps, log, rates, as_of=as_of, corporate="USD", by=None).row(0, named=True)
    # 3 open × (2 / 5) × 2,000 ÷ 20 = 120 a day.
    assert org["velocity_per_day"] == pytest.approx(120.0)
    # A 60-day window (from day 140) holds no closed deal: the velocity is unknown, not zero.
    quiet = velocity(opps, log, rates, as_of=as_of, corporate="USD", by=None, window_days=60).row(0, named=True)
    assert (quiet["closed"], quiet["win_rate"], quiet["velocity_per_day"]) == (0, None, None)


def test_slippage_pushes_pull_ins_and_as_of() -> None:
    # Owner 1: deal 1 pushed 15 then 30 days, pulled in 14, and its close date set to the closing day when it
    # is won (bookkeeping, ignored); deal 2 never moved. Owner 2: deal 3 pushed 10 days, then 20 more after
    # as_of (ignored), and handed to owner 1 after as_of (still owner 2's). Deal 4 was created before the window.
    opps = opportunities(
        [
            {"id": 1, "created": 300, "stage": "c", "status": "won", "closed": 340},
            {"id": 2, "created": 300, "stage": "a", "status": "open"},
            {"id": 3, "created": 310, "stage": "a", "status": "open", "owner": 1},
            {"id": 4, "created": 100, "stage": "a", "status": "open", "owner": 2},
        ]
    )
    log = changes(
        [
            (1, "close_date", "2025-12-01", "2025-12-16", 310),
            (1, "close_date", "2025-12-16", "2026-01-15", 320),
            (1, "close_date", "2026-01-15", "2026-01-01", 330),
            (1, "close_date", "2026-01-01", "2025-12-07", 340),
            (1, "status", "open", "won", 340),
            (3, "close_date", "2025-12-01", "2025-12-11", 320),
            (3, "close_date", "2025-12-11", "2025-12-31", 360),
            (3, "owner_id", "2", "1", 360),
            (4, "close_date", "2025-06-01", "2025-07-01", 200),
        ]
    )
    as_of = day(350)
    rows = {r["owner_id"]: r for r in slippage(opps, log, as_of=as_of, window_days=180).to_dicts()}
    one = rows[1]
    # 2 deals, 1 pushed (twice), pushes 15 and 30 days: mean and median 22.5; one pull-in of 14 days.
    assert (one["deals"], one["pushed_deals"], one["pushes"], one["pull_ins"]) == (2, 1, 2, 1)
    assert (one["share_pushed"], one["share_pushed_twice"], one["pushes_per_deal"]) == pytest.approx((0.5, 0.5, 1.0))
    assert (one["mean_days_pushed"], one["median_days_pushed"]) == pytest.approx((22.5, 22.5))
    assert (one["share_pulled_in"], one["mean_days_pulled_in"]) == pytest.approx((0.5, 14.0))
    two = rows[2]
    assert (two["deals"], two["pushes"], two["share_pushed_twice"], two["mean_days_pushed"]) == (1, 1, 0.0, 10.0)
    org = slippage(opps, log, as_of=as_of, by=None, window_days=180).row(0, named=True)
    assert (org["deals"], org["pushes"], org["mean_days_pushed"]) == (3, 3, pytest.approx(55 / 3))
    per_deal = {r["id"]: r for r in deal_slippage(opps, log, as_of=as_of, window_days=None).to_dicts()}
    assert (per_deal[1]["days_pushed"], per_deal[1]["days_pulled_in"]) == (45, 14)
    assert per_deal[4]["pushes"] == 1  # inside an unlimited window


def test_bad_input_names_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="team"):
        sales_cycle(CYCLE_OPPS, CYCLE_LOG, as_of=NOW, by="team")
    with pytest.raises(InvalidInput, match="positive"):
        slippage(CYCLE_OPPS, CYCLE_LOG, as_of=NOW, window_days=0)
    with pytest.raises(InvalidInput, match="order"):
        stage_conversion(FUNNEL_OPPS, FUNNEL_LOG, STAGES.drop("order"), as_of=NOW)
    with pytest.raises(InvalidInput, match="created_at"):
        stage_conversion(FUNNEL_OPPS.drop(s.CREATED_AT), FUNNEL_LOG, STAGES, as_of=NOW)


def test_empty_org_gives_empty_figures() -> None:
    opps, log = s.empty_opportunities().with_columns(pl.lit(None, pl.String).alias("segment")), s.empty_changes()
    conversion = stage_conversion(opps, log, STAGES, as_of=NOW)
    assert conversion["entered"].to_list() == [0, 0, 0] and conversion["win_rate_from_stage"].null_count() == 3
    assert sales_cycle(opps, log, as_of=NOW).height == 0
    assert sales_cycle(opps, log, as_of=NOW, by=None).row(0, named=True)["won"] == 0
    rates = pl.DataFrame(schema={"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()})
    assert (
        velocity(opps, log, rates, as_of=NOW, corporate="USD", by=None).row(0, named=True)["velocity_per_day"] is None
    )
    assert slippage(opps, log, as_of=NOW, by=None).row(0, named=True)["deals"] == 0
