"""Lead reports: the funnel, speed to lead, the response-time effect, nurture and come-backs, the lead lists.

Every read takes an optional `Scope` (None: the whole org, as the CLI sees it) and reads only the leads that
scope sees (`db.leads` cuts them with `db.scope.visible`); a lead outside it answers NotFound, worded like a
missing one. Reports come back as plain JSON-ready dicts: the CLI prints them and the API validates them
against its response models. Sales' verdicts on a lead are `services.lead_verdicts`'s, routing is
`services.lead_routing`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.currency import to_corporate
from closewise.db import leads as db
from closewise.db import org_frames
from closewise.domain.enums import LeadStatus
from closewise.domain.scope import Scope
from closewise.domain.timeutil import naive_utc, utcnow
from closewise.errors import InvalidInput
from closewise.leads import events as lead_events
from closewise.leads import funnel as funnel_mod
from closewise.leads import recycle as recycle_mod
from closewise.leads import response_effect as effect_mod
from closewise.leads import sla as sla_mod
from closewise.leads.hours import BusinessHours, valid_zone

DEFAULT_DAYS = 90  # the SLA report's window: leads created in the last 90 days
LIST_LIMIT = 200


@dataclass(frozen=True)
class LeadData:
    """The leads a scope sees, read once: first touch resolved from activities, the app's events, the
    opportunities they became (amounts in the corporate currency), the users, and the SLA policy."""

    leads: pl.DataFrame
    app_events: pl.DataFrame
    opportunities: pl.DataFrame
    users: pl.DataFrame
    currency: str
    policy: sla_mod.SlaPolicy

    _speed: dict[datetime, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def speed(self, as_of: datetime) -> pl.DataFrame:
        """`sla.speed_to_lead` of every lead as of `as_of`, worked out once per moment."""
        if as_of not in self._speed:
            self._speed[as_of] = sla_mod.speed_to_lead(self.leads, self.policy, as_of)
        return self._speed[as_of]

    @property
    def names(self) -> dict[int, str]:
        return dict(zip(self.users["id"].to_list(), self.users["name"].to_list(), strict=True))


def policy_from(settings: dict[str, str]) -> sla_mod.SlaPolicy:
    try:
        minutes = int(settings["leads_sla_minutes"])
    except ValueError:
        minutes = 60
    return sla_mod.SlaPolicy(minutes=minutes, hours=BusinessHours.parse(settings["leads_business_hours"]),
                             timezone=settings["leads_timezone"], clock=settings["leads_clock"])


def load(engine: Engine, scope: Scope | None = None) -> LeadData:
    with engine.connect() as connection:
        leads = db.load_leads(connection, scope=scope)
        activity = db.load_lead_activities(connection, scope=scope)
        app_events = db.load_lead_events(connection, scope=scope)
        opportunities = db.load_lead_opportunities(connection)
        people = db.load_users(connection)
        rates = org_frames.load_rates(connection)
        currency = db.corporate(connection)
        policy = policy_from(db.lead_settings(connection))
    opportunities = to_corporate(opportunities.with_columns(
        pl.coalesce(pl.col("close_date"), pl.col("created_at").cast(pl.Date)).alias("_on")),
        rates, corporate=currency, on="_on").drop("_on")
    return LeadData(lead_events.with_first_touch(leads, activity), app_events, opportunities, people, currency,
                    policy)


def _data(engine: Engine, scope: Scope | None, data: LeadData | None) -> LeadData:
    return data if data is not None else load(engine, scope)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _records(frame: pl.DataFrame, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = frame.rename(rename) if rename else frame
    return [{key: _clean(value) for key, value in row.items()} for row in out.iter_rows(named=True)]


# ---------------------------------------------------------------------------------------------- funnel


def funnel(engine: Engine, scope: Scope | None = None, *, data: LeadData | None = None) -> dict[str, Any]:
    """`closewise leads funnel`: lead → accepted → opportunity → won, overall, by source and by campaign."""
    data = _data(engine, scope, data)
    outcomes = funnel_mod.lead_outcomes(data.leads, data.opportunities)
    overall = _records(funnel_mod.funnel(outcomes))[0]
    by_campaign = funnel_mod.funnel(outcomes, "campaign")
    sources = (outcomes.group_by("campaign", "lead_source").agg(pl.len().alias("_n"))
               .sort(["campaign", "_n"], descending=[False, True]).group_by("campaign", maintain_order=True).first()
               .select("campaign", pl.col("lead_source").alias("source")))
    return {
        "currency": data.currency,
        **overall,
        "by_source": _records(funnel_mod.funnel(outcomes, "lead_source"), {"lead_source": "source"}),
        "by_campaign": _records(by_campaign.join(sources, on="campaign", how="left")),
    }


def quality(engine: Engine, scope: Scope | None = None, *, as_of: datetime | None = None,
            data: LeadData | None = None) -> list[dict[str, Any]]:
    """Lead quality by source, for marketing: conversion, revenue per lead, what sales said, how fast."""
    data = _data(engine, scope, data)
    outcomes = funnel_mod.lead_outcomes(data.leads, data.opportunities)
    rows = data.speed(as_of or utcnow())
    return _records(funnel_mod.lead_quality(outcomes, rows), {"lead_source": "source"})


# ---------------------------------------------------------------------------------------------- SLA


def _window(rows: pl.DataFrame, as_of: datetime, days: int | None) -> pl.DataFrame:
    if days is None:
        return rows
    return rows.filter(pl.col("created_at") > naive_utc(as_of) - timedelta(days=days))


def _lead_item(row: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    owner = row.get("owner_id")
    return {
        "id": row["id"], "external_id": row["external_id"], "name": row["name"], "company": row["company"],
        "source": row["lead_source"], "campaign": row["campaign"], "owner_id": owner,
        "owner": names.get(owner) if owner is not None else None, "status": row["status"],
        "created_at": row["created_at"], "first_touch_at": row.get("touched_at", row.get("first_touch_at")),
        "due_at": row.get("due_at"), "state": row.get("state"), "zone": row.get("zone"),
        "business_minutes": _round(row.get("business_minutes")),
        "response_minutes": _round(row.get("response_minutes")),
        "minutes_over": _round(row.get("minutes_over")),
    }


def _round(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 1)


def sla(engine: Engine, scope: Scope | None = None, *, as_of: datetime | None = None,
        days: int | None = DEFAULT_DAYS, limit: int = LIST_LIMIT, data: LeadData | None = None) -> dict[str, Any]:
    """`closewise leads sla`: speed to lead for leads created in the last `days` days (None: all) by `as_of`,
    overall, by owner and by source, the breaches (worst first), and the open breaches per manager."""
    data = _data(engine, scope, data)
    moment = as_of or utcnow()
    if days is not None and days < 1:
        raise InvalidInput("the window must be at least one day", where="days")
    rows = _window(data.speed(moment), moment, days)
    names = data.names
    by_owner = sla_mod.summarise(rows, "owner_id").with_columns(
        pl.col("owner_id").replace_strict(names, default=None, return_dtype=pl.String).alias("owner"))
    breaches = rows.filter(pl.col("breached")).sort(["open", "minutes_over"], descending=[True, True])
    escalation = sla_mod.escalations(rows, data.users)
    managers: list[dict[str, Any]] = []
    for manager, group in escalation.group_by("escalate_to", maintain_order=True):
        manager_id = manager[0]
        managers.append({
            "manager_id": manager_id, "manager": names.get(manager_id) if manager_id is not None else None,
            "breaches": group.height,
            "owners": sorted({names.get(o, str(o)) for o in group["owner_id"].drop_nulls().to_list()}),
            "leads": [_lead_item(row, names) for row in group.head(limit).iter_rows(named=True)],
        })
    managers.sort(key=lambda item: (-item["breaches"], item["manager"] or ""))
    return {
        "as_of": moment, "days": days,
        "policy": {"minutes": data.policy.minutes, "business_hours": data.policy.hours.describe(),
                   "timezone": data.policy.timezone, "clock": data.policy.clock,
                   "description": data.policy.describe()},
        "summary": _records(sla_mod.summarise(rows))[0],
        "by_owner": _records(by_owner),
        "by_source": _records(sla_mod.summarise(rows, "lead_source"), {"lead_source": "source"}),
        "breaches_total": breaches.height,
        "breaches": [_lead_item(row, names) for row in breaches.head(limit).iter_rows(named=True)],
        "escalations": managers,
    }


def set_policy(engine: Engine, *, minutes: int | None = None, business_hours: str | None = None,
               timezone: str | None = None, clock: str | None = None) -> sla_mod.SlaPolicy:
    """Change the SLA (only what is given); returns the policy now in force."""
    with engine.begin() as connection:
        current = db.lead_settings(connection)
        wanted = dict(current)
        if minutes is not None:
            wanted["leads_sla_minutes"] = str(minutes)
        if business_hours is not None:
            wanted["leads_business_hours"] = BusinessHours.parse(business_hours).describe()
        if timezone is not None:
            if not valid_zone(timezone):
                raise InvalidInput(f"unknown time zone {timezone!r} (an IANA name like Europe/Berlin)",
                                   where="timezone")
            wanted["leads_timezone"] = timezone.strip()
        if clock is not None:
            wanted["leads_clock"] = clock
        policy = policy_from(wanted)  # validates before anything is written
        for key, value in wanted.items():
            if value != current[key]:
                db.write_lead_setting(connection, key=key, value=value)
    return policy


# ---------------------------------------------------------------------------------------------- response effect


def response_effect(engine: Engine, scope: Scope | None = None, *, as_of: datetime | None = None,
                    min_age_days: int = 30, data: LeadData | None = None) -> dict[str, Any]:
    """Conversion by response-time bucket with 95% intervals, and the headline ratios."""
    data = _data(engine, scope, data)
    moment = as_of or utcnow()
    outcomes = data.leads.join(
        funnel_mod.lead_outcomes(data.leads, data.opportunities).select("lead_id", "opportunity_id"),
        left_on="id", right_on="lead_id", how="left")
    effect = effect_mod.response_effect(outcomes, moment, min_age_days=min_age_days)
    buckets = _records(effect)

    def pooled(labels: Sequence[str]) -> float | None:
        chosen = [row for row in buckets if row["bucket"] in labels]
        n = sum(row["leads"] for row in chosen)
        return sum(row["converted"] for row in chosen) / n if n else None

    hour, day = pooled(["< 1 h"]), pooled(["1-24 h"])
    later = pooled(["1-3 days", "> 3 days"])
    return {
        "as_of": moment, "min_age_days": min_age_days, "buckets": buckets,
        "leads": sum(row["leads"] for row in buckets),
        "hour_vs_day": hour / day if hour is not None and day else None,
        "hour_vs_later": hour / later if hour is not None and later else None,
    }


# ---------------------------------------------------------------------------------------------- recycle


def recycle(engine: Engine, scope: Scope | None = None, *, today: date | None = None, limit: int = LIST_LIMIT,
            data: LeadData | None = None) -> dict[str, Any]:
    """Leads in nurture (due ones first), the reasons sales gave, and the leads that came back."""
    data = _data(engine, scope, data)
    day = today or utcnow().date()
    names = data.names
    nurture = recycle_mod.nurture_list(data.leads, day)

    def item(row: dict[str, Any]) -> dict[str, Any]:
        return {**_lead_item(row, names), "reason": row["recycle_reason"], "re_engage_at": row["re_engage_at"],
                "rejected_at": row["rejected_at"], "recycled_count": row["recycled_count"],
                "days_left": row.get("days_left"), "due": row.get("due")}

    back = recycle_mod.come_backs(data.leads).sort("id", descending=True)
    return {
        "today": day,
        "in_nurture": nurture.height,
        "due": int(nurture["due"].sum()) if nurture.height else 0,
        "nurture": [item(row) for row in nurture.head(limit).iter_rows(named=True)],
        "reasons": _records(recycle_mod.reasons(data.leads)),
        "come_backs": recycle_mod.come_back_summary(data.leads),
        "came_back": [item(row) for row in back.head(limit).iter_rows(named=True)],
    }


# ---------------------------------------------------------------------------------------------- leads


def to_qualify(engine: Engine, scope: Scope | None = None, *, limit: int = LIST_LIMIT,
               data: LeadData | None = None) -> list[dict[str, Any]]:
    """Open leads (new or working) awaiting sales' verdict, newest first."""
    data = _data(engine, scope, data)
    open_leads = data.leads.filter(pl.col("status").is_in([LeadStatus.NEW.value, LeadStatus.WORKING.value])).sort(
        ["created_at", "id"], descending=True).head(limit)
    rows = sla_mod.speed_to_lead(open_leads, data.policy, utcnow())
    return [_lead_item(row, data.names) for row in rows.head(limit).iter_rows(named=True)]


