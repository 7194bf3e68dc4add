"""Rep forecast bias (`closewise forecast-bias`): each person's calls against what they then booked.

The estimate is `closewise.ml.rep_bias`'s; this use case loads the org and the submitted calls, runs it as of
a moment, and names the people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.db.submissions import load_submissions
from closewise.domain.timeutil import as_utc, utcnow
from closewise.ml.rep_bias import RepBiasSettings, rep_bias
from closewise.services.org_data import load_org


@dataclass(frozen=True)
class RepBiasRow:
    user_id: int
    email: str
    name: str
    label: str
    median_ratio: float
    shrunk_ratio: float
    periods: int
    calls: int
    periods_without_bookings: int
    median_best_case_ratio: float


@dataclass(frozen=True)
class RepBiasReport:
    as_of: datetime
    currency: str
    reps: list[RepBiasRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "currency": self.currency,
            "reps": [vars(row) for row in self.reps],
        }


def rep_bias_report(
    engine: Engine, *, as_of: datetime | None = None, settings: RepBiasSettings | None = None
) -> RepBiasReport:
    """Every person with calls in periods ended by `as_of` (default now), by user id."""
    at = as_utc(as_of) if as_of is not None else utcnow()
    org = load_org(engine, activities=False)
    with engine.connect() as connection:
        submissions = load_submissions(connection)
    table = rep_bias(
        submissions,
        org.opportunities,
        org.changes,
        as_of=at,
        calendar=org.calendar,
        rates=org.rates,
        corporate=org.corporate_currency,
        settings=settings,
    ).join(org.users.select(pl.col("id").alias("user_id"), "email", "name"), on="user_id", how="left")
    rows = [
        RepBiasRow(
            user_id=row["user_id"],
            email=row["email"] or "",
            name=row["name"] or "",
            label=row["label"],
            median_ratio=round(row["median_ratio"], 4),
            shrunk_ratio=round(row["shrunk_ratio"], 4),
            periods=row["periods"],
            calls=row["calls"],
            periods_without_bookings=row["periods_without_bookings"],
            median_best_case_ratio=round(row["median_best_case_ratio"], 4),
        )
        for row in table.sort("user_id").iter_rows(named=True)
    ]
    return RepBiasReport(at, org.corporate_currency, rows)
