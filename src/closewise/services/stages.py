"""Stage analytics as reports: conversion and time in stage, sales cycle, velocity, slippage.

Each use case reads the org once (`services.org_data.load_org`, without activities; or takes the `org`
another report already read, and shares its deal outcomes when given `deals`), runs the pure
analytics (`analytics.stages`, `analytics.cycle`, `analytics.slippage`) at `as_of`, and returns a plain,
JSON-ready document: rows as dicts, owners named, numbers left unrounded (the CLI rounds for display).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics import cycle, history, slippage, stages
from closewise.analytics import schema as s
from closewise.domain.timeutil import as_utc
from closewise.errors import InvalidInput
from closewise.services.org_data import OrgData, org_or_load

CYCLE_BY: Final = {"segment": "segment", "owner": s.OWNER_ID}
VELOCITY_FORMULA: Final = "open_deals * win_rate * average_won_amount / cycle_days"


def _load(engine: Engine, org: OrgData | None) -> OrgData:
    return org_or_load(engine, org, activities=False)


def _deals(org: OrgData, as_of: datetime, deals: pl.DataFrame | None) -> pl.DataFrame:
    """`history.deal_outcomes` at `as_of`, unless the caller shares the frame it computed for that date."""
    return deals if deals is not None else history.deal_outcomes(org.opportunities, org.changes, as_of=as_of)


def _check_window(window_days: int | None) -> None:
    if window_days is not None and window_days <= 0:
        raise InvalidInput(f"--window-days must be a positive number of days, not {window_days}")


def _with_owners(frame: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """`frame` (with `owner_id`) with the owner's `name` and `email` after the id."""
    named = frame.join(
        users.select(pl.col("id").alias(s.OWNER_ID), "name", "email"),
        on=s.OWNER_ID,
        how="left",
        maintain_order="left",
    )
    rest = [name for name in frame.columns if name != s.OWNER_ID]
    return named.select(s.OWNER_ID, "name", "email", *rest)


def _header(as_of: datetime) -> dict[str, Any]:
    return {"as_of": as_utc(as_of).isoformat()}


def conversion_report(
    engine: Engine, *, as_of: datetime, org: OrgData | None = None, deals: pl.DataFrame | None = None
) -> dict[str, Any]:
    """Per playbook stage: conversion, stage-to-close win rate and time in stage (`analytics.stages`).

    `{"as_of", "stages": [{"stage", "name", "order", "entered", "advanced", "pending", "conversion_rate",
    "won", "lost", "no_decision", "open", "win_rate_from_stage", "median_days_to_close_won", "moved_on",
    "median_days_in_stage", "p75_days_in_stage", "p90_days_in_stage", "in_stage_now"}]}`
    """
    org = _load(engine, org)
    if deals is None:
        deals, visits = history.outcomes_and_visits(org.opportunities, org.changes, org.stages, as_of=as_of)
    else:
        visits = history.stage_visits(org.opportunities, org.changes, org.stages, as_of=as_of, deals=deals)
    conversion = stages.stage_conversion(org.opportunities, org.changes, org.stages, as_of=as_of, visits=visits)
    timing = stages.time_in_stage(org.opportunities, org.changes, org.stages, as_of=as_of, visits=visits).select(
        s.STAGE,
        pl.col("deals").alias("moved_on"),
        pl.col("median_days").alias("median_days_in_stage"),
        pl.col("p75_days").alias("p75_days_in_stage"),
        pl.col("p90_days").alias("p90_days_in_stage"),
        "in_stage_now",
    )
    names = org.stages.select(pl.col("key").alias(s.STAGE), "name")
    rows = conversion.join(names, on=s.STAGE, how="left", maintain_order="left").join(
        timing, on=s.STAGE, how="left", maintain_order="left"
    )
    rows = rows.select(s.STAGE, "name", pl.exclude(s.STAGE, "name"))
    return {**_header(as_of), "stages": rows.to_dicts()}


