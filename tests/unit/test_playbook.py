"""The playbook's pure parts: YAML round trip and its errors, gates, qualification scores, re-qualification
and the gate analysis, on small hand-built inputs whose expected answers are worked out in the comments."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
import pytest

from closewise.errors import InvalidInput
from closewise.playbook.default import DEFAULT_PLAYBOOK, MEDDICC, ExitCriterion, Playbook, StageDefinition
from closewise.playbook.gate_effect import gate_effect
from closewise.playbook.gates import PASSING_PROPOSAL_KEY, PASSING_PROPOSAL_LABEL, DealEvidence, gate
from closewise.playbook.qualification import scores, unknown_findings
from closewise.playbook.requalification import requalification
from closewise.playbook.yaml_io import playbook_from_yaml, playbook_to_yaml

T0 = datetime(2026, 1, 1)


def test_the_default_playbook_survives_a_yaml_round_trip() -> None:
    assert playbook_from_yaml(playbook_to_yaml(DEFAULT_PLAYBOOK)) == DEFAULT_PLAYBOOK


@pytest.mark.parametrize(("change", "where", "words"), [
    (lambda t: t.replace("kind: checkbox", "kind: tickbox", 1), "stages[0].exit_criteria[1].kind", "unknown kind"),
    (lambda t: t.replace("probability: 10.0", "probability: 140", 1), "stages[0].probability", "from 0 to 100"),
    (lambda t: t.replace("key: qualification", "key: prospecting", 1), "stages", "appears twice"),
    (lambda t: t.replace("question: identify_pain", "question: nothing", 1), "stages[1].exit_criteria[0].question",
     "no question 'nothing'"),
    (lambda t: t.replace("forecast_category: pipeline", "forecast_category: maybe", 1),
     "stages[0].forecast_category", "unknown forecast category"),
])
def test_a_bad_playbook_names_the_place_at_fault(change: object, where: str, words: str) -> None:
    text = change(playbook_to_yaml(DEFAULT_PLAYBOOK))  # type: ignore[operator]
    with pytest.raises(InvalidInput) as caught:
        playbook_from_yaml(text, source="mine.yml")
    assert caught.value.where == f"mine.yml: {where}"
    assert words in caught.value.message


def _requiring_proposal(playbook: Playbook, stage_key: str) -> Playbook:
    return replace(playbook, stages=tuple(replace(s, requires_passing_proposal=s.key == stage_key)
                                          for s in playbook.stages))


def test_a_required_passing_proposal_survives_the_round_trip_and_only_where_it_was_set() -> None:
    playbook = _requiring_proposal(DEFAULT_PLAYBOOK, "proposal")
    text = playbook_to_yaml(playbook)
    assert text.count("requires_passing_proposal: true") == 1
    assert text.count("requires_passing_proposal: false") == len(playbook.stages) - 1
    back = playbook_from_yaml(text)
    assert back == playbook and back != DEFAULT_PLAYBOOK
    assert [s.key for s in back.stages if s.requires_passing_proposal] == ["proposal"]
    # Left out, it is off: a playbook written before the option existed still reads the same.
    older = playbook_to_yaml(DEFAULT_PLAYBOOK).replace("  requires_passing_proposal: false\n", "")
    assert "requires_passing_proposal" not in older and playbook_from_yaml(older) == DEFAULT_PLAYBOOK


@pytest.mark.parametrize(("value", "where", "words"), [
    ("'maybe'", "stages[4].requires_passing_proposal", "expected true or false, not 'maybe'"),
    ("1", "stages[4].requires_passing_proposal", "expected true or false, not 1"),
])
def test_a_bad_proposal_option_names_its_stage(value: str, where: str, words: str) -> None:
    text = playbook_to_yaml(_requiring_proposal(DEFAULT_PLAYBOOK, "proposal")).replace(
        "requires_passing_proposal: true", f"requires_passing_proposal: {value}")
    with pytest.raises(InvalidInput) as caught:
        playbook_from_yaml(text, source="mine.yml")
    assert caught.value.where == f"mine.yml: {where}" and words in caught.value.message


def test_the_last_stage_cannot_require_a_proposal_to_be_left() -> None:
    last = DEFAULT_PLAYBOOK.stages[-1].key
    with pytest.raises(InvalidInput) as caught:
        playbook_from_yaml(playbook_to_yaml(_requiring_proposal(DEFAULT_PLAYBOOK, last)), source="mine.yml")
    assert caught.value.where == f"mine.yml: stages[{len(DEFAULT_PLAYBOOK.stages) - 1}].requires_passing_proposal"
    assert "last stage" in caught.value.message


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        playbook_from_yaml("stages:\n  - key: [unclosed\n", source="p.yml")
    assert caught.value.where is not None and caught.value.where.startswith("p.yml, line ")


def _three_stages() -> Playbook:
    a = StageDefinition("a", "A", 1, 10, DEFAULT_PLAYBOOK.stages[0].forecast_category, 10, 10, "",
                        (ExitCriterion("a1", "ticked", "checkbox"),
                         ExitCriterion("a2", "dated", "field", {"field": "close_date"})))
    b = StageDefinition("b", "B", 2, 50, DEFAULT_PLAYBOOK.stages[0].forecast_category, 10, 10, "",
                        (ExitCriterion("b1", "met the buyer", "evidence", {"rule": "contact_role",
                                                                            "buying_role": "economic_buyer"}),),
                        required_fields=("next_step",))
    c = StageDefinition("c", "C", 3, 80, DEFAULT_PLAYBOOK.stages[0].forecast_category, 10, 10, "", ())
    return Playbook("default", (a, b, c), (MEDDICC,))


def test_a_gate_names_what_is_missing_and_skipping_needs_every_skipped_stage() -> None:
    playbook = _three_stages()
    bare = DealEvidence(fields={"close_date": None, "next_step": ""})
    one = gate(playbook, "a", "b", bare)
    assert not one.allowed and [c.key for c in one.missing] == ["a1", "a2"]
    # Skipping b to c also needs b's evidence and its required field.
    skip = gate(playbook, "a", "c", bare)
    assert [c.key for c in skip.missing] == ["a1", "a2", "b1", "field:next_step"] and skip.skipped == ("b",)
    ready = DealEvidence(fields={"close_date": "2026-03-01", "next_step": "send terms"}, checks={"a1": True},
                         contact_roles=frozenset({"economic_buyer"}))
    assert gate(playbook, "a", "c", ready).allowed
    # An unticked check (the latest check says not done) is not met; moving back is always allowed.
    assert not gate(playbook, "a", "b", DealEvidence(fields={"close_date": "2026-03-01"}, checks={"a1": False})).allowed
    assert gate(playbook, "c", "a", bare).allowed and gate(playbook, "c", "a", bare).direction == "back"


def test_a_stage_requiring_a_passing_proposal_adds_it_to_what_is_missing() -> None:
    playbook = _requiring_proposal(_three_stages(), "b")
    ready = DealEvidence(fields={"close_date": "2026-03-01", "next_step": "send terms"}, checks={"a1": True},
                         contact_roles=frozenset({"economic_buyer"}))
    # Leaving a (which does not ask for it) is unaffected.
    assert gate(playbook, "a", "b", ready).allowed
    # Leaving b — directly or by skipping it — needs it; unknown (nobody looked) counts as not met.
    for evidence in (ready, replace(ready, proposal_passes=False)):
        for start in ("a", "b"):
            decision = gate(playbook, start, "c", evidence)
            assert [(c.stage, c.key, c.label, c.kind, c.how) for c in decision.missing] == [
                ("b", PASSING_PROPOSAL_KEY, PASSING_PROPOSAL_LABEL, "proposal", "missing")]
    passing = gate(playbook, "a", "c", replace(ready, proposal_passes=True))
    assert passing.allowed and any(c.key == PASSING_PROPOSAL_KEY and c.how == "evidence" for c in passing.checked)
    # A passing proposal does not stand in for the other criteria.
    assert [c.key for c in gate(playbook, "b", "c", DealEvidence(fields={"next_step": "x"}, proposal_passes=True)
                                ).missing] == ["b1"]


def _answers(rows: list[tuple[int, str, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame([(deal, fw, q, answer, T0 + timedelta(days=day), None) for deal, fw, q, answer, day in rows],
                        schema={"opportunity_id": pl.Int64(), "framework": pl.String(), "question": pl.String(),
                                "answer": pl.String(), "answered_at": pl.Datetime("us"), "answered_by": pl.Int64()},
                        orient="row")


def test_a_score_is_the_mean_over_the_framework_of_the_latest_answers_known_then() -> None:
    answers = _answers([(1, "meddicc", "metrics", "yes", 0), (1, "meddicc", "champion", "partial", 1),
                        (1, "meddicc", "metrics", "unknown", 5), (1, "meddicc", "competition", "no", 2)])
    # On day 3: metrics yes (1) + champion partial (0.5) + competition no (0) over MEDDICC's 7 questions.
    early = scores(answers, [MEDDICC], as_of=T0 + timedelta(days=3))
    assert early["score"][0] == pytest.approx(1.5 / 7) and early["answered"][0] == 3 and early["unknown"][0] == 0
    # On day 6 metrics became unknown: 0.5 / 7, and one unknown is a finding.
    late = scores(answers, [MEDDICC], as_of=T0 + timedelta(days=6))
    assert late["score"][0] == pytest.approx(0.5 / 7) and late["unknown"][0] == 1
    assert unknown_findings(answers, as_of=T0 + timedelta(days=6))["question"].to_list() == ["metrics"]


def test_requalification_is_due_from_the_last_answer_or_creation() -> None:
    deals = pl.DataFrame({"id": [1, 2, 3], "owner_id": [7, 7, 8], "stage": ["a", "a", "b"],
                          "created_at": [T0, T0, T0]})
    stages = pl.DataFrame({"key": ["a", "b"], "requalify_days": [10, 30]})
    answers = _answers([(2, "meddicc", "metrics", "yes", 8)]).select("opportunity_id", "answered_at")
    table = requalification(deals, answers, stages, as_of=T0 + timedelta(days=15), warn_days=7)
    by_id = {row["id"]: row for row in table.iter_rows(named=True)}
    # 1: never answered, a asks every 10 days -> due day 10, overdue on day 15 by 5 days.
    assert by_id[1]["status"] == "overdue" and by_id[1]["days_overdue"] == 5
    # 2: answered day 8 -> due day 18, 3 days ahead (within the 7-day warning) -> due.
    assert by_id[2]["status"] == "due" and by_id[2]["days_overdue"] == -3
    # 3: b asks every 30 days -> due day 30, 15 days ahead -> ok.
    assert by_id[3]["status"] == "ok"


def test_the_gate_analysis_splits_deals_leaving_a_stage_by_criteria_met() -> None:
    playbook = _three_stages()

    def move(deal: int, day: int) -> tuple[int, str, str, str, datetime]:
        return deal, "stage", "a", "b", T0 + timedelta(days=day)

    changes = pl.DataFrame([move(1, 5), move(2, 5), move(3, 5), move(4, 5)],
                           schema={"opportunity_id": pl.Int64(), "field": pl.String(), "old_value": pl.String(),
                                   "new_value": pl.String(), "changed_at": pl.Datetime("us")}, orient="row")
    # Deals 1 and 2 ticked a1 and a2 before leaving a; deal 3 ticked only a1; deal 4 ticked both after leaving.
    ticks = [(d, k, True, T0 + timedelta(days=day)) for d, k, day in
             [(1, "a1", 1), (1, "a2", 2), (2, "a1", 1), (2, "a2", 1), (3, "a1", 1), (4, "a1", 6), (4, "a2", 6)]]
    checks = pl.DataFrame(ticks, schema={"opportunity_id": pl.Int64(), "criterion_key": pl.String(),
                                         "done": pl.Boolean(), "checked_at": pl.Datetime("us")}, orient="row")
    outcomes = pl.DataFrame({"id": [1, 2, 3, 4], "status": ["won", "lost", "lost", "won"],
                             "closed_at": [T0 + timedelta(days=20)] * 4})
    effect = gate_effect(changes, checks, outcomes, playbook, as_of=T0 + timedelta(days=30))
    row = effect.stages.row(0, named=True)
    # Met: deals 1 (won) and 2 (lost) -> 1/2. Not met: 3 (lost) and 4 (won) -> 1/2.
    assert (row["stage"], row["met_deals"], row["unmet_deals"]) == ("a", 2, 2)
    assert row["met_win_rate"] == pytest.approx(0.5) and row["unmet_win_rate"] == pytest.approx(0.5)
    criteria = {r["criterion"]: r for r in effect.criteria.iter_rows(named=True)}
    # a1 met by 1, 2, 3 (won 1 of 3) and not by 4 (won).
    assert criteria["a1"]["met_advances"] == 3 and criteria["a1"]["unmet_win_rate"] == pytest.approx(1.0)
    # Before the outcomes are known nothing is closed.
    assert gate_effect(changes, checks, outcomes, playbook, as_of=T0 + timedelta(days=10)).stages.height == 0
