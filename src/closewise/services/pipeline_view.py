"""The pipeline as a signed-in user sees it: by stage and by expected close month, coverage of their target
with the gap and the pipeline still needed by stage, and the waterfall between two dates.

Everything is computed on `services.org_data.scoped(org, scope)`, the deals the user may see, by the same
services the CLI uses (`services.pipeline`, `services.coverage`); the org is read once per data stamp
(`services.forecast_view.OrgCache`). The target is the user's (`services.forecast_view.scope_target`): the org's
quota for a leader, the quotas of a manager's part of the hierarchy, a rep's own. Coverage learns conversion
and cycle times from the same visible history, so a rep's coverage speaks of their own record.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy.engine import Engine

from closewise.analytics.pipeline import Grouping
from closewise.domain.periods import Period, PeriodKind
from closewise.domain.scope import Scope
from closewise.domain.timeutil import midnight, naive_utc, start_of_day, utcnow
from closewise.errors import InvalidInput
from closewise.ml.forecaster import won_in_period
from closewise.services.coverage import coverage_report
from closewise.services.forecast_view import OrgCache, load_quotas, parse_moment, parse_period, scope_target
from closewise.services.org_data import OrgData
from closewise.services.pipeline import pipeline_report, waterfall_report

WATERFALL_DAYS: Final = 30  # the default window when the period has not started


def pipeline_document(engine: Engine, orgs: OrgCache, scope: Scope, *, period: str, as_of: str | None = None,
                      target: float | None = None) -> dict[str, Any]:
    """The open pipeline of `period` for `scope` at `as_of` (default now): totals, by stage, all open deals by
    expected close month, closed won, target, gap and coverage (null with a note when it cannot be judged)."""
    now = utcnow()
    stamp, org = orgs.org(engine)
    span = parse_period(org.calendar, period)
    at = parse_moment(as_of, now=now) or now
    if target is not None and not (target > 0 and target != float("inf")):
        raise InvalidInput("target must be a positive amount", where="target")
    source: str | None = "given"
    if target is None:
        target = scope_target(load_quotas(engine, span), org, span, scope)
        source = "quota" if target is not None else None
    if as_of:
        key = ("pipeline", stamp, scope.owner_ids, span.label, at, target, source)
        return dict(orgs.remember(key, lambda: _pipeline(engine, orgs.scoped(stamp, org, scope), span, at, now,
                                                          target, source)))
    # As of now: the answer of the minute (coverage's days left move on; the data stamp does not), the last
    # minute's while this one's is computed in the background (`OrgCache.remember_now`), each computed as of the
    # moment it is built (a deal created a second ago counts).
    def build(_minute: datetime) -> dict[str, Any]:
        moment = utcnow()
        return _pipeline(engine, orgs.scoped(stamp, org, scope), span, moment, moment, target, source)

    now_key = ("pipeline", stamp, scope.owner_ids, span.label, target, source)
    return dict(orgs.remember_now(now_key, now.replace(second=0, microsecond=0), build))


def _pipeline(engine: Engine, view: OrgData, span: Period, at: datetime, now: datetime, target: float | None,
              source: str | None) -> dict[str, Any]:
    stages = pipeline_report(engine, as_of=at, by=Grouping.STAGE, period=span.label, org=view)
    months = pipeline_report(engine, as_of=at, by=Grouping.PERIOD, period_kind=PeriodKind.MONTH, org=view)
    closed_won = float(won_in_period(view, span, at)["won"].sum())
    coverage: dict[str, Any] | None = None
    note: str | None = None
    if target is None:
        note = f"no quota is stored for {span.label} in your part of the team"
    elif naive_utc(at) >= midnight(span.end):
        note = f"{span.label} has ended: there is no pipeline left to cover it"
    else:
        try:
            coverage = coverage_report(engine, period=span.label, target=target, as_of=at, org=view).to_dict()
        except InvalidInput as exc:
            note = exc.message
    this_month = now.date().isoformat()[:7]
    return {
        "period": span.label,
        "period_start": span.start.isoformat(),
        "period_end": span.last_day.isoformat(),
        "as_of": stages["as_of"],
        "currency": view.corporate_currency,
        "count": stages["count"],
        "total": stages["total"],
        "weighted": stages["weighted"],
        "closed_won": closed_won,
        "target": target,
        "target_source": source,
        "gap": None if target is None else max(target - closed_won, 0.0),
        "coverage_ratio": None if coverage is None else coverage["coverage_ratio"],
        "by_stage": stages["groups"],
        "by_close_month": [group | {"overdue": group["key"] < this_month if group["key"] != "none" else False}
                           for group in months["groups"]],
        "coverage": coverage,
        "coverage_note": note,
    }


def waterfall_window(period_start: date | None, today: date) -> tuple[date, date]:
    """The default waterfall window: from the period's first day when it has begun (the period to date), else the
    last `WATERFALL_DAYS` days; to today."""
    start = period_start if period_start is not None and period_start < today else today - timedelta(
        days=WATERFALL_DAYS)
    return start, today


def waterfall_document(engine: Engine, orgs: OrgCache, scope: Scope, *, start: date | None = None,
                       end: date | None = None, period: str | None = None) -> dict[str, Any]:
    """How the visible pipeline (of `period`, or every open deal) moved from the start of day `start` to the end
    of day `end` (in either order; one day when equal): `services.pipeline.waterfall_report`, with the steps in
    chart order."""
    now = utcnow()
    stamp, org = orgs.org(engine)
    span = parse_period(org.calendar, period) if period else None
    first, last = waterfall_window(span.start if span else None, now.date())
    first, last = sorted(min(max(day, _FIRST_DAY), _LAST_DAY) for day in (start or first, end or last))
    label = span.label if span else None
    document = dict(orgs.remember(("waterfall", stamp, scope.owner_ids, first, last, label), lambda: waterfall_report(
        engine, start=start_of_day(first), end=start_of_day(last + _DAY) - _TICK, period=label,
        org=orgs.scoped(stamp, org, scope))))
    flows = document["flows"]
    document["steps"] = [
        {"flow": name, "label": label, "value": (sign * flows[name]) or 0.0, "deals": document["deal_counts"][name]}
        for name, label, sign in _STEPS
    ]
    return document


def parse_day(text: str | None, where: str) -> date | None:
    """A day typed in a form (`2026-10-01`), None when empty; InvalidInput naming `where` otherwise."""
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date like 2026-10-01", where=where) from None


_FIRST_DAY: Final = date(1970, 1, 2)  # the waterfall starts from the pipeline just before its first day
_LAST_DAY: Final = date(9999, 12, 30)
_DAY: Final = timedelta(days=1)
_TICK: Final = timedelta(microseconds=1)
_STEPS: Final = (
    ("created", "Created", 1), ("increased", "Increased", 1), ("pulled_in", "Pulled in", 1),
    ("decreased", "Decreased", -1), ("pushed_out", "Pushed out", -1), ("won", "Won", -1), ("lost", "Lost", -1),
    ("no_decision", "No decision", -1),
)
