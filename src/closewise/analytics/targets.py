"""A period's target from the quotas: the org's number, counted once.

Quotas are stored per user and per team, and a manager's quota carries the sum of their reps' (as in the
demo, and as Salesforce's forecast hierarchy rolls quotas up). Adding every row would count the same number
at every level, so the org's target is the top of the quota hierarchy: a user's quota counts unless someone
above them in the manager chain also holds one for the period. Team quotas count only when no user holds one
(they would repeat the users'). Amounts are converted to the corporate currency at the period's start.

Which rows: those of exactly the period (same first and last day); when there are none, the quotas of
shorter periods inside it (a year from its quarters), keeping per user or team only the rows not inside
another of their rows, so months are not added to the quarter that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from closewise.analytics.currency import to_corporate
from closewise.domain.periods import Period


@dataclass(frozen=True)
class QuotaTarget:
    amount: float  # corporate currency
    quotas: int  # rows added up
    scope: str  # "users" or "teams"


def target_from_quotas(
    quotas: pl.DataFrame, users: pl.DataFrame, period: Period, rates: pl.DataFrame, *, corporate: str
) -> QuotaTarget | None:
    """The org's target for `period` (see the module header), or None when no quota covers it.

    `quotas`: `user_id`, `team_id`, `period_start`, `period_end` (inclusive), `amount`, `currency`, all rows
    inside the period; `users`: `id`, `manager_id`.
    """
    inside = quotas.filter(pl.col("period_start") >= period.start, pl.col("period_end") <= period.last_day)
    exact = inside.filter(pl.col("period_start") == period.start, pl.col("period_end") == period.last_day)
    chosen = exact if exact.height else _outermost(inside)
    if chosen.height == 0:
        return None
    chosen = to_corporate(chosen, rates, corporate=corporate, on="period_start", into="_v")
    by_user = chosen.filter(pl.col("user_id").is_not_null())
    if by_user.height == 0:
        return QuotaTarget(float(chosen["_v"].sum()), chosen.height, "teams")
    holders = set(by_user["user_id"].to_list())
    manager = dict(zip(users["id"].to_list(), users["manager_id"].to_list(), strict=True))
    roots = {user for user in holders if not _has_holder_above(user, manager, holders)}
    top = by_user.filter(pl.col("user_id").is_in(list(roots)))
    return QuotaTarget(float(top["_v"].sum()), top.height, "users")


def _has_holder_above(user: int, manager: dict[int, int | None], holders: set[int]) -> bool:
    seen = {user}
    boss = manager.get(user)
    while boss is not None and boss not in seen:  # a cycle in bad data ends the walk
        if boss in holders:
            return True
        seen.add(boss)
        boss = manager.get(boss)
    return False


def _outermost(rows: pl.DataFrame) -> pl.DataFrame:
    """Per scope (user, team), the rows not lying inside another row of the same scope."""
    if rows.height == 0:
        return rows
    keyed = rows.with_row_index("_row")
    pairs = keyed.join(keyed, on=["user_id", "team_id"], how="inner", nulls_equal=True, suffix="_o").filter(
        pl.col("_row") != pl.col("_row_o"),
        pl.col("period_start_o") <= pl.col("period_start"),
        pl.col("period_end_o") >= pl.col("period_end"),
        # Of two rows with the same dates, one of them stays.
        (pl.col("period_start_o") != pl.col("period_start"))
        | (pl.col("period_end_o") != pl.col("period_end"))
        | (pl.col("_row_o") < pl.col("_row")),
    )
    return keyed.filter(~pl.col("_row").is_in(pairs["_row"].implode())).drop("_row")
