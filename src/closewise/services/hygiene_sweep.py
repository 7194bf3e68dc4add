"""The hygiene sweep: preview the dead deals, close them as no decision, undo a sweep.

The sweep rule is `closewise.analytics.hygiene`'s; the findings, cut to a scope, come from `services.hygiene`.
A sweep is previewed (nothing written) and then confirmed: each dead deal still open when the sweep runs
becomes no decision (forecast category omitted, closed now), with change-log rows (source `sweep`, changed by
the user, the reasons) and an audit row carrying the sweep id and the values replaced. `undo_sweep` puts those
values back on every deal the sweep closed that nobody has touched since, and logs the reverse changes.

Visibility (as in `services.hygiene`): a scoped sweep closes only visible deals, and only those of the
previewed ids that are still dead; a scoped undo restores only visible deals.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from closewise.analytics import hygiene as rules
from closewise.db import audit
from closewise.db import hygiene as store
from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import Conflict, Forbidden, NotFound
from closewise.services.hygiene import FlaggedDeal, actor_id, flagged_deals, org_findings
from closewise.services.org_data import OrgData
from closewise.services.report_cache import ReportCache


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
    `org`, `scope` and `cache`: as for `services.hygiene.review`. (A confirmed sweep always reads the org
    afresh.)"""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org, found = org_findings(engine, at, settings, org, cache, as_of)
    return SweepResult(at, confirmed=False, deals=flagged_deals(engine, org, rules.dead_deals(found), at, scope))


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
        actor = actor_id(connection, user_email, user_id)
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
        actor = actor_id(connection, user_email, user_id)
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


# --- internals -------------------------------------------------------------------------------------------


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


