"""Labelled training examples: deal features at past dates with their outcomes as known at a cutoff.

Labels (`label_examples`) are read from the deals' outcomes as known at a training `cutoff`
(`analytics.history.deal_outcomes`): `won` (the deal was won, at any time up to the cutoff), `days_to_outcome`
(from `t` to the closing), `won_amount` (corporate). **Censoring choice:** an example whose deal is still
open at the cutoff has no known label and is dropped (`resolved` false), never guessed; nothing learned
depends on anything after the cutoff. Dropping biases the sample toward quickly-resolved deals for dates
close to the cutoff; `training_examples` therefore stops its as-of dates `min_lag_days` before the cutoff,
and the timing model only uses horizons that end by the cutoff (`ml.timing_model`).

**As-of dates.** A weekly grid (every `every_days`), plus the first day of every month: the moment every
monthly and quarterly forecast and backtest is made from, and one the weekly grid meets only one month in
seven. What a pipeline looks like on a period's first day differs from any other day: on a fiscal quarter's
first day the late-stage deals still open are those the quarter-end push did not pull into the quarter
before, and they win less often (`ml.features`). The month-start rows are `sampled` at `START_OVERSAMPLE`
times the weekly rate (capped at every deal), so they weigh about as much as the whole weekly grid (a month
has ~4.3 weeks): the models learn the moment they are asked about from as many rows as any other, at the
price of about twice the training rows. Both grids are fixed whatever the cutoff, so a backtest's fits
share their feature rows (`features_at` caches them per date and rate).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.domain.enums import OpportunityStatus
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput
from closewise.ml.features import CATEGORICAL, FEATURES, LABELS, features_at
from closewise.ml.frames import OrgFrames

_OPEN = OpportunityStatus.OPEN.value
# Month starts are sampled at this multiple of the weekly rate: a power of 2, so every rate's sample holds the
# lower rates' (`features.sampled`), and ~4.3 weeks a month make the two grids weigh about the same.
START_OVERSAMPLE = 4
_WON = OpportunityStatus.WON.value


def label_examples(examples: pl.DataFrame, frames: OrgFrames, *, cutoff: datetime) -> pl.DataFrame:
    """`examples` (rows of `features_at`) with labels as known at `cutoff`: `resolved` (the deal closed by
    then), `won`, `closed_at`, `days_to_outcome` (from `as_of` to the closing, when resolved) and `won_amount`
    (corporate at the closing day's rate; 0 unless won). Unresolved rows keep null labels."""
    at = naive_utc(cutoff)
    if examples.height and examples[s.AS_OF].max() > at:  # type: ignore[operator]
        raise InvalidInput("examples dated after the cutoff cannot be labelled with what was known at it")
    clash = sorted(set(examples.columns) & set(LABELS))
    if clash:
        # A label silently replacing a feature column would leak the outcome into training.
        raise InvalidInput(f"examples already hold a column named like a label: {clash[0]!r}")
    opportunities, changes = frames.opportunities, frames.changes
    ids = examples[s.ID].unique()
    if ids.len() < opportunities.height // 2:
        # Only the examples' deals (a deal's outcome reads its own log only): a large org's training set
        # samples a few percent of its deals, whose outcomes cost ~0.2 s CPU at 1M deals instead of ~1.6 s.
        keep = ids.implode()
        opportunities = opportunities.filter(pl.col(s.ID).is_in(keep))
        changes = changes.filter(pl.col(s.OPPORTUNITY_ID).is_in(keep))
    # to_corporate drops underscored columns, so the working names here are spelled out.
    outcomes = h.deal_outcomes(opportunities, changes, as_of=at).select(
        s.ID,
        pl.col(s.STATUS).alias("label_status"),
        pl.col(s.CLOSED_AT).alias("closed_at"),
        pl.col(s.AMOUNT).alias("label_amount"),
        pl.col(s.CURRENCY).alias("label_currency"),
        pl.col(s.CLOSED_AT).dt.date().alias("label_day"),
    )
    outcomes = to_corporate(
        outcomes,
        frames.rates,
        corporate=frames.corporate_currency,
        amount="label_amount",
        currency="label_currency",
        on="label_day",
        into="label_won_amount",
    )
    resolved = pl.col("label_status").is_not_null() & (pl.col("label_status") != _OPEN)
    won = pl.col("label_status") == _WON
    return (
        examples.join(outcomes, on=s.ID, how="left")
        .with_columns(
            resolved.fill_null(value=False).alias("resolved"),
            pl.when(resolved).then(won.cast(pl.Int8)).alias("won"),
            pl.when(resolved).then(pl.col("closed_at")).alias("closed_at"),
        )
        .with_columns(
            pl.when(pl.col("resolved")).then(h.days_between(s.AS_OF, "closed_at")).alias("days_to_outcome"),
            pl.when(pl.col("resolved"))
            .then(pl.when(won).then(pl.col("label_won_amount")).otherwise(0.0))
            .alias("won_amount"),
        )
        .drop("label_status", "label_amount", "label_currency", "label_day", "label_won_amount")
    )


def as_of_dates(start: datetime, end: datetime, *, every_days: int, anchor: datetime | None = None) -> list[datetime]:
    """Dates every `every_days` going back from `end` (included) to `start` (included), oldest first; with an
    `anchor`, the dates `anchor + k x every_days` in [start, end] instead (one grid shared by every cutoff)."""
    if every_days <= 0:
        raise InvalidInput(f"the spacing of training dates must be positive, not {every_days}")
    first, last = naive_utc(start), naive_utc(end)
    if anchor is not None:
        step = timedelta(days=every_days)
        last = naive_utc(anchor) + step * math.floor((last - naive_utc(anchor)) / step)
        if last < first:
            return []
    count = max(0, math.floor((last - first) / timedelta(days=every_days)))
    return [last - timedelta(days=every_days * k) for k in range(count, -1, -1)]


def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """The first instants (00:00) of the months that start in [start, end], oldest first."""
    first, last = naive_utc(start), naive_utc(end)
    day = datetime(first.year, first.month, 1)
    if day < first:
        day = datetime(day.year + day.month // 12, day.month % 12 + 1, 1)
    out: list[datetime] = []
    while day <= last:
        out.append(day)
        day = datetime(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def training_examples(
    frames: OrgFrames,
    *,
    cutoff: datetime,
    every_days: int = 7,
    min_lag_days: int = 14,
    history_days: int | None = None,
    anchor: datetime | None = None,
    sample_rate: float = 1.0,
    month_start_rows: bool = True,
) -> pl.DataFrame:
    """Labelled examples from as-of dates every `every_days` up to `min_lag_days` before `cutoff` (back to
    the first deal's creation, or `history_days`; on the weekly grid of `anchor` when given) and, with
    `month_start_rows`, the months' first days in that span (module header), using only what was known at
    `cutoff` (of the deals `features.sampled` at `sample_rate`, `START_OVERSAMPLE` times that on month
    starts). Every row of `features_at`, labelled (`label_examples`), unresolved ones included (callers filter
    on `resolved`); sorted by `as_of`, `id`."""
    at = naive_utc(cutoff)
    opps = frames.opportunities.filter(pl.col(s.CREATED_AT) <= at)
    if opps.height == 0:
        return _empty_examples()
    earliest: datetime = opps[s.CREATED_AT].min()  # type: ignore[assignment]
    if history_days is not None:
        earliest = max(earliest, at - timedelta(days=history_days))
    last = at - timedelta(days=min_lag_days)
    if last <= earliest:
        return _empty_examples()
    dates = as_of_dates(earliest + timedelta(days=1), last, every_days=every_days, anchor=anchor)
    starts = [day for day in month_starts(earliest + timedelta(days=1), last) if day not in set(dates)]
    if not month_start_rows:
        starts = []
    if not dates and not starts:
        return _empty_examples()
    pieces = [features_at(frames, dates, sample_rate=sample_rate)] if dates else []
    if starts:
        pieces.append(features_at(frames, starts, sample_rate=min(1.0, START_OVERSAMPLE * sample_rate)))
    examples = pl.concat(pieces).sort(s.AS_OF, s.ID)
    return label_examples(examples, frames, cutoff=at)


def _empty_examples() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        s.AS_OF: s.TIMESTAMP,
        s.ID: pl.Int64(),
        s.OWNER_ID: pl.Int64(),
        "team_id": pl.Int64(),
        s.STAGE: pl.String(),
        s.CLOSE_DATE: pl.Date(),
        s.FORECAST_CATEGORY: pl.String(),
        "amount_corporate": pl.Float64(),
    }
    schema.update({name: pl.String() if name in CATEGORICAL else pl.Float64() for name in FEATURES})
    schema.update(
        {
            "resolved": pl.Boolean(),
            "won": pl.Int8(),
            "closed_at": s.TIMESTAMP,
            "days_to_outcome": pl.Float64(),
            "won_amount": pl.Float64(),
        }
    )
    return pl.DataFrame(schema=schema)
