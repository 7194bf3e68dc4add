"""GET /api/hygiene and the hygiene page keep the whole org's findings in the report cache
(`services.hygiene`, module header): a second look and another scope apply the rules no more, and a snooze or a
deal edit shows on the next request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from closewise.analytics import hygiene as rules
from closewise.services import report_cache
from tests.web.conftest import WebOrg, api_client, page_client


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original: Callable[..., Any] = rules.findings

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(rules, "findings", counted)
    return calls


def _flagged(body: dict[str, Any]) -> dict[int, set[str]]:
    return {deal["id"]: {reason["code"] for reason in deal["reasons"]} for deal in body["deals"]}


def test_the_findings_are_computed_once_for_every_scope(web_org: WebOrg, monkeypatch: pytest.MonkeyPatch) -> None:
    minute = report_cache.utcnow()  # held still: a slow run crossing a minute would refresh in the background
    monkeypatch.setattr(report_cache, "utcnow", lambda: minute)
    computed = _counting(monkeypatch)
    # Signing in is audited, which moves the side stamp: every client signs in first.
    leader, manager = api_client(web_org, "leader"), api_client(web_org, "manager")
    pages = page_client(web_org, "leader")
    first = leader.get("/api/hygiene")
    assert first.status_code == 200 and len(computed) == 1
    again = leader.get("/api/hygiene").json()
    assert again["deals"] == first.json()["deals"] and len(computed) == 1
    scoped = manager.get("/api/hygiene").json()
    assert len(computed) == 1  # the same whole-org findings, cut to the manager's deals
    assert set(_flagged(scoped)) < set(_flagged(first.json()))
    assert pages.get("/hygiene").status_code == 200 and len(computed) == 1
    # A past day is its own moment: computed for itself.
    assert leader.get("/api/hygiene", params={"as_of": "2026-01-15"}).status_code == 200 and len(computed) == 2


def test_a_snooze_shows_on_the_next_request(web_org: WebOrg) -> None:
    leader = api_client(web_org, "leader")
    flagged = _flagged(leader.get("/api/hygiene").json())
    deal, codes = next((deal, codes) for deal, codes in flagged.items() if codes)
    code = sorted(codes)[0]
    made = leader.post("/api/hygiene/snooze", json={"opportunity_id": deal, "code": code, "until": "2099-01-01",
                                                    "reason": "cache test"})
    assert made.status_code == 201, made.text
    after = _flagged(leader.get("/api/hygiene").json())
    assert code not in after.get(deal, set())
    assert after.get(deal, set()) == codes - {code}


def test_a_deal_edit_shows_on_the_next_request(web_org: WebOrg) -> None:
    leader = api_client(web_org, "leader")
    flagged = _flagged(leader.get("/api/hygiene").json())
    deal = next(deal for deal, codes in flagged.items() if "no_next_step" in codes)
    edited = leader.patch(f"/api/opportunities/{deal}", json={"next_step": "Call the CFO on Monday"})
    assert edited.status_code == 200, edited.text
    assert "no_next_step" not in _flagged(leader.get("/api/hygiene").json()).get(deal, set())
