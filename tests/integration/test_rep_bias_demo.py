"""Rep forecast bias (closewise.ml.rep_bias) on the demo org (seed 7, today 2026-11-22), on SQLite or PostgreSQL.

The demo plants per-rep call biases (docs/demo.md, "Forecast submissions"): sandbaggers call
`bias × final × noise` with `bias ~ U(0.70, 0.85)`, happy ears with `U(1.20, 1.45)`, the rest `U(0.95, 1.05)`,
where the noise is log-normal with σ from 0.30 (a quarter's start) to 0.05 (its end), and no call is below
what the rep has already won. The median over a rep's ~13 weekly calls a quarter, over up to 7 ended
quarters, is then within a few points of the bias, well clear of the thresholds 0.92 and 1.10 for every
planted rep the estimate can see.

Why "at least 80%" and not "all": the planted lists are drawn among all reps, including new hires (hired
60-150 days before today) who may have no ended quarter with bookings behind their calls and so get no
row at all; a rep with one or two booked quarters stands on ~15-25 calls, where a 0.85-bias rep can land near
0.92 by chance. With seed 7 one sandbagger and one happy-ears rep are such new hires: 4 of 5 each (80%),
and every rep that does get a row is labelled as planted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import polars as pl
import pytest

from closewise.db.engine import make_engine
from closewise.db.submissions import load_submissions
from closewise.ml.rep_bias import BiasLabel, call_ratios, rep_bias, summarise
from closewise.services.demo import DemoSummary
from closewise.services.org_data import OrgData, load_org
from tests.cli_runner import run_cli
from tests.demo_org import demo_database

TODAY = date(2026, 11, 22)
AS_OF = datetime(2026, 11, 22)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DemoSummary]]:
    """One demo org for the module."""
    with demo_database(tmp_path_factory.mktemp("rep_bias"), today=TODAY) as built:
        yield built


@pytest.fixture(scope="module")
def org(demo: tuple[str, DemoSummary]) -> Iterator[tuple[OrgData, pl.DataFrame]]:
    engine = make_engine(demo[0])
    with engine.connect() as connection:
        submissions = load_submissions(connection)
    yield load_org(engine, activities=False), submissions
    engine.dispose()


def _labels(org: tuple[OrgData, pl.DataFrame], as_of: datetime = AS_OF) -> dict[str, str]:
    data, submissions = org
    table = rep_bias(submissions, data.opportunities, data.changes, as_of=as_of, calendar=data.calendar,
                     rates=data.rates, corporate=data.corporate_currency)  # fmt: skip
    emails = data.users.select(pl.col("id").alias("user_id"), "email")
    return dict(table.join(emails, on="user_id").select("email", "label").iter_rows())


def test_submissions_load_with_both_kinds(org: tuple[OrgData, pl.DataFrame]) -> None:
    _, submissions = org
    assert set(submissions["kind"].unique().to_list()) == {"submission", "adjustment"}
    assert (submissions["submitted_at"] < AS_OF).all()  # the demo writes nothing on or after today
    assert submissions["commit"].null_count() == 0


@pytest.mark.parametrize(("planted", "label"), [("sandbaggers", BiasLabel.SANDBAGGER),
                                                ("happy_ears", BiasLabel.HAPPY_EARS)])  # fmt: skip
def test_planted_biases_are_found(
    demo: tuple[str, DemoSummary], org: tuple[OrgData, pl.DataFrame], planted: str, label: BiasLabel
) -> None:
    summary = demo[1]
    labels = _labels(org)
    reps = summary.planted[planted]
    assert len(reps) >= 3
    found = [email for email in reps if labels.get(email) == label.value]
    assert len(found) / len(reps) >= 0.8, {email: labels.get(email) for email in reps}
    # The planted reps without a row are new hires, with no booked quarter behind their calls yet.
    unjudged = [email for email in reps if email not in labels]
    assert set(unjudged) <= set(summary.planted["new_hires"])
    # Every planted rep that was judged is labelled as planted.
    assert all(labels[email] == label.value for email in reps if email in labels)


def test_most_unbiased_reps_are_accurate(demo: tuple[str, DemoSummary], org: tuple[OrgData, pl.DataFrame]) -> None:
    # Reps with bias U(0.95, 1.05): with their calls floored at what they had won, ratios sit a little above
    # 1, so one may cross 1.10 on two quarters' calls; most must not.
    summary = demo[1]
    biased = set(summary.planted["sandbaggers"]) | set(summary.planted["happy_ears"])
    others = {email: label for email, label in _labels(org).items() if email not in biased}
    assert len(others) >= 5
    accurate = sum(label == BiasLabel.ACCURATE.value for label in others.values())
    assert accurate / len(others) >= 0.7, others


def test_only_ended_periods_and_known_calls_count(org: tuple[OrgData, pl.DataFrame]) -> None:
    data, submissions = org
    ratios = call_ratios(submissions, data.opportunities, data.changes, as_of=AS_OF, calendar=data.calendar,
                         rates=data.rates, corporate=data.corporate_currency)  # fmt: skip
    # 2026-Q4 is still running on 2026-11-22: none of its calls is judged.
    assert "2026-Q4" not in set(ratios["period"].to_list())
    assert (ratios["submitted_at"] < datetime(2026, 10, 1)).all()
    # Judged as of the end of 2026-Q2, nothing from Q3 on counts, and the result is what the earlier log said.
    early = datetime(2026, 7, 1)
    before = call_ratios(submissions, data.opportunities, data.changes, as_of=early, calendar=data.calendar,
                         rates=data.rates, corporate=data.corporate_currency)  # fmt: skip
    assert before["period"].max() == "2026-Q2"
    later_known = summarise(before)
    assert later_known.height > 0
    assert (later_known["periods"] <= 6).all()


def test_cli_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo: tuple[str, DemoSummary]
) -> None:
    result = run_cli(capsys, monkeypatch, "--db", demo[0], "forecast-bias", "--as-of", "2026-11-21", "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["currency"] == "USD"
    by_email = {row["email"]: row for row in document["reps"]}
    hana = by_email["hana.singh@demo.closewise.io"]  # a planted sandbagger with seven quarters of calls
    assert hana["label"] == "sandbagger" and hana["periods"] == 7
    # The correction is shrunk toward 1: between the raw ratio and 1.
    assert hana["median_ratio"] < hana["shrunk_ratio"] < 1.0
    text = run_cli(capsys, monkeypatch, "--db", demo[0], "forecast-bias", "--as-of", "2026-11-21")
    assert text.code == 0 and "sandbagger" in text.stdout
