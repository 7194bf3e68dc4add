"""Marketing leads: sources, speed to lead, acceptance, recycling and conversion into opportunities.

A lead is routed to a rep (drawn from the reps' intensity on its creation day) and first touched after
that rep's typical response time. Its chance to convert is its source's base rate times a speed-to-lead
multiplier (docs/demo.md gives both tables). Leads that are not accepted are rejected with a reason;
timing, budget and no-response rejections are recycled to nurture with a re-engage date, and some of those
come back later (`recycled_count` = 1) with a second, smaller chance to convert. Converted leads become
the inbound opportunities (`deals.plan_deals`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.org import People, account_name, sample_rep_days
from closewise.demo.plan import SOURCE, BoolArray, DemoPlan, FloatArray, IntArray, stream
from closewise.domain.enums import ActivityType, LeadStatus, RecycleReason

Row = dict[str, Any]

SOURCE_SHARE: Final = np.array([0.30, 0.20, 0.14, 0.12, 0.10, 0.08, 0.06])  # order of vocab.LEAD_SOURCES
SOURCE_BASE_RATE: Final = np.array([0.16, 0.08, 0.12, 0.18, 0.40, 0.28, 0.06])
# Speed to lead: first touch within an hour, a day, three days, or later.
RESPONSE_BUCKET_HOURS: Final = np.array([1.0, 24.0, 72.0])
RESPONSE_MULTIPLIER: Final = np.array([1.6, 1.0, 0.55, 0.3])
UNTOUCHED_SHARE: Final = 0.05
REASONS: Final = tuple(RecycleReason)
REASON_WEIGHTS: Final = np.array([0.20, 0.10, 0.25, 0.20, 0.15, 0.05, 0.05])  # order of RecycleReason
RECYCLED_REASONS: Final = frozenset({RecycleReason.NO_BUDGET, RecycleReason.TIMING, RecycleReason.NO_RESPONSE})
COME_BACK_SHARE: Final = 0.4
STATUSES: Final = tuple(LeadStatus)
_NEW, _WORKING, _ACCEPTED, _REJECTED, _RECYCLED, _CONVERTED = range(6)


@dataclass(frozen=True)
class Leads:
    first_id: int
    rep: IntArray
    source: IntArray
    created: FloatArray  # days relative to today; NaN below means "never happened (yet)"
    first_touch: FloatArray
    accepted: FloatArray
    rejected: FloatArray
    converted: FloatArray
    re_engage: IntArray  # day relative to today; meaningful where `has_re_engage`
    has_re_engage: BoolArray
    reason: IntArray  # index into REASONS, -1 for none
    recycled_count: IntArray
    status: IntArray
    country: IntArray

    def __len__(self) -> int:
        return len(self.rep)

    @property
    def converted_mask(self) -> BoolArray:
        mask: BoolArray = self.status == _CONVERTED
        return mask


def response_multiplier(response_hours: FloatArray) -> FloatArray:
    multiplier: FloatArray = RESPONSE_MULTIPLIER[np.searchsorted(RESPONSE_BUCKET_HOURS, response_hours, side="left")]
    return multiplier


def build_leads(plan: DemoPlan, people: People, intensity: FloatArray, max_converted: int) -> Leads:
    rng = stream(plan.seed, "leads")
    n = plan.leads
    rep, day = sample_rep_days(plan, intensity, rng, n)
    order = np.lexsort((rep, day))
    rep, day = rep[order], day[order]
    created = day + rng.uniform(0.29, 0.83, n)  # 07:00-20:00 UTC
    source = rng.choice(len(SOURCE_SHARE), n, p=SOURCE_SHARE)
    response_days = people.response_minutes[rep] * np.exp(rng.normal(0.0, 1.3, n)) / 1_440.0
    touched = rng.random(n) >= UNTOUCHED_SHARE
    first_touch = np.where(touched, created + response_days, np.nan)
    p_convert = np.minimum(0.95, SOURCE_BASE_RATE[source] * response_multiplier(response_days * 24.0))
    p_accept = np.minimum(0.95, 2.0 * p_convert)
    accept = touched & (rng.random(n) < p_accept)
    convert = accept & (rng.random(n) < p_convert / p_accept)
    accepted = np.where(accept, first_touch + rng.uniform(0.2, 4.0, n), np.nan)
    converted = np.where(convert, accepted + rng.uniform(1.0, 10.0, n), np.nan)
    rejected = np.where(touched & ~accept, first_touch + rng.uniform(1.0, 20.0, n), np.nan)
    reason = np.where(touched & ~accept, rng.choice(len(REASONS), n, p=REASON_WEIGHTS), -1)
    recyclable = np.isin(reason, [REASONS.index(r) for r in RECYCLED_REASONS])
    re_engage = np.where(recyclable, np.floor(np.nan_to_num(rejected)) + rng.integers(60, 181, n), 0).astype(np.int64)

    # Recycled leads whose re-engage date has passed come back once, with half the source's chance.
    back = recyclable & (rejected < 0) & (re_engage < -7) & (rng.random(n) < COME_BACK_SHARE)
    second = back & (rng.random(n) < 0.5 * SOURCE_BASE_RATE[source])
    accepted = np.where(second, re_engage + rng.uniform(1.0, 10.0, n), accepted)
    converted = np.where(second, accepted + rng.uniform(1.0, 10.0, n), converted)
    reason = np.where(second, -1, reason)
    rejected = np.where(second, np.nan, rejected)
    again = back & ~second & (re_engage < -30)
    rejected = np.where(again, re_engage + rng.uniform(5.0, 20.0, n), rejected)
    reason = np.where(again, REASONS.index(RecycleReason.NO_RESPONSE), reason)

    # Only what happened before today is known: later steps are still ahead.
    status = np.full(n, _NEW, dtype=np.int64)
    status[first_touch < 0] = _WORKING
    status[(accepted < 0)] = _ACCEPTED
    status[(converted < 0)] = _CONVERTED
    status[(rejected < 0) & ~back] = np.where(recyclable, _RECYCLED, _REJECTED)[(rejected < 0) & ~back]
    status[back & ~second & ~again] = _WORKING
    status[again] = _REJECTED
    # Past conversions beyond what the org can hold stay accepted.
    surplus = np.flatnonzero(status == _CONVERTED)[max_converted:]
    status[surplus] = _ACCEPTED

    def known(times: FloatArray, *states: int) -> FloatArray:
        return np.where(np.isin(status, states) & (times < 0), times, np.nan)

    after_touch = (_WORKING, _ACCEPTED, _REJECTED, _RECYCLED, _CONVERTED)
    return Leads(
        first_id=plan.ids.first("leads"),
        rep=rep,
        source=source,
        created=created,
        first_touch=known(first_touch, *after_touch),
        accepted=known(accepted, _ACCEPTED, _CONVERTED),
        rejected=known(rejected, _REJECTED, _RECYCLED),
        converted=known(converted, _CONVERTED),
        re_engage=re_engage,
        has_re_engage=recyclable & ((status == _RECYCLED) | back),
        reason=np.where(np.isin(status, (_REJECTED, _RECYCLED)), reason, -1),
        recycled_count=back.astype(np.int64),
        status=status,
        country=rng.choice(len(vocab.COUNTRIES), n, p=_country_weights()),
    )


def _country_weights() -> FloatArray:
    weights = np.array([country[1] for country in vocab.COUNTRIES])
    normalised: FloatArray = weights / weights.sum()
    return normalised


def _maybe(times: Sequence[datetime], values: FloatArray, index: int) -> datetime | None:
    return None if np.isnan(values[index]) else times[index]


def lead_rows(
    plan: DemoPlan,
    people: People,
    leads: Leads,
    opportunity_of: IntArray,
    company_of: Sequence[str | None],
    chunk: int,
) -> Iterator[list[Row]]:
    """Rows of `leads`; `opportunity_of[i]` is the id of the opportunity lead i became (or -1) and
    `company_of[i]` that opportunity's account name."""
    rng = stream(plan.seed, "lead-rows")
    n = len(leads)
    first = rng.integers(0, len(vocab.FIRST_NAMES), n)
    last = rng.integers(0, len(vocab.LAST_NAMES), n)
    company = rng.integers(0, 10_000_000, n)
    campaign = rng.integers(1, 5, n)
    owners = people.rep_ids[leads.rep]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        span = slice(start, stop)
        created = plan.timestamps(leads.created[span])
        assigned = plan.timestamps(leads.created[span] + 2.0 / 1_440)
        touch, accepted = (
            plan.timestamps(np.nan_to_num(leads.first_touch[span])),
            plan.timestamps(np.nan_to_num(leads.accepted[span])),
        )
        rejected, converted = (
            plan.timestamps(np.nan_to_num(leads.rejected[span])),
            plan.timestamps(np.nan_to_num(leads.converted[span])),
        )
        rows: list[Row] = []
        for i in range(start, stop):
            j = i - start
            given, family = vocab.FIRST_NAMES[first[i]], vocab.LAST_NAMES[last[i]]
            source = vocab.LEAD_SOURCES[leads.source[i]]
            country = vocab.COUNTRIES[leads.country[i]]
            rows.append(
                {
                    "id": leads.first_id + i,
                    "source": SOURCE,
                    "external_id": f"DEMO-LEAD-{i + 1:07d}",
                    "name": f"{given} {family}",
                    "email": f"{given.lower()}.{family.lower()}{i + 1}@lead.example",
                    "company": company_of[i] or account_name(int(company[i])),
                    "lead_source": source,
                    "campaign": f"{source.replace('_', ' ').title()} {campaign[i]}",
                    "country": country[0],
                    "timezone": country[3],
                    "owner_id": int(owners[i]),
                    "status": STATUSES[leads.status[i]].value,
                    "created_at": created[j],
                    "assigned_at": assigned[j],
                    "first_touch_at": _maybe(touch, leads.first_touch[span], j),
                    "accepted_at": _maybe(accepted, leads.accepted[span], j),
                    "rejected_at": _maybe(rejected, leads.rejected[span], j),
                    "recycle_reason": REASONS[leads.reason[i]].value if leads.reason[i] >= 0 else None,
                    "re_engage_at": plan.date_of(int(leads.re_engage[i])) if leads.has_re_engage[i] else None,
                    "recycled_count": int(leads.recycled_count[i]),
                    "converted_at": _maybe(converted, leads.converted[span], j),
                    "converted_opportunity_id": int(opportunity_of[i]) if opportunity_of[i] >= 0 else None,
                }
            )
        yield rows


