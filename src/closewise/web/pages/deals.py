"""The Deals pages: `/deals` (the list with filters, win probabilities and risk reasons) and `/deals/{id}` (one
deal: header, timeline of changes, activities, probability over time, exit criteria, and the edit form).

The list's filter form re-renders only the results (`partials/deals_results.html`) through htmx and pushes the
filtered address into the browser history, so a filtered view can be bookmarked and shared; without JavaScript
it is a plain GET form. Every read goes through `services.deals` with the caller's scope; the edit form
PATCHes (or, without JavaScript, POSTs) through `services.deals.edit_deal` with the session's CSRF token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus
from closewise.domain.scope import Action
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, InvalidInput
from closewise.playbook.gates import item_labels
from closewise.services import deals, playbook, playbook_view
from closewise.services.auth import Principal
from closewise.services.playbook import GateRefused
from closewise.web.deps import EngineDep, PageUser, PageWriter
from closewise.web.render import money, page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ALL = "all"
STATUS_CHOICES = [("open", "Open"), ("won", "Won"), ("lost", "Lost"), ("no_decision", "No decision"),
                  (ALL, "All statuses")]
SORT_CHOICES = [("close_date", "Close date, soonest"), ("-close_date", "Close date, latest"),
                ("-amount", "Amount, largest"), ("amount", "Amount, smallest"),
                ("-win_probability", "Win probability, highest"), ("win_probability", "Win probability, lowest"),
                ("stage", "Stage, earliest"), ("-stage", "Stage, latest"), ("name", "Name, A–Z"),
                ("-created_at", "Newest first")]
CATEGORY_LABELS = {c.value: c.value.replace("_", " ").capitalize() for c in ForecastCategory}
FIELD_LABELS = {ChangeField.STAGE.value: "Stage", ChangeField.STATUS.value: "Status",
                ChangeField.AMOUNT.value: "Amount", ChangeField.CLOSE_DATE.value: "Close date",
                ChangeField.FORECAST_CATEGORY.value: "Forecast category", ChangeField.OWNER.value: "Owner",
                ChangeField.PROBABILITY.value: "CRM probability", ChangeField.NEXT_STEP.value: "Next step",
                ChangeField.CURRENCY.value: "Currency"}


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as the address holds them (empty strings are "no filter")."""

    status: str = "open"
    owner: str = ""
    stage: str = ""
    q: str = ""
    close_from: str = ""
    close_to: str = ""
    min_amount: str = ""
    sort: str = "close_date"
    page: int = 1

    def url(self, **changes: Any) -> str:
        """`/deals?…` for these filters with `changes` applied (defaults left out, the page reset to 1 unless
        given)."""
        changed = replace(self, **{"page": 1, **changes})
        default = ListQuery()
        params = {name: getattr(changed, name) for name in self.__dataclass_fields__
                  if getattr(changed, name) != getattr(default, name)}
        if changed.status == "open":
            params.pop("status", None)
        return "/deals" + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, key: str) -> str:
        """Sorting by `key`, or the other way round when it already is."""
        return self.url(sort=f"-{key}" if self.sort == key else key)

    def filtered(self) -> deals.DealFilter:
        key, descending = deals.parse_sort(self.sort)
        return deals.DealFilter(
            status=None if self.status in (ALL, "") else self.status,
            owner_id=_integer(self.owner, "owner"), stage=self.stage or None, search=self.q.strip() or None,
            close_from=_day(self.close_from, "close_from"), close_to=_day(self.close_to, "close_to"),
            min_amount=_amount(self.min_amount, "min_amount"), sort=key, descending=descending,
            limit=PAGE_SIZE, offset=(self.page - 1) * PAGE_SIZE)


