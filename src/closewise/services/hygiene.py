"""Pipeline hygiene use cases: review the open deals' findings, snooze one, sweep dead deals, undo a sweep.

The findings and the sweep rule are `closewise.analytics.hygiene`'s; this module loads the org, applies
the stored snoozes, and writes. A sweep is previewed (nothing written) and then confirmed: each dead deal
still open when the sweep runs becomes no decision (forecast category omitted, closed now), with change-log
rows (source `sweep`, changed by the user, the reasons) and an audit row carrying the sweep id and the
values replaced. `undo_sweep` puts those values back on every deal the sweep closed that nobody has touched
since, and logs the reverse changes.
"""

from __future__ import annotations

import uuid
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
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Conflict, InvalidInput, NotFound
from closewise.services.org_data import OrgData, org_or_load

CODES: Final = tuple(code.value for code in rules.FindingCode)


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


def review(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    settings: rules.HygieneSettings | None = None,
    org: OrgData | None = None,
) -> HygieneReview:
    """Open deals on `as_of` (default now) with at least one unsnoozed finding, by id. `org`: the org
    already read with its activities, to share between reports (read from `engine` when None)."""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, found = _findings(engine, at, settings, org)
    grouped = found.group_by("id", maintain_order=True).agg(pl.struct("code", "detail").alias("reasons"))
    return HygieneReview(at, _deals(engine, org, grouped, at))


def preview_sweep(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    settings: rules.HygieneSettings | None = None,
    org: OrgData | None = None,
) -> SweepResult:
    """The deals the sweep rule calls dead on `as_of` (default now), with the findings that make them so.
    `org`: as for `review`. (A confirmed sweep always reads the org afresh.)"""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, found = _findings(engine, at, settings, org)
    return SweepResult(at, confirmed=False, deals=_deals(engine, org, rules.dead_deals(found), at))


def confirm_sweep(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    user_email: str | None = None,
    reason: str | None = None,
    settings: rules.HygieneSettings | None = None,
    now: datetime | None = None,
) -> SweepResult:
    """Close the dead deals of `as_of` as no decision, in one transaction, and return the sweep id."""
    moment = as_utc(now) if now is not None else utcnow()
    preview = preview_sweep(engine, as_of=as_of or moment, settings=settings)
    if not preview.deals:
        return SweepResult(preview.as_of, confirmed=True, deals=[])
    sweep_id = uuid.uuid4().hex[:12]
    swept: list[FlaggedDeal] = []
    skipped: list[int] = []
    with engine.begin() as connection:
        actor = _user_id(connection, user_email)
        states = store.deal_states(connection, [deal.id for deal in preview.deals], lock=True)
        for deal in preview.deals:
            state = states.get(deal.id)
            if state is None or state.status != OpportunityStatus.OPEN.value:
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
    return SweepResult(preview.as_of, confirmed=True, deals=swept, sweep_id=sweep_id, skipped=skipped)


def undo_sweep(
    engine: Engine, *, sweep_id: str, user_email: str | None = None, now: datetime | None = None,
) -> UndoResult:
    """Restore the status, forecast category and closed_at a sweep replaced, on each deal it closed that is
    still as the sweep left it; deals changed since are skipped and named."""
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        actor = _user_id(connection, user_email)
        rows = store.sweep_audit(connection, sweep_id.strip())
        if not rows:
            raise NotFound(f"no sweep {sweep_id!r}", where="hygiene undo")
        if any(row["action"] == store.SWEEP_UNDO for row in rows):
            raise Conflict(f"sweep {sweep_id} was already undone", where="hygiene undo")
        per_deal = [row for row in rows if row["entity"] == "opportunity"]
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
) -> Snooze:
    """Hide one finding of one deal until `until` (it shows again that day)."""
    moment = as_utc(now) if now is not None else utcnow()
    code = code.strip().lower()
    if code not in CODES:
        raise InvalidInput(f"unknown finding {code!r}; one of {', '.join(CODES)}", where="--code")
    if until <= moment.date():
        raise InvalidInput(f"{until.isoformat()} is not after today ({moment.date().isoformat()})", where="--until")
    if not reason.strip():
        raise InvalidInput("say why the finding is snoozed", where="--reason")
    with engine.begin() as connection:
        if not store.deal_states(connection, [opportunity_id]):
            raise NotFound(f"no opportunity with id {opportunity_id}")
        actor = _user_id(connection, user_email)
        snooze_id = store.insert_snooze(connection, opportunity_id=opportunity_id, code=code, reason=reason.strip(),
                                        until=until, created_by=actor, created_at=moment)
    return Snooze(snooze_id, opportunity_id, code, reason.strip(), until, actor, moment)


# --- internals -------------------------------------------------------------------------------------------


def _findings(
    engine: Engine, at: datetime, settings: rules.HygieneSettings | None, org: OrgData | None
) -> tuple[OrgData, pl.DataFrame]:
    org = org_or_load(engine, org)
    with engine.connect() as connection:
        answers = store.load_answers(connection)
        snoozes = store.load_snoozes(connection)
    found = rules.findings(org.timeline, as_of=at, stages=org.stages, changes=org.changes,
                           activities=org.activities, answers=answers, settings=settings)
    return org, rules.apply_snoozes(found, snoozes, as_of=at)


def _deals(engine: Engine, org: OrgData, grouped: pl.DataFrame, at: datetime) -> list[FlaggedDeal]:
    """`grouped` (id, reasons) joined to each deal's state on `at` and its name."""
    if grouped.height == 0:
        return []
    ids = grouped["id"].to_list()
    state = snapshot(org.timeline.filter(pl.col("id").is_in(ids)), at)
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


def _user_id(connection: Connection, email: str | None) -> int | None:
    if email is None:
        return None
    user = get_by_email(connection, email=email)
    if user is None:
        raise NotFound(f"no user with email {email.strip()!r}", where="--user")
    return user.id
