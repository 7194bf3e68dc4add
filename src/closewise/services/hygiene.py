"""Pipeline hygiene use cases: review the open deals' findings and snooze one. Sweeping dead deals and undoing
a sweep are `services.hygiene_sweep`'s, on the findings and actor helpers here.

The findings are `closewise.analytics.hygiene`'s; this module loads the org, applies the stored snoozes, and
writes the snoozes.

Visibility: every use case takes an optional `scope` (None: the whole org, as the CLI runs). The findings are
always computed on the whole org, so the learned thresholds (the won-deal cycle, the time deals stay in a
stage) and therefore a deal's findings are the same whoever looks; the result is then cut to the deals the
scope sees, by `Scope` (a deal whose owner, now and on the review's date, is visible). A snooze of a deal
outside the scope is `NotFound`, worded as for a missing deal.

The web app passes its `ReportCache` to `review`, `overview` and `hygiene_sweep.preview_sweep`: the whole
org's findings are then kept per data and side stamp (snoozes and qualification answers move the side stamp)
and moment (now: the minute), so the pages and GET /api/hygiene of every user read the org and apply the rules
once, not per request.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.analytics import hygiene as rules
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.db import hygiene as store
from closewise.db.users import get_by_email
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, parse_as_of, utcnow
from closewise.errors import Forbidden, InvalidInput, NotFound
from closewise.services.org_data import OrgData, org_or_load
from closewise.services.report_cache import ReportCache

CODES: Final = tuple(code.value for code in rules.FindingCode)
FIRST_DAY: Final = date(1900, 1, 1)
LAST_DAY: Final = date(2999, 12, 31)


@dataclass(frozen=True)
class Finding:
    code: str
    detail: str


@dataclass(frozen=True)
class FlaggedDeal:
    """An open deal with findings, as it stood on the review's date."""

    id: int
    external_id: str
    name: str
    owner_id: int | None
    stage: str
    close_date: date | None
    amount: float | None  # in the corporate currency
    currency: str  # the corporate currency
    record_amount: float | None
    record_currency: str
    reasons: list[Finding]


@dataclass(frozen=True)
class HygieneReview:
    as_of: datetime
    deals: list[FlaggedDeal]


@dataclass(frozen=True)
class Snooze:
    id: int
    opportunity_id: int
    code: str
    reason: str
    until: date
    created_by: int | None
    created_at: datetime


@dataclass(frozen=True)
class CodeCount:
    code: str
    deals: int
    amount: float  # corporate currency, of the deals with this finding


@dataclass(frozen=True)
class HygieneOverview:
    """What the hygiene page shows one user: their deals' findings, the dead ones a sweep would close, the
    totals, who owns what, and the snoozes hiding findings now."""

    review: HygieneReview
    dead: list[FlaggedDeal]
    currency: str
    amount_at_risk: float
    findings: int
    by_code: list[CodeCount]
    owner_names: dict[int, str]
    snoozes: list[dict[str, Any]]

    @property
    def dead_amount(self) -> float:
        return round(sum(deal.amount or 0.0 for deal in self.dead), 2)


def overview(engine: Engine, *, scope: Scope, as_of: datetime | None = None,
             cache: ReportCache | None = None) -> HygieneOverview:
    """The review and the sweep preview on one read of the org, cut to `scope`, with the page's totals."""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, findings = org_findings(engine, at, None, None, cache, as_of)  # one computation for both lists
    grouped = findings.group_by("id", maintain_order=True).agg(pl.struct("code", "detail").alias("reasons"))
    found = HygieneReview(at, flagged_deals(engine, org, grouped, at, scope))
    dead = flagged_deals(engine, org, rules.dead_deals(findings), at, scope)
    by_code: dict[str, list[float]] = {}
    for deal in found.deals:
        for reason in deal.reasons:
            by_code.setdefault(reason.code, []).append(deal.amount or 0.0)
    counts = [CodeCount(code, len(by_code[code]), round(sum(by_code[code]), 2)) for code in CODES if code in by_code]
    names = dict(zip(org.users["id"].to_list(), org.users["name"].to_list(), strict=True))
    with engine.connect() as connection:
        snoozes = store.active_snoozes(connection, on=at.date(), scope=scope)
    owners = {deal.owner_id for deal in [*found.deals, *dead] if deal.owner_id is not None}
    return HygieneOverview(
        review=found, dead=dead, currency=org.corporate_currency,
        amount_at_risk=round(sum(deal.amount or 0.0 for deal in found.deals), 2),
        findings=sum(len(deal.reasons) for deal in found.deals), by_code=counts,
        owner_names={owner: names.get(owner, f"user {owner}") for owner in owners}, snoozes=snoozes)


def end_of_day(day: date | None, *, where: str = "as_of") -> datetime | None:
    """A report's `as_of` from a day a person picked: the end of that day (everything known on it counts), as
    `--as-of` reads it; None stays None (now). Days outside 1900-2999 are refused: the look-back windows
    would leave the calendar."""
    if day is None:
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{day.isoformat()} is outside {FIRST_DAY.year}-{LAST_DAY.year}", where=where)
    return parse_as_of(day.isoformat())


def review(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    settings: rules.HygieneSettings | None = None,
    org: OrgData | None = None,
    scope: Scope | None = None,
    cache: ReportCache | None = None,
) -> HygieneReview:
    """Open deals on `as_of` (default now) with at least one unsnoozed finding, by id. `org`: the org
    already read with its activities, to share between reports (read from `engine` when None); `scope`: only
    the deals it sees (None: all); `cache`: the web app's (module header)."""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, found = org_findings(engine, at, settings, org, cache, as_of)
    grouped = found.group_by("id", maintain_order=True).agg(pl.struct("code", "detail").alias("reasons"))
    return HygieneReview(at, flagged_deals(engine, org, grouped, at, scope))


