"""Proposals, the differentiation library and the prospecting plan (issue 11), for a signed-in user's scope.

- `candidates`: open deals the caller sees that are ready for a proposal (from the stage before the Proposal
  stage on), with what discovery captured and the latest proposal's verdict.
- `generate`: the executive summary (`proposals.summary`), its checks (`proposals.checks`) and the document
  (HTML, DOCX or PDF), recorded in `proposals`. Needs `edit_deal`.
- `proposal_passes`: the playbook's rule "a passing proposal is required to leave the Proposal stage".
- `differentiation`: the record against each competitor and the talking points per persona.
- `prospecting`: the ideal-customer profile, target accounts ranked by fit, cadences and each rep's progress.

An optional language model polishes the summary when `CLOSEWISE_SUMMARY_POLISHER` names one
(`package.module:callable`, see `proposals.summary.Polisher`); off by default, and never required.
"""

from __future__ import annotations

import importlib
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection, Engine

from closewise.analytics.currency import to_corporate
from closewise.db import org_frames
from closewise.db import proposals as queries
from closewise.db.org_settings import read_settings
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
from closewise.proposals import differentiation as diff
from closewise.proposals import documents, prospecting
from closewise.proposals.checks import passed, run_checks
from closewise.proposals.summary import (
    OUTCOME_QUESTIONS,
    PAIN_QUESTIONS,
    Answer,
    Contact,
    DealFacts,
    ExecutiveSummary,
    Polisher,
    polish,
    write_summary,
)

POLISHER_ENV = "CLOSEWISE_SUMMARY_POLISHER"
TEMPLATE_SETTING = "proposal_template_dir"
PROPOSAL_STAGE = "proposal"


def _visible(connection: Connection, scope: Scope, deal_id: int) -> dict[str, Any]:
    row = queries.get_deal(connection, scope=scope, deal_id=deal_id)
    if row is None:
        raise NotFound(f"no opportunity with id {deal_id}")
    return row


def candidate_stages(connection: Connection, *, pipeline: str = "default") -> list[str]:
    """The stages a deal is ready for a proposal in: from the one before the Proposal stage to the last (the
    last two stages when the pipeline has no stage keyed `proposal`)."""
    keys = [row["key"] for row in queries.stage_rows(connection, pipeline=pipeline)]
    if PROPOSAL_STAGE in keys:
        return keys[max(0, keys.index(PROPOSAL_STAGE) - 1):]
    return keys[-2:]


def _talking_points(connection: Connection) -> list[diff.TalkingPoint]:
    stored = [diff.TalkingPoint(r["competitor"], r["persona"], r["headline"], r["detail"], r["proof"], "org")
              for r in queries.stored_talking_points(connection)]
    return diff.library(stored)


def _rates(connection: Connection, scope: Scope) -> tuple[pl.DataFrame, str]:
    deals = queries.deals_frame(connection, scope=scope)
    corporate = read_settings(connection)["corporate_currency"]
    converted = to_corporate(deals, org_frames.load_rates(connection), corporate=corporate)
    return diff.win_rates(converted.with_columns(pl.col("amount_corporate").alias("amount"))), corporate


