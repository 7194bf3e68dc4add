"""The default B2B playbook, as plain data.

Six open stages from first contact to signature; the outcome of a deal (won, lost, no decision) lives in
its status, not in a stage. Each stage has the probability and forecast category a deal takes on entering
it, the days after which a deal sitting in it is rotting, how often its qualification should be looked at
again, guidance for the rep and the exit criteria that should hold before the deal moves on. A stage may also
require a proposal that passes its quality checks (`requires_passing_proposal`, see proposals/checks.py) before a
deal leaves it; the default playbook does not turn that on (docs/playbook.md says why).

Exit-criterion keys are unique across the whole playbook, because a check (`criteria_checks`) names its
criterion by key only. Probabilities are percentages (0-100), as CRMs enter them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from closewise.domain.enums import ForecastCategory

CriterionKind = Literal["checkbox", "field", "evidence"]


@dataclass(frozen=True)
class ExitCriterion:
    key: str
    label: str
    # checkbox: a rep ticks it; field: an opportunity field must be filled (spec names it);
    # evidence: an activity or qualification answer must exist (spec states the rule).
    kind: CriterionKind
    spec: dict[str, str] | None = None


@dataclass(frozen=True)
class StageDefinition:
    key: str
    name: str
    order: int
    default_probability: float
    forecast_category: ForecastCategory
    days_to_rot: int
    requalify_days: int
    guidance: str
    exit_criteria: tuple[ExitCriterion, ...]
    required_fields: tuple[str, ...] = ()
    # Leaving the stage forward needs the deal's latest proposal to pass every quality check.
    requires_passing_proposal: bool = False


@dataclass(frozen=True)
class Question:
    key: str
    label: str


@dataclass(frozen=True)
class QualificationFramework:
    key: str
    name: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Playbook:
    pipeline: str
    stages: tuple[StageDefinition, ...]
    frameworks: tuple[QualificationFramework, ...]

    def stage(self, key: str) -> StageDefinition:
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise KeyError(key)


_PIPELINE_CAT = ForecastCategory.PIPELINE
_BEST_CASE = ForecastCategory.BEST_CASE
_COMMIT = ForecastCategory.COMMIT

STAGES: Final[tuple[StageDefinition, ...]] = (
    StageDefinition(
        key="prospecting",
        name="Prospecting",
        order=1,
        default_probability=10.0,
        forecast_category=_PIPELINE_CAT,
        days_to_rot=21,
        requalify_days=30,
        guidance="Reach the right person, confirm there is a problem worth a conversation, book discovery.",
        exit_criteria=(
            ExitCriterion(
                "contact_identified",
                "A named contact at the account has replied",
                "evidence",
                {"rule": "activity_with_contact"},
            ),
            ExitCriterion("meeting_booked", "A first meeting is booked", "checkbox"),
        ),
        required_fields=("account_id", "amount"),
    ),
    StageDefinition(
        key="qualification",
        name="Qualification",
        order=2,
        default_probability=20.0,
        forecast_category=_PIPELINE_CAT,
        days_to_rot=21,
        requalify_days=30,
        guidance="Check budget, authority, need and timing before investing the team's time.",
        exit_criteria=(
            ExitCriterion(
                "pain_identified",
                "The business pain is stated in the buyer's words",
                "evidence",
                {"rule": "qualification_answer", "framework": "meddicc", "question": "identify_pain"},
            ),
            ExitCriterion("budget_range_known", "A budget range is known", "checkbox"),
            ExitCriterion("timeline_known", "The buyer's timeline is known", "field", {"field": "close_date"}),
        ),
        required_fields=("close_date",),
    ),
    StageDefinition(
        key="discovery",
        name="Discovery",
        order=3,
        default_probability=35.0,
        forecast_category=_PIPELINE_CAT,
        days_to_rot=30,
        requalify_days=30,
        guidance="Map the buying group, quantify the impact and agree the decision criteria.",
        exit_criteria=(
            ExitCriterion(
                "champion_identified",
                "A champion is identified and tested",
                "evidence",
                {"rule": "contact_role", "buying_role": "champion"},
            ),
            ExitCriterion(
                "metrics_quantified",
                "The impact is quantified (metrics)",
                "evidence",
                {"rule": "qualification_answer", "framework": "meddicc", "question": "metrics"},
            ),
            ExitCriterion("decision_criteria_known", "The decision criteria are written down", "checkbox"),
        ),
    ),
    StageDefinition(
        key="solution",
        name="Solution / Demo",
        order=4,
        default_probability=50.0,
        forecast_category=_BEST_CASE,
        days_to_rot=30,
        requalify_days=21,
        guidance="Show the solution against the agreed criteria; meet the economic buyer.",
        exit_criteria=(
            ExitCriterion(
                "demo_delivered", "A tailored demo was delivered", "evidence", {"rule": "activity", "type": "meeting"}
            ),
            ExitCriterion(
                "economic_buyer_met",
                "The economic buyer has been met",
                "evidence",
                {"rule": "contact_role", "buying_role": "economic_buyer"},
            ),
            ExitCriterion("technical_fit_confirmed", "Technical fit is confirmed", "checkbox"),
        ),
    ),
    StageDefinition(
        key="proposal",
        name="Proposal",
        order=5,
        default_probability=70.0,
        forecast_category=_BEST_CASE,
        days_to_rot=21,
        requalify_days=14,
        guidance="Send a proposal built on what discovery captured; agree the decision process and dates.",
        exit_criteria=(
            ExitCriterion("proposal_sent", "The proposal was sent", "checkbox"),
            ExitCriterion(
                "decision_process_mapped",
                "The decision and paper process are mapped",
                "evidence",
                {"rule": "qualification_answer", "framework": "meddicc", "question": "decision_process"},
            ),
        ),
        required_fields=("next_step",),
    ),
    StageDefinition(
        key="negotiation",
        name="Negotiation",
        order=6,
        default_probability=85.0,
        forecast_category=_COMMIT,
        days_to_rot=14,
        requalify_days=7,
        guidance="Agree terms, get legal and procurement through, confirm the signature date.",
        exit_criteria=(
            ExitCriterion("terms_agreed", "Commercial terms are agreed", "checkbox"),
            ExitCriterion("legal_review_done", "Legal and procurement review is done", "checkbox"),
            ExitCriterion(
                "signature_date_confirmed", "The signature date is confirmed", "field", {"field": "close_date"}
            ),
        ),
        required_fields=("next_step", "close_date"),
    ),
)

MEDDICC: Final = QualificationFramework(
    key="meddicc",
    name="MEDDICC",
    questions=(
        Question("metrics", "Metrics: what measurable outcome does the buyer expect?"),
        Question("economic_buyer", "Economic buyer: who signs, and have we met them?"),
        Question("decision_criteria", "Decision criteria: how will they compare options?"),
        Question("decision_process", "Decision process: which steps and people lead to a signature?"),
        Question("identify_pain", "Identify pain: what hurts, and what does it cost them?"),
        Question("champion", "Champion: who sells for us when we are not in the room?"),
        Question("competition", "Competition: who else, including doing nothing?"),
    ),
)

BANT: Final = QualificationFramework(
    key="bant",
    name="BANT",
    questions=(
        Question("budget", "Budget: is money set aside for this?"),
        Question("authority", "Authority: are we talking to someone who can decide?"),
        Question("need", "Need: is there a problem we solve?"),
        Question("timeline", "Timeline: when must it be solved?"),
    ),
)

DEFAULT_PLAYBOOK: Final = Playbook(pipeline="default", stages=STAGES, frameworks=(MEDDICC, BANT))