def lead_activities(plan: DemoPlan, people: People, leads: Leads) -> dict[str, Any]:
    """Activities on leads as column arrays: the first touch (a call or an email) and a few follow-ups
    between it and the lead's decision."""
    rng = stream(plan.seed, "lead-activities")
    touched = np.flatnonzero(~np.isnan(leads.first_touch))
    decided = np.fmin(np.fmin(leads.accepted, leads.rejected), leads.converted)[touched]
    horizon = np.fmin(np.where(np.isnan(decided), leads.first_touch[touched] + 14.0, decided), -1e-3)
    follow = rng.poisson(1.2, len(touched))
    count = 1 + follow
    lead = np.repeat(touched, count)
    position = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    start = leads.first_touch[lead]
    end = np.repeat(horizon, count)
    when = np.where(position == 0, start, start + rng.random(len(lead)) * np.maximum(end - start, 0.0))
    kind = np.where(rng.random(len(lead)) < 0.5, 0, 1)
    types = (ActivityType.CALL.value, ActivityType.EMAIL.value)
    return {
        "lead": lead,
        "owner": people.rep_ids[leads.rep[lead]],
        "when": when,
        "type": [types[k] for k in kind.tolist()],
        "subject": [
            vocab.LEAD_SUBJECTS[types[k]] if p == 0 else f"Lead follow-up {types[k]}"
            for k, p in zip(kind.tolist(), position.tolist(), strict=True)
        ],
    }
