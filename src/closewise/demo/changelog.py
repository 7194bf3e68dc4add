"""From a simulated chunk to opportunity rows and their change log, consistent by construction.

The events of a chunk are sorted per (deal, field, time); each change's old value is the previous
change's new value (the first one's is the value at creation) and the current row holds the last new
value, which is exactly the reconstruction rule of `closewise.domain.changes`. Two changes of one field
never share a second: ties are spread one second apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.deals import DEAL_SOURCES, DealPlan
from closewise.demo.events import (
    CATEGORIES,
    F_AMOUNT,
    F_CATEGORY,
    F_CLOSE,
    F_NEXT,
    F_PROBABILITY,
    F_STAGE,
    F_STATUS,
    FIELDS,
    STATUSES,
)
from closewise.demo.lifecycle import CURRENCIES, PHRASES, STAGES, DealChunk
from closewise.demo.org import Accounts, People, account_name
from closewise.demo.plan import SECONDS_PER_DAY, SOURCE, CalendarLookup, DemoPlan, IntArray

Row = dict[str, Any]
# Latest second an event may take: ties are spread forward, so keep a minute of room before today.
_LATEST: Final = -60
_SPREAD: Final = 10**9


@dataclass(frozen=True)
class ChangeLog:
    deal: IntArray
    field: IntArray
    second: IntArray  # relative to today 00:00 UTC
    old: IntArray
    new: IntArray
    current: IntArray  # (n, len(FIELDS)) coded current values
    last_change: IntArray  # per deal: second of its last change, or the creation second


def build_log(chunk: DealChunk) -> ChangeLog:
    events = chunk.events
    created = np.floor(chunk.created * SECONDS_PER_DAY).astype(np.int64)
    if not events.deal:
        empty = np.zeros(0, dtype=np.int64)
        return ChangeLog(empty, empty, empty, empty, empty, chunk.initial.copy(), created)
    deal = np.concatenate(events.deal)
    field = np.concatenate(events.kind)
    second = np.minimum(np.floor(np.concatenate(events.time) * SECONDS_PER_DAY).astype(np.int64), _LATEST)
    second = np.maximum(second, created[deal])
    new = np.concatenate(events.value)
    order = np.lexsort((second, field, deal))
    deal, field, second, new = deal[order], field[order], second[order], new[order]

    group = deal * len(FIELDS) + field
    first = np.ones(len(group), dtype=np.bool_)
    first[1:] = group[1:] != group[:-1]
    starts = np.flatnonzero(first)
    position = np.arange(len(group)) - np.repeat(starts, np.diff(np.append(starts, len(group))))
    # second[i] := max(second[i], second[i-1] + 1) within a group, in one vectorised pass.
    key = group * _SPREAD + (second - position + _SPREAD // 2)
    second = np.maximum.accumulate(key) - group * _SPREAD - _SPREAD // 2 + position

    old = np.empty_like(new)
    old[1:] = new[:-1]
    old[first] = chunk.initial[deal[first], field[first]]
    last = np.ones(len(group), dtype=np.bool_)
    last[:-1] = first[1:]
    current = chunk.initial.copy()
    current[deal[last], field[last]] = new[last]
    last_change = created.copy()
    np.maximum.at(last_change, deal, second)
    return ChangeLog(deal, field, second, old, new, current, last_change)


class Decoder:
    """Coded values back to what the tables hold, and to change-log text (domain/changes.encode)."""

    def __init__(self, lookup: CalendarLookup) -> None:
        self._lookup = lookup
        self._iso: dict[int, str] = {}
        self.stage = [stage.key for stage in STAGES]
        self.status = [status.value for status in STATUSES]
        self.category = [category.value for category in CATEGORIES]
        self.next_step = [phrase for phrases in vocab.NEXT_STEPS for phrase in phrases]
        assert len(self.next_step) == len(STAGES) * PHRASES
        self.text: tuple[Callable[[int], str | None], ...] = (
            self.stage.__getitem__,
            self.status.__getitem__,
            _decimal,
            self.iso,
            self.category.__getitem__,
            _decimal,
            self.next_step_text,
        )

    def iso(self, day: int) -> str:
        text = self._iso.get(day)
        if text is None:
            text = self._iso[day] = self._lookup.date(day).isoformat()
        return text

    def date(self, day: int) -> date:
        return self._lookup.date(day)

    def next_step_text(self, code: int) -> str | None:
        return None if code < 0 else self.next_step[code]


def _decimal(value: int) -> str:
    return f"{value}.0"  # repr(float(value)) for whole numbers, as domain/changes.encode writes them


def change_rows(plan: DemoPlan, chunk: DealChunk, log: ChangeLog, people: People, first_id: int,
                decoder: Decoder) -> list[Row]:  # fmt: skip
    origin = plan.midnight.timestamp()
    owners = people.rep_ids[chunk.rep]
    opportunity = plan.ids.first("opportunities") + chunk.start
    names = [field.value for field in FIELDS]
    text = decoder.text
    rows: list[Row] = []
    for i, (deal, code, second, old, new) in enumerate(
        zip(log.deal.tolist(), log.field.tolist(), log.second.tolist(), log.old.tolist(), log.new.tolist(), strict=True)
    ):
        rows.append(
            {
                "id": first_id + i,
                "opportunity_id": opportunity + deal,
                "field": names[code],
                "old_value": text[code](old),
                "new_value": text[code](new),
                "changed_at": datetime.fromtimestamp(origin + second, UTC),
                "changed_by": int(owners[deal]),
                "source": SOURCE,
                "reason": None,
                "import_run_id": None,
            }
        )
    return rows


def opportunity_rows(plan: DemoPlan, chunk: DealChunk, log: ChangeLog, people: People, accounts: Accounts,
                     deals: DealPlan, decoder: Decoder) -> list[Row]:  # fmt: skip
    origin = plan.midnight.timestamp()
    created = np.floor(chunk.created * SECONDS_PER_DAY).astype(np.int64).tolist()
    closed = np.minimum(np.floor(np.nan_to_num(chunk.end) * SECONDS_PER_DAY), _LATEST).astype(np.int64).tolist()
    is_closed = (~np.isnan(chunk.end)).tolist()
    owners = people.rep_ids[chunk.rep].tolist()
    current = log.current.tolist()
    last_change = log.last_change.tolist()
    rows: list[Row] = []
    for i in range(len(chunk)):
        index = chunk.start + i
        a = int(chunk.account[i])
        value = current[i]
        product = vocab.PRODUCTS[(index * 7 + int(chunk.kind[i])) % len(vocab.PRODUCTS)]
        competitor = int(chunk.competitor[i])
        lead = int(chunk.lead[i])
        rows.append(
            {
                "id": deals.first_id + index,
                "source": SOURCE,
                "external_id": f"DEMO-OPP-{index + 1:07d}",
                "name": f"{account_name(int(accounts.name_code[a]))} - {product}",
                "account_id": accounts.first_id + a,
                "owner_id": owners[i],
                "pipeline": "default",
                "stage": decoder.stage[value[F_STAGE]],
                "status": decoder.status[value[F_STATUS]],
                "amount": float(value[F_AMOUNT]),
                "currency": CURRENCIES[chunk.currency[i]],
                "close_date": decoder.date(value[F_CLOSE]),
                "created_at": datetime.fromtimestamp(origin + created[i], UTC),
                "closed_at": datetime.fromtimestamp(origin + closed[i], UTC) if is_closed[i] else None,
                "forecast_category": decoder.category[value[F_CATEGORY]],
                "probability": float(value[F_PROBABILITY]),
                "next_step": decoder.next_step_text(value[F_NEXT]),
                "lead_source": DEAL_SOURCES[chunk.source[i]],
                "type": vocab.OPPORTUNITY_TYPES[chunk.kind[i]],
                "competitor": vocab.COMPETITORS[competitor] if competitor >= 0 else None,
                "lead_id": plan.ids.first("leads") + lead if lead >= 0 else None,
                "updated_at": datetime.fromtimestamp(origin + last_change[i], UTC),
            }
        )
    return rows
