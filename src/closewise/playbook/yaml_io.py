"""A playbook as YAML, for RevOps to keep in version control: `closewise playbook export` writes it,
`closewise playbook import` reads it back (and the settings page does the same).

```yaml
pipeline: default
stages:                       # in order
  - key: qualification
    name: Qualification
    probability: 20           # percent, the default for deals entering the stage
    forecast_category: pipeline
    days_to_rot: 21
    requalify_days: 30
    guidance: Check budget, authority, need and timing.
    required_fields: [close_date]
    requires_passing_proposal: false  # true: leaving needs the latest proposal to pass its quality checks
    exit_criteria:
      - {key: budget_range_known, label: A budget range is known, kind: checkbox}
      - {key: timeline_known, label: The buyer's timeline is known, kind: field, field: close_date}
      - {key: pain_identified, label: The pain is stated, kind: evidence,
         rule: qualification_answer, framework: meddicc, question: identify_pain}
frameworks:
  - key: meddicc
    name: MEDDICC
    questions:
      - {key: metrics, label: "Metrics: what measurable outcome does the buyer expect?"}
```

Evidence rules: `activity` (with `type`: call, email, meeting, task), `activity_with_contact`, `contact_role`
(with `buying_role`), `qualification_answer` (with `framework` and `question`, answered "yes").
`requires_passing_proposal` (default false) may not be set on the last stage: no stage follows it, so a deal
never leaves it through a gate (it closes instead). Every error names the place in the file
(`stages[2].exit_criteria[0].kind`).
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from closewise.domain.enums import ActivityType, ForecastCategory
from closewise.errors import InvalidInput
from closewise.playbook.default import (
    CriterionKind,
    ExitCriterion,
    Playbook,
    QualificationFramework,
    Question,
    StageDefinition,
)

# Opportunity fields a `field` criterion or `required_fields` may name.
DEAL_FIELDS: Final = frozenset({"account_id", "amount", "close_date", "next_step", "forecast_category", "type",
                                "lead_source", "competitor", "probability"})
EVIDENCE_RULES: Final = {
    "activity": ("type",),
    "activity_with_contact": (),
    "contact_role": ("buying_role",),
    "qualification_answer": ("framework", "question"),
}
_KINDS: Final = ("checkbox", "field", "evidence")


def playbook_to_yaml(playbook: Playbook) -> str:
    document = {
        "pipeline": playbook.pipeline,
        "stages": [
            {
                "key": stage.key, "name": stage.name, "probability": stage.default_probability,
                "forecast_category": stage.forecast_category.value, "days_to_rot": stage.days_to_rot,
                "requalify_days": stage.requalify_days, "guidance": stage.guidance,
                "required_fields": list(stage.required_fields),
                "requires_passing_proposal": stage.requires_passing_proposal,
                "exit_criteria": [{"key": c.key, "label": c.label, "kind": c.kind, **(c.spec or {})}
                                  for c in stage.exit_criteria],
            }
            for stage in playbook.stages
        ],
        "frameworks": [
            {"key": f.key, "name": f.name, "questions": [{"key": q.key, "label": q.label} for q in f.questions]}
            for f in playbook.frameworks
        ],
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


def playbook_from_yaml(text: str, *, source: str = "playbook") -> Playbook:
    """Parse and check a playbook; InvalidInput names the file and the place in it."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        raise InvalidInput(f"not valid YAML ({getattr(exc, 'problem', None) or exc})", where=where) from None
    reader = _Reader(source)
    root = reader.mapping(document, "")
    frameworks = tuple(reader.framework(item, f"frameworks[{i}]")
                       for i, item in enumerate(reader.sequence(root.get("frameworks", []), "frameworks")))
    reader.unique([f.key for f in frameworks], "frameworks", "framework key")
    questions = {(f.key, q.key) for f in frameworks for q in f.questions}
    items = reader.sequence(root.get("stages"), "stages")
    if not items:
        raise InvalidInput("a playbook needs at least one stage", where=f"{source}: stages")
    stages = tuple(reader.stage(item, f"stages[{i}]", i + 1, questions) for i, item in enumerate(items))
    if stages[-1].requires_passing_proposal:
        raise reader.fail(f"stages[{len(stages) - 1}].requires_passing_proposal",
                          f"{stages[-1].key!r} is the last stage: a deal never leaves it for another stage, so a "
                          "passing proposal cannot be required to leave it; set it on the stage before")
    reader.unique([s.key for s in stages], "stages", "stage key")
    reader.unique([c.key for s in stages for c in s.exit_criteria], "stages", "exit criterion key")
    pipeline = reader.text(root.get("pipeline", "default"), "pipeline")
    return Playbook(pipeline=pipeline, stages=stages, frameworks=frameworks)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> InvalidInput:
        return InvalidInput(message, where=f"{self.source}: {where}" if where else self.source)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a mapping of keys to values")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "expected a list")
        return value

    def text(self, value: Any, where: str, *, required: bool = True) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.fail(where, "is missing")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(where, f"expected text, not {type(value).__name__}")
        return str(value).strip()

    def number(self, value: Any, where: str, *, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(where, f"expected a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    def days(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
            raise self.fail(where, f"expected a whole number of days from 1 to 3650, not {value!r}")
        return value

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, not {value!r}")
        return value

    def unique(self, keys: list[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise self.fail(where, f"the {what} {key!r} appears twice; keys must be unique")
            seen.add(key)

    def framework(self, value: Any, where: str) -> QualificationFramework:
        item = self.mapping(value, where)
        questions = tuple(
            Question(self.text(self.mapping(q, f"{where}.questions[{j}]").get("key"), f"{where}.questions[{j}].key"),
                     self.text(q.get("label"), f"{where}.questions[{j}].label"))
            for j, q in enumerate(self.sequence(item.get("questions"), f"{where}.questions")))
        if not questions:
            raise self.fail(f"{where}.questions", "a framework needs at least one question")
        self.unique([q.key for q in questions], f"{where}.questions", "question key")
        return QualificationFramework(self.text(item.get("key"), f"{where}.key"),
                                      self.text(item.get("name"), f"{where}.name"), questions)

    def stage(self, value: Any, where: str, order: int, questions: set[tuple[str, str]]) -> StageDefinition:
        item = self.mapping(value, where)
        category = self.text(item.get("forecast_category", "pipeline"), f"{where}.forecast_category")
        allowed = [c.value for c in ForecastCategory if c not in (ForecastCategory.CLOSED, ForecastCategory.OMITTED)]
        if category not in allowed:
            raise self.fail(f"{where}.forecast_category", f"unknown forecast category {category!r}; one of "
                            f"{', '.join(allowed)}")
        required = tuple(self.text(f, f"{where}.required_fields[{j}]")
                         for j, f in enumerate(self.sequence(item.get("required_fields"), f"{where}.required_fields")))
        for j, name in enumerate(required):
            if name not in DEAL_FIELDS:
                raise self.fail(f"{where}.required_fields[{j}]", f"unknown deal field {name!r}; one of "
                                f"{', '.join(sorted(DEAL_FIELDS))}")
        criteria = tuple(self.criterion(c, f"{where}.exit_criteria[{j}]", questions)
                         for j, c in enumerate(self.sequence(item.get("exit_criteria"), f"{where}.exit_criteria")))
        return StageDefinition(
            key=self.text(item.get("key"), f"{where}.key"),
            name=self.text(item.get("name"), f"{where}.name"),
            order=order,
            default_probability=self.number(item.get("probability", 0), f"{where}.probability", low=0, high=100),
            forecast_category=ForecastCategory(category),
            days_to_rot=self.days(item.get("days_to_rot", 30), f"{where}.days_to_rot"),
            requalify_days=self.days(item.get("requalify_days", 30), f"{where}.requalify_days"),
            guidance=self.text(item.get("guidance"), f"{where}.guidance", required=False),
            exit_criteria=criteria,
            required_fields=required,
            requires_passing_proposal=self.flag(item.get("requires_passing_proposal", False),
                                                f"{where}.requires_passing_proposal"),
        )

    def criterion(self, value: Any, where: str, questions: set[tuple[str, str]]) -> ExitCriterion:
        item = self.mapping(value, where)
        kind = self.text(item.get("kind"), f"{where}.kind")
        if kind not in _KINDS:
            raise self.fail(f"{where}.kind", f"unknown kind {kind!r}; one of {', '.join(_KINDS)}")
        spec: dict[str, str] | None = None
        if kind == "field":
            name = self.text(item.get("field"), f"{where}.field")
            if name not in DEAL_FIELDS:
                raise self.fail(f"{where}.field",
                                f"unknown deal field {name!r}; one of {', '.join(sorted(DEAL_FIELDS))}")
            spec = {"field": name}
        elif kind == "evidence":
            rule = self.text(item.get("rule"), f"{where}.rule")
            if rule not in EVIDENCE_RULES:
                raise self.fail(f"{where}.rule", f"unknown evidence rule {rule!r}; one of {', '.join(EVIDENCE_RULES)}")
            spec = {"rule": rule, **{k: self.text(item.get(k), f"{where}.{k}") for k in EVIDENCE_RULES[rule]}}
            if rule == "activity" and spec["type"] not in {t.value for t in ActivityType}:
                raise self.fail(f"{where}.type", f"unknown activity type {spec['type']!r}")
            if rule == "qualification_answer" and (spec["framework"], spec["question"]) not in questions:
                raise self.fail(f"{where}.question", f"no question {spec['question']!r} in a framework "
                                f"{spec['framework']!r} of this playbook")
        kind_value: CriterionKind = "checkbox" if kind == "checkbox" else "field" if kind == "field" else "evidence"
        return ExitCriterion(self.text(item.get("key"), f"{where}.key"), self.text(item.get("label"), f"{where}.label"),
                             kind_value, spec)
