"""Stage gates: may a deal move from one stage to another, and if not, what is missing.

A deal leaving a stage forward must meet that stage's exit criteria and have its required fields filled; a
deal skipping stages must meet the criteria of every stage it skips as well (skipping follows the same rule).
Moving back is always allowed. A criterion is met when its latest check says done (a rep or manager ticked
it), or, without a check, when what it names is there: the field filled (`field`), the evidence on record
(`evidence`: an activity of a type, an activity with a contact, a contact in a buying role engaged on the
deal, a qualification answer of "yes"). A stage that requires a passing proposal adds one more item
(`proposal:passing`), met when the deal's latest proposal passed every quality check; it cannot be ticked, only
earned by generating such a proposal (or overridden with a reason, like any other item).

Pure: the caller gathers a deal's `DealEvidence` (services/playbook.py does, from the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from closewise.playbook.default import ExitCriterion, Playbook, StageDefinition

How = Literal["checked", "field", "evidence", "missing", "unchecked"]

PASSING_PROPOSAL_KEY = "proposal:passing"
PASSING_PROPOSAL_LABEL = "A proposal that passes its quality checks"


@dataclass(frozen=True)
class DealEvidence:
    """What is on record for one deal."""

    fields: Mapping[str, Any]  # opportunity field -> value
    checks: Mapping[str, bool] = field(default_factory=dict)  # criterion key -> latest check's `done`
    activity_types: frozenset[str] = frozenset()
    activity_with_contact: bool = False
    contact_roles: frozenset[str] = frozenset()  # buying roles of contacts with an activity on the deal
    answers: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (framework, question) -> latest answer
    # Whether the latest proposal passed its checks; None when nobody looked (no stage requires it), which a
    # stage that does require it counts as not met rather than guessing.
    proposal_passes: bool | None = None


@dataclass(frozen=True)
class CriterionStatus:
    stage: str
    key: str
    label: str
    kind: str  # checkbox | field | evidence | required_field | proposal
    done: bool
    how: How

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "label": self.label, "kind": self.kind, "done": self.done,
                "how": self.how}


@dataclass(frozen=True)
class GateDecision:
    from_stage: str
    to_stage: str
    direction: Literal["forward", "back", "same"]
    checked: tuple[CriterionStatus, ...]  # every criterion the move is judged on
    skipped: tuple[str, ...]  # stages jumped over

    @property
    def missing(self) -> tuple[CriterionStatus, ...]:
        return tuple(c for c in self.checked if not c.done)

    @property
    def allowed(self) -> bool:
        return not self.missing


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def criterion_status(stage: str, criterion: ExitCriterion, evidence: DealEvidence) -> CriterionStatus:
    def status(done: bool, how: How) -> CriterionStatus:
        return CriterionStatus(stage, criterion.key, criterion.label, criterion.kind, done, how)

    checked = evidence.checks.get(criterion.key)
    if checked:
        return status(True, "checked")
    spec = criterion.spec or {}
    if criterion.kind == "field":
        filled = _filled(evidence.fields.get(spec.get("field", "")))
        return status(True, "field") if filled else status(False, "missing")
    if criterion.kind == "evidence":
        return status(True, "evidence") if _evidence(spec, evidence) else status(False, "missing")
    return status(False, "unchecked")


def _evidence(spec: Mapping[str, str], evidence: DealEvidence) -> bool:
    rule = spec.get("rule")
    if rule == "activity":
        return spec.get("type") in evidence.activity_types
    if rule == "activity_with_contact":
        return evidence.activity_with_contact
    if rule == "contact_role":
        return spec.get("buying_role") in evidence.contact_roles
    if rule == "qualification_answer":
        return evidence.answers.get((spec.get("framework", ""), spec.get("question", ""))) == "yes"
    return False


def required_field_label(name: str) -> str:
    return f"{name.replace('_', ' ').capitalize()} is filled in"


def item_labels(playbook: Playbook) -> dict[str, str]:
    """Every key a gate may name as missing in `playbook` (exit criteria, `field:<name>`, the passing proposal),
    with the label a person reads."""
    labels = {PASSING_PROPOSAL_KEY: PASSING_PROPOSAL_LABEL}
    for stage in playbook.stages:
        labels.update({c.key: c.label for c in stage.exit_criteria})
        labels.update({f"field:{name}": required_field_label(name) for name in stage.required_fields})
    return labels


def stage_status(stage: StageDefinition, evidence: DealEvidence) -> list[CriterionStatus]:
    """The exit criteria, required fields and (when the stage asks for it) the passing proposal of `stage`, each
    met or not."""
    statuses = [criterion_status(stage.key, criterion, evidence) for criterion in stage.exit_criteria]
    for name in stage.required_fields:
        done = _filled(evidence.fields.get(name))
        statuses.append(CriterionStatus(stage.key, f"field:{name}", required_field_label(name), "required_field",
                                        done, "field" if done else "missing"))
    if stage.requires_passing_proposal:
        done = evidence.proposal_passes is True
        statuses.append(CriterionStatus(stage.key, PASSING_PROPOSAL_KEY, PASSING_PROPOSAL_LABEL, "proposal", done,
                                        "evidence" if done else "missing"))
    return statuses


def gate(playbook: Playbook, from_stage: str, to_stage: str, evidence: DealEvidence) -> GateDecision:
    """Judge a move; unknown stages raise KeyError (the caller names them to the user)."""
    order = {stage.key: index for index, stage in enumerate(playbook.stages)}
    start, end = order[from_stage], order[to_stage]
    if end <= start:
        return GateDecision(from_stage, to_stage, "same" if end == start else "back", (), ())
    leaving = playbook.stages[start:end]
    checked = tuple(status for stage in leaving for status in stage_status(stage, evidence))
    return GateDecision(from_stage, to_stage, "forward", checked, tuple(stage.key for stage in leaving[1:]))