def cycle_report(
    engine: Engine,
    *,
    as_of: datetime,
    by: str = "segment",
    min_won: int = cycle.DEFAULT_MIN_WON,
    window_days: int | None = None,
    org: OrgData | None = None,
    deals: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Creation-to-win days per segment or owner, with the org's overall figures (`analytics.cycle`).

    `{"as_of", "by", "min_won", "window_days", "org": {"won", "median_days", "p75_days", "p90_days"},
    "groups": [{"segment" | "owner_id", ("name", "email",) "won", "median_days", "p75_days", "p90_days",
    "basis", "own_median_days"}]}`; a group with fewer than `min_won` wins carries the org's figures
    (`basis = "org"`).
    """
    if by not in CYCLE_BY:
        raise InvalidInput(f"--by {by!r}: choose segment or owner")
    if min_won < 1:
        raise InvalidInput(f"--min-won must be at least 1, not {min_won}")
    _check_window(window_days)
    org = _load(engine, org)
    deals = _deals(org, as_of, deals)
    overall = cycle.sales_cycle(
        org.opportunities, org.changes, as_of=as_of, by=None, window_days=window_days, deals=deals
    ).select("won", "median_days", "p75_days", "p90_days")
    groups = cycle.sales_cycle(
        org.opportunities,
        org.changes,
        as_of=as_of,
        by=CYCLE_BY[by],
        min_won=min_won,
        window_days=window_days,
        deals=deals,
    )
    if by == "owner":
        groups = _with_owners(groups, org.users)
    return {
        **_header(as_of),
        "by": by,
        "min_won": min_won,
        "window_days": window_days,
        "org": overall.row(0, named=True),
        "groups": groups.to_dicts(),
    }


def velocity_report(
    engine: Engine,
    *,
    as_of: datetime,
    window_days: int = cycle.DEFAULT_WINDOW_DAYS,
    org: OrgData | None = None,
    deals: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Sales velocity per owner and for the org (`analytics.cycle.velocity`), in the corporate currency.

    `{"as_of", "currency", "window_days", "formula", "org": {...}, "by_owner": [{"owner_id", "name", "email",
    "open_deals", "open_amount", "closed", "won", "win_rate", "average_won_amount", "cycle_days",
    "velocity_per_day"}]}`
    """
    _check_window(window_days)
    org = _load(engine, org)
    deals = _deals(org, as_of, deals)

    def run(by: str | None) -> pl.DataFrame:
        return cycle.velocity(
            org.opportunities,
            org.changes,
            org.rates,
            as_of=as_of,
            corporate=org.corporate_currency,
            by=by,
            window_days=window_days,
            deals=deals,
        )

    return {
        **_header(as_of),
        "currency": org.corporate_currency,
        "window_days": window_days,
        "formula": VELOCITY_FORMULA,
        "org": run(None).row(0, named=True),
        "by_owner": _with_owners(run(s.OWNER_ID), org.users).to_dicts(),
    }


def slippage_report(
    engine: Engine,
    *,
    as_of: datetime,
    window_days: int = slippage.DEFAULT_WINDOW_DAYS,
    org: OrgData | None = None,
    deals: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Close-date slippage per owner and for the org, over deals created in the window before `as_of`
    (`analytics.slippage`).

    `{"as_of", "window_days", "org": {...}, "by_owner": [{"owner_id", "name", "email", "deals",
    "pushed_deals", "share_pushed", "share_pushed_twice", "pushes", "pushes_per_deal", "mean_days_pushed",
    "median_days_pushed", "pulled_in_deals", "share_pulled_in", "pull_ins", "mean_days_pulled_in"}]}`
    """
    _check_window(window_days)
    org = _load(engine, org)
    deals = _deals(org, as_of, deals)

    def run(by: str | None) -> pl.DataFrame:
        return slippage.slippage(
            org.opportunities, org.changes, as_of=as_of, by=by, window_days=window_days, deals=deals
        )

    return {
        **_header(as_of),
        "window_days": window_days,
        "org": run(None).row(0, named=True),
        "by_owner": _with_owners(run(s.OWNER_ID), org.users).to_dicts(),
    }
