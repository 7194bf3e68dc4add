"""`closewise forecast` on the demo org (seed 7, today 2026-11-22), on SQLite or PostgreSQL.

Expected numbers are rebuilt from the current rows (nothing happens in the demo on or after `today`, so the
rows are the state at the end of 2026-11-21) and the quotas table, not from the timeline the model reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import polars as pl
import pytest
import sqlalchemy as sa

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.db import tables
from closewise.db.engine import make_engine
from closewise.domain.periods import Period
from closewise.ml.explain import REASON_DTYPE
from closewise.ml.forecaster import ForecastFrames, PeriodForecaster, PeriodInputs, restrict
from closewise.services.forecast import forecast_report
from closewise.services.org_data import OrgData, load_org
from tests.cli_runner import Result, run_cli
from tests.integration._forecast_demo import demo_database

AS_OF = "2026-11-21"


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from demo_database(tmp_path_factory)


@pytest.fixture(scope="module")
def org(demo_url: str) -> Iterator[OrgData]:
    engine = make_engine(demo_url)
    yield load_org(engine, activities=False)
    engine.dispose()


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> Result:
    return run_cli(capsys, monkeypatch, "--db", url, "forecast", *args)


def _won_between(org: OrgData, start: datetime, end: datetime) -> float:
    rows = to_corporate(org.opportunities, org.rates, corporate=org.corporate_currency, into="v")
    won = rows.filter(pl.col(s.STATUS) == "won", pl.col(s.CLOSED_AT) >= start, pl.col(s.CLOSED_AT) < end)
    return float(won["v"].sum())


def test_current_quarter_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_url: str, org: OrgData
) -> None:
    result = _cli(capsys, monkeypatch, demo_url, "--period", "2026-Q4", "--as-of", AS_OF, "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    for key in ("period_start", "period_end", "as_of", "currency", "closed_won", "p10", "p50", "p90", "expected",
                "target", "probability_of_target", "by_owner", "deals"):
        assert key in report
    assert (report["period_start"], report["period_end"], report["currency"]) == ("2026-10-01", "2026-12-31", "USD")
    assert report["closed_won"] == pytest.approx(_won_between(org, datetime(2026, 10, 1), datetime(2027, 1, 1)),
                                                 abs=0.01)
    assert report["closed_won"] <= report["p10"] <= report["p50"] <= report["p90"]
    assert 0.0 <= report["probability_of_target"] <= 1.0

    # The default target: the demo's leader carries the sum of every rep's quota.
    engine = make_engine(demo_url)
    with engine.connect() as connection:
        q, u = tables.quotas, tables.users
        reps = connection.execute(
            sa.select(sa.func.sum(q.c.amount)).join(u, u.c.id == q.c.user_id)
            .where(q.c.period == "2026-Q4", u.c.role == "rep")
        ).scalar_one()
    engine.dispose()
    assert report["target"] == pytest.approx(float(reps))

    # Deals: exactly the open rows, probabilities in [0, 1], reasons attached.
    open_ids = set(org.opportunities.filter(pl.col(s.STATUS) == "open")[s.ID].to_list())
    assert {d["id"] for d in report["deals"]} == open_ids
    for deal in report["deals"]:
        assert 0.0 <= deal["p_close_in_period"] <= deal["p_win"] <= 1.0
        assert deal["name"] and deal["external_id"] and deal["reasons"]
    # The owner breakdown adds up: closed won to the total, expected to closed won + the deals' (calibrated)
    # expectations, and the forecast's expected to that + new business.
    owners = report["by_owner"]
    assert sum(o["closed_won"] for o in owners) == pytest.approx(report["closed_won"], abs=0.01)
    expected_deals = sum(d["expected"] for d in report["deals"])
    assert sum(o["expected"] for o in owners) == pytest.approx(report["closed_won"] + expected_deals, rel=1e-9)
    assert report["expected"] == pytest.approx(
        report["closed_won"] + expected_deals + report["new_business"]["mean"], rel=1e-9)
    assert sum(t["expected"] for t in report["by_team"]) == pytest.approx(sum(o["expected"] for o in owners),
                                                                         rel=1e-9)
    assert all(o["team"] for o in owners)
    # The calibrated period effect moves the deals' expectation, within 30% of the model's own.
    model = sum(d["expected_amount"] for d in report["deals"])
    assert expected_deals == pytest.approx(model, rel=0.3)
    for deal in report["deals"]:
        assert 0.0 <= deal["p_close_calibrated"] <= 1.0
        assert deal["expected"] == pytest.approx(deal["p_close_calibrated"] * deal["amount"], rel=1e-9)

    # Each owner and team has a range and, from its quota, the probability of reaching it.
    with_target = 0
    for row in (*owners, *report["by_team"]):
        assert row["closed_won"] <= row["p10"] <= row["p50"] <= row["p90"]
        if row["target"] is not None:
            with_target += 1
            assert 0.0 <= row["probability_of_target"] <= 1.0
    assert with_target >= len(owners)  # every demo rep and team holds a quarterly quota


def test_an_ended_quarter_is_exactly_its_closed_won(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_url: str, org: OrgData
) -> None:
    result = _cli(capsys, monkeypatch, demo_url, "--period", "2026-Q3", "--as-of", AS_OF, "--json",
                  "--target", "1M")
    assert result.code == 0, result.stderr
    report = result.json()
    won = _won_between(org, datetime(2026, 7, 1), datetime(2026, 10, 1))
    assert won > 0
    assert report["closed_won"] == pytest.approx(won, abs=0.01)
    assert report["p10"] == report["p50"] == report["p90"] == report["expected"] == report["closed_won"]
    assert report["probability_of_target"] == (1.0 if won >= 1e6 else 0.0)
    assert report["deals"] == []


def test_the_same_question_gives_the_same_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_url: str
) -> None:
    args = ("--period", "2026-11", "--as-of", "2026-11-10", "--target", "2.5M", "--json")
    first, second = _cli(capsys, monkeypatch, demo_url, *args), _cli(capsys, monkeypatch, demo_url, *args)
    assert first.code == 0, first.stderr
    assert first.json() == {**second.json(), "as_of": first.json()["as_of"]}
    assert first.json()["target"] == 2.5e6


def test_readable_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_url: str) -> None:
    result = _cli(capsys, monkeypatch, demo_url, "--period", "2026-Q4", "--as-of", AS_OF)
    assert result.code == 0, result.stderr
    assert "P50" in result.stdout and "commit" in result.stdout and "By owner" in result.stdout
    # The top reason is the scorer's text, never the raw {feature, contribution, text} dict.
    assert "{'feature'" not in result.stdout and "'contribution'" not in result.stdout
    report = _cli(capsys, monkeypatch, demo_url, "--period", "2026-Q4", "--as-of", AS_OF, "--json").json()
    top = [d["reasons"][0]["text"] for d in report["deals"][:15] if d["reasons"]]
    assert top
    # Rich may wrap or elide a long reason in a narrow column: look for its opening word in the deals table.
    table = result.stdout.split("top reason", 1)[1]
    assert any(text.split()[0] in table for text in top)


class _Recording(PeriodForecaster):
    """Keeps the frames the service hands the forecaster (and so the deal scorer)."""

    def __init__(self) -> None:
        super().__init__(n_sims=200, calibration_periods=2)
        self.seen: list[ForecastFrames] = []

    def prepare(self, frames: ForecastFrames, period: Period, as_of: datetime, *,
                reasons: bool = True) -> PeriodInputs:
        self.seen.append(frames)
        return super().prepare(frames, period, as_of, reasons=reasons)


def test_the_service_scorer_sees_activities(demo_url: str) -> None:
    engine = make_engine(demo_url)
    try:
        recording = _Recording()
        forecast_report(engine, period="2026-Q4", as_of=datetime(2026, 11, 21), forecaster=recording)
    finally:
        engine.dispose()
    assert recording.seen
    frames = recording.seen[-1]
    assert frames.activities.height > 0
    calls = frames.activities.filter(pl.col("type") == "call", pl.col("opportunity_id").is_not_null())
    assert calls.height > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-Q9"], "is not a month"),
        (["--period", "2026-Q4", "--target", "lots"], "--target"),
        (["--period", "2026-Q4", "--as-of", "yesterday"], "--as-of"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo_url: str, args: list[str], message: str
) -> None:
    result = _cli(capsys, monkeypatch, demo_url, *args)
    assert result.code != 0
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_an_ended_period_has_typed_reasons(org: OrgData) -> None:
    period = org.calendar.parse("2026-Q2")
    inputs = PeriodForecaster().prepare(org, period, datetime(2026, 11, 21))
    assert inputs.ended and inputs.deals.height == 0
    assert inputs.deals.schema["reasons"] == REASON_DTYPE


def test_a_scoped_forecast_reuses_the_calibration(org: OrgData) -> None:
    """`restrict`: everyone is the org's forecast; a team is its owners' deals and closed won, re-simulated
    with the org's calibration (same shift and scale)."""
    period = org.calendar.parse("2026-12")
    forecast = PeriodForecaster(calibration_periods=4).forecast(org, period, datetime(2026, 11, 21, 23, 59),
                                                                 target=1e6)
    everyone = restrict(forecast, None, target=1e6, include_new_business=True)
    assert [everyone.quantile(q) for q in (0.1, 0.5, 0.9)] == [forecast.quantile(q) for q in (0.1, 0.5, 0.9)]
    team = forecast.by_team.row(0, named=True)["team_id"]
    members = forecast.by_owner.filter(pl.col("team_id") == team)["owner_id"].to_list()
    scoped = restrict(forecast, members, target=None, include_new_business=False)
    assert scoped.calibration == forecast.calibration
    deals = forecast.deals.filter(pl.col("owner_id").is_in(members))
    assert scoped.expected == pytest.approx(scoped.inputs.closed_won + float(deals["expected"].sum()), rel=1e-9)
    assert scoped.expected == pytest.approx(forecast.by_team.row(0, named=True)["expected"], rel=1e-9)
    assert 0 < scoped.quantile(0.5) < forecast.quantile(0.5)