def deal_facts(connection: Connection, *, scope: Scope, deal_id: int, today: date | None = None,
               rates: pl.DataFrame | None = None) -> DealFacts:
    """What the record says about a deal the caller sees (NotFound otherwise); `rates` (from `win_rates`) when the
    caller already has them."""
    row = _visible(connection, scope, deal_id)
    day = today or utcnow().date()
    people = queries.deal_contacts(connection, deal_id=deal_id, account_id=row["account_id"])
    order = {"economic_buyer": 0, "champion": 1, "decision_maker": 2}
    people.sort(key=lambda c: (not c["engaged"], order.get(c["buying_role"] or "", 9), c["id"]))
    answers = queries.latest_answers(connection, deal_id=deal_id)
    criteria = queries.criteria(connection, deal_id=deal_id, pipeline=row["pipeline"])
    if rates is None:
        rates, _ = _rates(connection, scope)
    record = diff.record_against(rates, row["competitor"])
    points = diff.points_for(row["competitor"], "economic_buyer", _talking_points(connection)) \
        if row["competitor"] else []
    return DealFacts(
        deal_id=deal_id, deal_name=row["name"], account=row["account_name"] or row["name"], owner=row["owner_name"],
        stage=row["stage"], stage_name=row["stage_name"] or row["stage"], status=row["status"],
        amount=None if row["amount"] is None else float(row["amount"]), currency=row["currency"],
        close_date=row["close_date"], created_on=as_utc(row["created_at"]).date(), today=day,
        industry=row["industry"], employees=row["employees"], country=row["country"], segment=row["segment"],
        deal_type=row["type"], competitor=row["competitor"], next_step=row["next_step"],
        contacts=tuple(Contact(c["name"], c["title"], c["buying_role"], c["engaged"]) for c in people),
        answers=tuple(Answer(a["framework"], a["question"], a["answer"], a["evidence"]) for a in answers),
        criteria_met=tuple(c["label"] for c in criteria if c["done"]),
        criteria_open=tuple(c["label"] for c in criteria if c["stage"] == row["stage"] and not c["done"]),
        activities=queries.activity_counts(connection, deal_id=deal_id),
        competitor_win_rate=None if record is None else record["win_rate"],
        competitor_point=f"{points[0].headline}: {points[0].detail}" if points else None,
    )


def configured_polisher() -> Polisher | None:
    """The language model named by CLOSEWISE_SUMMARY_POLISHER (`module:callable`), or None (the default)."""
    target = os.environ.get(POLISHER_ENV, "").strip()
    if not target:
        return None
    module, _, name = target.partition(":")
    try:
        found: Polisher = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidInput(f"cannot load the summary polisher {target!r}: {exc}", where=POLISHER_ENV) from None
    return found


def _template_dir(connection: Connection) -> Path | None:
    value = read_settings(connection).get(TEMPLATE_SETTING)
    return Path(value) if value else None


def compose(facts: DealFacts, points: list[diff.TalkingPoint], *, polisher: Polisher | None = None
            ) -> tuple[ExecutiveSummary, documents.ProposalDocument, list[dict[str, Any]]]:
    """The summary (polished when a model is configured and its text still passes), the document and checks."""
    plain = write_summary(facts)
    plain_document = documents.build_document(facts, plain, points)
    plain_checks = run_checks(plain.text, facts, documents.plain_text(plain_document))

    def still_good(candidate: ExecutiveSummary) -> bool:
        checks = run_checks(candidate.text, facts, documents.plain_text(plain_document))
        return all(c.passed or not p.passed for c, p in zip(checks, plain_checks, strict=True))

    summary = polish(plain, facts, polisher, still_good)
    document = documents.build_document(facts, summary, points)
    checks = run_checks(summary.text, facts, documents.plain_text(document))
    return summary, document, [c.as_dict() for c in checks]


def _readiness(facts: DealFacts) -> dict[str, bool]:
    return {"pain": bool(facts.evidence_for(PAIN_QUESTIONS)), "outcomes": bool(facts.evidence_for(OUTCOME_QUESTIONS)),
            "economic_buyer_met": any(c.engaged and c.role == "economic_buyer" for c in facts.contacts)}


def candidates(engine: Engine, *, scope: Scope, today: date | None = None) -> list[dict[str, Any]]:
    """Open deals ready for a proposal that the caller sees, with what discovery captured and the latest
    proposal's verdict (None: no proposal yet)."""
    with engine.connect() as connection:
        rows = queries.candidates(connection, scope=scope, stage_keys=candidate_stages(connection))
        latest = queries.latest_checks(connection, deal_ids=[r["id"] for r in rows])
        rates, _ = _rates(connection, scope)
        result = []
        for row in rows:
            facts = deal_facts(connection, scope=scope, deal_id=row["id"], today=today, rates=rates)
            checks = latest.get(row["id"])
            result.append({
                "id": row["id"], "name": row["name"], "account": row["account_name"], "owner_id": row["owner_id"],
                "owner": row["owner_name"], "stage": row["stage"], "stage_name": row["stage_name"],
                "amount": None if row["amount"] is None else float(row["amount"]), "currency": row["currency"],
                "close_date": row["close_date"].isoformat() if row["close_date"] else None,
                "competitor": row["competitor"], "ready": _readiness(facts),
                "proposal_passed": None if checks is None else passed(checks),
            })
    return result