def lead_detail(engine: Engine, *, lead_id: int, scope: Scope | None = None) -> dict[str, Any]:
    """One lead, with its SLA state and its history of events."""
    with engine.connect() as connection:
        db.get_lead(connection, lead_id=lead_id, scope=scope)
        frame = db.load_leads(connection, ids=[lead_id])
        activity = db.load_lead_activities(connection).filter(pl.col("lead_id") == lead_id)
        app = db.load_lead_events(connection, lead_id=lead_id)
        people = db.load_users(connection)
        policy = policy_from(db.lead_settings(connection))
    resolved = lead_events.with_first_touch(frame, activity)
    names = dict(zip(people["id"].to_list(), people["name"].to_list(), strict=True))
    rows = sla_mod.speed_to_lead(resolved, policy, utcnow())
    row = (rows if rows.height else resolved).row(0, named=True)
    history = lead_events.lead_events(resolved, app)
    return {
        **_lead_item(row, names), "country": row["country"], "timezone": row["timezone"],
        "accepted_at": row["accepted_at"], "rejected_at": row["rejected_at"], "reason": row["recycle_reason"],
        "re_engage_at": row["re_engage_at"], "recycled_count": row["recycled_count"],
        "converted_at": row["converted_at"], "converted_opportunity_id": row["converted_opportunity_id"],
        "events": [{**event, "user": names.get(event["user_id"]) if event["user_id"] else None}
                   for event in _records(history.drop("lead_id"))],
    }


def list_leads(engine: Engine, scope: Scope | None = None, *, status: str | None = None, source: str | None = None,
               owner_id: int | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The leads `scope` sees, newest first, filtered by status, source and owner: `{"items", "total"}`."""
    if status is not None and status not in {s.value for s in LeadStatus}:
        raise InvalidInput(f"unknown status {status!r} (expected {', '.join(s.value for s in LeadStatus)})",
                           where="status")
    with engine.connect() as connection:
        frame = db.load_leads(connection, scope=scope)
        names = dict(zip(*db.load_users(connection).select("id", "name").to_dict(as_series=False).values(),
                         strict=True))
    if status is not None:
        frame = frame.filter(pl.col("status") == status)
    if source is not None:
        frame = frame.filter(pl.col("lead_source") == source)
    if owner_id is not None:
        frame = frame.filter(pl.col("owner_id") == owner_id)
    frame = frame.sort(["created_at", "id"], descending=True)
    page = frame.slice(offset, limit)
    return {"items": [{**_lead_item(row, names), "reason": row["recycle_reason"],
                       "re_engage_at": row["re_engage_at"], "recycled_count": row["recycled_count"]}
                      for row in page.iter_rows(named=True)],
            "total": frame.height}
