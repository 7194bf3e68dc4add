"""Close-date slippage: how often, and how far, each owner's deals have their expected close date moved.

Estimated from the change log's `close_date` changes as known at `as_of`, over the deals created in the
`window_days` (default 365) before it. A change with a later new date than the old one is a **push** of
`new − old` days, one with an earlier date a **pull-in**; changes with either date empty are ignored.
Changes made when the deal closed or later are bookkeeping (CRMs set the close date to the closing day),
not slippage, and are left out, as is everything logged after `as_of`.

Per deal (`deal_slippage`): pushes, pull-ins, total days pushed and pulled in. Per owner at `as_of`, or for
the org (`slippage`):

- `share_pushed`: deals pushed at least once ÷ deals; `share_pushed_twice`: pushed at least twice ÷ deals;
- `pushes_per_deal`: pushes ÷ deals (every deal counts, pushed or not);
- `mean_days_pushed`, `median_days_pushed`: over the individual pushes;
- `share_pulled_in`, `pull_ins`, `mean_days_pulled_in`: the same for pull-ins, reported apart.

A rep whose deals are pushed again and again is forecasting optimistically (the "slipped deals" of
Salesforce's Pipeline Inspection and Clari's "pushed" flags); the per-deal count feeds hygiene's
"pushed N+ times" finding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.domain.enums import ChangeField
from closewise.domain.timeutil import naive_utc

DEFAULT_WINDOW_DAYS: Final = 365
DEAL_COLUMNS: Final = (s.ID, s.OWNER_ID, "pushes", "pull_ins", "days_pushed", "days_pulled_in")
SLIPPAGE_COLUMNS: Final = (
    "deals",
    "pushed_deals",
    "share_pushed",
    "share_pushed_twice",
    "pushes",
    "pushes_per_deal",
    "mean_days_pushed",
    "median_days_pushed",
    "pulled_in_deals",
    "share_pulled_in",
    "pull_ins",
    "mean_days_pulled_in",
)


def _moves(deals: pl.DataFrame, changes: pl.DataFrame, *, as_of: datetime) -> pl.LazyFrame:
    """Every close-date move of `deals` known at `as_of` and made while open: `id`, `_delta` (days)."""
    at = naive_utc(as_of)
    field = ChangeField.CLOSE_DATE.value

    def as_date(name: str) -> pl.Expr:
        return pl.col(name).replace("", None).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)

    return (
        changes.lazy()
        .filter(pl.col(s.FIELD) == field)
        .join(deals.lazy().select(s.ID, s.CREATED_AT, s.CLOSED_AT), left_on=s.OPPORTUNITY_ID, right_on=s.ID)
        .with_columns(pl.max_horizontal(s.CHANGED_AT, s.CREATED_AT).alias("_t"))
        .filter(pl.col("_t") <= at, pl.col(s.CLOSED_AT).is_null() | (pl.col("_t") < pl.col(s.CLOSED_AT)))
        .select(
            pl.col(s.OPPORTUNITY_ID).alias(s.ID),
            (as_date(s.NEW_VALUE) - as_date(s.OLD_VALUE)).dt.total_days().alias("_delta"),
        )
        .filter(pl.col("_delta").is_not_null(), pl.col("_delta") != 0)
    )


def deal_slippage(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    *,
    as_of: datetime,
    window_days: int | None = DEFAULT_WINDOW_DAYS,
    deals: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per deal created in the window (all deals created by `as_of` when `window_days` is None).

    Columns: `id`, `owner_id` (at `as_of`), `pushes`, `pull_ins` (counts), `days_pushed`, `days_pulled_in`
    (totals, 0 without any), then the deal's `status` and `created_at`, `closed_at` as of `as_of`.
    """
    if deals is None:
        deals = h.deal_outcomes(opportunities, changes, as_of=as_of)
    cohort = h.created_between(deals, as_of, window_days)
    return _per_deal(cohort, _moves(cohort, changes, as_of=as_of)).collect()