def _integer(text: str, where: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a whole number", where=where) from None


def _day(text: str, where: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date like 2026-11-22", where=where) from None


def _amount(text: str, where: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text.replace(",", "").strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not an amount", where=where) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{text!r} is not an amount", where=where)
    return value


def _query(request: Request) -> ListQuery:
    params = request.query_params
    fields = {name: params[name][:200] for name in ListQuery.__dataclass_fields__ if name in params and name != "page"}
    given = _integer(params.get("page", ""), "page")
    number = 1 if given is None else given
    if number < 1 or number > 100_000:
        raise InvalidInput(f"there is no page {number}", where="page")
    return ListQuery(**fields, page=number)


def _partial(request: Request) -> bool:
    """An htmx request for a fragment (not a history restore, which wants the whole page)."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")


@router.get("/deals", response_class=HTMLResponse)
def deal_list(request: Request, user: PageUser, engine: EngineDep) -> HTMLResponse:
    query = _query(request)
    filters = query.filtered()
    items, total = deals.list_deals(engine, scope=user.scope, filters=filters)
    summary = deals.deal_summary(engine, scope=user.scope, filters=filters)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    context: dict[str, Any] = {
        "query": query, "items": items, "total": total, "summary": summary, "pages": pages,
        "first": filters.offset + 1 if items else 0, "last": filters.offset + len(items),
        "risks": {item["id"]: _risks(item) for item in items},
        "categories": CATEGORY_LABELS, "today": utcnow().date().isoformat(), "sorts": SORT_CHOICES,
    }
    if _partial(request):
        response = page(request, "partials/deals_results.html", user, title="Deals", oob_sort=True, **context)
        # The address pushed into the history: these filters without the empty ones.
        response.headers["HX-Push-Url"] = query.url(page=query.page)
    else:
        response = page(request, "deals.html", user, title="Deals", statuses=STATUS_CHOICES,
                        owners=deals.owner_choices(engine, scope=user.scope), stages=deals.stage_choices(engine),
                        **context)
    response.headers["Vary"] = "HX-Request"
    return response


def _risks(item: dict[str, Any], n: int = 2) -> list[dict[str, Any]]:
    """The model's reasons that lower the deal's win probability, strongest first."""
    negative = [r for r in item.get("reasons") or [] if float(r.get("contribution") or 0.0) < 0]
    return sorted(negative, key=lambda r: float(r["contribution"]))[:n]


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_page(deal_id: int, request: Request, user: PageUser, engine: EngineDep) -> HTMLResponse:
    return page(request, "deal.html", user, **_deal_context(engine, user, deal_id))


@router.api_route("/deals/{deal_id}", methods=["PATCH", "POST"], response_class=HTMLResponse)
async def deal_edit(deal_id: int, request: Request, user: PageWriter, engine: EngineDep) -> HTMLResponse:
    """The edit form: applies the fields that differ from the deal as it is, then shows the deal again with a
    message. A refused value is shown in the form (status 422 without htmx; htmx swaps only 2xx answers)."""
    form = await request.form()
    values = {name: str(form.get(name, "")) for name in
              ("stage", "amount", "close_date", "next_step", "forecast_category", "override_reason")}
    message: tuple[str, str]
    refused: GateRefused | None = None
    status = 200
    try:
        edit = deals.DealEdit(
            stage=values["stage"] or None, amount=_amount(values["amount"], "amount"),
            close_date=_day(values["close_date"], "close_date"), next_step=values["next_step"],
            forecast_category=values["forecast_category"] or None, override_reason=values["override_reason"] or None)
        deals.edit_deal(engine, scope=user.scope, deal_id=deal_id, edit=edit)
        message = ("ok", "Saved. The change log below shows what changed.")
        values = {}
    except GateRefused as exc:
        # Nothing was saved; the update form lists what is missing (by `_refusal`) and keeps what was typed.
        refused = exc
        count = len(exc.decision.missing)
        message = ("error", f"Stage not changed: {count} exit criteria not met. They are listed by the update form: "
                            "complete them, or give a reason to override.")
        status = 200 if _partial(request) else 409
    except (InvalidInput, Conflict) as exc:
        field = f"{FIELD_LABELS.get(exc.where or '', exc.where)}: " if exc.where else ""
        message = ("error", f"{field}{exc.message[:1].upper()}{exc.message[1:]}.")
        status = 200 if _partial(request) else (409 if isinstance(exc, Conflict) else 422)
    context = _deal_context(engine, user, deal_id, message=message, submitted=values)
    if refused is not None:
        context["refused"] = _refusal(refused, context["stages"])
    template = "partials/deal_body.html" if _partial(request) else "deal.html"
    return page(request, template, user, status_code=status, **context)


def _refusal(refused: GateRefused, stages: list[dict[str, Any]]) -> dict[str, Any]:
    """A refused move as the update form shows it: where it was going and each missing item with its stage's
    name (a skip can miss criteria of the stages jumped over)."""
    names = {stage["key"]: stage["name"] for stage in stages}
    decision = refused.decision
    return {"from_stage": decision.from_stage, "to_stage": decision.to_stage,
            "to_name": names.get(decision.to_stage, decision.to_stage),
            "skipped": [names.get(key, key) for key in decision.skipped],
            "missing": [{**c.to_dict(), "stage_name": names.get(c.stage, c.stage)} for c in decision.missing]}


def _deal_context(engine: EngineDep, user: Principal, deal_id: int, *, message: tuple[str, str] | None = None,
                  submitted: dict[str, str] | None = None) -> dict[str, Any]:
    deal = deals.get_deal(engine, scope=user.scope, deal_id=deal_id)
    changes = deals.deal_changes(engine, scope=user.scope, deal_id=deal_id)
    activities = deals.deal_activities(engine, scope=user.scope, deal_id=deal_id)
    history = deals.probability_history(engine, scope=user.scope, deal_id=deal_id)
    stages = playbook_view.stages(engine, pipeline=deal["pipeline"])
    names = {stage["key"]: stage["name"] for stage in stages}
    current = next((stage for stage in stages if stage["key"] == deal["stage"]), None)
    reasons = sorted(deal["reasons"], key=lambda r: -abs(float(r["contribution"])))
    gate = playbook.deal_playbook(engine, scope=user.scope, deal_id=deal_id)
    labels = item_labels(playbook.current_playbook(engine, pipeline=deal["pipeline"]))
    return {
        "gate": gate, "refused": None,
        "title": deal["name"], "deal": deal, "stages": stages, "stage": current,
        "timeline": timeline(changes, names, deal, labels), "activities": activities,
        "reasons": reasons, "history": history, "figure": probability_figure(history),
        "categories": CATEGORY_LABELS, "message": message, "submitted": submitted or {},
        "today": utcnow().date().isoformat(),
        "editable": user.scope.may(Action.EDIT_DEAL) and deal["status"] == OpportunityStatus.OPEN.value,
        "done": sum(1 for c in gate["exit_criteria"] if c["done"]),
    }


@router.post("/deals/{deal_id}/criteria", response_class=HTMLResponse)
async def deal_criteria(deal_id: int, request: Request, user: PageWriter, engine: EngineDep) -> HTMLResponse:
    """Tick exit criteria in place (the checkboxes of the criteria card): each ticked key is recorded as done,
    each listed but unticked one as not done, then the deal is shown again."""
    form = await request.form()
    ticked = {str(value) for value in form.getlist("done")}
    listed = [str(value) for value in form.getlist("key")]
    message: tuple[str, str] = ("ok", "Exit criteria saved.")
    status = 200
    try:
        current = {c["key"]: c["done"] for c in playbook.deal_playbook(engine, scope=user.scope,
                                                                       deal_id=deal_id)["exit_criteria"]}
        for key in listed:
            if key in current and current[key] != (key in ticked):
                playbook.set_criterion(engine, scope=user.scope, deal_id=deal_id, key=key, done=key in ticked)
    except InvalidInput as exc:
        message, status = ("error", str(exc)), 200 if _partial(request) else 422
    context = _deal_context(engine, user, deal_id, message=message)
    template = "partials/deal_body.html" if _partial(request) else "deal.html"
    return page(request, template, user, status_code=status, **context)


def timeline(changes: list[dict[str, Any]], stage_names: dict[str, str], deal: dict[str, Any],
             item_names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The change log as events, newest first: the changes one person made at one moment, together. One edit
    logs its stage change with the gate override's reason (`gate override: … (missing: …)`) and the fields that
    came with it with the plain reason, so the override, when there is one, speaks for the event: the reason
    given and what was missing (labels from `item_names`)."""
    events: list[dict[str, Any]] = []
    for change in changes:
        key = (change["changed_at"], change["changed_by"], change["source"])
        if not events or events[-1]["key"] != key:
            events.append({"key": key, "at": change["changed_at"], "who": change["changed_by_name"],
                           "source": change["source"], "reason": change["reason"], "items": [], "override": None})
        event = events[-1]
        override = playbook.parse_override(change["reason"])
        if override is not None:
            event["reason"] = change["reason"]
            event["override"] = {"reason": override[0],
                                 "missing": [(item_names or {}).get(k, k) for k in override[1]]}
        elif event["reason"] is None:
            event["reason"] = change["reason"]
        events[-1]["items"].append({
            "field": FIELD_LABELS.get(change["field"], change["field"]),
            "old": _shown(change["field"], change["old_value"], stage_names, deal),
            "new": _shown(change["field"], change["new_value"], stage_names, deal),
        })
    return list(reversed(events))


def _shown(field: str, value: str | None, stage_names: dict[str, str], deal: dict[str, Any]) -> str:
    if value is None or value == "":
        return "—"
    if field == ChangeField.STAGE.value:
        return stage_names.get(value, value)
    if field == ChangeField.AMOUNT.value:
        return money(float(value), deal["currency"])
    if field == ChangeField.PROBABILITY.value:
        return f"{float(value):.0f}%"
    if field in (ChangeField.FORECAST_CATEGORY.value, ChangeField.STATUS.value):
        return value.replace("_", " ")
    return value


def probability_figure(history: dict[str, Any]) -> dict[str, Any]:
    """Plotly figure: the model's win probability as points (each from models fitted on what was known then),
    the chance of closing inside the scored quarter, and the CRM probability as a step line."""
    model, crm = history["model"], history["crm"]
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "name": "CRM probability", "x": [p["at"] for p in crm],
         "y": [p["probability"] for p in crm], "line": {"shape": "hv", "color": "#9ca3af", "width": 2},
         "hovertemplate": "CRM %{y:.0%}<br>%{x|%Y-%m-%d}<extra></extra>"},
        {"type": "scatter", "mode": "lines+markers", "name": "Model: win probability",
         "x": [p["as_of"] for p in model], "y": [p["p_win"] for p in model],
         "line": {"color": "#1e40af", "width": 2}, "marker": {"size": 7},
         "hovertemplate": "Win %{y:.0%}<br>as of %{x|%Y-%m-%d}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "Model: closes this quarter",
         "x": [p["as_of"] for p in model], "y": [p["p_close_in_period"] for p in model],
         "marker": {"size": 6, "color": "#f59e0b", "symbol": "diamond"},
         "hovertemplate": "In quarter %{y:.0%}<br>as of %{x|%Y-%m-%d}<extra></extra>"},
    ]
    layout = {"yaxis": {"range": [0, 1.02], "tickformat": ".0%", "title": {"text": "probability"},
                        "gridcolor": "#e5e7eb"},
              "xaxis": {"type": "date", "gridcolor": "#f3f4f6"}, "height": 320,
              "legend": {"orientation": "h", "y": 1.12, "x": 0}, "margin": {"t": 40}}
    return {"data": data, "layout": layout}
