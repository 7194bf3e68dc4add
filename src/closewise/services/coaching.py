"""Coaching as a signed-in user sees it: the performance gap and its checklist, the new-hire ramp, opportunity
review agendas with notes and next steps, and 1:1 coaching plans with commitments.

Reads are computed on the part of the org the user sees (`services.org_data.scoped`; coaching records through
`db.scope.visible` by the rep they are about): a rep gets their own ramp, plans and review items, a manager
their subtree's, a leader and an admin everyone's. Writes are authorised by role on top of that:

- managers, leaders and admins write plans, commitments and review notes for the reps they see (not for
  themselves: coaching is done by someone else); a rep may mark their own commitments done and add a
  follow-up note; a viewer writes nothing;
- adopting a checklist item into the playbook changes the playbook, so it needs `Action.MANAGE_SETTINGS`
  (leaders and admins), like editing the playbook does.

Opportunity reviews are kept apart from the forecast call (`services.forecast_call`): nothing here asks what
the number is, only how to win the deal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot
from closewise.analytics.team import quarter_quotas
from closewise.coaching import checklist as checklist_rules
from closewise.coaching import gap as gap_rules
from closewise.coaching import plans as plan_rules
from closewise.coaching import ramp as ramp_rules
from closewise.coaching import reviews as review_rules
from closewise.coaching.behaviours import VALUE, BehaviourInputs, deal_behaviours, lead_behaviours
from closewise.db import audit
from closewise.db import coaching as store
from closewise.db import playbook as playbook_store
from closewise.db.quotas import load_quotas_within
from closewise.domain.enums import Role
from closewise.domain.periods import PeriodKind
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import as_utc, naive_utc, utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound
from closewise.playbook.default import ExitCriterion, Playbook
from closewise.playbook.yaml_io import playbook_to_yaml
from closewise.services import playbook as playbook_service
from closewise.services.org_data import OrgData, load_org, scoped

COACHES: Final = frozenset({Role.ADMIN, Role.LEADER, Role.MANAGER})
MAX_TEXT: Final = 4000


# --- loading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoachingData:
    """What every coaching report reads, for one user's scope, as at one moment."""

    at: datetime  # naive UTC
    org: OrgData  # the whole org (names, hierarchy)
    mine: OrgData  # the part the user sees
    deals: pl.DataFrame  # snapshot at `at` of the visible deals, with `value` in the corporate currency
    behaviours: pl.DataFrame
    leads: pl.DataFrame  # visible leads
    playbook: Playbook
    checks: pl.DataFrame  # criteria checks of the visible deals
    answers: pl.DataFrame  # qualification answers of the visible deals


def load(engine: Engine, *, scope: Scope, as_of: datetime | None = None, org: OrgData | None = None) -> CoachingData:
    at = naive_utc(as_utc(as_of) if as_of is not None else utcnow())
    whole = org if org is not None else load_org(engine)
    mine = scoped(whole, scope)
    with engine.connect() as connection:
        playbook = playbook_store.load_playbook(connection)
        checks = playbook_store.load_checks(connection)
        answers = playbook_store.load_answers(connection)
        contacts = store.load_contacts(connection)
        leads = scope.filter_frame(store.load_leads(connection))
    state = snapshot(mine.timeline, at).filter(pl.col("created_at") <= at)
    deals = to_corporate(state, whole.rates, corporate=whole.corporate_currency, on="created_at", into=VALUE)
    deals = deals.with_columns(pl.col(VALUE).fill_null(0.0))
    ids = deals["id"].implode()
    checks = checks.filter(pl.col("opportunity_id").is_in(ids))
    answers = answers.filter(pl.col("opportunity_id").is_in(ids))
    inputs = BehaviourInputs(deals=deals, changes=mine.changes, activities=mine.activities, contacts=contacts,
                             checks=checks, answers=answers, leads=leads, playbook=playbook)
    behaviours = deal_behaviours(inputs, as_of=at)
    return CoachingData(at=at, org=whole, mine=mine, deals=deals, behaviours=behaviours, leads=leads,
                        playbook=playbook, checks=checks, answers=answers)


def _reps(data: CoachingData) -> pl.DataFrame:
    return data.mine.users.filter(pl.col("role") == Role.REP.value, pl.col("active"))


