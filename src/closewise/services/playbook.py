"""The playbook at work: stage gates on deal edits, exit criteria and qualification answers recorded on deals,
re-qualification due lists, the YAML import/export, and the evidence that gates matter.

Gates: moving a deal forward (or skipping stages) needs the exit criteria of every stage it leaves; when some
are missing the move is refused (`GateRefused`, a Conflict carrying the `missing` list: the API answers 409)
unless the user gives an override reason, which the change log records (`gate override: …`). Imported deals
are never blocked: imports write history as it happened; deals that advanced without their criteria are
flagged instead (`advanced_without_criteria`). A stage marked `requires_passing_proposal` also needs the deal's
latest proposal to pass its quality checks (`services.proposals.proposal_passes`) before a deal leaves it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import deals as deal_queries
from closewise.db import playbook as store
from closewise.db.opportunity_labels import opportunity_labels
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
from closewise.playbook.default import Playbook
from closewise.playbook.gate_effect import GateEffect, advances, gate_effect
from closewise.playbook.gates import DealEvidence, GateDecision, gate, stage_status
from closewise.playbook.qualification import check_answer, scores, unknown_findings
from closewise.playbook.requalification import requalification
from closewise.playbook.yaml_io import playbook_from_yaml, playbook_to_yaml
from closewise.services.org_data import load_org, scoped
from closewise.services.proposals import proposal_passes

OVERRIDE_PREFIX = "gate override: "


class GateRefused(Conflict):
    """A forward move whose exit criteria are not all met, without an override reason."""

    def __init__(self, decision: GateDecision) -> None:
        missing = decision.missing
        names = "; ".join(c.label for c in missing)
        super().__init__(f"cannot move from {decision.from_stage} to {decision.to_stage}: {len(missing)} exit "
                         f"criteria not met ({names}); complete them, or give an override reason", where="stage")
        self.decision = decision
        self.payload = {"missing": [c.to_dict() for c in missing], "from_stage": decision.from_stage,
                        "to_stage": decision.to_stage, "skipped": list(decision.skipped)}


# --- the playbook itself ----------------------------------------------------------------------------------


def current_playbook(engine: Engine, *, pipeline: str = "default") -> Playbook:
    with engine.connect() as connection:
        return store.load_playbook(connection, pipeline=pipeline)


def export_playbook(engine: Engine, *, pipeline: str = "default") -> str:
    return playbook_to_yaml(current_playbook(engine, pipeline=pipeline))


def import_playbook(engine: Engine, *, text: str, source: str = "playbook", actor_id: int | None = None) -> Playbook:
    """Replace the stored playbook with the one in `text` (checked first; nothing changes on an error). A
    stage that still holds open deals cannot be removed."""
    playbook = playbook_from_yaml(text, source=source)
    with engine.begin() as connection:
        holding = store.open_deals_by_stage(connection, pipeline=playbook.pipeline)
        kept = {stage.key for stage in playbook.stages}
        for stage, count in sorted(holding.items()):
            if stage not in kept:
                raise InvalidInput(f"stage {stage!r} still holds {count} open deals; move them before removing it",
                                   where=f"{source}: stages")
        store.save_playbook(connection, playbook)
        audit.record(connection, at=utcnow(), actor_id=actor_id, action="playbook.import", entity="playbook",
                     entity_id=playbook.pipeline, detail={"stages": [s.key for s in playbook.stages],
                                                          "frameworks": [f.key for f in playbook.frameworks]})
    return playbook


# --- gates ------------------------------------------------------------------------------------------------


def judge_move(connection: Connection, *, deal_id: int, pipeline: str, from_stage: str, to_stage: str,
               fields: dict[str, Any] | None = None) -> GateDecision:
    """Judge a move on the evidence stored for the deal, with `fields` (values being saved in the same edit)
    counted as already filled in."""
    playbook = store.load_playbook(connection, pipeline=pipeline)
    evidence = _evidence(connection, playbook, deal_id)
    if fields:
        evidence = replace(evidence, fields={**evidence.fields, **fields})
    try:
        return gate(playbook, from_stage, to_stage, evidence)
    except KeyError as exc:
        known = ", ".join(stage.key for stage in playbook.stages)
        raise InvalidInput(f"unknown stage {exc.args[0]!r}; one of {known}", where="stage") from None


def _evidence(connection: Connection, playbook: Playbook, deal_id: int) -> DealEvidence:
    """The deal's evidence, with whether its latest proposal passes when some stage of its playbook asks (the
    proposal checks are only read then)."""
    evidence = store.deal_evidence(connection, deal_id=deal_id)
    if any(stage.requires_passing_proposal for stage in playbook.stages):
        evidence = replace(evidence, proposal_passes=proposal_passes(connection, deal_id))
    return evidence


def enforce_gate(connection: Connection, *, deal_id: int, pipeline: str, from_stage: str, to_stage: str,
                 override_reason: str | None, fields: dict[str, Any] | None = None) -> str | None:
    """Allow or refuse a stage change inside the caller's transaction. Returns the reason the change log must
    carry (None when the move needs none), or raises GateRefused."""
    decision = judge_move(connection, deal_id=deal_id, pipeline=pipeline, from_stage=from_stage, to_stage=to_stage,
                          fields=fields)
    reason = (override_reason or "").strip()
    if decision.allowed:
        return reason or None
    if not reason:
        raise GateRefused(decision)
    missing = ", ".join(c.key for c in decision.missing)
    return f"{OVERRIDE_PREFIX}{reason} (missing: {missing})"


def parse_override(reason: str | None) -> tuple[str, list[str]] | None:
    """A change-log reason written by `enforce_gate` for an override, read back: (the reason the user gave, the
    keys of what was missing); None for any other reason."""
    if not reason or not reason.startswith(OVERRIDE_PREFIX):
        return None
    given, marker, rest = reason[len(OVERRIDE_PREFIX):].rpartition(" (missing: ")
    if not marker or not rest.endswith(")"):
        return reason[len(OVERRIDE_PREFIX):], []
    return given, [key.strip() for key in rest[:-1].split(",") if key.strip()]


def stage_defaults(connection: Connection, *, pipeline: str, stage: str) -> tuple[float, str] | None:
    """The default probability (percent) and forecast category a deal takes on entering `stage`."""
    playbook = store.load_playbook(connection, pipeline=pipeline)
    keys = {s.key: s for s in playbook.stages}
    found = keys.get(stage)
    return None if found is None else (found.default_probability, found.forecast_category.value)


def _visible(connection: Connection, scope: Scope, deal_id: int) -> dict[str, Any]:
    row = deal_queries.get_deal(connection, scope=scope, deal_id=deal_id)
    if row is None:
        raise NotFound(f"no opportunity with id {deal_id}")
    return row


def deal_playbook(engine: Engine, *, scope: Scope, deal_id: int, as_of: datetime | None = None) -> dict[str, Any]:
    """A deal against the playbook: its stage's exit criteria (met or not, and how), what is missing to move
    to the next stage, its qualification scorecards with unknowns, and its re-qualification status."""
    moment = naive_utc(as_of or utcnow())
    with engine.connect() as connection:
        row = _visible(connection, scope, deal_id)
        playbook = store.load_playbook(connection, pipeline=row["pipeline"])
        evidence = _evidence(connection, playbook, deal_id)
        answers = store.load_answers(connection, deal_id=deal_id)
    keys = [stage.key for stage in playbook.stages]
    current = playbook.stage(row["stage"]) if row["stage"] in keys else None
    nxt = keys[keys.index(row["stage"]) + 1] if current and keys.index(row["stage"]) + 1 < len(keys) else None
    criteria = [c.to_dict() for c in stage_status(current, evidence)] if current else []
    to_next = gate(playbook, row["stage"], nxt, evidence) if nxt else None
    cards = scores(answers, list(playbook.frameworks), as_of=moment)
    unknown = unknown_findings(answers, as_of=moment)
    latest = answers.filter(pl.col("answered_at") <= moment).sort("answered_at").group_by(
        "framework", "question", maintain_order=True).last()
    frameworks = []
    for framework in playbook.frameworks:
        card = cards.filter(pl.col("framework") == framework.key)
        given = {r["question"]: r for r in latest.filter(pl.col("framework") == framework.key).iter_rows(named=True)}
        frameworks.append({
            "key": framework.key, "name": framework.name,
            "score": card["score"][0] if card.height else 0.0,
            "questions": [{"key": q.key, "label": q.label, "answer": given.get(q.key, {}).get("answer"),
                           "answered_at": _iso(given.get(q.key, {}).get("answered_at"))} for q in framework.questions],
        })
    return {
        "id": deal_id, "stage": row["stage"], "next_stage": nxt, "exit_criteria": criteria,
        "missing_to_advance": [c.to_dict() for c in to_next.missing] if to_next else [],
        "frameworks": frameworks,
        "unknowns": [{"framework": r["framework"], "question": r["question"]} for r in unknown.iter_rows(named=True)],
    }


def set_criterion(engine: Engine, *, scope: Scope, deal_id: int, key: str, done: bool,
                  now: datetime | None = None) -> None:
    """Record a check of one exit criterion of the deal's playbook (a new row: the history is kept)."""
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        row = _visible(connection, scope, deal_id)
        if not scope.may(Action.EDIT_DEAL):
            raise Forbidden(f"a {scope.role.value} cannot change deals")
        playbook = store.load_playbook(connection, pipeline=row["pipeline"])
        known = {c.key for stage in playbook.stages for c in stage.exit_criteria}
        if key not in known:
            raise InvalidInput(f"unknown exit criterion {key!r}", where="key")
        store.insert_check(connection, deal_id=deal_id, key=key, done=done, at=moment, by=scope.user_id)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="opportunity.criterion",
                     entity="opportunity", entity_id=deal_id, detail={"key": key, "done": done})