def preview(engine: Engine, *, scope: Scope, deal_id: int, today: date | None = None) -> dict[str, Any]:
    """The summary and checks a proposal would have now, without recording one."""
    with engine.connect() as connection:
        facts = deal_facts(connection, scope=scope, deal_id=deal_id, today=today)
        points = diff.points_for(facts.competitor, None, _talking_points(connection))
        history = queries.proposals_for(connection, deal_id=deal_id)
    summary, document, checks = compose(facts, points, polisher=configured_polisher())
    return {"deal_id": deal_id, "deal": facts.deal_name, "account": facts.account, "stage": facts.stage,
            "amount": facts.amount, "currency": facts.currency, "competitor": facts.competitor,
            "executive_summary": summary.text, "paragraphs": list(summary.paragraphs),
            "polished_by": summary.polished_by, "checks": checks, "passed": passed(checks),
            "sections": [{"title": s.title, "paragraphs": list(s.paragraphs), "bullets": list(s.bullets)}
                         for s in document.sections],
            "history": [_public_proposal(p) for p in history], "pdf_available": documents.pdf_available()}


def _public_proposal(row: dict[str, Any]) -> dict[str, Any]:
    checks = list(row["checks"] or [])
    return {"id": row["id"], "deal_id": row["opportunity_id"], "created_at": as_utc(row["created_at"]).isoformat(),
            "created_by": row["created_by_name"], "format": row["format"], "path": row["path"],
            "executive_summary": row["executive_summary"], "checks": checks, "passed": passed(checks),
            "stored": bool(row["stored"])}


def generate(engine: Engine, *, scope: Scope, deal_id: int, fmt: str, out: Path | None = None,
             today: date | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Write the proposal (to `out` when given) and record it with its document, so a later download serves these
    very bytes (`stored_document`). Returns `{"id", "path", "executive_summary", "checks", "passed", "format",
    "content", "filename"}` (`content`: the document's bytes)."""
    if fmt not in documents.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(documents.FORMATS)}", where="format")
    moment = now or utcnow()
    with engine.begin() as connection:
        facts = deal_facts(connection, scope=scope, deal_id=deal_id, today=today or moment.date())
        if not scope.may(Action.EDIT_DEAL):
            raise Forbidden(f"a {scope.role.value} cannot create proposals")
        points = diff.points_for(facts.competitor, None, _talking_points(connection))
        summary, document, checks = compose(facts, points, polisher=configured_polisher())
        content = documents.render(document, fmt, template_dir=_template_dir(connection))
        path = None
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(content)
            except OSError as exc:
                raise InvalidInput(f"cannot write {out}: {exc.strerror}", where="--out") from None
            path = str(out.resolve())
        filename = _filename(facts, fmt)
        proposal_id = queries.insert_proposal(connection, deal_id=deal_id, by=scope.user_id, at=moment, fmt=fmt,
                                              path=path, summary=summary.text, checks=checks, content=content,
                                              filename=filename)
    return {"id": proposal_id, "deal_id": deal_id, "path": path, "format": fmt, "executive_summary": summary.text,
            "polished_by": summary.polished_by, "checks": checks, "passed": passed(checks), "content": content,
            "filename": filename}


def _filename(facts: DealFacts, fmt: str) -> str:
    stem = "".join(ch if ch.isalnum() else "-" for ch in facts.account).strip("-").lower() or "proposal"
    return f"proposal-{stem}-{facts.deal_id}.{fmt}"


def document(engine: Engine, *, scope: Scope, deal_id: int, fmt: str, today: date | None = None
             ) -> tuple[bytes, str, str]:
    """A draft: the proposal document as it would be generated now (content, file name, media type), nothing
    recorded. A generated proposal is downloaded with `stored_document`, which never rebuilds it."""
    if fmt not in documents.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(documents.FORMATS)}", where="format")
    with engine.connect() as connection:
        facts = deal_facts(connection, scope=scope, deal_id=deal_id, today=today)
        points = diff.points_for(facts.competitor, None, _talking_points(connection))
        template_dir = _template_dir(connection)
    _, doc, _ = compose(facts, points, polisher=configured_polisher())
    return documents.render(doc, fmt, template_dir=template_dir), _filename(facts, fmt), documents.MEDIA_TYPES[fmt]