def _window_quotas(engine: Engine, data: CoachingData, *, since: datetime) -> pl.DataFrame:
    """Each user's quota over `(since, at]`, prorated by days from the quarters it overlaps: `user_id`, `quota`."""
    calendar = data.org.calendar
    quarters = calendar.periods_between(since.date(), data.at.date(), PeriodKind.QUARTER)
    if not quarters:
        return pl.DataFrame(schema={"user_id": pl.Int64(), "quota": pl.Float64()})
    with engine.connect() as connection:
        rows = load_quotas_within(connection, start=quarters[0].start, last_day=quarters[-1].last_day)
    parts = []
    for quarter in quarters:
        first = max(quarter.start, since.date() + timedelta(days=1))
        last = min(quarter.last_day, data.at.date())
        share = ((last - first).days + 1) / quarter.days
        if share <= 0:
            continue
        per = quarter_quotas(rows, quarter, data.org.rates, corporate=data.org.corporate_currency)
        parts.append(per.with_columns(pl.col("quota") * share))
    if not parts:
        return pl.DataFrame(schema={"user_id": pl.Int64(), "quota": pl.Float64()})
    return pl.concat(parts).group_by("user_id").agg(pl.col("quota").sum())


# --- the performance gap ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapReport:
    as_of: datetime
    window_days: int
    currency: str
    rule: str
    ranked_by: str
    controls: list[str]
    deals: int
    leads: int
    reps: list[dict[str, Any]]  # the ranking: every rep in sight, eligible or not
    top_performers: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    checklist: list[dict[str, Any]]
    adopted: list[dict[str, Any]]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(), "window_days": self.window_days, "currency": self.currency,
            "rule": self.rule, "ranked_by": self.ranked_by, "controls": self.controls, "deals": self.deals,
            "leads": self.leads, "alpha": self.alpha, "top_performers": self.top_performers, "reps": self.reps,
            "metrics": self.metrics, "checklist": self.checklist, "adopted": self.adopted,
        }


def performance_gap(engine: Engine, *, scope: Scope, as_of: datetime | None = None, window_days: int = 365,
                    options: gap_rules.GapOptions | None = None, data: CoachingData | None = None) -> GapReport:
    """Top performers among the reps `scope` sees, how their behaviour differs from the rest, and the checklist
    the significant differences suggest (`coaching.gap`, `coaching.checklist`)."""
    if not 30 <= window_days <= 3 * 366:
        raise InvalidInput("the window must be 30 to 1,098 days", where="window_days")
    data = data or load(engine, scope=scope, as_of=as_of)
    since = data.at - timedelta(days=window_days)
    reps = _reps(data)
    ranking = gap_rules.rank_reps(reps, data.deals, _window_quotas(engine, data, since=since), as_of=data.at,
                                  window_days=window_days)
    leads = lead_behaviours(data.leads, since=since, as_of=data.at)
    result = gap_rules.compare(data.behaviours, leads, ranking, data.playbook, as_of=data.at, window_days=window_days,
                               options=options)
    with engine.connect() as connection:
        adopted = store.list_adoptions(connection)
    items = checklist_rules.propose(result.metrics, data.playbook, adopted_keys={a["item_key"] for a in adopted},
                                    controls=result.controls)
    table = ranking.table.with_columns(pl.col("hire_date").cast(pl.String))
    ranked = [_clean(row) for row in table.iter_rows(named=True)]
    return GapReport(
        as_of=data.at, window_days=window_days, currency=data.org.corporate_currency, rule=ranking.rule,
        ranked_by=ranking.by, controls=result.controls, deals=result.deals, leads=result.leads, reps=ranked,
        top_performers=[{"id": r["user_id"], **r} for r in ranked if r["top"]],
        metrics=[_clean(row) for row in result.metrics.iter_rows(named=True)],
        checklist=[item.to_dict() for item in items],
        adopted=[_adoption(a, data) for a in adopted], alpha=result.options.alpha,
    )


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe: NaN and infinities become None, dates text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


# --- the new-hire ramp -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RampReport:
    as_of: datetime
    currency: str
    data_start: date | None
    cohort: list[dict[str, Any]]
    norm: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    new_hires: list[dict[str, Any]]
    options: ramp_rules.RampOptions

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "currency": self.currency,
                "data_start": self.data_start.isoformat() if self.data_start else None,
                "month_days": ramp_rules.MONTH_DAYS, "behind_ratio": self.options.behind_ratio,
                "cohort": self.cohort, "norm": self.norm, "curves": self.curves, "new_hires": self.new_hires}