def answer_question(engine: Engine, *, scope: Scope, deal_id: int, framework: str, question: str, answer: str,
                    evidence: str | None = None, now: datetime | None = None) -> None:
    """Record an answer to one qualification question, with its date and who answered."""
    moment = as_utc(now) if now is not None else utcnow()
    value = check_answer(answer)
    with engine.begin() as connection:
        row = _visible(connection, scope, deal_id)
        if not scope.may(Action.EDIT_DEAL):
            raise Forbidden(f"a {scope.role.value} cannot change deals")
        playbook = store.load_playbook(connection, pipeline=row["pipeline"])
        questions = {(f.key, q.key) for f in playbook.frameworks for q in f.questions}
        if (framework, question) not in questions:
            raise InvalidInput(f"no question {question!r} in framework {framework!r}", where="question")
        text = (evidence or "").strip() or None
        if text is not None and len(text) > 4000:
            raise InvalidInput("the evidence is longer than 4,000 characters", where="evidence")
        store.insert_answer(connection, deal_id=deal_id, framework=framework, question=question, answer=value,
                            evidence=text, at=moment, by=scope.user_id)


# --- lists and analysis -------------------------------------------------------------------------------------


def requalification_due(engine: Engine, *, scope: Scope, as_of: datetime | None = None,
                        warn_days: int = 7, owner_id: int | None = None) -> list[dict[str, Any]]:
    """The open deals the caller sees (of `owner_id` only, when given) that are due or overdue for
    re-qualification as of `as_of`, soonest first, with their owner."""
    moment = naive_utc(as_of or utcnow())
    from closewise.analytics.snapshots import snapshot

    org = scoped(load_org(engine, activities=False), scope)
    open_now = snapshot(org.timeline, moment).filter(pl.col("status") == "open")
    if owner_id is not None:
        open_now = open_now.filter(pl.col("owner_id") == owner_id)
    with engine.connect() as connection:
        answers = store.load_answers(connection)
        table = requalification(open_now, answers, org.stages, as_of=moment, warn_days=warn_days).filter(
            pl.col("status") != "ok")
        labels = opportunity_labels(connection, ids=table["id"].to_list())
    names = dict(zip(org.users["id"].to_list(), org.users["name"].to_list(), strict=True))
    return [
        {**row, "name": labels.get(row["id"], (None, None))[1], "owner": names.get(row["owner_id"]),
         "last_qualified_at": _iso(row["last_qualified_at"]), "due_on": row["due_on"].isoformat(),
         "created_at": _iso(row["created_at"])}
        for row in table.iter_rows(named=True)
    ]


