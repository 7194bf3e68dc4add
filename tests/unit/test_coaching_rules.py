"""The coaching rules on small hand-made frames: who is a top performer, the checklist wording, ramp curves and
flags, the review agenda, a plan's before/after."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from closewise.coaching import checklist, gap, plans, ramp, reviews
from closewise.playbook.default import DEFAULT_PLAYBOOK

AS_OF = datetime(2026, 6, 30)


def _deals(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"owner_id": pl.Int64(), "status": pl.String(), "closed_at": pl.String(),
                                      "value": pl.Float64()}, orient="row").with_columns(
        pl.col("closed_at").str.to_datetime("%Y-%m-%d"))


def test_rank_reps_by_attainment_with_tenure_and_ties() -> None:
    reps = pl.DataFrame({"id": [1, 2, 3, 4, 5], "name": list("abcde"),
                         "hire_date": [date(2020, 1, 1), None, date(2020, 1, 1), date(2026, 5, 1), date(2020, 1, 1)]})
    deals = _deals([(1, "won", "2026-03-01", 100.0), (2, "won", "2026-03-01", 300.0), (3, "won", "2026-03-01", 50.0),
                    (3, "won", "2026-04-01", 50.0), (4, "won", "2026-06-01", 900.0), (5, "lost", "2026-02-01", 10.0),
                    (1, "won", "2024-01-01", 999.0)])
    quotas = pl.DataFrame({"user_id": [1, 2, 3, 4, 5], "quota": [100.0, 600.0, 100.0, 100.0, 100.0]})
    ranking = gap.rank_reps(reps, deals, quotas, as_of=AS_OF)
    table = ranking.table
    assert ranking.by == "attainment"
    # a: 100/100, c: 100/100 with two wins (tie broken by won deals), b: 0.5, e: 0; d is a new hire.
    assert table.filter(pl.col("eligible")).sort("rank")["name"].to_list() == ["c", "a", "b", "e"]
    assert ranking.top_ids == [3]
    assert not table.filter(pl.col("name") == "d")["eligible"][0]
    no_quotas = gap.rank_reps(reps, deals, pl.DataFrame(schema={"user_id": pl.Int64(), "quota": pl.Float64()}),
                              as_of=AS_OF)
    assert no_quotas.by == "bookings" and no_quotas.top_ids == [2]


def test_checklist_words_significant_behaviours_only() -> None:
    base = {"kind": "behaviour", "unit": "contacts", "better": "higher", "summary": "mean", "rest": 2.0,
            "effect_size": 0.5, "p_value": 0.001, "q_value": 0.01, "favours_top": True}
    metrics = pl.DataFrame([
        {**base, "metric": "contacts_engaged", "label": "Contacts", "stage": "discovery", "top": 3.2,
         "significant": True},
        {**base, "metric": "days_to_first_meeting", "label": "Days", "stage": "prospecting", "top": 3.4,
         "significant": True, "better": "lower", "unit": "days"},
        {**base, "metric": "meeting_share", "label": "Meetings", "stage": None, "top": 0.5, "significant": False},
        {**base, "metric": "criteria_met_solution", "label": "Crit", "stage": "solution", "top": 0.8,
         "significant": True, "unit": "share"},
    ])
    items = checklist.propose(metrics, DEFAULT_PLAYBOOK, adopted_keys={"coach_contacts_engaged"},
                              controls=["segment"])
    assert [i.key for i in items] == ["coach_days_to_first_meeting", "coach_contacts_engaged",
                                      "coach_criteria_met_solution"]
    assert items[0].label == "Hold the first meeting within 4 days of opening the deal"
    assert items[1].label == "Engage at least 3 contacts of the buying group" and items[1].adopted
    assert not items[2].adds_criterion and "within segment" in items[2].evidence


def test_ramp_curves_and_flags() -> None:
    hire = date(2026, 1, 1)
    reps = pl.DataFrame({"id": [1, 2, 3, 4, 9], "name": ["a", "b", "c", "new", "vet"],
                         "hire_date": [hire, hire, hire, date(2026, 4, 1), date(2020, 1, 1)],
                         "segment": ["smb"] * 5})
    rows = []
    for rep in (1, 2, 3):
        rows += [(rep, datetime(2026, 1, 10 + k), "open", None, 100.0) for k in range(6)]
    rows += [(4, datetime(2026, 4, 20), "open", None, 100.0)]
    rows += [(9, datetime(2025, 6, 1 + k), "won", datetime(2025, 7, 1), 100.0) for k in range(20)]
    deals = pl.DataFrame(rows, schema={"owner_id": pl.Int64(), "created_at": pl.Datetime("us"), "status": pl.String(),
                                       "closed_at": pl.Datetime("us"), "value": pl.Float64()}, orient="row")
    activities = pl.DataFrame({"owner_id": [1, 2, 3], "type": ["meeting"] * 3,
                               "occurred_at": [datetime(2026, 1, 5)] * 3, "completed": [True] * 3})
    quotas = pl.DataFrame(schema={"user_id": pl.Int64(), "period_start": pl.Date(), "period_end": pl.Date(),
                                  "quota": pl.Float64()})
    start = datetime(2025, 6, 1)
    curves = ramp.ramp_curves(reps, deals, activities, quotas, as_of=AS_OF, data_start=start, months=3)
    first = curves.filter(pl.col("rep_id") == 1, pl.col("month") == 1).row(0, named=True)
    assert first["opportunities"] == 6 and first["pipeline"] == 600.0 and first["first_meeting"]
    # Hired before the first recorded deal: their first months are not in the data, so not in the cohort.
    assert curves.filter(pl.col("rep_id") == 9, pl.col("in_cohort")).height == 0
    behaviours = pl.DataFrame(schema={"owner_id": pl.Int64(), "created_at": pl.Datetime("us")})
    result = ramp.assess(reps, curves, behaviours, as_of=AS_OF, data_start=start,
                         options=ramp.RampOptions(months=3, min_cohort=3))
    new = next(h for h in result.new_hires if h["rep_id"] == 4)
    assert new["month"] == 3 and new["behind"]
    assert any("opportunities opened" in r for r in new["reasons"])
    assert any("first meeting" in r for r in new["reasons"])
    assert next(h for h in result.new_hires if h["rep_id"] == 1)["status"] == "on_track"


def test_review_agenda_reasons_and_questions() -> None:
    deals = pl.DataFrame({"id": [1, 2, 3], "name": ["A", "B", "C"], "owner_id": [5, 5, 6],
                          "stage": ["discovery", "proposal", "qualification"], "value": [1000.0, 50_000.0, 10.0],
                          "close_date": [date(2026, 6, 1), date(2026, 9, 1), date(2026, 9, 1)],
                          "created_at": [datetime(2026, 1, 1)] * 3})
    stages = pl.DataFrame({"key": ["qualification", "discovery", "proposal"], "name": ["Q", "D", "P"],
                           "default_probability": [20.0, 35.0, 70.0], "days_to_rot": [21, 30, 21]})
    items = reviews.agenda(
        deals, stages, as_of=AS_OF, scores=pl.DataFrame({"id": [1, 2, 3], "p_win": [0.1, 0.6, 0.15]}),
        last_activity=pl.DataFrame({"id": [1, 2, 3], "last_at": [datetime(2026, 5, 1), datetime(2026, 6, 29),
                                                                   datetime(2026, 6, 29)]}),
        stage_entered=pl.DataFrame({"id": [1, 2, 3], "entered_at": [datetime(2026, 3, 1), datetime(2026, 6, 1),
                                                                     datetime(2026, 6, 20)]}),
        missing={3: ["A budget range is known"]}, unknowns={})
    by_id = {i["id"]: i for i in items}
    assert by_id[1]["reasons"] == ["at_risk", "stalled"]
    assert by_id[2]["reasons"] == ["big"]
    assert by_id[3]["reasons"] == ["missing_criteria"]
    assert "What evidence do we have that: a budget range is known?" in by_id[3]["questions"]
    assert [i["id"] for i in items] == [1, 2, 3]
    assert reviews.follow_up_status(date(2026, 6, 1), None, today=date(2026, 6, 30)) == "overdue"
    assert reviews.follow_up_status(date(2026, 7, 3), None, today=date(2026, 6, 30)) == "due"


def test_plan_before_after() -> None:
    behaviours = pl.DataFrame({"owner_id": [1, 1, 1, 1], "contacts_engaged": [1.0, 2.0, 3.0, 4.0],
                               "created_at": [datetime(2026, 3, 1), datetime(2026, 3, 15), datetime(2026, 5, 1),
                                              datetime(2026, 5, 10)]})
    skills = [{"metric": "contacts_engaged", "summary": "mean", "better": "higher"}]
    row = plans.before_after(behaviours, 1, skills, started=datetime(2026, 4, 1), until=AS_OF)[0]
    assert (row["before"], row["after"], row["improved"]) == (1.5, 3.5, True)