def _rep_segments(data: CoachingData, reps: pl.DataFrame) -> pl.DataFrame:
    """`reps` with `segment`: the segment most of the rep's deals are in (else their team's reps' segment)."""
    by_rep = (data.org.opportunities.group_by("owner_id", "segment").agg(pl.len().alias("_n"))
              .sort(["owner_id", "_n", "segment"], descending=[False, True, False])
              .group_by("owner_id", maintain_order=True).first().select(pl.col("owner_id").alias("id"), "segment"))
    by_team = (data.org.opportunities.filter(pl.col("team_id").is_not_null()).group_by("team_id", "segment")
               .agg(pl.len().alias("_n")).sort(["team_id", "_n", "segment"], descending=[False, True, False])
               .group_by("team_id", maintain_order=True).first().select("team_id", pl.col("segment").alias("_ts")))
    return (reps.join(by_rep, on="id", how="left").join(by_team, on="team_id", how="left")
            .with_columns(pl.coalesce("segment", "_ts", pl.lit("unknown")).alias("segment")).drop("_ts"))


def _all_quotas(engine: Engine, data: CoachingData, start: date) -> pl.DataFrame:
    """Every user's quota per quarter from `start` to the quarter after `at`: `user_id`, `period_start`,
    `period_end`, `quota` (corporate currency)."""
    calendar = data.org.calendar
    quarters = calendar.periods_between(start, data.at.date(), PeriodKind.QUARTER)
    schema = {"user_id": pl.Int64(), "period_start": pl.Date(), "period_end": pl.Date(), "quota": pl.Float64()}
    if not quarters:
        return pl.DataFrame(schema=schema)
    with engine.connect() as connection:
        rows = load_quotas_within(connection, start=quarters[0].start, last_day=quarters[-1].last_day)
    parts = [quarter_quotas(rows, q, data.org.rates, corporate=data.org.corporate_currency)
             .with_columns(pl.lit(q.start).alias("period_start"), pl.lit(q.last_day).alias("period_end"))
             for q in quarters]
    return pl.concat(parts).select(list(schema)) if parts else pl.DataFrame(schema=schema)


def new_hire_ramp(engine: Engine, *, scope: Scope, as_of: datetime | None = None,
                  options: ramp_rules.RampOptions | None = None, data: CoachingData | None = None) -> RampReport:
    """Cohort curves by month of tenure and each new hire the user sees against the cohort norm. The norm is the
    org's cohort (every rep whose first months the data shows): a manager's own few hires are no norm; only
    aggregates of it are shown, never another team's reps by name."""
    opts = options or ramp_rules.RampOptions()
    data = data or load(engine, scope=scope, as_of=as_of)
    everyone = Scope(user_id=scope.user_id, role=Role.ADMIN, owner_ids=None)
    whole = data if scope.everything else load(engine, scope=everyone, as_of=data.at, org=data.org)
    reps = _rep_segments(whole, whole.org.users.filter(pl.col("role") == Role.REP.value, pl.col("active")))
    start = ramp_rules.first_deal_at(whole.deals)
    if start is None:
        return RampReport(as_of=data.at, currency=data.org.corporate_currency, data_start=None, cohort=[], norm=[],
                          curves=[], new_hires=[], options=opts)
    quotas = _all_quotas(engine, whole, (start - timedelta(days=400)).date())
    curves = ramp_rules.ramp_curves(reps, whole.deals, whole.org.activities, quotas, as_of=data.at, data_start=start,
                                    months=opts.months)
    behaviours = whole.behaviours.join(reps.select(pl.col("id").alias("owner_id"), "hire_date"), on="owner_id",
                                       how="left")
    result = ramp_rules.assess(reps, curves, behaviours, as_of=data.at, data_start=start, options=opts)
    names = dict(zip(reps["id"].to_list(), reps["name"].to_list(), strict=True))
    seen = {int(i) for i in _reps(data)["id"].to_list()}
    visible_curves = curves.filter(pl.col("rep_id").is_in(sorted(seen)))
    return RampReport(
        as_of=data.at, currency=data.org.corporate_currency, data_start=result.data_start,
        cohort=[{"rep_id": r, "name": names.get(r)} for r in result.cohort if r in seen],
        norm=[_clean(row) for row in result.norm.iter_rows(named=True)],
        curves=[_clean(row) for row in visible_curves.iter_rows(named=True)],
        new_hires=[_clean_deep(h) for h in result.new_hires if h["rep_id"] in seen], options=opts)


