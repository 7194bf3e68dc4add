"""The vocabulary of a simulated deal's history: which fields are tracked, how values are coded, and the
events (field, time, coded value) a simulation records for `changelog` to turn into rows.

Values are integers while simulating: stage, status and forecast category as indexes into `STAGES`,
`STATUSES`, `CATEGORIES`; amounts in whole units of the record currency; close dates as days relative to
today; probabilities in whole percent; next steps as an index into the playbook phrases (-1: empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from closewise.demo.plan import FloatArray, IntArray
from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus

FIELDS: Final = (
    ChangeField.STAGE,
    ChangeField.STATUS,
    ChangeField.AMOUNT,
    ChangeField.CLOSE_DATE,
    ChangeField.FORECAST_CATEGORY,
    ChangeField.PROBABILITY,
    ChangeField.NEXT_STEP,
)
F_STAGE, F_STATUS, F_AMOUNT, F_CLOSE, F_CATEGORY, F_PROBABILITY, F_NEXT = range(len(FIELDS))
STATUSES: Final = tuple(OpportunityStatus)
OPEN, WON, LOST, NO_DECISION = (STATUSES.index(status) for status in OpportunityStatus)
CATEGORIES: Final = tuple(ForecastCategory)
COMMIT, CLOSED, OMITTED = (
    CATEGORIES.index(category)
    for category in (ForecastCategory.COMMIT, ForecastCategory.CLOSED, ForecastCategory.OMITTED)
)


@dataclass
class Events:
    deal: list[IntArray] = field(default_factory=list)
    kind: list[IntArray] = field(default_factory=list)  # the field changed (index into FIELDS)
    time: list[FloatArray] = field(default_factory=list)
    value: list[IntArray] = field(default_factory=list)

    def add(self, code: int, deal: IntArray, time: FloatArray, value: IntArray) -> None:
        if len(deal):
            self.deal.append(deal)
            self.kind.append(np.full(len(deal), code, dtype=np.int64))
            self.time.append(time)
            self.value.append(np.asarray(value, dtype=np.int64))


def sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def record(events: Events, state: IntArray, code: int, ids: IntArray, time: FloatArray, value: IntArray) -> None:
    """Record `value` for the deals `ids` at `time` where it differs from their current `state`."""
    changed = state[ids, code] != value
    events.add(code, ids[changed], time[changed], value[changed])
    state[ids[changed], code] = value[changed]
