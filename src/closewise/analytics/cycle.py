"""Sales cycle and pipeline velocity, from the deals won and open as known at `as_of`.

**Sales cycle** (`sales_cycle`): the days from a deal's creation to its winning (`closed_at` of the won
status as logged, `analytics.history`), over the deals won by `as_of` (optionally only those won in the
`window_days` before it). Per group (segment or owner): count, median, p75 and p90 (linear interpolation,
numpy's default). A group with fewer than `min_won` wins (default 30) is too thin for its own percentiles:
its row carries the org's overall figures instead (`basis = "org"`), its own median beside them for
reference. Hygiene ages deals against these figures, coverage times pipeline creation with them.

**Velocity** (`velocity`): the sales-velocity equation of sales operations (e.g. HubSpot's and Salesforce's
"pipeline velocity"), the revenue the open pipeline is expected to yield per day:

    velocity = open deals × win rate × average won amount ÷ cycle days

with, per owner (the owner at `as_of`) and for the org, over the `window_days` (default 365) before
`as_of`: win rate = won ÷ (won + lost + no decision) among the deals closed in the window; average won
amount = the mean amount of the deals won in the window, in the corporate currency (converted at their
closing day's rate); cycle days = the median creation-to-win days of those wins; open deals = the deals
open at `as_of`. With closed deals but no win, the velocity is 0; without any closed deal it is unknown
(null). Amounts are as known at `as_of` (`analytics.history.value_as_of`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.domain.timeutil import naive_utc

CYCLE_GROUPS: Final = ("segment", s.OWNER_ID)
DEFAULT_MIN_WON: Final = 30
DEFAULT_WINDOW_DAYS: Final = 365
BASIS_OWN: Final = "own"
BASIS_ORG: Final = "org"

CYCLE_COLUMNS: Final = ("won", "median_days", "p75_days", "p90_days", "basis", "own_median_days")
VELOCITY_COLUMNS: Final = (
    "open_deals",
    "open_amount",
    "closed",
    "won",
    "win_rate",
    "average_won_amount",
    "cycle_days",
    "velocity_per_day",
)

_CORPORATE: Final = "amount_corporate"


def _cycle_stats() -> list[pl.Expr]:
    days = pl.col(h.DAYS)
    return [
        pl.len().cast(pl.Int64).alias("won"),
        days.median().alias("median_days"),
        days.quantile(0.75, "linear").alias("p75_days"),
        days.quantile(0.90, "linear").alias("p90_days"),
    ]


def won_cycles(deals: pl.DataFrame, *, as_of: datetime, window_days: int | None = None) -> pl.DataFrame:
    """The won rows of `deals` (`history.deal_outcomes`), optionally only those won in the window before
    `as_of`, with their cycle in fractional `days` from creation to winning."""
    won = h.closed_between(deals, as_of, window_days).filter(pl.col(s.STATUS) == h.WON)
    return won.with_columns(h.days_between(s.CREATED_AT, s.CLOSED_AT).alias(h.DAYS))


def sales_cycle(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    *,
    as_of: datetime,
    by: str | None = "segment",
    min_won: int = DEFAULT_MIN_WON,
    window_days: int | None = None,
    deals: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Creation-to-win days per group (`by`: `segment`, `owner_id`) or, with `by=None`, for the org.

    Columns: the group column (absent for the org), `won` (the group's own wins), `median_days`,
    `p75_days`, `p90_days` (the group's own when it has at least `min_won` wins, else the org's), `basis`
    (`own` or `org`), `own_median_days` (the group's own median, null without wins). Groups with no win at
    all are listed when they have deals. Sorted by the group column. `deals` is `history.deal_outcomes(...)`
    for the same `as_of`, when the caller has it already.
    """
    if deals is None:
        deals = h.deal_outcomes(opportunities, changes, as_of=as_of)
    won = won_cycles(deals, as_of=as_of, window_days=window_days)
    org = won.select(_cycle_stats())
    if by is None:
        return org.with_columns(
            pl.lit(BASIS_OWN).alias("basis"), pl.col("median_days").alias("own_median_days")
        ).select(CYCLE_COLUMNS)
    column = h.group_column(deals, by, CYCLE_GROUPS)
    own = won.group_by(column).agg(_cycle_stats())
    org_row = org.row(0, named=True)
    enough = pl.col("won") >= min_won
    return (
        deals.select(column)
        .unique()
        .join(own, on=column, how="left", nulls_equal=True)
        .with_columns(pl.col("won").fill_null(0).cast(pl.Int64))
        .select(
            column,
            "won",
            *(
                pl.when(enough).then(pl.col(name)).otherwise(pl.lit(org_row[name], dtype=pl.Float64)).alias(name)
                for name in ("median_days", "p75_days", "p90_days")
            ),
            pl.when(enough).then(pl.lit(BASIS_OWN)).otherwise(pl.lit(BASIS_ORG)).alias("basis"),
            pl.col("median_days").alias("own_median_days"),
        )
        .sort(column, nulls_last=True)
    )