def _clean_row(value: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = _clean_deep(value)
    return cleaned


def _clean_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_deep(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- authorisation ---------------------------------------------------------------------------------------------


def _text(value: str | None, where: str, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput("this cannot be empty", where=where)
        return None
    if len(text) > limit:
        raise InvalidInput(f"longer than {limit:,} characters", where=where)
    return text


def _rep_in_sight(scope: Scope, rep_id: int, engine: Engine) -> dict[str, Any]:
    """The user `rep_id`, when `scope` sees them (else NotFound, worded like a missing one)."""
    with engine.connect() as connection:
        row = store.user_row(connection, user_id=rep_id)
    if row is None or not scope.sees_owner(rep_id):
        raise NotFound(f"no user with id {rep_id}", where="rep")
    return row


def may_coach(scope: Scope, rep_id: int | None = None) -> bool:
    """Managers, leaders and admins coach the reps they see, not themselves."""
    return scope.role in COACHES and (rep_id is None or (rep_id != scope.user_id and scope.sees_owner(rep_id)))


def _require_coach(scope: Scope, rep_id: int) -> None:
    if not may_coach(scope, rep_id):
        who = "yourself" if rep_id == scope.user_id else "this rep"
        raise Forbidden(f"a {scope.role.value} cannot write coaching records for {who}")


def may_adopt(scope: Scope) -> bool:
    return scope.may(Action.MANAGE_SETTINGS)


# --- opportunity reviews -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewReport:
    as_of: datetime
    currency: str
    manager_id: int | None
    managers: list[dict[str, Any]]  # the managers whose teams the user may review
    items: list[dict[str, Any]]
    next_steps: list[dict[str, Any]]  # review commitments of the reps in the agenda's reach, open first
    notes: list[dict[str, Any]]  # recent review notes

    def to_dict(self) -> dict[str, Any]:
        return _clean_row({"as_of": self.as_of, "currency": self.currency, "manager_id": self.manager_id,
                            "managers": self.managers, "items": self.items, "next_steps": self.next_steps,
                            "notes": self.notes})


def _managers_in_sight(data: CoachingData, scope: Scope) -> list[dict[str, Any]]:
    users = data.org.users
    managers = users.filter(pl.col("role").is_in([Role.MANAGER.value, Role.LEADER.value]), pl.col("active"))
    out = []
    for row in managers.sort("name").iter_rows(named=True):
        if scope.sees_owner(row["id"]):
            out.append({"id": row["id"], "name": row["name"]})
    return out


def _team_of(data: CoachingData, manager_id: int) -> set[int]:
    from closewise.domain.scope import subtree

    managers = dict(zip(data.org.users["id"].to_list(), data.org.users["manager_id"].to_list(), strict=True))
    return set(subtree(manager_id, managers))


def review_agenda(engine: Engine, *, scope: Scope, manager_id: int | None = None, as_of: datetime | None = None,
                  limit: int = 15, data: CoachingData | None = None) -> ReviewReport:
    """The deals worth reviewing among those the user sees (a manager's team when `manager_id` is given: a
    manager outside the user's sight is NotFound), with questions, and the review notes and next steps."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be 1 to 100", where="limit")
    data = data or load(engine, scope=scope, as_of=as_of)
    managers = _managers_in_sight(data, scope)
    if manager_id is None and scope.role == Role.MANAGER:
        manager_id = scope.user_id
    owners: set[int] | None = None
    if manager_id is not None:
        if manager_id not in {m["id"] for m in managers} and manager_id != scope.user_id:
            raise NotFound(f"no manager with id {manager_id}", where="manager")
        owners = _team_of(data, manager_id)
    open_deals = data.deals.filter(pl.col("status") == "open")
    if owners is not None:
        open_deals = open_deals.filter(pl.col("owner_id").is_in(sorted(owners)))
    from closewise.coaching.behaviours import stage_intervals
    from closewise.db.opportunity_labels import opportunity_labels
    from closewise.playbook.gate_effect import advances
    from closewise.playbook.qualification import unknown_findings

    ids = open_deals["id"].implode()
    stays = stage_intervals(open_deals, data.mine.changes.filter(pl.col("opportunity_id").is_in(ids)), data.playbook,
                            as_of=data.at)
    entered = stays.group_by("opportunity_id").agg(pl.col("entered_at").max()).rename({"opportunity_id": "id"})
    last = (data.mine.activities.filter(pl.col("opportunity_id").is_in(ids), pl.col("occurred_at") <= data.at,
                                        pl.col("completed").fill_null(value=True))
            .group_by("opportunity_id").agg(pl.col("occurred_at").max().alias("last_at"))
            .rename({"opportunity_id": "id"}))
    labels = {c.key: c.label for stage in data.playbook.stages for c in stage.exit_criteria}
    judged = advances(data.mine.changes.filter(pl.col("opportunity_id").is_in(ids)), data.checks, data.playbook,
                      as_of=data.at).filter(~pl.col("met"))
    missing: dict[int, list[str]] = {}
    for row in judged.select("opportunity_id", "criterion").unique().sort("criterion").iter_rows(named=True):
        missing.setdefault(row["opportunity_id"], []).append(labels.get(row["criterion"], row["criterion"]))
    questions = {(f.key, q.key): q.label for f in data.playbook.frameworks for q in f.questions}
    unknown: dict[int, list[str]] = {}
    for row in unknown_findings(data.answers.filter(pl.col("opportunity_id").is_in(ids)), as_of=data.at).iter_rows(
            named=True):
        unknown.setdefault(row["opportunity_id"], []).append(questions.get((row["framework"], row["question"]),
                                                                           row["question"]))
    with engine.connect() as connection:
        scores = store.load_scores(connection)
        names = opportunity_labels(connection, ids=open_deals["id"].to_list())
    named = open_deals.with_columns(pl.col("id").replace_strict({k: v[1] for k, v in names.items()}, default="",
                                                                return_dtype=pl.String).alias("name"))
    items = review_rules.agenda(named, data.org.stages, as_of=data.at, scores=scores, last_activity=last,
                                stage_entered=entered, missing=missing, unknowns=unknown, limit=limit)
    people = dict(zip(data.org.users["id"].to_list(), data.org.users["name"].to_list(), strict=True))
    for item in items:
        item["owner"] = people.get(item["owner_id"])
    with engine.connect() as connection:
        steps = store.list_commitments(connection, scope=scope, kind="review")
        notes = store.list_notes(connection, scope=scope, kind="review")
    if owners is not None:
        steps = [s for s in steps if s["rep_id"] in owners]
        notes = [n for n in notes if n["rep_id"] in owners]
    today = data.at.date()
    for step in steps:
        step["status"] = review_rules.follow_up_status(step["due_on"], step["done_at"], today=today)
        step["deal"] = names.get(step["opportunity_id"], (None, None))[1] if step["opportunity_id"] else None
    for note in notes:
        note["deal"] = names.get(note["opportunity_id"], (None, None))[1] if note["opportunity_id"] else None
        note["rep"] = people.get(note["rep_id"])
    return ReviewReport(as_of=data.at, currency=data.org.corporate_currency, manager_id=manager_id,
                        managers=managers, items=items, next_steps=steps, notes=notes[:50])


def record_review(engine: Engine, *, scope: Scope, deal_id: int, note: str, next_step: str | None = None,
                  due_on: date | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A review note on a deal and, optionally, the next step agreed with its due date (a commitment of the
    deal's owner). Managers, leaders and admins, on deals of reps they see."""
    from closewise.db import deals as deal_queries

    moment = as_utc(now) if now is not None else utcnow()
    body = _text(note, "note")
    step = _text(next_step, "next_step", required=False)
    if due_on is not None and step is None:
        raise InvalidInput("a due date needs a next step", where="due_on")
    with engine.begin() as connection:
        row = deal_queries.get_deal(connection, scope=scope, deal_id=deal_id)
        if row is None:
            raise NotFound(f"no opportunity with id {deal_id}")
        owner = row["owner_id"]
        if owner is None:
            raise InvalidInput("this deal has no owner to coach", where="deal")
        _require_coach(scope, int(owner))
        note_id = store.insert_note(connection, values={
            "rep_id": owner, "author_id": scope.user_id, "opportunity_id": deal_id, "kind": "review",
            "body": body, "created_at": moment})
        step_id = None
        if step is not None:
            step_id = store.insert_commitment(connection, values={
                "rep_id": owner, "opportunity_id": deal_id, "author_id": scope.user_id, "kind": "review",
                "text": step, "due_on": due_on, "created_at": moment})
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.review", entity="opportunity",
                     entity_id=deal_id, detail={"note_id": note_id, "commitment_id": step_id})
    return {"note_id": note_id, "commitment_id": step_id, "rep_id": owner, "opportunity_id": deal_id}


def update_commitment(engine: Engine, *, scope: Scope, commitment_id: int, done: bool | None = None,
                      follow_up: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Mark a commitment done (or open again) and/or add its follow-up note: its rep, or a coach of its rep."""
    moment = as_utc(now) if now is not None else utcnow()
    text = _text(follow_up, "follow_up", required=False)
    with engine.begin() as connection:
        found = store.list_commitments(connection, scope=scope, commitment_id=commitment_id)
        if not found:
            raise NotFound(f"no commitment with id {commitment_id}")
        row = found[0]
        own = row["rep_id"] == scope.user_id and scope.role != Role.VIEWER
        if not own and not may_coach(scope, row["rep_id"]):
            raise Forbidden(f"a {scope.role.value} cannot update this commitment")
        values: dict[str, Any] = {}
        if done is not None:
            values["done_at"] = moment if done else None
        if text is not None:
            values["follow_up"] = text
        if not values:
            raise InvalidInput("nothing to change: give done or follow_up", where="commitment")
        store.update_commitment(connection, commitment_id=commitment_id, values=values)
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.commitment",
                     entity="coaching_commitment", entity_id=commitment_id,
                     detail={"done": done, "follow_up": text is not None})
        return _clean_row(store.list_commitments(connection, scope=scope, commitment_id=commitment_id)[0])


# --- 1:1 coaching plans ------------------------------------------------------------------------------------------


def _org_gap(engine: Engine, *, scope: Scope, at: datetime) -> GapReport:
    """The org-wide gap (the benchmark a plan's skills come from): only its aggregates are shown to the user."""
    everyone = Scope(user_id=scope.user_id, role=Role.ADMIN, owner_ids=None)
    return performance_gap(engine, scope=everyone, as_of=at)


def suggested_skills(engine: Engine, *, scope: Scope, rep_id: int, as_of: datetime | None = None,
                     limit: int = 3) -> list[dict[str, Any]]:
    """The skills the gap analysis suggests for a rep the user sees."""
    _rep_in_sight(scope, rep_id, engine)
    at = naive_utc(as_utc(as_of) if as_of is not None else utcnow())
    report = _org_gap(engine, scope=scope, at=at)
    everyone = Scope(user_id=scope.user_id, role=Role.ADMIN, owner_ids=None)
    behaviours = load(engine, scope=everyone, as_of=at).behaviours
    metrics = pl.DataFrame(report.metrics, infer_schema_length=None) if report.metrics else pl.DataFrame()
    if metrics.height == 0:
        return []
    return [_clean_deep(s) for s in plan_rules.suggest_skills(
        behaviours, metrics, rep_id, since=at - timedelta(days=report.window_days), until=at, limit=limit)]


def create_plan(engine: Engine, *, scope: Scope, rep_id: int, title: str, skills: list[str] | None = None,
                review_on: date | None = None, commitments: list[dict[str, Any]] | None = None,
                now: datetime | None = None) -> dict[str, Any]:
    """A 1:1 plan for a rep: the skills (gap metric keys; default: the suggested ones), with the rep's baseline
    and the top performers' level as target, and its first commitments (`text`, `due_on`, `skill`)."""
    moment = as_utc(now) if now is not None else utcnow()
    at = naive_utc(moment)
    _rep_in_sight(scope, rep_id, engine)
    _require_coach(scope, rep_id)
    name = _text(title, "title", limit=200)
    if review_on is not None and review_on < at.date():
        raise InvalidInput("the review date is in the past", where="review_on")
    report = _org_gap(engine, scope=scope, at=at)
    by_key = {m["metric"]: m for m in report.metrics}
    everyone = Scope(user_id=scope.user_id, role=Role.ADMIN, owner_ids=None)
    behaviours = load(engine, scope=everyone, as_of=at).behaviours
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
    baseline = {k: v for k, v in plan_rules.rep_levels(
        behaviours, pl.DataFrame({"metric": keys, "summary": [c["summary"] for c in chosen]}), rep_id,
        since=since, until=at).items()}
    items = commitments or []
    with engine.begin() as connection:
        plan_id = store.insert_plan(connection, values={
            "rep_id": rep_id, "author_id": scope.user_id, "title": name, "skills": chosen,
            "baseline": _clean_deep(baseline), "starts_on": at.date(), "review_on": review_on, "status": "active",
            "created_at": moment})
        for item in items:
            _insert_plan_commitment(connection, plan_id=plan_id, rep_id=rep_id, author=scope.user_id, item=item,
                                    moment=moment, skills=set(keys))
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.plan", entity="coaching_plan",
                     entity_id=plan_id, detail={"rep_id": rep_id, "skills": keys})
    return plan_detail(engine, scope=scope, plan_id=plan_id, as_of=moment)


def _insert_plan_commitment(connection: Any, *, plan_id: int, rep_id: int, author: int, item: dict[str, Any],
                            moment: datetime, skills: set[str]) -> int:
    text = _text(item.get("text"), "commitments.text")
    skill = item.get("skill") or None
    if skill is not None and skill not in skills:
        raise InvalidInput(f"{skill!r} is not one of the plan's skills", where="commitments.skill")
    due = item.get("due_on")
    due_on = due if isinstance(due, date) or due is None else date.fromisoformat(str(due))
    return store.insert_commitment(connection, values={
        "plan_id": plan_id, "rep_id": rep_id, "author_id": author, "kind": "plan", "text": text, "skill": skill,
        "due_on": due_on, "created_at": moment})


def add_plan_commitment(engine: Engine, *, scope: Scope, plan_id: int, text: str, due_on: date | None = None,
                        skill: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    moment = as_utc(now) if now is not None else utcnow()
    with engine.begin() as connection:
        plans = store.list_plans(connection, scope=scope, plan_id=plan_id)
        if not plans:
            raise NotFound(f"no coaching plan with id {plan_id}")
        plan = plans[0]
        _require_coach(scope, plan["rep_id"])
        if plan["status"] != "active":
            raise Conflict("this plan is closed", where="plan")
        commitment_id = _insert_plan_commitment(
            connection, plan_id=plan_id, rep_id=plan["rep_id"], author=scope.user_id,
            item={"text": text, "due_on": due_on, "skill": skill}, moment=moment,
            skills={s["metric"] for s in plan["skills"]})
        return _clean_row(store.list_commitments(connection, scope=scope, commitment_id=commitment_id)[0])


def add_one_on_one_note(engine: Engine, *, scope: Scope, plan_id: int, body: str, skill: str | None = None,
                        now: datetime | None = None) -> dict[str, Any]:
    """A 1:1 note on a plan's rep (the follow-up conversation)."""
    moment = as_utc(now) if now is not None else utcnow()
    text = _text(body, "body")
    with engine.begin() as connection:
        plans = store.list_plans(connection, scope=scope, plan_id=plan_id)
        if not plans:
            raise NotFound(f"no coaching plan with id {plan_id}")
        plan = plans[0]
        _require_coach(scope, plan["rep_id"])
        note_id = store.insert_note(connection, values={
            "rep_id": plan["rep_id"], "author_id": scope.user_id, "kind": "one_on_one", "body": text,
            "skill": skill, "created_at": moment})
    return {"id": note_id, "rep_id": plan["rep_id"], "body": text, "skill": skill, "created_at": moment.isoformat()}


def close_plan(engine: Engine, *, scope: Scope, plan_id: int, outcome: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    moment = as_utc(now) if now is not None else utcnow()
    text = _text(outcome, "outcome", required=False)
    with engine.begin() as connection:
        plans = store.list_plans(connection, scope=scope, plan_id=plan_id)
        if not plans:
            raise NotFound(f"no coaching plan with id {plan_id}")
        _require_coach(scope, plans[0]["rep_id"])
        if plans[0]["status"] != "active":
            raise Conflict("this plan is already closed", where="plan")
        store.update_plan(connection, plan_id=plan_id, values={"status": "closed", "closed_at": moment,
                                                               "outcome": text})
    return plan_detail(engine, scope=scope, plan_id=plan_id, as_of=moment)


def list_plans(engine: Engine, *, scope: Scope, rep_id: int | None = None,
               as_of: datetime | None = None) -> list[dict[str, Any]]:
    today = naive_utc(as_utc(as_of) if as_of is not None else utcnow()).date()
    if rep_id is not None:
        _rep_in_sight(scope, rep_id, engine)
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
        out.append(_clean_deep({**plan, "commitments": len(mine), "done": statuses.count("done"),
                                "overdue": statuses.count("overdue")}))
    return out


def plan_detail(engine: Engine, *, scope: Scope, plan_id: int, as_of: datetime | None = None) -> dict[str, Any]:
    """A plan with its commitments (and their follow-up status), 1:1 notes since it started, and the before /
    after of its skills on the rep's deals."""
    at = naive_utc(as_utc(as_of) if as_of is not None else utcnow())
    with engine.connect() as connection:
        plans = store.list_plans(connection, scope=scope, plan_id=plan_id)
        if not plans:
            raise NotFound(f"no coaching plan with id {plan_id}")
        plan = plans[0]
        steps = store.list_commitments(connection, scope=scope, plan_id=plan_id)
        started = datetime.combine(plan["starts_on"], datetime.min.time())
        notes = store.list_notes(connection, scope=scope, kind="one_on_one", rep_id=plan["rep_id"])
    for step in steps:
        step["status"] = review_rules.follow_up_status(step["due_on"], step["done_at"], today=at.date())
    until = naive_utc(as_utc(plan["closed_at"])) if plan["closed_at"] is not None else at
    rep_scope = Scope(user_id=plan["rep_id"], role=Role.REP, owner_ids=frozenset({plan["rep_id"]}))
    behaviours = load(engine, scope=rep_scope, as_of=at).behaviours
    progress = plan_rules.before_after(behaviours, plan["rep_id"], list(plan["skills"]), started=started, until=until)
    return _clean_row({**plan, "commitments": steps, "progress": progress,
                        "notes": [n for n in notes if naive_utc(as_utc(n["created_at"])) >= started],
                        "editable": may_coach(scope, plan["rep_id"]) and plan["status"] == "active"})


# --- adopting checklist items ------------------------------------------------------------------------------------


def adopt_item(engine: Engine, *, scope: Scope, item_key: str, as_of: datetime | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """Adopt a proposed checklist item: it becomes a checkbox exit criterion of its stage (through
    `services.playbook.import_playbook`, so the playbook's own checks apply), unless it enforces criteria
    the playbook already has; the adoption and its evidence are recorded. Leaders and admins."""
    if not may_adopt(scope):
        raise Forbidden(f"a {scope.role.value} cannot change the playbook")
    moment = as_utc(now) if now is not None else utcnow()
    report = performance_gap(engine, scope=scope, as_of=as_of)
    item = next((i for i in report.checklist if i["key"] == item_key), None)
    if item is None:
        raise NotFound(f"no proposed checklist item {item_key!r}", where="item")
    if item["adopted"]:
        raise Conflict(f"{item_key!r} is already adopted", where="item")
    if item["adds_criterion"]:
        playbook = playbook_service.current_playbook(engine)
        if any(c.key == item_key for stage in playbook.stages for c in stage.exit_criteria):
            raise Conflict(f"the playbook already has an exit criterion {item_key!r}", where="item")
        stages = tuple(
            replace(stage, exit_criteria=(*stage.exit_criteria, ExitCriterion(item_key, item["label"], "checkbox")))
            if stage.key == item["stage"] else stage
            for stage in playbook.stages)
        playbook_service.import_playbook(engine, text=playbook_to_yaml(replace(playbook, stages=stages)),
                                         source="coaching checklist", actor_id=scope.user_id)
    with engine.begin() as connection:
        adoption_id = store.insert_adoption(connection, values={
            "item_key": item_key, "stage": item["stage"], "criterion_key": item_key, "label": item["label"],
            "metric": item["metric"], "threshold": item["threshold"],
            "evidence": _clean_deep({k: item[k] for k in ("top", "rest", "effect_size", "p_value", "q_value",
                                                          "evidence", "adds_criterion")}),
            "adopted_at": moment, "adopted_by": scope.user_id})
        audit.record(connection, at=moment, actor_id=scope.user_id, action="coaching.adopt", entity="playbook",
                     entity_id=item["stage"], detail={"item": item_key, "adoption_id": adoption_id})
    return {"id": adoption_id, **item, "adopted": True, "adopted_at": moment.isoformat()}


def _adoption(row: dict[str, Any], data: CoachingData) -> dict[str, Any]:
    adopted_at = naive_utc(as_utc(row["adopted_at"]))
    effect = checklist_rules.adoption_effect(data.behaviours, row["metric"], adopted_at=adopted_at, as_of=data.at)
    ticked = data.checks.filter(pl.col("criterion_key") == row["criterion_key"], pl.col("done"),
                                pl.col("checked_at") <= data.at)["opportunity_id"].n_unique()
    return _clean_row({"id": row["id"], "item_key": row["item_key"], "stage": row["stage"], "label": row["label"],
                        "metric": row["metric"], "threshold": row["threshold"], "adopted_at": adopted_at,
                        "adopted_by": row["adopted_by_name"], "evidence": row["evidence"], "effect": effect,
                        "deals_ticked": ticked})


def coachable_reps(engine: Engine, *, scope: Scope) -> list[dict[str, Any]]:
    """The active reps the user may write a plan for (none for reps and viewers)."""
    if scope.role not in COACHES:
        return []
    with engine.connect() as connection:
        from closewise.db.org_frames import load_users

        users = load_users(connection)
    reps = scope.filter_frame(users.filter(pl.col("role") == Role.REP.value, pl.col("active")), "id")
    return [{"id": r["id"], "name": r["name"]} for r in reps.sort("name").iter_rows(named=True)
            if r["id"] != scope.user_id]
