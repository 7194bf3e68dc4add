"""1:1 coaching plans: the skills to develop (suggested by the gap analysis, `coaching.plans`), commitments with
due dates and their follow-up, 1:1 notes, and the before/after of the targeted metrics on the rep's deals."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.coaching import plans as plan_rules
from closewise.coaching import reviews as review_rules
from closewise.db import audit
from closewise.db import coaching as store
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.errors import Conflict, InvalidInput, NotFound
from closewise.services import coaching_access as access
from closewise.services.coaching_access import may_coach, rep_in_sight, require_coach
from closewise.services.coaching_commitments import insert_plan_commitment
from closewise.services.coaching_data import everyone, json_dict, json_safe, load, moment
from closewise.services.coaching_gap import org_gap
from closewise.services.report_cache import ReportCache


def suggested_skills(engine: Engine, *, scope: Scope, rep_id: int, as_of: datetime | None = None,
                     limit: int = 3) -> list[dict[str, Any]]:
    """The skills the gap analysis suggests for a rep the user sees."""
    rep_in_sight(scope, rep_id, engine)
    at = moment(as_of)
    report = org_gap(engine, scope=scope, at=at)
    behaviours = load(engine, scope=everyone(scope), as_of=at).behaviours
    metrics = pl.DataFrame(report.metrics, infer_schema_length=None) if report.metrics else pl.DataFrame()
    if metrics.height == 0:
        return []
    return [json_safe(s) for s in plan_rules.suggest_skills(
        behaviours, metrics, rep_id, since=at - timedelta(days=report.window_days), until=at, limit=limit)]


def create_plan(engine: Engine, *, scope: Scope, rep_id: int, title: str, skills: list[str] | None = None,
                review_on: date | None = None, commitments: list[dict[str, Any]] | None = None,
                now: datetime | None = None) -> dict[str, Any]:
    """A 1:1 plan for a rep: the skills (gap metric keys; default: the suggested ones), with the rep's baseline
    and the top performers' level as target, and its first commitments (`text`, `due_on`, `skill`)."""
    written = as_utc(now) if now is not None else utcnow()
    at = naive_utc(written)
    rep_in_sight(scope, rep_id, engine)
    require_coach(scope, rep_id)
    name = access.text(title, "title", limit=200)
    if review_on is not None and review_on < at.date():
        raise InvalidInput("the review date is in the past", where="review_on")
    report = org_gap(engine, scope=scope, at=at)
    by_key = {m["metric"]: m for m in report.metrics}
    behaviours = load(engine, scope=everyone(scope), as_of=at).behaviours
    if skills is None:
        metrics = pl.DataFrame(report.metrics, infer_schema_length=None)
        picked = plan_rules.suggest_skills(behaviours, metrics, rep_id, since=at - timedelta(days=report.window_days),
                                           until=at) if metrics.height else []
        keys = [p["metric"] for p in picked]
    else:
        keys = list(dict.fromkeys(skills))
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            raise InvalidInput(f"unknown skill {unknown[0]!r}; one of {', '.join(sorted(by_key))}", where="skills")
    if not keys:
        raise InvalidInput("choose at least one skill", where="skills")
    chosen = [{"metric": k, "label": by_key[k]["label"], "unit": by_key[k]["unit"], "better": by_key[k]["better"],
               "summary": by_key[k]["summary"], "target": by_key[k]["top"]} for k in keys]
    since = at - timedelta(days=90)
    baseline = dict(plan_rules.rep_levels(
        behaviours, pl.DataFrame({"metric": keys, "summary": [c["summary"] for c in chosen]}), rep_id,
        since=since, until=at).items())
    items = commitments or []
    with engine.begin() as connection:
        plan_id = store.insert_plan(connection, values={
            "rep_id": rep_id, "author_id": scope.user_id, "title": name, "skills": chosen,
            "baseline": json_safe(baseline), "starts_on": at.date(), "review_on": review_on, "status": "active",
            "created_at": written})
        for item in items:
            insert_plan_commitment(connection, plan_id=plan_id, rep_id=rep_id, author=scope.user_id, item=item,
                                   moment=written, skills=set(keys))
        audit.record(connection, at=written, actor_id=scope.user_id, action="coaching.plan", entity="coaching_plan",
                     entity_id=plan_id, detail={"rep_id": rep_id, "skills": keys})
    return plan_detail(engine, scope=scope, plan_id=plan_id, as_of=written)


