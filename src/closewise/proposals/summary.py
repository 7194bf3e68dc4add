"""The executive summary of a proposal, written for one customer from what the deal's record holds.

Discovery and qualification leave facts behind: the account's firmographics, the buying group (contacts with
their buying roles, and which of them took part in meetings and calls), the MEDDICC or BANT answers with
their evidence, the exit criteria met, the activity history, the amount, the close date and the competitor.
`write_summary` turns those facts into five short paragraphs (who the customer is and how we worked with
them; their business issues; the outcomes they expect; the decision process and timeline; the investment,
the competition and the next step). It is deterministic and needs no language model.

A language model may polish the wording: `Polisher` is the hook (off by default). A polished text is kept
only when it still passes every quality check the plain text passed (`checks.run_checks`), so a model can
never remove the customer's facts or invent numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

YES_LIKE = frozenset({"yes", "partial"})
# Which qualification questions carry the customer's pains, the outcomes they expect, and their decision.
PAIN_QUESTIONS = ("identify_pain", "need")
OUTCOME_QUESTIONS = ("metrics", "decision_criteria", "budget", "timeline")
DECISION_QUESTIONS = ("decision_process", "economic_buyer", "authority", "champion")
QUESTION_LABELS = {
    "metrics": "metrics", "economic_buyer": "economic buyer", "decision_criteria": "decision criteria",
    "decision_process": "decision process", "identify_pain": "pain", "champion": "champion",
    "competition": "competition", "budget": "budget", "authority": "authority", "need": "need",
    "timeline": "timeline",
}
ROLE_LABELS = {
    "economic_buyer": "economic buyer", "champion": "champion", "decision_maker": "decision maker",
    "technical_evaluator": "technical evaluator", "user": "user", "influencer": "influencer",
    "procurement": "procurement",
}
SEGMENT_LABELS = {"smb": "small business", "mid_market": "mid-market", "enterprise": "enterprise"}


@dataclass(frozen=True)
class Contact:
    name: str
    title: str | None
    role: str | None
    engaged: bool  # took part in at least one activity on this deal


@dataclass(frozen=True)
class Answer:
    framework: str
    question: str
    answer: str  # yes | partial | no | unknown
    evidence: str | None


@dataclass(frozen=True)
class DealFacts:
    """Everything the record says about one deal, as the summary, the checks and the documents read it."""

    deal_id: int
    deal_name: str
    account: str
    owner: str | None
    stage: str
    stage_name: str
    status: str
    amount: float | None
    currency: str
    close_date: date | None
    created_on: date
    today: date
    industry: str | None = None
    employees: int | None = None
    country: str | None = None
    segment: str | None = None
    deal_type: str | None = None
    competitor: str | None = None
    next_step: str | None = None
    contacts: tuple[Contact, ...] = ()
    answers: tuple[Answer, ...] = ()
    criteria_met: tuple[str, ...] = ()  # labels of exit criteria checked done
    criteria_open: tuple[str, ...] = ()  # labels of the current stage's criteria not yet met
    activities: Mapping[str, int] = field(default_factory=dict)  # completed activities by type
    competitor_win_rate: float | None = None  # the org's win rate against `competitor`
    competitor_point: str | None = None  # the talking point for the economic buyer against `competitor`

    def answer(self, question: str) -> Answer | None:
        for item in self.answers:
            if item.question == question:
                return item
        return None

    def evidence_for(self, questions: tuple[str, ...]) -> list[str]:
        """The evidence of the questions answered yes or partly, in `questions` order."""
        found: list[str] = []
        for question in questions:
            item = self.answer(question)
            if item is not None and item.answer in YES_LIKE and item.evidence and item.evidence.strip():
                found.append(item.evidence.strip())
        return found

    @property
    def engaged_contacts(self) -> tuple[Contact, ...]:
        return tuple(c for c in self.contacts if c.engaged)

    def contact_with_role(self, role: str) -> Contact | None:
        for contact in self.contacts:
            if contact.role == role:
                return contact
        return None


@dataclass(frozen=True)
class ExecutiveSummary:
    title: str
    paragraphs: tuple[str, ...]
    polished_by: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


class Polisher(Protocol):
    """An optional language model that rewrites the summary's wording. It receives the plain summary and the
    facts, and returns new paragraphs; `name` is recorded with the proposal."""

    name: str

    def __call__(self, summary: ExecutiveSummary, facts: DealFacts) -> tuple[str, ...]: ...


def money_text(amount: float | None, currency: str) -> str:
    return "an amount still to be agreed" if amount is None else f"{amount:,.0f} {currency}"


def date_text(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _people(contacts: tuple[Contact, ...], limit: int = 4) -> str:
    parts = []
    for contact in contacts[:limit]:
        detail = contact.title or ROLE_LABELS.get(contact.role or "", contact.role or "")
        parts.append(f"{contact.name} ({detail})" if detail else contact.name)
    more = len(contacts) - limit
    if more > 0:
        parts.append(f"{more} more")
    return _join(parts)


def _join(parts: list[str]) -> str:
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _quote(text: str) -> str:
    return "\u201c" + text.rstrip(".") + "\u201d"


def _profile(facts: DealFacts) -> str:
    size = f"{facts.employees:,}-person " if facts.employees else ""
    industry = f"{facts.industry.lower()} " if facts.industry else ""
    where = f" based in {facts.country}" if facts.country else ""
    kind = "organisation" if not facts.segment else f"{SEGMENT_LABELS.get(facts.segment, facts.segment)} organisation"
    return f"{facts.account} is a {size}{industry}{kind}{where}"


def _engagement(facts: DealFacts) -> str:
    weeks = max(1, round((facts.today - facts.created_on).days / 7))
    counts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(facts.activities.items()) if n]
    engaged = facts.engaged_contacts
    text = f"Over the last {weeks} week{'s' if weeks != 1 else ''}"
    text += f" ({_join(counts)})" if counts else ""
    if engaged:
        text += f" we have worked with {len(engaged)} of {facts.account}'s people: {_people(engaged)}."
    else:
        text += f" we have not yet met anyone at {facts.account} in a recorded meeting or call."
    return text


def _issues(facts: DealFacts) -> str:
    pains = facts.evidence_for(PAIN_QUESTIONS)
    if pains:
        text = f"In {facts.account}'s own words, the business issue is {_quote(pains[0])}"
        text += f", and {_quote(pains[1])}." if len(pains) > 1 else "."
        partial = [q for q in PAIN_QUESTIONS if (a := facts.answer(q)) is not None and a.answer == "partial"]
        if partial:
            text += " This was only partly confirmed in discovery and is worth testing again in the meeting."
        return text
    return (f"Discovery has not yet recorded {facts.account}'s business pain in their own words; "
            "the proposal should not go out until it has.")


def _outcomes(facts: DealFacts) -> str:
    outcomes = facts.evidence_for(OUTCOME_QUESTIONS)
    confirmed = [QUESTION_LABELS.get(a.question, a.question) for a in facts.answers if a.answer == "yes"]
    open_items = [f"{QUESTION_LABELS.get(a.question, a.question)} ({a.answer})" for a in facts.answers
                  if a.answer not in ("yes",)]
    framework = facts.answers[0].framework.upper() if facts.answers else None
    if outcomes:
        text = f"The outcome {facts.account} expects: {_quote(outcomes[0])}"
        text += f"; they will judge success on {_quote(outcomes[1])}." if len(outcomes) > 1 else "."
    else:
        text = f"{facts.account} has not yet put a measurable outcome on record."
    if framework:
        text += f" Of the {framework} qualification, {_join(confirmed) or 'nothing'} "
        text += "is confirmed" if len(confirmed) == 1 else "are confirmed"
        text += f"; still open: {_join(open_items)}." if open_items else "; nothing is left open."
    return text


def _decision(facts: DealFacts) -> str:
    parts = []
    process = facts.evidence_for(("decision_process", "authority"))
    if process:
        parts.append(f"The decision path agreed with {facts.account} is {_quote(process[0])}.")
    buyer = facts.contact_with_role("economic_buyer")
    if buyer is not None:
        met = "has taken part in our meetings" if buyer.engaged else "has not yet been met"
        parts.append(f"{buyer.name}, the economic buyer, {met}.")
    champion = facts.contact_with_role("champion")
    if champion is not None and champion.engaged:
        parts.append(f"{champion.name} is championing the evaluation internally.")
    if facts.close_date is not None:
        days = (facts.close_date - facts.today).days
        when = (f"{days} days from today" if days > 0 else "a date already passed, to be re-agreed")
        parts.append(f"The target decision date is {date_text(facts.close_date)}, {when}.")
    if facts.criteria_met:
        parts.append(f"Milestones already reached: {_join([c[0].lower() + c[1:] for c in facts.criteria_met[-3:]])}.")
    return " ".join(parts) if parts else f"The decision process at {facts.account} is still to be mapped."


def _investment(facts: DealFacts) -> str:
    text = (f"We propose {facts.deal_name} for {facts.account}, an investment of "
            f"{money_text(facts.amount, facts.currency)}.")
    if facts.competitor:
        text += f" {facts.account} is also evaluating {facts.competitor}"
        if facts.competitor_win_rate is not None:
            text += f" (we win {facts.competitor_win_rate:.0%} of the deals where we meet them)"
        text += "."
        if facts.competitor_point:
            text += f" {facts.competitor_point}"
    if facts.next_step:
        text += f" Agreed next step: {facts.next_step.rstrip('.')}."
    return text


def write_summary(facts: DealFacts) -> ExecutiveSummary:
    """The plain executive summary: deterministic, from the facts only."""
    opening = f"{_profile(facts)}. {_engagement(facts)}"
    paragraphs = (opening, _issues(facts), _outcomes(facts), _decision(facts), _investment(facts))
    return ExecutiveSummary(title=f"Executive summary for {facts.account}", paragraphs=paragraphs)


PolishCheck = Callable[[ExecutiveSummary], bool]


def polish(summary: ExecutiveSummary, facts: DealFacts, polisher: Polisher | None,
           still_good: PolishCheck) -> ExecutiveSummary:
    """`summary` reworded by `polisher` when there is one and its text still passes `still_good`; otherwise the
    plain summary (a failing or raising model never blocks a proposal)."""
    if polisher is None:
        return summary
    try:
        paragraphs = tuple(p for p in polisher(summary, facts) if p.strip())
    except Exception:  # a model's failure must not stop the proposal
        return summary
    if not paragraphs:
        return summary
    candidate = ExecutiveSummary(summary.title, paragraphs, polished_by=getattr(polisher, "name", "model"))
    return candidate if still_good(candidate) else summary
