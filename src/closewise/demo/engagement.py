"""What reps do on their deals: activities with the buying group, exit-criteria checks, qualification
answers.

Every deal opens with a discovery meeting (`DISCOVERY_SUBJECT`) `discovery_delay` days after creation
(shorter for better execution), then gets about 0.9 activities a week (more with better execution)
while it is worked: never after it stalled or closed. Each contact engaged on the deal appears on at least
one activity, so "distinct contacts per deal" can be read from the activities. Open deals that are still
being worked have one scheduled, not yet completed meeting or task in the next two weeks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.events import sigmoid
from closewise.demo.lifecycle import ANSWERS, CRITERION_KEYS, DealChunk
from closewise.demo.org import Accounts, People
from closewise.demo.plan import SECONDS_PER_DAY, SOURCE, DemoPlan, stream
from closewise.playbook.default import BANT, MEDDICC

Row = dict[str, Any]
TYPES: Final = ("call", "email", "meeting", "task")
_CALL, _EMAIL, _MEETING, _TASK = range(4)
QUESTIONS: Final = {
    "meddicc": tuple(q.key for q in MEDDICC.questions),
    "bant": tuple(q.key for q in BANT.questions),
}


def deal_activities(plan: DemoPlan, chunk: DealChunk, accounts: Accounts) -> dict[str, Any]:
    """Activities of a chunk's deals as column arrays (deal index, type, subject index, contact, time,
    completed)."""
    rng = stream(plan.seed, "activities", chunk.start)
    n = len(chunk)
    life = np.maximum(chunk.active_end - chunk.created, 0.0)
    count = 1 + rng.poisson(life / 7.0 * 0.9 * np.exp(0.15 * chunk.quality))
    count = np.clip(count, chunk.contacts, 60)
    deal = np.repeat(np.arange(n), count)
    total = len(deal)
    position = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    q = chunk.quality[deal]
    draw = rng.random(total)
    meeting_share = 0.10 + 0.10 * sigmoid(q)
    kind = np.select([draw < meeting_share, draw < meeting_share + 0.35, draw < meeting_share + 0.47],
                     [_MEETING, _CALL, _TASK], _EMAIL)  # fmt: skip
    engaged = chunk.contacts[deal]
    kind = np.where((position < engaged) & (kind == _TASK), _EMAIL, kind)
    kind[position == 0] = _MEETING
    start = chunk.created[deal]
    span = life[deal]
    discovery = start + np.minimum(chunk.discovery_delay[deal], 0.5 * span)
    when = np.where(position == 0, discovery, start + rng.random(total) * span)

    # Contacts: slot j < engaged is the deal's j-th engaged contact; later activities reuse one of them.
    slot = np.where(position < engaged, position, (rng.random(total) * engaged).astype(np.int64))
    deal_size = accounts.contact_count[chunk.account]
    deal_rotation = (rng.random(n) * (deal_size - 1)).astype(np.int64)
    size, rotation = deal_size[deal], deal_rotation[deal]
    eb = chunk.economic_buyer[deal]
    other = 1 + (rotation + slot - eb) % (size - 1)
    offset = np.where(eb & (slot == 0), 0, other)
    contact = accounts.contact_start[chunk.account[deal]] + offset
    contact = np.where(kind == _TASK, -1, contact)
    subject = rng.integers(0, 4, total)
    completed = np.ones(total, dtype=np.bool_)

    # One scheduled next activity on open deals that are still being worked.
    live = np.flatnonzero(np.isnan(chunk.end) & ~chunk.stalled)
    next_kind = np.where(rng.random(len(live)) < 0.5, _MEETING, _TASK)
    first_contact = accounts.contact_start[chunk.account[live]] + np.where(
        chunk.economic_buyer[live], 0, 1 + deal_rotation[live] % (deal_size[live] - 1)
    )
    return {
        "deal": np.concatenate((deal, live)),
        "position": np.concatenate((position, np.full(len(live), -1))),
        "kind": np.concatenate((kind, next_kind)),
        "subject": np.concatenate((subject, rng.integers(0, 4, len(live)))),
        "contact": np.concatenate((contact, np.where(next_kind == _TASK, -1, first_contact))),
        "when": np.concatenate((when, rng.uniform(0.5, 14.0, len(live)))),
        "completed": np.concatenate((completed, np.zeros(len(live), dtype=np.bool_))),
    }


def activity_rows(
    plan: DemoPlan, chunk: DealChunk, people: People, accounts: Accounts, columns: dict[str, Any], first_id: int
) -> list[Row]:
    origin = plan.midnight.timestamp()
    deal = columns["deal"]
    opportunity = (plan.ids.first("opportunities") + chunk.start + deal).tolist()
    owner = people.rep_ids[chunk.rep[deal]].tolist()
    account = (accounts.first_id + chunk.account[deal]).tolist()
    seconds = np.floor(columns["when"] * SECONDS_PER_DAY).astype(np.int64).tolist()
    contact_first = accounts.contact_first_id
    rows: list[Row] = []
    for i, (position, kind, subject, contact, completed) in enumerate(
        zip(
            columns["position"].tolist(),
            columns["kind"].tolist(),
            columns["subject"].tolist(),
            columns["contact"].tolist(),
            columns["completed"].tolist(),
            strict=True,
        )
    ):
        type_ = TYPES[kind]
        rows.append(
            {
                "id": first_id + i,
                "source": SOURCE,
                "external_id": f"DEMO-ACT-{first_id + i:09d}",
                "type": type_,
                "subject": vocab.DISCOVERY_SUBJECT if position == 0 else vocab.ACTIVITY_SUBJECTS[type_][subject],
                "owner_id": owner[i],
                "opportunity_id": opportunity[i],
                "account_id": account[i],
                "lead_id": None,
                "contact_id": contact_first + contact if contact >= 0 else None,
                "occurred_at": datetime.fromtimestamp(origin + seconds[i], UTC),
                "completed": completed,
            }
        )
    return rows


def lead_activity_rows(
    plan: DemoPlan, columns: dict[str, Any], lead_first_id: int, first_id: int, start: int, stop: int
) -> list[Row]:
    """Rows start..stop of the lead activities; ids count from `first_id` at row 0."""
    origin = plan.midnight.timestamp()
    span = slice(start, stop)
    seconds = np.floor(columns["when"][span] * SECONDS_PER_DAY).astype(np.int64).tolist()
    first_id += start
    return [
        {
            "id": first_id + i,
            "source": SOURCE,
            "external_id": f"DEMO-ACT-{first_id + i:09d}",
            "type": type_,
            "subject": subject,
            "owner_id": owner,
            "opportunity_id": None,
            "account_id": None,
            "lead_id": lead_first_id + lead,
            "contact_id": None,
            "occurred_at": datetime.fromtimestamp(origin + seconds[i], UTC),
            "completed": True,
        }
        for i, (lead, owner, type_, subject) in enumerate(
            zip(
                columns["lead"][span].tolist(),
                columns["owner"][span].tolist(),
                columns["type"][span],
                columns["subject"][span],
                strict=True,
            )
        )
    ]


def check_rows(plan: DemoPlan, chunk: DealChunk, people: People, first_id: int) -> list[Row]:
    deal, criterion, time = chunk.checks
    origin = plan.midnight.timestamp()
    opportunity = (plan.ids.first("opportunities") + chunk.start + deal).tolist()
    owner = people.rep_ids[chunk.rep[deal]].tolist()
    seconds = np.floor(time * SECONDS_PER_DAY).astype(np.int64).tolist()
    return [
        {
            "id": first_id + i,
            "opportunity_id": opportunity[i],
            "criterion_key": CRITERION_KEYS[key],
            "done": True,
            "checked_at": datetime.fromtimestamp(origin + seconds[i], UTC),
            "checked_by": owner[i],
        }
        for i, key in enumerate(criterion.tolist())
    ]


def answer_rows(plan: DemoPlan, chunk: DealChunk, people: People, first_id: int) -> list[Row]:
    deal, question = np.nonzero(chunk.answers >= 0)
    origin = plan.midnight.timestamp()
    answer = chunk.answers[deal, question].tolist()
    seconds = np.floor(chunk.answered_at[deal, question] * SECONDS_PER_DAY).astype(np.int64).tolist()
    opportunity = (plan.ids.first("opportunities") + chunk.start + deal).tolist()
    owner = people.rep_ids[chunk.rep[deal]].tolist()
    framework = chunk.framework
    rows: list[Row] = []
    for i, (d, j) in enumerate(zip(deal.tolist(), question.tolist(), strict=True)):
        key = QUESTIONS[framework[d]][j]
        rows.append(
            {
                "id": first_id + i,
                "opportunity_id": opportunity[i],
                "framework": framework[d],
                "question": key,
                "answer": ANSWERS[answer[i]],
                "evidence": vocab.EVIDENCE[key] if answer[i] <= 1 else None,
                "answered_at": datetime.fromtimestamp(origin + seconds[i], UTC),
                "answered_by": owner[i],
            }
        )
    return rows