def add_plan_commitment(engine: Engine, *, scope: Scope, plan_id: int, text: str, due_on: date | None = None,
                        skill: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    written = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        plan = _plan(connection, scope, plan_id)
        require_coach(scope, plan["rep_id"])
        if plan["status"] != "active":
            raise Conflict("this plan is closed", where="plan")
        commitment_id = insert_plan_commitment(
            connection, plan_id=plan_id, rep_id=plan["rep_id"], author=scope.user_id,
            item={"text": text, "due_on": due_on, "skill": skill}, moment=written,
            skills={s["metric"] for s in plan["skills"]})
        return json_dict(store.list_commitments(connection, scope=scope, commitment_id=commitment_id)[0])


def add_one_on_one_note(engine: Engine, *, scope: Scope, plan_id: int, body: str, skill: str | None = None,
                        now: datetime | None = None) -> dict[str, Any]:
    """A 1:1 note on a plan's rep (the follow-up conversation)."""
    written = as_utc(now) if now is not None else utcnow()
    note = access.text(body, "body")
    with engine.begin() as connection:
        plan = _plan(connection, scope, plan_id)
        require_coach(scope, plan["rep_id"])
        note_id = store.insert_note(connection, values={
            "rep_id": plan["rep_id"], "author_id": scope.user_id, "kind": "one_on_one", "body": note,
            "skill": skill, "created_at": written})
    return {"id": note_id, "rep_id": plan["rep_id"], "body": note, "skill": skill, "created_at": written.isoformat()}


def close_plan(engine: Engine, *, scope: Scope, plan_id: int, outcome: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    written = as_utc(now) if now is not None else utcnow()
    note = access.text(outcome, "outcome", required=False)
    with engine.begin() as connection:
        plan = _plan(connection, scope, plan_id)
        require_coach(scope, plan["rep_id"])
        if plan["status"] != "active":
            raise Conflict("this plan is already closed", where="plan")
        store.update_plan(connection, plan_id=plan_id, values={"status": "closed", "closed_at": written,
                                                               "outcome": note})
    return plan_detail(engine, scope=scope, plan_id=plan_id, as_of=written)


def list_plans(engine: Engine, *, scope: Scope, rep_id: int | None = None,
               as_of: datetime | None = None) -> list[dict[str, Any]]:
    today = moment(as_of).date()
    if rep_id is not None:
        rep_in_sight(scope, rep_id, engine)
    with engine.connect() as connection:
        plans = store.list_plans(connection, scope=scope, rep_id=rep_id)
        steps = store.list_commitments(connection, scope=scope, kind="plan", rep_id=rep_id)
    by_plan: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        by_plan.setdefault(step["plan_id"], []).append(step)
    out = []
    for plan in plans:
        mine = by_plan.get(plan["id"], [])
        statuses = [review_rules.follow_up_status(s["due_on"], s["done_at"], today=today) for s in mine]
        out.append(json_dict({**plan, "commitments": len(mine), "done": statuses.count("done"),
                              "overdue": statuses.count("overdue")}))
    return out


def plan_detail(engine: Engine, *, scope: Scope, plan_id: int, as_of: datetime | None = None,
                cache: ReportCache | None = None) -> dict[str, Any]:
    """A plan with its commitments (and their follow-up status), 1:1 notes since it started, and the before /
    after of its skills on the rep's deals (their behaviours kept in `cache` when given; the plan's own records
    are read each time)."""
    at = moment(as_of)
    with engine.connect() as connection:
        plan = _plan(connection, scope, plan_id)
        steps = store.list_commitments(connection, scope=scope, plan_id=plan_id)
        started = datetime.combine(plan["starts_on"], datetime.min.time())
        notes = store.list_notes(connection, scope=scope, kind="one_on_one", rep_id=plan["rep_id"])
    for step in steps:
        step["status"] = review_rules.follow_up_status(step["due_on"], step["done_at"], today=at.date())
    until = naive_utc(as_utc(plan["closed_at"])) if plan["closed_at"] is not None else at
    rep_scope = Scope(user_id=plan["rep_id"], role=Role.REP, owner_ids=frozenset({plan["rep_id"]}))
    behaviours = load(engine, scope=rep_scope, as_of=as_of, cache=cache).behaviours
    progress = plan_rules.before_after(behaviours, plan["rep_id"], list(plan["skills"]), started=started, until=until)
    return json_dict({**plan, "commitments": steps, "progress": progress,
                      "notes": [n for n in notes if naive_utc(as_utc(n["created_at"])) >= started],
                      "editable": may_coach(scope, plan["rep_id"]) and plan["status"] == "active"})


def _plan(connection: Connection, scope: Scope, plan_id: int) -> dict[str, Any]:
    """The plan `plan_id` when `scope` sees its rep (else NotFound, like a missing one)."""
    plans = store.list_plans(connection, scope=scope, plan_id=plan_id)
    if not plans:
        raise NotFound(f"no coaching plan with id {plan_id}")
    return plans[0]