def velocity(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    rates: pl.DataFrame,
    *,
    as_of: datetime,
    corporate: str,
    by: str | None = s.OWNER_ID,
    window_days: int = DEFAULT_WINDOW_DAYS,
    deals: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Sales velocity (module header) per owner at `as_of` (`by="owner_id"`) or for the org (`by=None`).

    Columns: the group column (absent for the org), `open_deals`, `open_amount` (corporate currency, at
    `as_of`'s rate), `closed`, `won` (in the window), `win_rate`, `average_won_amount`, `cycle_days`,
    `velocity_per_day` (corporate currency per day). Owners with neither an open deal nor a deal closed in
    the window are left out. Sorted by the group column.
    """
    if deals is None:
        deals = h.deal_outcomes(opportunities, changes, as_of=as_of)
    keys = [] if by is None else [h.group_column(deals, by, (s.OWNER_ID, "segment", "team_id"))]
    day = naive_utc(as_of).date()
    open_deals = to_corporate(
        deals.filter(pl.col(s.STATUS) == h.OPEN).with_columns(pl.lit(day).alias("_on")),
        rates,
        corporate=corporate,
        on="_on",
        into=_CORPORATE,
    )
    closed = h.closed_between(deals, as_of, window_days).with_columns(pl.col(s.CLOSED_AT).dt.date().alias("_on"))
    won = to_corporate(
        won_cycles(closed, as_of=as_of).with_columns(pl.col(s.CLOSED_AT).dt.date().alias("_on")),
        rates,
        corporate=corporate,
        on="_on",
        into=_CORPORATE,
    )
    open_part = open_deals.group_by(keys or pl.lit(0).alias("_all")).agg(
        pl.len().alias("open_deals"), pl.col(_CORPORATE).sum().alias("open_amount")
    )
    closed_part = closed.group_by(keys or pl.lit(0).alias("_all")).agg(pl.len().alias("closed"))
    won_part = won.group_by(keys or pl.lit(0).alias("_all")).agg(
        pl.len().alias("won"),
        pl.col(_CORPORATE).mean().alias("average_won_amount"),
        pl.col(h.DAYS).median().alias("cycle_days"),
    )
    on = keys or ["_all"]
    frame = (
        open_part.join(closed_part, on=on, how="full", coalesce=True, nulls_equal=True)
        .join(won_part, on=on, how="full", coalesce=True, nulls_equal=True)
        .with_columns(
            pl.col("open_deals", "closed", "won").fill_null(0).cast(pl.Int64),
            pl.col("open_amount").fill_null(0.0),
        )
    )
    if not keys and frame.height == 0:
        frame = pl.DataFrame(
            {"open_deals": [0], "open_amount": [0.0], "closed": [0], "won": [0]},
        ).with_columns(
            pl.lit(None, dtype=pl.Float64).alias("average_won_amount"),
            pl.lit(None, dtype=pl.Float64).alias("cycle_days"),
        )
    win_rate = pl.when(pl.col("closed") > 0).then(pl.col("won") / pl.col("closed"))
    rate = (
        pl.when(pl.col("closed") == 0)
        .then(None)
        .when((pl.col("won") == 0) | (pl.col("open_deals") == 0))
        .then(0.0)
        .when(pl.col("cycle_days") > 0)
        .then(pl.col("open_deals") * pl.col("win_rate") * pl.col("average_won_amount") / pl.col("cycle_days"))
    )
    return (
        frame.with_columns(win_rate.alias("win_rate"))
        .with_columns(rate.cast(pl.Float64).alias("velocity_per_day"))
        .select(*keys, *VELOCITY_COLUMNS)
        .sort(keys or "open_deals", nulls_last=True)
    )
