"""Pipeline use cases: the pipeline as of a date by a grouping, and the waterfall between two dates.

Both read the org once (services.org_data), run the pure analytics (analytics.pipeline,
analytics.waterfall) and return JSON-ready documents, which the CLI prints as JSON or as tables.

Dates, as people type them:

- an as-of DATE (`pipeline --as-of`, `waterfall --to`) is the end of that day, UTC: everything changed on it
  counts (`closewise.domain.timeutil.parse_as_of`);
- `waterfall --from DATE` is the start of that day: the waterfall starts from the pipeline as it stood just
  before it (so `--from 2026-10-01 --to 2026-12-31` covers every change made in Q4, and its start value is
  `pipeline --as-of 2026-09-30`). A full ISO timestamp is taken as that instant (UTC unless it carries an
  offset). `--from` must be earlier than `--to` (for dates: an earlier day).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy.engine import Engine

from closewise.analytics.pipeline import COUNT, KEY, LABEL, TOTAL, VALUE, WEIGHTED, Grouping, open_deals, pipeline_by
from closewise.analytics.waterfall import CHANGES, FLOW, FLOWS, REVALUATION, waterfall
from closewise.db.opportunity_labels import opportunity_labels
from closewise.domain.periods import Period, PeriodKind
from closewise.domain.timeutil import as_utc, parse_as_of
from closewise.errors import InvalidInput
from closewise.services.org_data import OrgData, org_or_load

_TICK: Final = timedelta(microseconds=1)  # the timeline's resolution


def parse_window(from_text: str, to_text: str) -> tuple[datetime, datetime]:
    """`(from, to)` as aware UTC instants: the start of the `from` day and the end of the `to` day (see the
    module header). Raises `InvalidInput` for unreadable dates and for `from` not before `to`."""
    start = _instant(from_text, "--from", end_of_day=False)
    end = _instant(to_text, "--to", end_of_day=True)
    to_start = _instant(to_text, "--to", end_of_day=False)
    if start >= to_start:
        raise InvalidInput(f"--from {from_text.strip()} must be before --to {to_text.strip()}")
    return start, end


def parse_grouping(text: str) -> Grouping:
    try:
        return Grouping(text.strip().lower())
    except ValueError:
        choices = ", ".join(g.value for g in Grouping)
        raise InvalidInput(f"--by {text!r} is not one of {choices}") from None


def parse_period_kind(text: str) -> PeriodKind:
    value = text.strip().lower()
    if value not in (PeriodKind.MONTH.value, PeriodKind.QUARTER.value):
        raise InvalidInput(f"--period-type {text!r} is not month or quarter")
    return PeriodKind(value)


def pipeline_report(
    engine: Engine,
    *,
    as_of: datetime | None = None,
    by: Grouping = Grouping.STAGE,
    period_kind: PeriodKind = PeriodKind.QUARTER,
    period: str | None = None,
    org: OrgData | None = None,
) -> dict[str, Any]:
    """The open pipeline at `as_of` (default: now), optionally only deals closing in `period`, grouped.
    `org`: the org already read, to share between reports (read from `engine` when None)."""
    at = as_of or parse_as_of(None)
    org = org_or_load(engine, org, activities=False)
    chosen = _period(org, period)
    deals = open_deals(org.timeline, at, rates=org.rates, corporate=org.corporate_currency, period=chosen,
                       stages=org.stages)
    groups = pipeline_by(deals, by, stages=org.stages, users=org.users, teams=org.teams, calendar=org.calendar,
                         period_kind=period_kind)
    return {
        "as_of": as_utc(at).isoformat(),
        "currency": org.corporate_currency,
        "by": by.value,
        **({"period_type": period_kind.value} if by is Grouping.PERIOD else {}),
        "period": _period_json(chosen),
        "count": deals.height,
        "total": float(deals[VALUE].sum()),
        "weighted": float(deals[WEIGHTED].sum()),
        "groups": [
            {"key": row[KEY], "label": row[LABEL], "count": row[COUNT], "total": row[TOTAL], "weighted": row[WEIGHTED]}
            for row in groups.iter_rows(named=True)
        ],
    }


def waterfall_report(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    period: str | None = None,
    deals: bool = False,
    org: OrgData | None = None,
) -> dict[str, Any]:
    """The waterfall over [start, end]: from the pipeline just before `start` to the pipeline at `end`
    (instants from `parse_window`). With `deals`, the per-deal detail is added under "deals". `org`: the
    org already read, to share between reports (read from `engine` when None)."""
    org = org_or_load(engine, org, activities=False)
    chosen = _period(org, period)
    result = waterfall(org.timeline, start - _TICK, end, rates=org.rates, corporate=org.corporate_currency,
                       period=chosen)
    counts = dict(result.deals.group_by(FLOW).len().iter_rows())
    document: dict[str, Any] = {
        "from": as_utc(start).isoformat(),
        "to": as_utc(end).isoformat(),
        "period": _period_json(chosen),
        "currency": result.currency,
        "start_value": result.start_value,
        "end_value": result.end_value,
        "flows": dict(result.flows),
        "deal_counts": {name: int(counts.get(name, 0)) for name in FLOWS},
    }
    if deals:
        with engine.connect() as connection:
            labels = opportunity_labels(connection, ids=result.deals["id"].to_list())
        document["deals"] = [
            {
                "id": row["id"],
                "external_id": labels.get(row["id"], ("", ""))[0],
                "name": labels.get(row["id"], ("", ""))[1],
                "flow": row[FLOW],
                "value": row[VALUE],
                "changes": row[CHANGES],
                "revaluation": row[REVALUATION],
                "owner_id": row["owner_id"],
                "stage": row["stage"],
                "status": row["status"],
                "close_date": row["close_date"],
            }
            for row in result.deals.iter_rows(named=True)
        ]
    return document


def _period(org: OrgData, text: str | None) -> Period | None:
    return None if text is None else org.calendar.parse(text)


def _period_json(period: Period | None) -> dict[str, str] | None:
    if period is None:
        return None
    return {"label": period.label, "start": period.start.isoformat(), "end": period.last_day.isoformat()}


def _instant(text: str, option: str, *, end_of_day: bool) -> datetime:
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date like 2026-03-31") from None
    if len(value) <= 10:  # a date alone
        day: date = parsed.date()
        parsed = datetime.combine(day, time.max if end_of_day else time.min)
    return as_utc(parsed)