def _per_deal(cohort: pl.DataFrame, moves: pl.LazyFrame) -> pl.LazyFrame:
    per_deal = moves.group_by(s.ID).agg(
        (pl.col("_delta") > 0).sum().alias("pushes"),
        (pl.col("_delta") < 0).sum().alias("pull_ins"),
        pl.col("_delta").filter(pl.col("_delta") > 0).sum().alias("days_pushed"),
        (-pl.col("_delta").filter(pl.col("_delta") < 0)).sum().alias("days_pulled_in"),
    )
    counts = ("pushes", "pull_ins", "days_pushed", "days_pulled_in")
    return (
        cohort.lazy()
        .select(s.ID, s.OWNER_ID, s.STATUS, s.CREATED_AT, s.CLOSED_AT)
        .join(per_deal, on=s.ID, how="left", maintain_order="left")
        .with_columns(pl.col(counts).fill_null(0).cast(pl.Int64))
        .select(*DEAL_COLUMNS, s.STATUS, s.CREATED_AT, s.CLOSED_AT)
    )


def slippage(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    *,
    as_of: datetime,
    by: str | None = s.OWNER_ID,
    window_days: int | None = DEFAULT_WINDOW_DAYS,
    deals: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Slippage per owner (`by="owner_id"`; or `segment`, `team_id`) or for the org (`by=None`).

    Columns: the group column (absent for the org), `deals`, `pushed_deals`, `share_pushed`,
    `share_pushed_twice`, `pushes`, `pushes_per_deal`, `mean_days_pushed`, `median_days_pushed`,
    `pulled_in_deals`, `share_pulled_in`, `pull_ins`, `mean_days_pulled_in` (see the module header; shares
    and means null without deals or moves). Sorted by the group column.
    """
    if deals is None:
        deals = h.deal_outcomes(opportunities, changes, as_of=as_of)
    keys = [] if by is None else [h.group_column(deals, by, (s.OWNER_ID, "segment", "team_id"))]
    cohort = h.created_between(deals, as_of, window_days)
    moves = _moves(cohort, changes, as_of=as_of).collect().lazy()
    per_deal = _per_deal(cohort, moves).collect()
    if keys:
        per_deal = per_deal.drop(s.OWNER_ID).join(cohort.select(s.ID, *keys), on=s.ID, how="left")
        moves = moves.join(cohort.lazy().select(s.ID, *keys), on=s.ID, how="inner")
    group: list[str | pl.Expr] = [*keys] if keys else [pl.lit(0).alias("_all")]
    on = keys or ["_all"]
    counts = (
        per_deal.lazy()
        .group_by(group)
        .agg(
            pl.len().alias("deals"),
            (pl.col("pushes") > 0).sum().alias("pushed_deals"),
            (pl.col("pushes") > 1).sum().alias("_twice"),
            pl.col("pushes").sum(),
            (pl.col("pull_ins") > 0).sum().alias("pulled_in_deals"),
            pl.col("pull_ins").sum(),
        )
    )
    sizes = moves.group_by(group).agg(
        pl.col("_delta").filter(pl.col("_delta") > 0).mean().alias("mean_days_pushed"),
        pl.col("_delta").filter(pl.col("_delta") > 0).median().alias("median_days_pushed"),
        (-pl.col("_delta").filter(pl.col("_delta") < 0)).mean().alias("mean_days_pulled_in"),
    )
    deals_n = pl.col("deals")
    frame = (
        counts.join(sizes, on=on, how="left", nulls_equal=True)
        .with_columns(
            (pl.col("pushed_deals") / deals_n).alias("share_pushed"),
            (pl.col("_twice") / deals_n).alias("share_pushed_twice"),
            (pl.col("pushes") / deals_n).alias("pushes_per_deal"),
            (pl.col("pulled_in_deals") / deals_n).alias("share_pulled_in"),
        )
        .with_columns(pl.col("deals", "pushed_deals", "pushes", "pulled_in_deals", "pull_ins").cast(pl.Int64))
        .select(*keys, *SLIPPAGE_COLUMNS)
        .collect()
    )
    if not keys and frame.height == 0:
        zero = {name: [0] for name in ("deals", "pushed_deals", "pushes", "pulled_in_deals", "pull_ins")}
        frame = (
            pl.DataFrame(zero)
            .with_columns(pl.lit(None, dtype=pl.Float64).alias(name) for name in SLIPPAGE_COLUMNS if name not in zero)
            .select(SLIPPAGE_COLUMNS)
        )
    return frame.sort(keys) if keys else frame
