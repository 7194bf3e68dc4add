"""Which deals exist: who opens them, when, on which account, from which source.

Outbound deals are drawn from the reps' intensity (`org.rep_intensity`); inbound deals are the converted
leads, opened by the lead's owner on the day it converted. All deals are numbered in order of creation,
then simulated chunk by chunk (`lifecycle.simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.leads import Leads
from closewise.demo.org import Accounts, People, sample_rep_days
from closewise.demo.plan import DemoPlan, FloatArray, IntArray, stream

DEAL_SOURCES: Final = (*vocab.LEAD_SOURCES, "outbound", "existing_customer")
_PARTNER, _OUTBOUND = DEAL_SOURCES.index("partner"), DEAL_SOURCES.index("outbound")
_EXISTING = DEAL_SOURCES.index("existing_customer")
_NEW_BUSINESS, _EXPANSION, _RENEWAL = range(3)


@dataclass(frozen=True)
class DealPlan:
    first_id: int
    rep: IntArray
    created: FloatArray  # days relative to today
    account: IntArray
    lead: IntArray  # lead index, -1 for none
    source: IntArray  # index into DEAL_SOURCES
    kind: IntArray  # index into vocab.OPPORTUNITY_TYPES

    def __len__(self) -> int:
        return len(self.rep)

    def opportunity_of_lead(self, leads: int) -> IntArray:
        """Per lead: the id of the opportunity it became, or -1."""
        result = np.full(leads, -1, dtype=np.int64)
        inbound = np.flatnonzero(self.lead >= 0)
        result[self.lead[inbound]] = self.first_id + inbound
        return result


def plan_deals(plan: DemoPlan, people: People, accounts: Accounts, leads: Leads, intensity: FloatArray) -> DealPlan:
    rng = stream(plan.seed, "deal-plan")
    inbound = np.flatnonzero(leads.converted_mask)
    n_out = plan.opportunities - len(inbound)
    rep_out, day_out = sample_rep_days(plan, intensity, rng, n_out)
    created_out = day_out + rng.uniform(0.30, 0.75, n_out)  # 07:12-18:00 UTC
    kind_out = rng.choice(3, n_out, p=[0.7, 0.2, 0.1])
    source_out = np.where(kind_out == _NEW_BUSINESS, np.where(rng.random(n_out) < 0.8, _OUTBOUND, _PARTNER), _EXISTING)
    rep = np.concatenate((rep_out, leads.rep[inbound]))
    created = np.concatenate((created_out, leads.converted[inbound]))
    # A deal created before today must end up before today even after rounding to the second.
    created = np.minimum(created, -1.0 / 24)
    lead = np.concatenate((np.full(n_out, -1, dtype=np.int64), inbound))
    source = np.concatenate((source_out, leads.source[inbound]))
    kind = np.concatenate((kind_out, np.full(len(inbound), _NEW_BUSINESS, dtype=np.int64)))
    order = np.argsort(created, kind="stable")
    rep, created, lead, source, kind = rep[order], created[order], lead[order], source[order], kind[order]
    book = (rng.random(len(rep)) * accounts.book_size[rep]).astype(np.int64)
    return DealPlan(
        first_id=plan.ids.first("opportunities"),
        rep=rep,
        created=created,
        account=accounts.book_start[rep] + book,
        lead=lead,
        source=source,
        kind=kind,
    )