def gate_analysis(engine: Engine, *, scope: Scope, as_of: datetime | None = None) -> GateEffect:
    moment = naive_utc(as_of or utcnow())
    org = scoped(load_org(engine, activities=False), scope)
    with engine.connect() as connection:
        playbook = store.load_playbook(connection)
        checks = store.load_checks(connection)
        overrides = store.load_overrides(connection)
    ids = org.opportunities["id"].implode()
    return gate_effect(org.changes, checks.filter(pl.col("opportunity_id").is_in(ids)), org.opportunities, playbook,
                       as_of=moment, overrides=overrides)


def advanced_without_criteria(engine: Engine, *, scope: Scope, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Open deals that reached their stage without the exit criteria of a stage they left (imported history
    included: flagged, not blocked), with the criteria that were missing."""
    moment = naive_utc(as_of or utcnow())
    org = scoped(load_org(engine, activities=False), scope)
    with engine.connect() as connection:
        playbook = store.load_playbook(connection)
        checks = store.load_checks(connection)
    open_ids = org.opportunities.filter(pl.col("status") == "open")["id"].implode()
    judged = advances(org.changes.filter(pl.col("opportunity_id").is_in(open_ids)), checks, playbook, as_of=moment)
    missing = (judged.filter(~pl.col("met")).group_by("opportunity_id")
               .agg(pl.col("criterion").unique().sort().alias("missing")).sort("opportunity_id"))
    return [{"id": row["opportunity_id"], "missing": row["missing"]} for row in missing.iter_rows(named=True)]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None
