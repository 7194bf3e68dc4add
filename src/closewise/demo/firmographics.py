"""The firmographic win pattern the demo plants: an ideal-customer profile (ICP) of industry and head count.

Deal outcomes are simulated (`lifecycle`) from the reps, the deals' execution quality, the segment and the
contacts; none of that reads an account's industry or head count. So the pattern is planted the other way
round, once the outcomes are known: an account that won a larger share of its closed deals is more likely to be
in one of the core industries and in the larger half of its segment's head-count range. Every deal outcome,
every other column and every other random draw stay what they were: the outcomes are simulated once more here
(the chunks are seeded by position, so they come out the same as when their rows are written) and the draws
below come from a stream of their own. docs/demo.md states the rule and its strength.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import numpy as np

from closewise.demo import lifecycle
from closewise.demo import vocabulary as vocab
from closewise.demo.deals import DealPlan
from closewise.demo.events import OPEN, WON
from closewise.demo.org import EMPLOYEE_RANGE, Accounts, People
from closewise.demo.plan import CalendarLookup, DemoPlan, FloatArray, IntArray, stream

CORE_INDUSTRIES: Final = ("Software", "Financial Services", "Healthcare")
# P(core industry) and P(larger half of the segment's head-count range) = base + slope x won share.
INDUSTRY_BASE: Final = 0.15
INDUSTRY_SLOPE: Final = 0.6
LARGER_BASE: Final = 0.35
LARGER_SLOPE: Final = 0.6

_CORE: Final = np.array([vocab.INDUSTRIES.index(name) for name in CORE_INDUSTRIES])
_OTHER: Final = np.array([i for i, name in enumerate(vocab.INDUSTRIES) if name not in CORE_INDUSTRIES])


def won_share(plan: DemoPlan, people: People, accounts: Accounts, deals: DealPlan, lookup: CalendarLookup
              ) -> FloatArray:
    """Per account: won / closed deals as known on `today`; the org's win rate for an account with none closed
    (no evidence either way)."""
    won = np.zeros(len(accounts))
    closed = np.zeros(len(accounts))
    for start in range(0, len(deals), plan.chunk_size):
        chunk = lifecycle.simulate(plan, people, accounts, deals, lookup, start, min(start + plan.chunk_size,
                                                                                       len(deals)))
        won += np.bincount(chunk.account[chunk.status == WON], minlength=len(accounts))
        closed += np.bincount(chunk.account[chunk.status != OPEN], minlength=len(accounts))
    rate = won.sum() / max(closed.sum(), 1.0)
    share: FloatArray = np.where(closed > 0, won / np.maximum(closed, 1.0), rate)
    return share


def plant(plan: DemoPlan, accounts: Accounts, share: FloatArray) -> Accounts:
    """`accounts` with industry and head count drawn from their won share (the rest unchanged)."""
    rng = stream(plan.seed, "firmographics")
    n = len(accounts)
    core = rng.random(n) < INDUSTRY_BASE + INDUSTRY_SLOPE * share
    industry: IntArray = np.where(core, _CORE[rng.integers(0, len(_CORE), n)],
                                  _OTHER[rng.integers(0, len(_OTHER), n)])
    larger = rng.random(n) < LARGER_BASE + LARGER_SLOPE * share
    # Log-uniform within the chosen half of the segment's range, so each half keeps the usual spread.
    position = (rng.random(n) + larger) / 2.0
    low, high = np.log(EMPLOYEE_RANGE[accounts.segment, 0]), np.log(EMPLOYEE_RANGE[accounts.segment, 1])
    employees = np.round(np.exp(low + position * (high - low))).astype(np.int64)
    return replace(accounts, industry=industry.astype(np.int64), employees=employees)
