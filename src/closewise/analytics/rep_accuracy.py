"""Forecast accuracy per rep, for the scorecards: each call a rep made for a period that had ended by `as_of`,
against what they won in it.

The calls and their scoring are the forecast call's track record (`calls.accuracy`, pure like this module):
a rep's call for a period is their last own submission (`kind` submission, not a manager's adjustment)
before the period ended; `pct_error = (commit − actual) ÷ actual`, where `actual` is what the rep won in the
period as known at its end (`ml.forecaster.won_in_period`'s rule: deals won inside the period, in the
corporate currency at each close date's rate), undefined when they won nothing. Over a rep's calls:
`forecast_mape` = mean |pct_error|, `forecast_bias` = median pct_error, and `forecast_label` the forecast
call's label for that bias (`ml.rep_bias.label_for` on the median commit ÷ actual: sandbagger, happy ears,
accurate). Only what was known at `as_of` counts: periods ended by then, calls submitted by then.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshots_lazy
from closewise.calls.accuracy import call_accuracy, final_calls
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import FiscalCalendar, Period
from closewise.domain.timeutil import midnight, naive_utc
from closewise.errors import InvalidInput
from closewise.ml.rep_bias import label_for

CALL_COLUMNS: Final = ("user_id", "period", "period_start", "period_end", "commit", "actual", "pct_error")
CALL_SCHEMA: Final = {"user_id": pl.Int64(), "period": pl.String(), "period_start": pl.Date(),
                      "period_end": pl.Date(), "commit": pl.Float64(), "actual": pl.Float64(),
                      "pct_error": pl.Float64()}
_TICK: Final = timedelta(microseconds=1)
_WON: Final = OpportunityStatus.WON.value


def ended_periods(labels: list[str], calendar: FiscalCalendar, *, since: datetime,
                  as_of: datetime) -> dict[str, Period]:
    """The periods named by `labels` (month, quarter or year labels of `calendar`) that ended in `(since, as_of]`;
    labels the calendar cannot read are skipped (they name no period anyone can be scored on)."""
    at, start = naive_utc(as_of), naive_utc(since)
    spans: dict[str, Period] = {}
    for label in labels:
        try:
            span = calendar.parse(label)
        except (InvalidInput, ValueError, OverflowError):
            continue
        if start < midnight(span.end) <= at:
            spans[label] = span
    return spans


def scored_calls(
    submissions: pl.DataFrame,
    timeline: pl.DataFrame,
    rates: pl.DataFrame,
    *,
    corporate: str,
    calendar: FiscalCalendar,
    as_of: datetime,
    since: datetime,
) -> pl.DataFrame:
    """Every user's final call of each period that ended in `(since, as_of]`, scored against what they won in it
    (`CALL_COLUMNS`, sorted by user and period start). `submissions`: `db.submissions.load_submissions`'s
    columns; `timeline`: `analytics.snapshots.build_timeline`'s."""
    at = naive_utc(as_of)
    known = submissions.filter(pl.col("submitted_at") <= at)
    spans = ended_periods(known["period"].unique().to_list(), calendar, since=since, as_of=at)
    if not spans:
        return pl.DataFrame(schema=CALL_SCHEMA)
    calls = final_calls(known, {label: midnight(span.end) for label, span in spans.items()})
    scored = call_accuracy(calls, _won_by_owner(timeline, rates, corporate=corporate, spans=spans), managers={})
    bounds = pl.DataFrame({"period": list(spans), "period_start": [p.start for p in spans.values()],
                           "period_end": [p.last_day for p in spans.values()]},
                          schema={"period": pl.String(), "period_start": pl.Date(), "period_end": pl.Date()})
    return scored.join(bounds, on="period", how="inner").select(CALL_COLUMNS).sort("user_id", "period_start")


def forecast_label(bias: float | None) -> str | None:
    """The forecast call's label for a median signed error (None without one)."""
    return None if bias is None else label_for(1.0 + bias).value


def _won_by_owner(timeline: pl.DataFrame, rates: pl.DataFrame, *, corporate: str,
                  spans: dict[str, Period]) -> pl.DataFrame:
    """`owner_id`, `period`, `won`: what each owner won inside each period, as known at its end."""
    ends = {label: midnight(span.end) - _TICK for label, span in spans.items()}
    by_end = pl.DataFrame({"period": list(ends), s.AS_OF: list(ends.values()),
                           "_start": [midnight(span.start) for span in spans.values()]},
                          schema={"period": pl.String(), s.AS_OF: s.TIMESTAMP, "_start": s.TIMESTAMP})
    won = (snapshots_lazy(timeline.filter(pl.col(s.STATUS) == _WON), list(ends.values())).collect()
           .join(by_end, on=s.AS_OF, how="inner")
           .filter(pl.col(s.STATUS) == _WON, pl.col(s.CLOSED_AT) >= pl.col("_start"),
                   pl.col(s.CLOSED_AT) <= pl.col(s.AS_OF)))
    won = to_corporate(won, rates, corporate=corporate, into="won")
    return (won.group_by(s.OWNER_ID, "period").agg(pl.col("won").fill_null(0.0).sum())
            .select(s.OWNER_ID, "period", "won"))
