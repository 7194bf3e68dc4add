"""Stage analytics recover what docs/demo.md plants in the demo org, through the service and the CLI.

The org (seed 7, 2,500 deals, `today` 2026-11-22) is built once for the module, on SQLite or, when
CLOSEWISE_TEST_DATABASE_URL names a server, on a PostgreSQL database of its own. Tolerances are explained
beside each check; they come from the generator's noise (log-normal stage durations, a few hundred wins per
segment) and from what the as-of view cannot see yet (slow deals of recent quarters are still open).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.analytics import history
from closewise.analytics import schema as s
from closewise.analytics.cycle import sales_cycle, velocity
from closewise.analytics.slippage import deal_slippage
from closewise.analytics.snapshots import snapshot
from closewise.analytics.stages import stage_conversion, time_in_stage
from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.services.demo import DemoSummary, build_demo
from closewise.services.org_data import OrgData, load_org
from tests.cli_runner import run_cli

TODAY = date(2026, 11, 22)
AS_OF = datetime(2026, 11, 22, tzinfo=UTC)
SEGMENTS = ("smb", "mid_market", "enterprise")
# docs/demo.md: median days per stage by segment, and the cycles they add up to.
STAGE_DAYS = {
    "smb": (4, 5, 7, 6, 5, 4),
    "mid_market": (6, 8, 12, 12, 10, 8),
    "enterprise": (10, 15, 24, 25, 20, 16),
}
CYCLE_DAYS = {"smb": 31, "mid_market": 56, "enterprise": 110}

Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch


@dataclass(frozen=True)
class Demo:
    url: str
    summary: DemoSummary
    org: OrgData


def _build(url: str) -> tuple[DemoSummary, OrgData]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        summary = build_demo(engine, seed=7, today=TODAY)
        return summary, load_org(engine, activities=False)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    server = os.environ.get("CLOSEWISE_TEST_DATABASE_URL")
    if not server:
        url = f"sqlite:///{tmp_path_factory.mktemp('stages') / 'demo.db'}"
        yield Demo(url, *_build(url))
        return
    name = f"closewise_test_{uuid.uuid4().hex[:12]}"
    admin: Engine = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        yield Demo(url, *_build(url))
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _rep_ids(demo: Demo, planted: str) -> list[int]:
    emails = demo.summary.planted[planted]
    return demo.org.users.filter(pl.col("email").is_in(emails))["id"].to_list()


def test_won_cycle_by_segment_matches_the_planted_cycles(demo: Demo) -> None:
    org = demo.org
    rows = {r["segment"]: r for r in sales_cycle(org.opportunities, org.changes, as_of=AS_OF).to_dicts()}
    medians = [rows[segment]["median_days"] for segment in SEGMENTS]
    assert medians == sorted(medians), f"cycles should grow smb < mid_market < enterprise: {medians}"
    for segment in SEGMENTS:
        row = rows[segment]
        # Over 80 wins in every segment, so each has its own figures (>= 30 wins).
        assert row["basis"] == "own" and row["won"] >= 30
        # The planted cycle is the sum of the stage medians; each stage is scaled by e^N(0, 0.55) and by skill
        # and ramp, 7% of advances skip a stage, and enterprise wins of the last quarters are partly still
        # open (so the observed median is a little short). Measured: 33 / 53 / 100 days. Allow ±20%.
        assert row["median_days"] == pytest.approx(CYCLE_DAYS[segment], rel=0.2), segment
        assert row["median_days"] <= row["p75_days"] <= row["p90_days"]


def test_time_in_stage_per_segment_matches_the_planted_durations(demo: Demo) -> None:
    org = demo.org
    for segment in SEGMENTS:
        deals = org.opportunities.filter(pl.col("segment") == segment)
        medians = time_in_stage(deals, org.changes, org.stages, as_of=AS_OF)["median_days"].to_list()
        for stage, (observed, planted) in enumerate(zip(medians, STAGE_DAYS[segment], strict=True)):
            # Each stage's days are e^(N(0, 0.55) − 0.12 skill) times the planted median, over 80-750 deals per
            # (segment, stage): the sampling error of a median is ~0.55 × 1.25 / √n ≈ 2-8% on the log scale,
            # and the deals that move on are a skill-selected subset. Measured within ±22%; allow ±30%.
            assert observed == pytest.approx(planted, rel=0.3), (segment, stage)


def test_conversion_win_rate_rises_stage_by_stage(demo: Demo) -> None:
    org = demo.org
    rows = stage_conversion(org.opportunities, org.changes, org.stages, as_of=AS_OF).to_dicts()
    assert [r["stage"] for r in rows] == org.stages["key"].to_list()
    rates = [r["win_rate_from_stage"] for r in rows]
    # Every advance succeeds with probability below one, so the further in, the likelier the win.
    assert rates == sorted(rates) and 0 < rates[0] < rates[-1] < 1
    # Leaving negotiation is winning: in the last stage, moving on and winning are the same thing.
    assert rows[-1]["conversion_rate"] == pytest.approx(rows[-1]["win_rate_from_stage"])
    # The planted advance probabilities have bases 0.75-0.85 before skill, qualification and criteria terms.
    assert all(0.55 <= r["conversion_rate"] <= 0.95 for r in rows)
    # The deals are all accounted for: the ones that entered a stage decided or not.
    for r in rows:
        assert r["won"] + r["lost"] + r["no_decision"] + r["open"] == r["entered"]
        assert r["median_days_to_close_won"] is not None
    days_to_win = [r["median_days_to_close_won"] for r in rows]
    assert days_to_win == sorted(days_to_win, reverse=True)  # later stages are closer to the win


def test_nothing_after_as_of_leaks_on_the_demo(demo: Demo) -> None:
    org = demo.org
    past = datetime(2026, 3, 31, tzinfo=UTC)
    # What a copy of the org taken on that day held: the deals as they were (the as-of engine's snapshot) and
    # the log up to then. The analytics of today's data at `past` must agree with it exactly.
    then = snapshot(org.timeline, past).drop(s.VALID_FROM).select(org.opportunities.columns)
    known = org.changes.filter(pl.col(s.CHANGED_AT) <= history.naive_utc(past))
    full = stage_conversion(org.opportunities, org.changes, org.stages, as_of=past)
    assert full.equals(stage_conversion(then, known, org.stages, as_of=past))
    assert time_in_stage(org.opportunities, org.changes, org.stages, as_of=past).equals(
        time_in_stage(then, known, org.stages, as_of=past)
    )
    assert sales_cycle(org.opportunities, org.changes, as_of=past).equals(sales_cycle(then, known, as_of=past))
    assert deal_slippage(org.opportunities, org.changes, as_of=past).equals(deal_slippage(then, known, as_of=past))
    # The past view saw fewer closings than today's.
    assert full["won"].sum() < stage_conversion(org.opportunities, org.changes, org.stages, as_of=AS_OF)["won"].sum()


def test_long_worked_deals_were_pushed_at_least_twice(demo: Demo) -> None:
    org = demo.org
    deals = deal_slippage(org.opportunities, org.changes, as_of=AS_OF, window_days=None).with_columns(
        history.days_between(s.CREATED_AT, s.CLOSED_AT).alias("life")
    )
    # "About half the deals worked 90 days or more were pushed at least twice" (docs/demo.md). Deals worked
    # to the end are the won and lost ones (stalled deals stop being worked and end as no decision, or stay
    # open with a stale date), so their share is above half: measured 0.74 of 114. The demo's own generator
    # test asks > 0.35 of all long-lived deals; here 0.35-0.85.
    worked = deals.filter(pl.col(s.STATUS).is_in(["won", "lost"]), pl.col("life") >= 90)
    share = worked.select((pl.col("pushes") >= 2).mean()).item()
    assert worked.height >= 50 and 0.35 <= share <= 0.85
    # Deals closed within a month have had little time to slip.
    short = deals.filter(pl.col(s.STATUS).is_in(["won", "lost"]), pl.col("life") < 30)
    assert short.select((pl.col("pushes") >= 2).mean()).item() < share / 2


def test_top_skill_reps_win_more_than_bottom_skill_reps(demo: Demo) -> None:
    org = demo.org
    # The whole history (8 quarters) in one window, pooled over each quartile's reps.
    rows = velocity(
        org.opportunities, org.changes, org.rates, as_of=AS_OF, corporate=org.corporate_currency, window_days=1000
    )

    def win_rate(planted: str) -> float:
        group = rows.filter(pl.col(s.OWNER_ID).is_in(_rep_ids(demo, planted)))
        return int(group["won"].sum()) / int(group["closed"].sum())

    top, bottom = win_rate("top_skill"), win_rate("bottom_skill")
    # docs/demo.md: top-quartile reps win >= 1.5x (in practice 3-6x) as often as bottom-quartile reps.
    assert top >= 1.5 * bottom, (top, bottom)


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli(demo: Demo) -> Demo:
    return demo


def test_cli_conversion_json(cli: Demo, capsys: Cap, monkeypatch: Mp) -> None:
    result = run_cli(capsys, monkeypatch, "--db", cli.url, "stages", "conversion", "--as-of", "2026-11-21", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["as_of"].startswith("2026-11-21T23:59:59")
    stages = report["stages"]
    assert [r["stage"] for r in stages] == cli.org.stages["key"].to_list()
    expected = stage_conversion(
        cli.org.opportunities, cli.org.changes, cli.org.stages, as_of=datetime(2026, 11, 21, 23, 59, 59, 999999)
    )
    assert [r["entered"] for r in stages] == expected["entered"].to_list()
    assert {"win_rate_from_stage", "median_days_to_close_won", "median_days_in_stage", "in_stage_now"} <= set(stages[0])
    table = run_cli(capsys, monkeypatch, "--db", cli.url, "stages", "conversion", "--as-of", "2026-11-21")
    assert table.code == 0 and "Negotiation" in table.stdout


def test_cli_cycle_velocity_slippage_json(cli: Demo, capsys: Cap, monkeypatch: Mp) -> None:
    db = ("--db", cli.url)
    by_owner = run_cli(capsys, monkeypatch, *db, "stages", "cycle", "--by", "owner", "--json").json()
    assert by_owner["by"] == "owner" and all(row["name"] for row in by_owner["groups"])
    assert {row["basis"] for row in by_owner["groups"]} == {"own", "org"}  # some reps have under 30 wins
    segment = run_cli(capsys, monkeypatch, *db, "stages", "cycle", "--json").json()
    assert [row["segment"] for row in segment["groups"]] == sorted(SEGMENTS)

    speed = run_cli(capsys, monkeypatch, *db, "stages", "velocity", "--as-of", "2026-09-30", "--json").json()
    org = speed["org"]
    assert speed["currency"] == "USD" and speed["formula"].startswith("open_deals")
    assert org["velocity_per_day"] == pytest.approx(
        org["open_deals"] * org["win_rate"] * org["average_won_amount"] / org["cycle_days"]
    )
    assert sum(row["open_deals"] for row in speed["by_owner"]) == org["open_deals"]

    slip = run_cli(capsys, monkeypatch, *db, "stages", "slippage", "--window-days", "180", "--json").json()
    assert slip["window_days"] == 180
    assert sum(row["deals"] for row in slip["by_owner"]) == slip["org"]["deals"] > 0
    assert 0 < slip["org"]["share_pushed_twice"] <= slip["org"]["share_pushed"] < 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cycle", "--by", "team"), "--by 'team'"),
        (("velocity", "--as-of", "yesterday"), "--as-of 'yesterday'"),
        (("slippage", "--window-days", "0"), "--window-days"),
    ],
)
def test_cli_bad_input_is_one_line(
    cli: Demo, capsys: Cap, monkeypatch: Mp, args: tuple[str, ...], message: str
) -> None:
    result = run_cli(capsys, monkeypatch, "--db", cli.url, "stages", *args)
    assert result.code == 1 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
