"""The firmographic win pattern the demo plants (docs/demo.md, "Accounts and contacts"): accounts that won a
larger share of their closed deals are more often in a core industry and in the larger half of their segment's
head count, while every deal comes out exactly as it would without the pattern."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from typing import Any

import numpy as np
import pytest

from closewise.demo import changelog, firmographics, lifecycle, org
from closewise.demo import vocabulary as vocab
from closewise.demo.firmographics import CORE_INDUSTRIES
from closewise.demo.generator import DemoGenerator
from closewise.demo.org import EMPLOYEE_RANGE
from closewise.demo.plan import DemoPlan

TODAY = date(2026, 5, 15)
Rows = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module", params=(7, 11))
def built(request: pytest.FixtureRequest) -> tuple[DemoGenerator, Rows]:
    generator = DemoGenerator(DemoPlan(seed=request.param, today=TODAY, opportunities=2_500), "hash")
    rows: Rows = defaultdict(list)
    for batch in generator.batches():
        rows[batch.table].extend(batch.rows)
    return generator, rows


def test_deals_do_not_depend_on_industry_or_head_count() -> None:
    """The pattern is planted after the outcomes, so it must not feed back into them: the deal rows simulated
    with the provisional accounts (before planting) and with the planted ones are the same rows."""
    plan = DemoPlan(seed=7, today=TODAY, opportunities=1_200, chunk_size=500)
    generator = DemoGenerator(plan, "hash")
    provisional = org.build_accounts(plan, generator.people, generator.intensity)
    assert not np.array_equal(provisional.industry, generator.accounts.industry)
    decoder = changelog.Decoder(generator.lookup)
    for start in range(0, len(generator.deals), plan.chunk_size):
        stop = min(start + plan.chunk_size, len(generator.deals))
        rows = []
        for accounts in (provisional, generator.accounts):
            chunk = lifecycle.simulate(plan, generator.people, accounts, generator.deals, generator.lookup, start, stop)
            rows.append(changelog.opportunity_rows(plan, chunk, changelog.build_log(chunk), generator.people,
                                                   accounts, generator.deals, decoder))
        assert rows[0] == rows[1]


def test_head_counts_stay_in_their_segment_range(built: tuple[DemoGenerator, Rows]) -> None:
    _, rows = built
    for account in rows["accounts"]:
        low, high = EMPLOYEE_RANGE[vocab.SEGMENTS.index(account["segment"])]
        assert low <= account["employees"] <= high
        assert account["industry"] in vocab.INDUSTRIES


def test_accounts_that_win_more_get_the_profile_as_documented(built: tuple[DemoGenerator, Rows]) -> None:
    """From the rows alone: per account the won share of closed deals (the org's win rate with none closed);
    the share of accounts in a core industry, and in the larger half of their segment's range, matches the
    documented `base + slope × won share` within four standard errors, for the accounts that never won and for
    those that won at least half their closed deals (where the two differ by ~0.3 or more)."""
    _, rows = built
    won: dict[int, int] = defaultdict(int)
    closed: dict[int, int] = defaultdict(int)
    for deal in rows["opportunities"]:
        if deal["status"] != "open":
            closed[deal["account_id"]] += 1
            won[deal["account_id"]] += deal["status"] == "won"
    rate = sum(won.values()) / sum(closed.values())
    accounts = rows["accounts"]
    share = np.array([won[a["id"]] / closed[a["id"]] if closed[a["id"]] else rate for a in accounts])
    core = np.array([a["industry"] in CORE_INDUSTRIES for a in accounts])
    larger = np.array([a["employees"] >= math.sqrt(float(np.prod(EMPLOYEE_RANGE[vocab.SEGMENTS.index(a["segment"])])))
                       for a in accounts])
    closed_any = np.array([closed[a["id"]] > 0 for a in accounts])
    for group in (closed_any & (share == 0), share >= 0.5):
        assert group.sum() >= 50
        for observed, base, slope in ((core, firmographics.INDUSTRY_BASE, firmographics.INDUSTRY_SLOPE),
                                      (larger, firmographics.LARGER_BASE, firmographics.LARGER_SLOPE)):
            expected = float(np.mean(base + slope * share[group]))
            error = math.sqrt(expected * (1 - expected) / group.sum())
            assert abs(observed[group].mean() - expected) < 4 * error, (observed[group].mean(), expected)
    # The profile is over-represented among accounts with a win: at least 1.5x their share of all accounts.
    profile = core & larger
    ever_won = np.array([won[a["id"]] > 0 for a in accounts])
    assert profile[ever_won].mean() >= 1.5 * profile.mean()