def snooze(
    engine: Engine,
    *,
    opportunity_id: int,
    code: str,
    until: date,
    reason: str,
    user_email: str | None = None,
    now: datetime | None = None,
    scope: Scope | None = None,
    user_id: int | None = None,
) -> Snooze:
    """Hide one finding of one deal until `until` (it shows again that day). `scope`: the deal must be one
    it sees (else `NotFound`) and its role must allow snoozing; the actor is `user_id`, else `user_email`'s."""
    moment = as_utc(now) if now is not None else utcnow()
    if scope is not None:
        with engine.connect() as connection:
            if not store.visible_deal_ids(connection, [opportunity_id], scope):
                raise NotFound(f"no opportunity with id {opportunity_id}")
        if not scope.may(Action.SNOOZE_FINDING):
            raise Forbidden(f"a {scope.role.value} cannot snooze findings")
    code = code.strip().lower()
    if code not in CODES:
        raise InvalidInput(f"unknown finding {code!r}; one of {', '.join(CODES)}", where="--code")
    if until <= moment.date():
        raise InvalidInput(f"{until.isoformat()} is not after today ({moment.date().isoformat()})", where="--until")
    if until > LAST_DAY:
        raise InvalidInput(f"{until.isoformat()} is too far ahead; snooze until {LAST_DAY.year} at the latest",
                           where="--until")
    if not reason.strip():
        raise InvalidInput("say why the finding is snoozed", where="--reason")
    with engine.begin() as connection:
        if not store.deal_states(connection, [opportunity_id]):
            raise NotFound(f"no opportunity with id {opportunity_id}")
        actor = actor_id(connection, user_email, user_id)
        snooze_id = store.insert_snooze(connection, opportunity_id=opportunity_id, code=code, reason=reason.strip(),
                                        until=until, created_by=actor, created_at=moment)
    return Snooze(snooze_id, opportunity_id, code, reason.strip(), until, actor, moment)


def owner_names(engine: Engine, ids: Collection[int | None]) -> dict[int, str]:
    """The names of the owners of deals already cut to a scope (a review's or a preview's)."""
    with engine.connect() as connection:
        return store.user_names(connection, [owner for owner in ids if owner is not None])


def open_findings(engine: Engine, *, as_of: datetime, org: OrgData) -> pl.DataFrame:
    """Every unsnoozed finding on `as_of` of the deals in `org` (`id`, `code`, `detail`), for reports that
    count them (the team scorecards). The thresholds are learned from the whole org, as `review` does, so
    pass the whole org and cut the result to a scope afterwards."""
    return org_findings(engine, as_utc(as_of), None, org)[1]


# --- findings, flagged deals and the actor (also services.hygiene_sweep's) -------------------------------


def org_findings(
    engine: Engine, at: datetime, settings: rules.HygieneSettings | None, org: OrgData | None,
    cache: ReportCache | None = None, as_of: datetime | None = None,
) -> tuple[OrgData, pl.DataFrame]:
    if cache is not None and settings is None and org is None:
        # The whole org's findings are the same for every caller (the scope cuts them afterwards).
        found = cache.remember_as_of("hygiene-findings", (), as_of, lambda: org_findings(
            engine, at if as_of is not None else utcnow(), None, cache.org)[1])
        return cache.org, found
    org = org_or_load(engine, org)
    with engine.connect() as connection:
        answers = store.load_answers(connection)
        snoozes = store.load_snoozes(connection)
    found = rules.findings(org.timeline, as_of=at, stages=org.stages, changes=org.changes,
                           activities=org.activities, answers=answers, settings=settings)
    return org, rules.apply_snoozes(found, snoozes, as_of=at)


def flagged_deals(
    engine: Engine, org: OrgData, grouped: pl.DataFrame, at: datetime, scope: Scope | None
) -> list[FlaggedDeal]:
    """`grouped` (id, reasons) joined to each deal's state on `at` and its name; with a `scope`, only the deals
    whose owner it sees, both now (the record's visibility) and on `at` (the owner the result names)."""
    if scope is not None:
        current = scope.filter_frame(org.opportunities.select("id", "owner_id"))
        grouped = grouped.filter(pl.col("id").is_in(current["id"].implode()))
    if grouped.height == 0:
        return []
    ids = grouped["id"].to_list()
    state = snapshot(org.timeline.filter(pl.col("id").is_in(ids)), at)
    if scope is not None:
        state = scope.filter_frame(state)
    state = to_corporate(state, org.rates, corporate=org.corporate_currency)
    with engine.connect() as connection:
        labels = store.deal_labels(connection, ids)
    table = grouped.join(state, on="id", how="inner").join(labels, on="id", how="inner").sort("id")
    return [
        FlaggedDeal(
            id=row["id"], external_id=row["external_id"], name=row["name"], owner_id=row["owner_id"],
            stage=row["stage"], close_date=row["close_date"], amount=_money(row["amount_corporate"]),
            currency=org.corporate_currency, record_amount=row["amount"], record_currency=row["currency"],
            reasons=[Finding(reason["code"], reason["detail"]) for reason in row["reasons"]],
        )
        for row in table.iter_rows(named=True)
    ]


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def actor_id(connection: Connection, email: str | None, user_id: int | None) -> int | None:
    return user_id if user_id is not None else _user_id(connection, email)


def _user_id(connection: Connection, email: str | None) -> int | None:
    if email is None:
        return None
    user = get_by_email(connection, email=email)
    if user is None:
        raise NotFound(f"no user with email {email.strip()!r}", where="--user")
    return user.id
