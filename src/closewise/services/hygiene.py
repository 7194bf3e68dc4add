"""Pipeline hygiene use cases: review the open deals' findings, snooze one, sweep dead deals, undo a sweep.

The findings and the sweep rule are `closewise.analytics.hygiene`'s; this module loads the org, applies
the stored snoozes, and writes. A sweep is previewed (nothing written) and then confirmed: each dead deal
still open when the sweep runs becomes no decision (forecast category omitted, closed now), with change-log
rows (source `sweep`, changed by the user, the reasons) and an audit row carrying the sweep id and the
values replaced. `undo_sweep` puts those values back on every deal the sweep closed that nobody has touched
since, and logs the reverse changes.

Visibility: every use case takes an optional `scope` (None: the whole org, as the CLI runs). The findings are
always computed on the whole org, so the learned thresholds (the won-deal cycle, the time deals stay in a
stage) and therefore a deal's findings are the same whoever looks; the result is then cut to the deals the
scope sees, by `Scope` (a deal whose owner, now and on the review's date, is visible). A scoped sweep closes
only visible deals, and only those of the previewed ids that are still dead; a scoped undo restores only
visible deals; a snooze of a deal outside the scope is `NotFound`, worded as for a missing deal.

The web app passes its `ReportCache` to `review`, `overview` and `preview_sweep`: the whole org's findings are
then kept per data and side stamp (snoozes and qualification answers move the side stamp) and moment (now: the
minute), so the pages and GET /api/hygiene of every user read the org and apply the rules once, not per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.analytics import hygiene as rules
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.db import audit
from closewise.db import hygiene as store
from closewise.db.users import get_by_email
from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, parse_as_of, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
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
class SweepResult:
    """A preview (`confirmed` false, nothing written) or a confirmed sweep (`sweep_id` set when it wrote)."""

    as_of: datetime
    confirmed: bool
    deals: list[FlaggedDeal]
    sweep_id: str | None = None
    skipped: list[int] = field(default_factory=list)  # dead on `as_of` but no longer open when swept


@dataclass(frozen=True)
class UndoResult:
    sweep_id: str
    restored: list[int]
    skipped: list[dict[str, Any]]  # {"id", "reason"}: deals changed since the sweep, left as they are


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
    org, findings = _findings(engine, at, None, None, cache, as_of)  # one computation for both lists
    grouped = findings.group_by("id", maintain_order=True).agg(pl.struct("code", "detail").alias("reasons"))
    found = HygieneReview(at, _deals(engine, org, grouped, at, scope))
    dead = _deals(engine, org, rules.dead_deals(findings), at, scope)
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
    org, found = _findings(engine, at, settings, org, cache, as_of)
    grouped = found.group_by("id", maintain_order=True).agg(pl.struct("code", "detail").alias("reasons"))
    return HygieneReview(at, _deals(engine, org, grouped, at, scope))


def preview_sweep(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    settings: rules.HygieneSettings | None = None,
    org: OrgData | None = None,
    scope: Scope | None = None,
    cache: ReportCache | None = None,
) -> SweepResult:
    """The deals the sweep rule calls dead on `as_of` (default now), with the findings that make them so.
    `org`, `scope` and `cache`: as for `review`. (A confirmed sweep always reads the org afresh.)"""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, found = _findings(engine, at, settings, org, cache, as_of)
    return SweepResult(at, confirmed=False, deals=_deals(engine, org, rules.dead_deals(found), at, scope))


def confirm_sweep(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    user_email: str | None = None,
    reason: str | None = None,
    settings: rules.HygieneSettings | None = None,
    now: datetime | None = None,
    scope: Scope | None = None,
    ids: Collection[int] | None = None,
    user_id: int | None = None,
) -> SweepResult:
    """Close the dead deals of `as_of` as no decision, in one transaction, and return the sweep id.

    `ids`: the deals a preview showed; only those are swept, and those of them no longer dead (worked on
    since, snoozed, closed) or not visible are skipped, so a person confirms exactly what they saw, never more.
    `scope`: only deals it sees, and its role must allow sweeping. The actor is `user_id`, else `user_email`'s
    user (None: nobody named)."""
    if scope is not None and not scope.may(Action.SWEEP_DEALS):
        raise Forbidden(f"a {scope.role.value} cannot sweep deals")
    moment = as_utc(now) if now is not None else utcnow()
    preview = preview_sweep(engine, as_of=as_of or moment, settings=settings, scope=scope)
    dead = preview.deals
    skipped: list[int] = []
    if ids is not None:
        wanted = set(ids)
        dead = [deal for deal in preview.deals if deal.id in wanted]
        skipped = sorted(wanted - {deal.id for deal in dead})
    if not dead:
        return SweepResult(preview.as_of, confirmed=True, deals=[], skipped=skipped)
    sweep_id = uuid.uuid4().hex[:12]
    swept: list[FlaggedDeal] = []
    with engine.begin() as connection:
        actor = _actor(connection, user_email, user_id)
        states = store.deal_states(connection, [deal.id for deal in dead], lock=True)
        for deal in dead:
            state = states.get(deal.id)
            if (state is None or state.status != OpportunityStatus.OPEN.value
                    or (scope is not None and not scope.sees_owner(state.owner_id))):
                skipped.append(deal.id)
                continue
            why = "; ".join(f"{r.code}: {r.detail}" for r in deal.reasons)
            store.write_state(
                connection, opportunity_id=deal.id, status=OpportunityStatus.NO_DECISION.value,
                forecast_category=ForecastCategory.OMITTED.value, closed_at=moment,
                changes=_changes(state.status, OpportunityStatus.NO_DECISION.value,
                                 state.forecast_category, ForecastCategory.OMITTED.value),
                at=moment, changed_by=actor,
                reason=f"hygiene sweep {sweep_id}: {reason + '; ' if reason else ''}{why}",
            )
            audit.record(connection, at=moment, actor_id=actor, action=store.SWEEP, entity="opportunity",
                         entity_id=deal.id, detail={
                             "sweep_id": sweep_id, "as_of": preview.as_of.isoformat(), "reason": reason,
                             "reasons": [{"code": r.code, "detail": r.detail} for r in deal.reasons],
                             "previous": {"status": state.status, "forecast_category": state.forecast_category,
                                          "closed_at": _iso(state.closed_at)},
                             "closed_at": moment.isoformat(),
                         })
            swept.append(deal)
        audit.record(connection, at=moment, actor_id=actor, action=store.SWEEP, entity="hygiene_sweep",
                     entity_id=sweep_id, detail={"sweep_id": sweep_id, "as_of": preview.as_of.isoformat(),
                                                 "reason": reason, "swept": len(swept), "skipped": skipped})
    return SweepResult(preview.as_of, confirmed=True, deals=swept, sweep_id=sweep_id, skipped=sorted(skipped))


def undo_sweep(
    engine: Engine,
    *,
    sweep_id: str,
    user_email: str | None = None,
    now: datetime | None = None,
    scope: Scope | None = None,
    user_id: int | None = None,
) -> UndoResult:
    """Restore the status, forecast category and closed_at a sweep replaced, on each deal it closed that is
    still as the sweep left it; deals changed since are skipped and named.

    `scope`: only the sweep's deals it sees (a sweep with none of them is `NotFound`, as a missing one), and
    its role must allow sweeping. Each deal is undone once: a deal an earlier undo already dealt with
    (restored, or skipped as changed) is left out, and when that is every deal in sight the sweep counts as
    already undone (`Conflict`)."""
    if scope is not None and not scope.may(Action.SWEEP_DEALS):
        raise Forbidden(f"a {scope.role.value} cannot undo a sweep")
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        rows = store.sweep_audit(connection, sweep_id.strip())
        per_deal = [row for row in rows if row["action"] == store.SWEEP and row["entity"] == "opportunity"]
        if scope is not None:
            seen = store.visible_deal_ids(connection, [int(row["entity_id"]) for row in per_deal], scope)
            per_deal = [row for row in per_deal if int(row["entity_id"]) in seen]
        if not per_deal:
            raise NotFound(f"no sweep {sweep_id!r}", where="hygiene undo")
        handled = _undone_before(rows)
        per_deal = [row for row in per_deal if int(row["entity_id"]) not in handled]
        if not per_deal:
            raise Conflict(f"sweep {sweep_id} was already undone", where="hygiene undo")
        actor = _actor(connection, user_email, user_id)
        states = store.deal_states(connection, [int(row["entity_id"]) for row in per_deal], lock=True)
        restored: list[int] = []
        skipped: list[dict[str, Any]] = []
        for row in per_deal:
            deal_id, detail = int(row["entity_id"]), row["detail"]
            previous = detail["previous"]
            state = states.get(deal_id)
            if state is None:
                skipped.append({"id": deal_id, "reason": "deleted since the sweep"})
                continue
            if not _as_swept(state, detail["closed_at"]):
                skipped.append({"id": deal_id, "reason": f"changed since the sweep (now {state.status})"})
                continue
            closed_at = datetime.fromisoformat(previous["closed_at"]) if previous["closed_at"] else None
            store.write_state(
                connection, opportunity_id=deal_id, status=previous["status"],
                forecast_category=previous["forecast_category"], closed_at=closed_at,
                changes=_changes(state.status, previous["status"], state.forecast_category,
                                 previous["forecast_category"]),
                at=moment, changed_by=actor, reason=f"undo of hygiene sweep {sweep_id}",
            )
            audit.record(connection, at=moment, actor_id=actor, action=store.SWEEP_UNDO, entity="opportunity",
                         entity_id=deal_id, detail={"sweep_id": sweep_id, "restored": previous})
            restored.append(deal_id)
        audit.record(connection, at=moment, actor_id=actor, action=store.SWEEP_UNDO, entity="hygiene_sweep",
                     entity_id=sweep_id, detail={"sweep_id": sweep_id, "restored": len(restored),
                                                 "skipped": skipped})
    return UndoResult(sweep_id, restored, skipped)


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
        actor = _actor(connection, user_email, user_id)
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
    return _findings(engine, as_utc(as_of), None, org)[1]


# --- internals -------------------------------------------------------------------------------------------


def _findings(
    engine: Engine, at: datetime, settings: rules.HygieneSettings | None, org: OrgData | None,
    cache: ReportCache | None = None, as_of: datetime | None = None,
) -> tuple[OrgData, pl.DataFrame]:
    if cache is not None and settings is None and org is None:
        # The whole org's findings are the same for every caller (the scope cuts them afterwards).
        found = cache.remember_as_of("hygiene-findings", (), as_of, lambda: _findings(
            engine, at if as_of is not None else utcnow(), None, cache.org)[1])
        return cache.org, found
    org = org_or_load(engine, org)
    with engine.connect() as connection:
        answers = store.load_answers(connection)
        snoozes = store.load_snoozes(connection)
    found = rules.findings(org.timeline, as_of=at, stages=org.stages, changes=org.changes,
                           activities=org.activities, answers=answers, settings=settings)
    return org, rules.apply_snoozes(found, snoozes, as_of=at)


def _deals(
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


def _changes(status: str, new_status: str, category: str | None, new_category: str | None) -> list[store.FieldChange]:
    return [store.field_change(ChangeField.STATUS, status, new_status),
            store.field_change(ChangeField.FORECAST_CATEGORY, category, new_category)]


def _as_swept(state: store.DealState, closed_at: str) -> bool:
    return (
        state.status == OpportunityStatus.NO_DECISION.value
        and state.forecast_category == ForecastCategory.OMITTED.value
        and state.closed_at is not None
        and as_utc(state.closed_at) == datetime.fromisoformat(closed_at)
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _undone_before(rows: list[dict[str, Any]]) -> set[int]:
    """The deals earlier undos of a sweep dealt with: restored (their own audit rows) or skipped (named in the
    sweep-level undo row)."""
    done: set[int] = set()
    for row in rows:
        if row["action"] != store.SWEEP_UNDO:
            continue
        if row["entity"] == "opportunity":
            done.add(int(row["entity_id"]))
        else:
            done.update(int(item["id"]) for item in row["detail"].get("skipped", []))
    return done


def _actor(connection: Connection, email: str | None, user_id: int | None) -> int | None:
    return user_id if user_id is not None else _user_id(connection, email)


def _user_id(connection: Connection, email: str | None) -> int | None:
    if email is None:
        return None
    user = get_by_email(connection, email=email)
    if user is None:
        raise NotFound(f"no user with email {email.strip()!r}", where="--user")
    return user.id
