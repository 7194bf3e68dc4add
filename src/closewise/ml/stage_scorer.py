"""Interim deal scorer: smoothed empirical rates of the org's own history, behind the `DealScorer` interface.

What it estimates, per deal open at `as_of`: `p_close_in_period`, the probability that the deal is won with a
close inside the period's window (from `max(as_of, period start)` to the period's end); `p_win`, the
probability it is won at all; and `expected_amount`, `p_close_in_period` x its amount if won (corporate
currency).

From what: the pipeline as it stood at weekly moments `m` of the `lookback_days` before `as_of` (the as-of
engine, `analytics.snapshots`), each deal open at `m` a sample. Its outcome is read from the state known at
`as_of` (won, and when), and a sample counts only if its whole window `[m + lo, m + hi)` ended by `as_of`,
so nothing after `as_of` is used. Each sample falls in a cell of stage x close-date position (already past,
inside the window, after it) x idleness (days since any field last changed: < 21, 21-60, > 60, since stalled
deals stop changing). A cell's rate is shrunk toward its parent (cell -> stage x position -> stage -> org)
by additive smoothing with `prior` samples (Micci-Barreca, "A preprocessing scheme for high-cardinality
categorical attributes", SIGKDD Explorations 3(1), 2001). The owner's record multiplies the odds by
`(won + k) / (expected + k)`: their wins against what the cells expected of their samples.

Reasons are the signed log-odds steps from the org's rate to the deal's: stage, close-date position,
idleness and owner, the largest first. This is the fallback the deal models (`closewise.ml.scorer`)
replace; the forecaster uses it only while that module is absent.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Final, Protocol, Self

import numpy as np
import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.snapshots import snapshot, snapshots_lazy
from closewise.domain.enums import OpportunityStatus
from closewise.domain.timeutil import as_utc

_OPEN: Final = OpportunityStatus.OPEN.value
_WON: Final = OpportunityStatus.WON.value
SCORE_COLUMNS: Final = ("id", "p_win", "p_close_in_period", "expected_amount", "reasons")


class OrgFrames(Protocol):
    """What the ml layer reads about an org (`services.org_data.OrgData` has it)."""

    @property
    def timeline(self) -> pl.DataFrame: ...

    @property
    def rates(self) -> pl.DataFrame: ...

    @property
    def corporate_currency(self) -> str: ...


def naive_utc(moment: datetime) -> datetime:
    return as_utc(moment).replace(tzinfo=None)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def _logit(p: pl.Expr) -> pl.Expr:
    clipped = p.clip(1e-4, 1 - 1e-4)
    return (clipped / (1 - clipped)).log()


class StageRateScorer:
    """Smoothed stage x close-date x idleness rates with an owner factor (see the module header)."""

    def __init__(self, *, lookback_days: int = 400, step_days: int = 7, prior: float = 20.0,
                 owner_prior: float = 10.0) -> None:
        self.lookback_days = lookback_days
        self.step_days = step_days
        self.prior = prior
        self.owner_prior = owner_prior

    def fit(self, frames: OrgFrames, *, as_of: datetime) -> Self:
        at = naive_utc(as_of)
        timeline = frames.timeline
        known = snapshot(timeline, at)
        won = to_corporate(known.filter(pl.col(s.STATUS) == _WON), frames.rates,
                           corporate=frames.corporate_currency, into="won_amount")
        outcomes = known.select(s.ID, pl.col(s.STATUS).alias("final_status"),
                                pl.col(s.CLOSED_AT).alias("final_closed_at")).join(
            won.select(s.ID, "won_amount"), on=s.ID, how="left")
        moments = [at - timedelta(days=k) for k in range(self.step_days, self.lookback_days + 1, self.step_days)]
        samples = (
            snapshots_lazy(timeline.filter(pl.col(s.STATUS) == _OPEN), moments)
            .select(s.ID, s.AS_OF, s.OWNER_ID, s.STAGE, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE, s.VALID_FROM)
            .collect()
        )
        samples = to_corporate(samples, frames.rates, corporate=frames.corporate_currency, into="amount_c")
        self.samples_ = samples.join(outcomes, on=s.ID, how="left").select(
            s.ID, s.AS_OF, s.OWNER_ID, s.STAGE, s.CLOSE_DATE, s.VALID_FROM, pl.col("amount_c").fill_null(0.0),
            "final_status", "final_closed_at", "won_amount",
        )
        self.as_of_ = at
        return self

    def score(self, frames: OrgFrames, *, as_of: datetime, period_start: date, period_end: date) -> pl.DataFrame:
        """One row per deal open at `as_of`: `id, p_win, p_close_in_period, expected_amount, reasons`, plus
        `amount` (corporate currency now). `period_end` is exclusive."""
        at = naive_utc(as_of)
        lo = max(midnight(period_start) - at, timedelta(0))
        hi = max(midnight(period_end) - at, timedelta(0))
        current = snapshot(frames.timeline.filter(pl.col(s.STATUS) == _OPEN), at).filter(pl.col(s.STATUS) == _OPEN)
        current = to_corporate(current, frames.rates, corporate=frames.corporate_currency, into="amount_c")
        current = current.select(s.ID, s.OWNER_ID, s.STAGE, s.CLOSE_DATE, s.VALID_FROM,
                                 pl.col("amount_c").fill_null(0.0), pl.lit(at).alias(s.AS_OF))
        train = self.samples_.filter(pl.col(s.AS_OF) + hi <= self.as_of_)
        train = _with_cells(train, hi).with_columns(
            (
                (pl.col("final_status") == _WON)
                & (pl.col("final_closed_at") >= pl.col(s.AS_OF) + lo)
                & (pl.col("final_closed_at") < pl.col(s.AS_OF) + hi)
            ).fill_null(value=False).cast(pl.Float64).alias("_y"),
            (pl.col("final_status") == _WON).fill_null(value=False).cast(pl.Float64).alias("_w"),
        ).rename({"final_status": "_status"})
        deals = _with_cells(current, hi)
        if hi <= timedelta(0) or train.height == 0:
            p_close = pl.lit(0.0 if hi <= timedelta(0) else 0.1)
            return deals.select(
                s.ID, pl.lit(0.3).alias("p_win"), p_close.alias("p_close_in_period"),
                (p_close * pl.col("amount_c")).alias("expected_amount"),
                pl.lit([], dtype=pl.List(_REASON)).alias("reasons"), pl.col("amount_c").alias("amount"),
            )
        scored = self._rates(train, deals, "_y", "p_close")
        closed = train.filter(pl.col("_status").is_not_null() & (pl.col("_status") != _OPEN))
        win = self._rates(closed if closed.height else train, deals, "_w", "p_eventual")
        ratio = _amount_ratio(train, self.prior)
        return (
            scored.join(win.select(s.ID, "p_eventual"), on=s.ID, how="left")
            .join(ratio, on=s.STAGE, how="left")
            .with_columns(pl.col("_ratio").fill_null(1.0))
            .select(
                s.ID,
                pl.max_horizontal("p_eventual", "p_close").alias("p_win"),
                pl.col("p_close").alias("p_close_in_period"),
                (pl.col("p_close") * pl.col("amount_c") * pl.col("_ratio")).alias("expected_amount"),
                "reasons",
                pl.col("amount_c").alias("amount"),
            )
            .sort(s.ID)
        )

    def _rates(self, train: pl.DataFrame, deals: pl.DataFrame, y: str, name: str) -> pl.DataFrame:
        m = self.prior
        overall = float(train[y].mean() or 0.0)  # type: ignore[arg-type]
        levels = [[s.STAGE], [s.STAGE, "_pos"], [s.STAGE, "_pos", "_idle"]]
        scored = deals.with_columns(pl.lit(overall).alias("_p0"))
        fitted = train.with_columns(pl.lit(overall).alias("_p0"))
        for depth, keys in enumerate(levels, start=1):
            parent = f"_p{depth - 1}"
            table = fitted.group_by(keys).agg(pl.col(y).sum().alias("_k"), pl.len().alias("_n"),
                                              pl.col(parent).first().alias("_par"))
            table = table.with_columns(((pl.col("_k") + m * pl.col("_par")) / (pl.col("_n") + m)).alias(f"_p{depth}"))
            table = table.select(*keys, f"_p{depth}")
            fitted = fitted.join(table, on=keys, how="left")
            scored = scored.join(table, on=keys, how="left").with_columns(
                pl.coalesce(f"_p{depth}", parent).alias(f"_p{depth}"))
        owners = fitted.group_by(s.OWNER_ID).agg(pl.col(y).sum().alias("_k"), pl.col("_p3").sum().alias("_e"))
        owners = owners.select(s.OWNER_ID, ((pl.col("_k") + self.owner_prior) / (pl.col("_e") + self.owner_prior))
                               .log().alias("_owner"))
        scored = scored.join(owners, on=s.OWNER_ID, how="left").with_columns(pl.col("_owner").fill_null(0.0))
        logit = _logit(pl.col("_p3")) + pl.col("_owner")
        steps = [
            ("stage", _logit(pl.col("_p1")) - _logit(pl.col("_p0")), pl.format("stage {}", s.STAGE)),
            ("close_date", _logit(pl.col("_p2")) - _logit(pl.col("_p1")), pl.format("close date {}", "_pos")),
            ("activity", _logit(pl.col("_p3")) - _logit(pl.col("_p2")), pl.format("last change {}", "_idle")),
            ("owner", pl.col("_owner"), pl.format("owner's record x{}", pl.col("_owner").exp().round(2))),
        ]
        reasons = pl.concat_list(
            pl.struct(pl.lit(code).alias("code"), detail.alias("detail"), effect.round(3).alias("effect"))
            for code, effect, detail in steps
        ).list.eval(pl.element().sort_by(pl.element().struct.field("effect").abs(), descending=True).head(3))
        return scored.with_columns((1 / (1 + (-logit).exp())).alias(name), reasons.alias("reasons"))


_REASON: Final = pl.Struct({"code": pl.String, "detail": pl.String, "effect": pl.Float64})


def _with_cells(frame: pl.DataFrame, hi: timedelta) -> pl.DataFrame:
    """Close-date position against the window and idleness, at each row's moment."""
    day = pl.col(s.AS_OF).dt.date()
    end = (pl.col(s.AS_OF) + hi).dt.date()
    idle = (pl.col(s.AS_OF) - pl.col(s.VALID_FROM)).dt.total_days()
    return frame.with_columns(
        pl.when(pl.col(s.CLOSE_DATE).is_null()).then(pl.lit("unknown"))
        .when(pl.col(s.CLOSE_DATE) < day).then(pl.lit("past"))
        .when(pl.col(s.CLOSE_DATE) < end).then(pl.lit("in window"))
        .otherwise(pl.lit("after window")).alias("_pos"),
        pl.when(idle < 21).then(pl.lit("< 21 days ago")).when(idle <= 60).then(pl.lit("21-60 days ago"))
        .otherwise(pl.lit("> 60 days ago")).alias("_idle"),
    )


def _amount_ratio(train: pl.DataFrame, prior: float) -> pl.DataFrame:
    """Won amount over the amount at the moment, per stage, for samples won in their window, shrunk toward
    the org's ratio (discounts and re-scoping after the moment)."""
    won = train.filter((pl.col("_y") > 0) & (pl.col("amount_c") > 0) & pl.col("won_amount").is_not_null())
    if won.height == 0:
        return pl.DataFrame(schema={s.STAGE: pl.String, "_ratio": pl.Float64})
    overall = float(won["won_amount"].sum()) / float(won["amount_c"].sum())
    return won.group_by(s.STAGE).agg(
        pl.col("won_amount").sum().alias("_a"), pl.col("amount_c").sum().alias("_b"), pl.len().alias("_n")
    ).select(s.STAGE, ((pl.col("_n") * pl.col("_a") / pl.col("_b") + prior * overall) / (pl.col("_n") + prior))
             .alias("_ratio"))


def as_arrays(scores: pl.DataFrame, *columns: str) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    return tuple(scores[c].cast(pl.Float64).fill_null(0.0).to_numpy() for c in columns)
