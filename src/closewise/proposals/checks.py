"""Quality checks of a proposal's executive summary (and of the whole document's text).

- `names_customer`: the customer's name appears.
- `cites_pains`: the business pain the customer stated in discovery (identify pain / need evidence) is cited.
- `cites_outcomes`: an outcome or metric they stated (metrics, decision criteria, budget, timeline) is cited.
- `customer_specific`: beyond the name, at least two facts only this customer's record holds (a contact's name,
  the industry, the head count, the country, the deal's amount or close date).
- `no_placeholders`: nothing like `{{ ... }}`, `TODO`, `TBD`, `[Customer name]`, `XXX`, `None`, `nan` left.
- `numbers_consistent`: every amount written with a currency code is the deal's amount in the deal's currency,
  and every date written is the deal's close date (or today, or the deal's creation date).

A check that cannot pass because discovery never captured the fact says so in its detail: the fix is in the
deal's record, not in the wording.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from closewise.proposals.summary import OUTCOME_QUESTIONS, PAIN_QUESTIONS, DealFacts, date_text

_PLACEHOLDERS = (
    (re.compile(r"\{\{|\}\}|\{%|%\}"), "template markup"),
    (re.compile(r"\bTODO\b|\bTBD\b|\bFIXME\b|\bXXX+\b", re.IGNORECASE), "a to-do marker"),
    (re.compile(r"\[[^\]\n]{0,60}\]"), "a bracketed placeholder"),
    (re.compile(r"<(?:customer|company|name|amount|date)[^>]*>", re.IGNORECASE), "an angle-bracket placeholder"),
    (re.compile(r"\blorem ipsum\b", re.IGNORECASE), "filler text"),
    (re.compile(r"\b(?:None|nan|NaN|null)\b"), "an empty value"),
)
_MONEY = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?([A-Z]{3})\b")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_LONG_DATE = re.compile(rf"\b(\d{{1,2}}) ({_MONTHS}) (\d{{4}})\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_CURRENCY_CODES = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "SEK", "NOK", "DKK", "PLN", "INR",
                             "BRL", "MXN", "SGD", "NZD", "ZAR", "HKD", "CNY"})


@dataclass(frozen=True)
class Check:
    key: str
    label: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _contains(text: str, needle: str) -> bool:
    return needle.strip().lower().rstrip(".") in text.lower()


def specific_facts(facts: DealFacts) -> list[str]:
    """Strings only this customer's record holds (besides its name), as they would appear in the text."""
    found: list[str] = [c.name for c in facts.contacts if c.name]
    if facts.industry:
        found.append(facts.industry)
    if facts.employees:
        found.append(f"{facts.employees:,}")
    if facts.country:
        found.append(facts.country)
    if facts.amount is not None:
        found.append(f"{facts.amount:,.0f}")
    if facts.close_date is not None:
        found.append(date_text(facts.close_date))
    return found


def _cites(key: str, label: str, text: str, facts: DealFacts, questions: tuple[str, ...], what: str) -> Check:
    stated = facts.evidence_for(questions)
    if not stated:
        return Check(key, label, False, f"discovery recorded no {what} for {facts.account}: capture it on the deal")
    cited = [s for s in stated if _contains(text, s)]
    if cited:
        return Check(key, label, True, f"cites \u201c{cited[0]}\u201d")
    return Check(key, label, False, f"does not cite what {facts.account} said: \u201c{stated[0]}\u201d")


def _placeholders(text: str) -> Check:
    found = []
    for pattern, what in _PLACEHOLDERS:
        match = pattern.search(text)
        if match:
            found.append(f"{what} ({match.group(0)!r})")
    if found:
        return Check("no_placeholders", "No placeholder left", False, "found " + "; ".join(found))
    return Check("no_placeholders", "No placeholder left", True, "no placeholder found")


def _numbers(text: str, facts: DealFacts) -> Check:
    label = "Numbers match the deal"
    problems: list[str] = []
    amounts = 0
    for match in _MONEY.finditer(text):
        code = match.group(3)
        if code not in _CURRENCY_CODES:
            continue
        amounts += 1
        value = float(match.group(1).replace(",", "") + ("." + match.group(2) if match.group(2) else ""))
        if code != facts.currency:
            problems.append(f"{match.group(0)} is not in the deal's currency {facts.currency}")
        elif facts.amount is None or abs(value - facts.amount) > 0.5:
            problems.append(f"{match.group(0)} is not the deal's amount")
    allowed = {facts.today, facts.created_on} | ({facts.close_date} if facts.close_date else set())
    months = _MONTHS.split("|")
    for match in _LONG_DATE.finditer(text):
        try:
            day = date(int(match.group(3)), months.index(match.group(2)) + 1, int(match.group(1)))
        except ValueError:
            problems.append(f"{match.group(0)} is not a date")
            continue
        if day not in allowed:
            problems.append(f"{match.group(0)} is not the deal's close date")
    for match in _ISO_DATE.finditer(text):
        try:
            day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            problems.append(f"{match.group(0)} is not a date")
            continue
        if day not in allowed:
            problems.append(f"{match.group(0)} is not the deal's close date")
    if problems:
        return Check("numbers_consistent", label, False, "; ".join(problems))
    if facts.amount is not None and amounts == 0:
        return Check("numbers_consistent", label, False, "the deal's amount is not stated")
    return Check("numbers_consistent", label, True, "amounts and dates agree with the deal")


def run_checks(summary_text: str, facts: DealFacts, document_text: str | None = None) -> list[Check]:
    """Every check of the summary; placeholders and numbers are also looked for in the whole document."""
    whole = summary_text if document_text is None else f"{summary_text}\n{document_text}"
    named = _contains(summary_text, facts.account)
    specific = [f for f in specific_facts(facts) if _contains(summary_text, f)]
    return [
        Check("names_customer", "Names the customer", named,
              f"names {facts.account}" if named else f"{facts.account} is not named"),
        _cites("cites_pains", "Cites the customer's own pains", summary_text, facts, PAIN_QUESTIONS,
               "business pain"),
        _cites("cites_outcomes", "Cites the outcomes and metrics they expect", summary_text, facts,
               OUTCOME_QUESTIONS, "outcome or metric"),
        Check("customer_specific", "Specific to this customer", len(specific) >= 2,
              (f"{len(specific)} facts from {facts.account}'s record: " + ", ".join(specific[:4])) if specific
              else f"nothing from {facts.account}'s record beyond its name"),
        _placeholders(whole),
        _numbers(whole, facts),
    ]


def passed(checks: list[Check] | list[dict[str, Any]]) -> bool:
    return bool(checks) and all((c["passed"] if isinstance(c, dict) else c.passed) for c in checks)