def stored_document(engine: Engine, *, scope: Scope, deal_id: int, proposal_id: int) -> tuple[bytes, str, str]:
    """The document of a recorded proposal exactly as it was generated (content, file name, media type): later
    edits of the deal, the library or the templates do not change it. NotFound for a deal the caller does not
    see, a proposal of another deal, or one recorded before documents were stored (migration 0009)."""
    with engine.connect() as connection:
        _visible(connection, scope, deal_id)
        row = queries.stored_document(connection, deal_id=deal_id, proposal_id=proposal_id)
    if row is None:
        raise NotFound(f"no proposal with id {proposal_id} for opportunity {deal_id}")
    if row["content"] is None:
        raise NotFound(f"proposal {proposal_id} was recorded before documents were stored; generate it again")
    return bytes(row["content"]), str(row["filename"]), documents.MEDIA_TYPES[row["format"]]


def history(engine: Engine, *, scope: Scope, deal_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        _visible(connection, scope, deal_id)
        return [_public_proposal(p) for p in queries.proposals_for(connection, deal_id=deal_id)]


def proposal_passes(connection: Connection, deal_id: int) -> bool:
    """The playbook rule: the deal's latest proposal exists and passed every quality check."""
    checks = queries.latest_checks(connection, deal_ids=[deal_id]).get(deal_id)
    return checks is not None and passed(checks)


# --- differentiation --------------------------------------------------------------------------------------------


def differentiation(engine: Engine, *, scope: Scope) -> dict[str, Any]:
    """Per competitor met in the caller's deals: won / lost / no decision, win rate against them beside the win
    rate without a competitor, open deals facing them, and the talking points per persona."""
    with engine.connect() as connection:
        rates, corporate = _rates(connection, scope)
        points = _talking_points(connection)
        open_deals = queries.candidates(connection, scope=scope, stage_keys=[
            r["key"] for r in queries.stage_rows(connection, pipeline="default")], limit=100_000)
    by_competitor: dict[str, list[dict[str, Any]]] = {}
    for row in open_deals:
        if row["competitor"]:
            by_competitor.setdefault(row["competitor"], []).append(
                {"id": row["id"], "name": row["name"], "account": row["account_name"], "stage": row["stage_name"],
                 "amount": None if row["amount"] is None else float(row["amount"]), "currency": row["currency"]})
    competitors = diff.overview(rates, points)
    for item in competitors:
        item["deals"] = by_competitor.get(item["competitor"], [])[:20]
    generic = [p.as_dict() for p in points if p.competitor == diff.GENERIC]
    return {"currency": corporate, "competitors": competitors, "generic_points": generic,
            "personas": diff.PERSONA_LABELS}


def add_talking_point(engine: Engine, *, scope: Scope, competitor: str, persona: str, headline: str, detail: str,
                      proof: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    if not scope.may(Action.MANAGE_SETTINGS):
        raise Forbidden(f"a {scope.role.value} cannot change the differentiation library")
    values = {"competitor": competitor.strip(), "persona": persona.strip(), "headline": headline.strip(),
              "detail": detail.strip(), "proof": (proof or "").strip() or None}
    for key in ("competitor", "persona", "headline", "detail"):
        if not values[key]:
            raise InvalidInput(f"{key} is required", where=key)
    if values["persona"] not in diff.PERSONAS:
        raise InvalidInput(f"unknown persona {persona!r}; one of {', '.join(diff.PERSONAS)}", where="persona")
    with engine.begin() as connection:
        point_id = queries.insert_talking_point(connection, values={
            **values, "created_by": scope.user_id, "created_at": now or utcnow()})
    return {"id": point_id, **values, "source": "org"}


# --- prospecting ------------------------------------------------------------------------------------------------


def _cadences(connection: Connection) -> list[prospecting.Cadence]:
    stored = [prospecting.Cadence(
        r["name"], tuple(prospecting.CadenceStep(int(s["week"]), int(s["day"]), str(s["kind"]), str(s["label"]))
                         for s in r["steps"]), int(r["accounts_per_rep"]), int(r["weeks"]), "org", int(r["id"]))
        for r in queries.stored_cadences(connection)]
    return stored or list(prospecting.DEFAULT_CADENCES)


def prospecting_plan(engine: Engine, *, scope: Scope, as_of: datetime | None = None, limit: int = 50
                     ) -> dict[str, Any]:
    """The ICP (learned from all the org's wins closed before `as_of`: a profile, not records), the caller's
    target accounts (existing at `as_of`) ranked by fit with reasons and their rep, the cadences with weekly
    goals, and each visible rep's progress."""
    moment = as_of or utcnow()
    with engine.connect() as connection:
        # Only what was known at `moment`: the accounts that existed then and the wins closed before it.
        every_account = queries.accounts_frame(connection, scope=None, as_of=moment)
        outcomes = queries.all_deal_outcomes(connection)
        won = outcomes.filter((pl.col("status") == "won") & (pl.col("closed_at") < as_utc(moment)))
        icp = prospecting.learn_icp(every_account, won["account_id"].drop_nulls().unique())
        mine = queries.accounts_frame(connection, scope=scope, as_of=moment)
        deals = queries.deals_frame(connection, scope=scope)
        cadences = _cadences(connection)
        reps = queries.reps(connection, scope=scope)
        recent = queries.activities_since(connection, scope=scope, since=moment - timedelta(days=7), until=moment)
    # An account is a customer or has an open deal as it stood at `moment`, not as it stands today.
    ranked = prospecting.targets(mine, prospecting.statuses_as_of(deals, as_utc(moment)), icp)
    per_rep = ranked.group_by("owner_id").len().rename({"len": "targets"})
    accounts = [{"id": r["id"], "name": r["name"], "industry": r["industry"], "segment": r["segment"],
                 "country": r["country"], "employees": r["employees"], "owner_id": r["owner_id"],
                 "owner": r["owner_name"], "fit": r["fit"], "reasons": list(r["reasons"]), "kind": r["kind"]}
                for r in ranked.head(limit).iter_rows(named=True)]
    progress = prospecting.cadence_progress(cadences, recent, reps, as_of=naive_utc(moment))
    counts = {int(o): int(n) for o, n in per_rep.iter_rows() if o is not None}
    for row in progress:
        row["targets"] = counts.get(row["rep_id"], 0)
    return {"as_of": as_utc(moment).isoformat(), "icp": {"won_accounts": icp.won_accounts, "accounts": icp.accounts,
                                                          "profile": icp.profile()},
            "targets_total": ranked.height, "targets": accounts,
            "cadences": [c.as_dict() for c in cadences], "reps": progress}


def add_cadence(engine: Engine, *, scope: Scope, name: str, steps: list[dict[str, Any]], accounts_per_rep: int,
                now: datetime | None = None) -> dict[str, Any]:
    if not scope.may(Action.MANAGE_SETTINGS):
        raise Forbidden(f"a {scope.role.value} cannot change cadences")
    if not name.strip():
        raise InvalidInput("name is required", where="name")
    if not steps:
        raise InvalidInput("a cadence needs at least one step", where="steps")
    if accounts_per_rep < 1:
        raise InvalidInput("accounts_per_rep must be at least 1", where="accounts_per_rep")
    clean = []
    for i, step in enumerate(steps):
        if step.get("kind") not in prospecting.ACTIVITY_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(prospecting.ACTIVITY_KINDS)}", where=f"steps[{i}].kind")
        week, day = int(step.get("week", 0)), int(step.get("day", 0))
        if week < 1 or not 1 <= day <= 7:
            raise InvalidInput("week must be 1 or more and day 1-7", where=f"steps[{i}]")
        clean.append({"week": week, "day": day, "kind": step["kind"], "label": str(step.get("label") or step["kind"])})
    weeks = max(s["week"] for s in clean)
    with engine.begin() as connection:
        if queries.cadence_named(connection, name=name.strip()) is not None:
            raise Conflict(f"a cadence named {name.strip()!r} already exists", where="name")
        cadence_id = queries.insert_cadence(connection, values={
            "name": name.strip(), "steps": clean, "accounts_per_rep": accounts_per_rep, "weeks": weeks,
            "created_by": scope.user_id, "created_at": now or utcnow()})
    cadence = prospecting.Cadence(name.strip(), tuple(prospecting.CadenceStep(**s) for s in clean),
                                  accounts_per_rep, weeks, "org", cadence_id)
    return cadence.as_dict()
