"""How a chunk of deals lives: stage by stage, from creation to won, lost, no decision, or still open.

Every deal gets a latent execution quality `q = 0.75 * effective_skill + 0.65 * noise`, where the
effective skill is the owner's skill less a ramp penalty. Quality drives what the rows show (exit
criteria met, qualification answers, contacts engaged, how soon discovery happens) and those, not the
hidden quality, drive the outcome: the chance to move on from each stage is a logistic function of the
owner's effective skill, the qualification score, the contacts engaged, the economic buyer, the segment,
a competitor and the number of stages already left without their exit criteria met (docs/demo.md states
the coefficients). Deals also stall: they go dark (no activity, no update) and, once aged two to three
sales cycles past entering the stage, are swept to no decision. Won deals bunch at quarter ends.

All values of the tracked fields are recorded as events (field, time, coded value); `changelog` turns
them into change-log rows and current rows, so both agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.deals import DealPlan
from closewise.demo.events import (
    CATEGORIES,
    CLOSED,
    COMMIT,
    F_AMOUNT,
    F_CATEGORY,
    F_CLOSE,
    F_NEXT,
    F_PROBABILITY,
    F_STAGE,
    F_STATUS,
    FIELDS,
    LOST,
    NO_DECISION,
    OMITTED,
    OPEN,
    WON,
    Events,
    record,
    sigmoid,
)
from closewise.demo.org import Accounts, People
from closewise.demo.plan import STATIC_RATES, BoolArray, CalendarLookup, DemoPlan, FloatArray, IntArray, stream
from closewise.demo.timing import close_date_moves, quarter_end_spike
from closewise.playbook.default import DEFAULT_PLAYBOOK

STAGES: Final = DEFAULT_PLAYBOOK.stages
N_STAGES: Final = len(STAGES)
STAGE_MEDIAN_DAYS: Final = np.array(
    [[4, 5, 7, 6, 5, 4], [6, 8, 12, 12, 10, 8], [10, 15, 24, 25, 20, 16]], dtype=np.float64
)
CYCLE_DAYS: Final = STAGE_MEDIAN_DAYS.sum(axis=1)
ADVANCE_RATE: Final = np.array([0.75, 0.80, 0.82, 0.85, 0.85, 0.80])
SEGMENT_EFFECT: Final = np.array([0.3, 0.0, -0.2])
MEDIAN_AMOUNT_USD: Final = np.array([12_000.0, 45_000.0, 160_000.0])
KIND_AMOUNT: Final = np.array([1.0, 0.5, 0.8])  # new business, expansion, renewal

STAGE_CATEGORY: Final = np.array([CATEGORIES.index(stage.forecast_category) for stage in STAGES])
STAGE_PROBABILITY: Final = np.array([int(stage.default_probability) for stage in STAGES])
CRITERIA: Final = tuple(tuple(c.key for c in stage.exit_criteria) for stage in STAGES)
CRITERION_KEYS: Final = tuple(key for keys in CRITERIA for key in keys)
_CRITERION_OFFSET: Final = np.cumsum([0, *(len(keys) for keys in CRITERIA)])
PHRASES: Final = len(vocab.NEXT_STEPS[0])
CURRENCIES: Final = ("USD", *STATIC_RATES)
_RATE: Final = np.array([1.0, *STATIC_RATES.values()])
_COUNTRY_CURRENCY: Final = np.array([CURRENCIES.index(country[2]) for country in vocab.COUNTRIES])
ANSWERS: Final = ("yes", "partial", "no", "unknown")
MEDDICC_QUESTIONS: Final = 7
BANT_QUESTIONS: Final = 4


@dataclass(frozen=True)
class DealChunk:
    start: int  # index of the first deal of the chunk in the DealPlan
    rep: IntArray
    account: IntArray
    created: FloatArray
    lead: IntArray
    source: IntArray
    kind: IntArray
    segment: IntArray
    currency: IntArray  # index into CURRENCIES
    competitor: IntArray  # index into vocab.COMPETITORS, -1 for none
    quality: FloatArray
    stage: IntArray  # the last stage reached
    status: IntArray
    end: FloatArray  # closing time, NaN while open
    active_end: FloatArray  # the last moment anyone worked the deal (stall start, close, or today)
    stalled: BoolArray
    initial: IntArray  # (n, len(FIELDS)) coded values at creation
    events: Events
    checks: tuple[IntArray, IntArray, FloatArray]  # deal, criterion (index into CRITERION_KEYS), time
    answers: IntArray  # (n, 7) index into ANSWERS, -1 unanswered
    answered_at: FloatArray  # (n, 7)
    contacts: IntArray  # distinct contacts engaged
    economic_buyer: BoolArray  # whether the economic buyer is among them
    discovery_delay: FloatArray  # days from creation to the first (discovery) meeting

    def __len__(self) -> int:
        return len(self.rep)

    @property
    def framework(self) -> list[str]:
        return ["bant" if s == 0 else "meddicc" for s in self.segment.tolist()]

    def amount_usd(self, amount: IntArray, deals: IntArray) -> FloatArray:
        converted: FloatArray = amount / _RATE[self.currency[deals]]
        return converted


def simulate(
    plan: DemoPlan, people: People, accounts: Accounts, deals: DealPlan, lookup: CalendarLookup, start: int, stop: int
) -> DealChunk:
    rng = stream(plan.seed, "deals", start)
    n = stop - start
    every = np.arange(n)
    rep, account, created = deals.rep[start:stop], deals.account[start:stop], deals.created[start:stop]
    kind, lead = deals.kind[start:stop], deals.lead[start:stop]
    segment = accounts.segment[account]
    currency = _COUNTRY_CURRENCY[accounts.country[account]]
    skill = people.skill[rep]
    ramp = people.ramp(rep, created)
    effective = skill - 1.5 * (1.0 - ramp)
    quality = 0.75 * effective + 0.65 * rng.standard_normal(n)
    competitor = np.where(rng.random(n) < 0.4, rng.integers(0, len(vocab.COMPETITORS), n), -1)

    # Qualification: BANT for SMB deals, MEDDICC otherwise; better reps answer more, and more often "yes".
    questions = np.where(segment == 0, BANT_QUESTIONS, MEDDICC_QUESTIONS)
    answered = rng.random((n, MEDDICC_QUESTIONS)) < (0.45 + 0.45 * sigmoid(quality))[:, None]
    answered &= np.arange(MEDDICC_QUESTIONS)[None, :] < questions[:, None]
    yes = rng.random((n, MEDDICC_QUESTIONS)) < sigmoid(0.1 + 1.1 * quality)[:, None]
    rest = rng.choice(3, (n, MEDDICC_QUESTIONS), p=[0.45, 0.25, 0.30]) + 1
    answers = np.where(answered, np.where(yes, 0, rest), -1)
    credit = np.select([answers == 0, answers == 1], [1.0, 0.5], 0.0)
    score = credit.sum(axis=1) / questions
    answer_stage = np.where(segment == 0, 1, 2)  # BANT in qualification, MEDDICC in discovery

    # Contacts engaged: the economic buyer (or not) plus others of the account's buying group.
    economic_buyer = rng.random(n) < sigmoid(-0.3 + 0.9 * quality)
    available = accounts.contact_count[account] - 1 + economic_buyer
    contacts = np.minimum(1 + rng.poisson(np.exp(0.45 + 0.35 * quality)), available)
    discovery_delay = 0.5 + 6.0 * np.exp(-0.4 * quality + rng.normal(0.0, 0.5, n))

    amount_usd = (
        MEDIAN_AMOUNT_USD[segment] * np.exp(rng.normal(0.0, 0.5, n) + 0.1 * skill) * (0.6 + 0.4 * ramp)
    ) * KIND_AMOUNT[kind]
    amount = np.maximum(500, np.round(amount_usd * _RATE[currency] / 500) * 500).astype(np.int64)
    happy = people.happy_ears[rep]

    first_stage = np.where(lead >= 0, 1, 0)
    initial = np.empty((n, len(FIELDS)), dtype=np.int64)
    initial[:, F_STAGE] = first_stage
    initial[:, F_STATUS] = OPEN
    initial[:, F_AMOUNT] = amount
    expected = CYCLE_DAYS[segment] * np.exp(rng.normal(-0.15, 0.35, n))
    close = np.floor(created + expected).astype(np.int64)
    initial[:, F_CLOSE] = np.where(rng.random(n) < 0.5, lookup.month_end_of(close), close)
    category, probability = _stage_defaults(rng, first_stage, happy)
    initial[:, F_CATEGORY], initial[:, F_PROBABILITY] = category, probability
    initial[:, F_NEXT] = _next_step(rng, first_stage, 0.2)

    events = Events()
    state = initial.copy()
    stage = first_stage.copy()
    entered = created.copy()
    running = np.ones(n, dtype=np.bool_)
    status = np.full(n, OPEN, dtype=np.int64)
    end = np.full(n, np.nan)
    active_end = np.zeros(n)
    stalled = np.zeros(n, dtype=np.bool_)
    skipped = np.zeros(n, dtype=np.int64)
    check_deal: list[IntArray] = []
    check_key: list[IntArray] = []
    check_time: list[FloatArray] = []
    answered_at = np.full((n, MEDDICC_QUESTIONS), np.nan)

    for k in range(N_STAGES):
        ids = np.flatnonzero(running & (stage == k))
        if not len(ids):
            continue
        m = len(ids)
        te = entered[ids]
        q = quality[ids]
        duration = STAGE_MEDIAN_DAYS[segment[ids], k] * np.exp(rng.normal(0.0, 0.55, m) - 0.12 * effective[ids])
        exit_time = te + duration
        stall = rng.random(m) < sigmoid(-3.3 - 0.45 * q)
        stall_start = te + duration * rng.uniform(0.2, 0.6, m)
        sweep = te + CYCLE_DAYS[segment[ids]] * rng.uniform(2.0, 3.0, m)
        stall_start = np.minimum(stall_start, sweep - 1.0)
        finishes = ~stall & (exit_time < 0)

        # Where finishing deals go: on to the next stage (or won) or out (lost / no decision).
        logit = (
            np.log(ADVANCE_RATE[k] / (1 - ADVANCE_RATE[k]))
            + 0.2 * effective[ids]
            + np.where(k >= answer_stage[ids], 1.2 * (score[ids] - 0.5), 0.0)
            + SEGMENT_EFFECT[segment[ids]]
            + (0.15 * (contacts[ids] - 2) if k >= 2 else 0.0)
            + (0.35 * economic_buyer[ids] if k >= 3 else 0.0)
            - 0.5 * np.minimum(skipped[ids], 2)
            - 0.2 * (competitor[ids] >= 0)
        )
        advance = finishes & (rng.random(m) < sigmoid(logit))
        leave = finishes & ~advance
        won = advance & (k == N_STAGES - 1)
        if k == N_STAGES - 1:
            exit_time = np.where(won, quarter_end_spike(rng, exit_time, te, lookup), exit_time)

        # The stage's working window: until it is left, until the deal stalls, or until today.
        window_end = np.where(finishes, exit_time, np.where(stall, np.minimum(stall_start, 0.0), 0.0))
        progress = np.clip((window_end - te) / duration, 0.0, 1.0)
        n_criteria = len(CRITERIA[k])
        p_meet = sigmoid(1.8 + 1.1 * q)[:, None] * np.where(finishes, 1.0, progress)[:, None]
        met = rng.random((m, n_criteria)) < p_meet
        rows, cols = np.nonzero(met)
        check_deal.append(ids[rows])
        check_key.append(_CRITERION_OFFSET[k] + cols)
        check_time.append(te[rows] + rng.random(len(rows)) * (window_end[rows] - te[rows]))
        skipped[ids] += advance & ~met.all(axis=1)

        # Answers are given while the deal sits in its answering stage.
        here = answer_stage[ids] == k
        span = (window_end - te)[:, None] * rng.random((m, MEDDICC_QUESTIONS))
        answered_at[ids[here]] = (te[:, None] + span)[here]

        _mid_stage(rng, events, state, ids, te, window_end, k, happy[ids])

        # Leaving the stage.
        step = np.where((k <= 3) & (rng.random(m) < 0.07), 2, 1)
        moving = advance & ~won
        skipped[ids[moving & (step == 2)]] += 1
        movers, move_time = ids[moving], exit_time[moving]
        new_stage = k + step[moving]
        stage[movers], entered[movers] = new_stage, move_time
        _enter_stage(rng, events, state, movers, move_time, new_stage, happy[movers])

        done = ~moving
        running[ids[done]] = False
        closing = np.where(won, WON, np.where(leave, np.where(rng.random(m) < 0.85, LOST, NO_DECISION), -1))
        swept = stall & (sweep < 0)
        closing = np.where(swept, NO_DECISION, closing)
        closed = closing >= 0
        status[ids[closed]] = closing[closed]
        end[ids[closed]] = np.where(swept, sweep, exit_time)[closed]
        active_end[ids[done]] = np.where(closed & ~swept, exit_time, window_end)[done]
        stalled[ids[stall]] = True

    answers = np.where(answered_at < 0, answers, -1)
    answered_at = np.where(answers >= 0, answered_at, np.nan)
    close_date_moves(rng, events, state, created, active_end, lookup)
    _closing(events, state, end, status)
    return DealChunk(
        start=start,
        rep=rep,
        account=account,
        created=created,
        lead=lead,
        source=deals.source[start:stop],
        kind=kind,
        segment=segment,
        currency=currency,
        competitor=competitor,
        quality=quality,
        stage=stage,
        status=status,
        end=end,
        active_end=np.where(np.isnan(end), active_end, np.fmin(active_end, end)),
        stalled=stalled,
        initial=initial,
        events=events,
        checks=(
            np.concatenate(check_deal) if check_deal else every[:0],
            np.concatenate(check_key) if check_key else every[:0],
            np.concatenate(check_time) if check_time else np.zeros(0),
        ),
        answers=answers,
        answered_at=answered_at,
        contacts=contacts,
        economic_buyer=economic_buyer,
        discovery_delay=discovery_delay,
    )


def _stage_defaults(rng: np.random.Generator, stage: IntArray, happy: BoolArray) -> tuple[IntArray, IntArray]:
    """Forecast category and probability on entering a stage: the playbook's defaults, except that reps
    sometimes call a deal one category higher (happy-ears reps 30% of the time, others 6%) and sometimes
    nudge the probability by 10 points."""
    m = len(stage)
    bump = rng.random(m) < np.where(happy, 0.30, 0.06)
    category = np.minimum(STAGE_CATEGORY[stage] + bump, COMMIT)
    nudge = np.where(rng.random(m) < 0.1, rng.choice([-10, 10], m), 0)
    probability = np.clip(STAGE_PROBABILITY[stage] + nudge, 5, 95)
    return category, probability


def _next_step(rng: np.random.Generator, stage: IntArray, empty: float) -> IntArray:
    phrase = stage * PHRASES + rng.integers(0, PHRASES, len(stage))
    return np.where(rng.random(len(stage)) < empty, -1, phrase)


def _enter_stage(
    rng: np.random.Generator, events: Events, state: IntArray, ids: IntArray, time: FloatArray, stage: IntArray,
    happy: BoolArray,
) -> None:  # fmt: skip
    m = len(ids)
    record(events, state, F_STAGE, ids, time, stage)
    category, probability = _stage_defaults(rng, stage, happy)
    record(events, state, F_CATEGORY, ids, time, category)
    record(events, state, F_PROBABILITY, ids, time, probability)
    record(events, state, F_NEXT, ids, time, _next_step(rng, stage, 0.12))
    # Re-scoping in discovery and solution; discounts in proposal and negotiation.
    amount = state[ids, F_AMOUNT].astype(np.float64)
    rescope = (stage <= 3) & (rng.random(m) < 0.25)
    discount = (stage >= 4) & (rng.random(m) < 0.30)
    factor = np.where(rescope, rng.uniform(0.6, 1.5, m), np.where(discount, rng.uniform(0.8, 0.97, m), 1.0))
    record(events, state, F_AMOUNT, ids, time, np.maximum(500, np.round(amount * factor / 500) * 500).astype(np.int64))


def _mid_stage(
    rng: np.random.Generator, events: Events, state: IntArray, ids: IntArray, start: FloatArray, end: FloatArray,
    stage: int, happy: BoolArray,
) -> None:  # fmt: skip
    """Updates while a deal sits in a stage: a forecast-category call-up and a fresh next step."""
    m = len(ids)
    span = np.maximum(end - start, 0.0)
    bump = (rng.random(m) < np.where(happy, 0.30, 0.12)) & (state[ids, F_CATEGORY] < COMMIT) & (span > 0)
    when = start + span * rng.uniform(0.2, 0.9, m)
    record(events, state, F_CATEGORY, ids[bump], when[bump], state[ids[bump], F_CATEGORY] + 1)
    fresh = (rng.random(m) < 0.35) & (span > 0)
    when = start + span * rng.uniform(0.1, 0.95, m)
    phrase = stage * PHRASES + rng.integers(0, PHRASES, m)
    record(events, state, F_NEXT, ids[fresh], when[fresh], phrase[fresh])


def _closing(events: Events, state: IntArray, end: FloatArray, status: IntArray) -> None:
    ids = np.flatnonzero(~np.isnan(end))
    when = end[ids]
    won = status[ids] == WON
    record(events, state, F_CLOSE, ids, when, np.floor(when).astype(np.int64))
    record(events, state, F_STATUS, ids, when, status[ids])
    record(events, state, F_CATEGORY, ids, when, np.where(won, CLOSED, OMITTED))
    record(events, state, F_PROBABILITY, ids, when, np.where(won, 100, 0))
