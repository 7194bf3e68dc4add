"""The pipeline waterfall: how the pipeline at `start` became the pipeline at `end`, flow by flow.

What it measures: between two instants `start < end`, the money that entered and left "the pipeline" (every
open deal, or with a period `P` the open deals whose close date lies in `P`; analytics.pipeline's
`in_pipeline`), split into eight flows, all in the corporate currency and all non-negative, such that

    start + created + increased − decreased − won − lost − no_decision + pulled_in − pushed_out = end

where `start` and `end` are the totals of `open_deals` at the two instants (analytics.pipeline). It holds to
float rounding, by construction (below), for any change log.

The accounting, per deal, from the timeline (analytics.snapshots: one row per state a deal was in):

- The deal's states in the window are its state at `start` (if it existed then) followed by every state
  that began in `(start, end]`. Each state is "in" or "out" of the pipeline. Every step from one state to
  the next (one instant of the change log: all fields changed at that instant together) is one event:

  | before → after                          | flow                               | value                 |
  |-----------------------------------------|------------------------------------|-----------------------|
  | (none: created in the window) → in      | created                            | amount after          |
  | closed → in (a reopened deal)           | created (pipeline to work again)   | amount after          |
  | open, out (close date outside P) → in   | pulled_in (its close date moved in)| amount after          |
  | in → won / lost / no_decision           | that outcome                       | amount before         |
  | in → open, out (close date moved out)   | pushed_out (either way: later or   | amount before         |
  |                                         | earlier than P)                    |                       |
  | in → in, amount went up / down          | increased / decreased              | the difference        |
  | out → out, or in → in at the same amount| nothing                            |                       |

  So a deal entering and leaving within the window shows both flows (pulled in and pushed out, created and
  won...), an outcome is booked at the last amount the deal had in the pipeline ("closed at their last in-set
  amount"), and an entry at the amount it entered with. Without a period every open deal is in, so
  pulled_in and pushed_out are 0. A missing amount counts as 0. A deal created out of the pipeline (e.g.
  closing outside P) and moved in later is pulled in, not created.
- Telescoping: a deal's events sum (signed) to "its amount in the pipeline at `end` minus at `start`", so
  the flows add up exactly in the record currency.
- Currency: each deal's events are converted at one rate, so a moved close date never shows as a flow of
  its own: the rate of its close date at `end` if it is in the pipeline then, else at `start` if it was in
  then, else that of its last state in the pipeline during the window. The pipeline totals convert each
  deal at its own close date's rate at that instant (`open_deals`), so a deal in the pipeline at both ends
  whose close date moved onto another rate needs one more entry for the identity to hold: its revaluation,
  `amount at start × (the deal's rate − the rate at start)` in the corporate currency, booked as increased
  (if positive) or decreased, and also reported in the detail's `revaluation` column. Deals in the
  corporate currency, or whose rate did not change, have none.

This is the "pipeline bridge" / "pipeline waterfall" of sales operations (Salesforce's Pipeline Inspection
"changes" and Clari's waterfall), made exact by the telescoping sum over the state-change log.

The result carries the per-deal detail (one row per deal and flow), so a UI can list the deals behind each
flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from closewise.analytics import schema as s
from closewise.analytics.currency import to_corporate
from closewise.analytics.pipeline import VALUE, in_pipeline, open_deals
from closewise.domain.enums import OpportunityStatus
from closewise.domain.periods import Period
from closewise.domain.timeutil import naive_utc
from closewise.errors import InvalidInput

CREATED: Final = "created"
INCREASED: Final = "increased"
DECREASED: Final = "decreased"
WON: Final = OpportunityStatus.WON.value
LOST: Final = OpportunityStatus.LOST.value
NO_DECISION: Final = OpportunityStatus.NO_DECISION.value
PULLED_IN: Final = "pulled_in"
PUSHED_OUT: Final = "pushed_out"
FLOWS: Final[tuple[str, ...]] = (CREATED, INCREASED, DECREASED, WON, LOST, NO_DECISION, PULLED_IN, PUSHED_OUT)
# +1: adds to the pipeline, -1: takes from it.
SIGN: Final[dict[str, int]] = {CREATED: 1, INCREASED: 1, DECREASED: -1, WON: -1, LOST: -1, NO_DECISION: -1,
                               PULLED_IN: 1, PUSHED_OUT: -1}

FLOW: Final = "flow"
CHANGES: Final = "changes"  # how many events of the deal make up the row
REVALUATION: Final = "revaluation"  # the part of `value` that is currency revaluation (see the header)

_OPEN: Final = OpportunityStatus.OPEN.value
_IN: Final = "_in"


@dataclass(frozen=True)
class Waterfall:
    start: datetime  # the instants, naive UTC, as the timeline holds them
    end: datetime
    period: Period | None
    currency: str
    start_value: float
    end_value: float
    flows: dict[str, float]  # every name of FLOWS, non-negative
    # One row per (deal, flow): id, flow, value, changes, revaluation, and the deal's state at `end`:
    # owner_id, stage, status, amount, currency, close_date.
    deals: pl.DataFrame

    @property
    def residual(self) -> float:
        """start + signed flows − end: zero up to float rounding."""
        return self.start_value + sum(SIGN[name] * value for name, value in self.flows.items()) - self.end_value


def waterfall(
    timeline: pl.DataFrame,
    start: datetime,
    end: datetime,
    *,
    rates: pl.DataFrame,
    corporate: str,
    period: Period | None = None,
) -> Waterfall:
    """The flows between the pipeline at `start` and at `end` (instants; naive ones are UTC)."""
    t0, t1 = naive_utc(start), naive_utc(end)
    if t0 >= t1:
        raise InvalidInput(f"the start ({t0:%Y-%m-%d %H:%M}) must be before the end ({t1:%Y-%m-%d %H:%M})")
    begin = open_deals(timeline, t0, rates=rates, corporate=corporate, period=period)
    finish = open_deals(timeline, t1, rates=rates, corporate=corporate, period=period)

    states = _window_states(timeline, t0, t1, period)
    events = _events(states, t0)
    factors = _deal_factors(states, begin, finish, rates=rates, corporate=corporate)
    valued = events.join(factors.select(s.ID, "factor"), on=s.ID, how="left").select(
        s.ID, FLOW, (pl.col("_amount") * pl.col("factor")).alias(VALUE), pl.lit(1, pl.Int64).alias(CHANGES),
        pl.lit(0.0).alias(REVALUATION),
    )
    detail = pl.concat([valued, _revaluations(factors)]).group_by(s.ID, FLOW).agg(
        pl.col(VALUE).sum(), pl.col(CHANGES).sum(), pl.col(REVALUATION).sum()
    )
    at_end = states.filter(pl.col(s.ID) != pl.col(s.ID).shift(-1).fill_null(-1)).select(
        s.ID, s.OWNER_ID, s.STAGE, s.STATUS, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE
    )
    order = {name: i for i, name in enumerate(FLOWS)}
    detail = (
        detail.join(at_end, on=s.ID, how="left")
        .with_columns(pl.col(FLOW).replace_strict(order, return_dtype=pl.Int64).alias("_order"))
        .sort("_order", -pl.col(VALUE), s.ID)
        .drop("_order")
    )
    totals = dict(detail.group_by(FLOW).agg(pl.col(VALUE).sum()).iter_rows())
    return Waterfall(
        start=t0,
        end=t1,
        period=period,
        currency=corporate,
        start_value=float(begin[VALUE].sum()),
        end_value=float(finish[VALUE].sum()),
        flows={name: float(totals.get(name, 0.0)) for name in FLOWS},
        deals=detail,
    )


# --- internals -------------------------------------------------------------------------------------------


def _window_states(timeline: pl.DataFrame, t0: datetime, t1: datetime, period: Period | None) -> pl.DataFrame:
    """Every state that held at some instant of [t0, t1]: the one at t0 and those that began in (t0, t1],
    sorted by deal and time, with `_in` (in the pipeline) and the amount with 0 for missing."""
    for name in (s.ID, s.VALID_FROM, s.VALID_TO, s.STATUS, s.AMOUNT, s.CLOSE_DATE, s.CURRENCY):
        if name not in timeline.columns:
            raise InvalidInput(f"column {name!r} is missing; build it with build_timeline()", where="timeline")
    states = (
        timeline.lazy()
        .filter(pl.col(s.VALID_FROM) <= t1, pl.col(s.VALID_TO).is_null() | (pl.col(s.VALID_TO) > t0))
        .select(s.ID, s.VALID_FROM, s.OWNER_ID, s.STAGE, s.STATUS, s.AMOUNT, s.CURRENCY, s.CLOSE_DATE,
                in_pipeline(period).alias(_IN), pl.col(s.AMOUNT).fill_null(0.0).alias("_amount"))
        .collect()
    )
    # build_timeline's rows are in that order already, and the filter keeps it: check rather than sort.
    step = pl.col(s.ID).diff()
    in_order = states.select(((step > 0) | ((step == 0) & (pl.col(s.VALID_FROM).diff() >= timedelta(0)))).all())
    return states if in_order.item() else states.sort(s.ID, s.VALID_FROM)


def _events(states: pl.DataFrame, t0: datetime) -> pl.DataFrame:
    """One row per step that moves money (table in the header): id, flow, `_amount` (record currency)."""
    same = (pl.col(s.ID) == pl.col(s.ID).shift(1)).fill_null(value=False)
    was_in = same & pl.col(_IN).shift(1).fill_null(value=False)
    was_open = same & (pl.col(s.STATUS).shift(1) == _OPEN).fill_null(value=False)
    before, after = pl.col("_amount").shift(1), pl.col("_amount")
    is_in = pl.col(_IN)
    enters, leaves, stays = is_in & ~was_in, ~is_in & was_in, is_in & was_in
    # The first state of a deal that existed at t0 is the starting point, not a step.
    step = same | (pl.col(s.VALID_FROM) > t0)
    flow = (
        pl.when(~step).then(None)
        .when(enters & was_open).then(pl.lit(PULLED_IN))
        .when(enters).then(pl.lit(CREATED))
        .when(leaves & (pl.col(s.STATUS) != _OPEN)).then(pl.col(s.STATUS))
        .when(leaves).then(pl.lit(PUSHED_OUT))
        .when(stays & (after > before)).then(pl.lit(INCREASED))
        .when(stays & (after < before)).then(pl.lit(DECREASED))
    )
    amount = pl.when(enters).then(after).when(leaves).then(before).otherwise((after - before).abs())
    events = states.select(s.ID, flow.alias(FLOW), amount.alias("_amount")).filter(pl.col(FLOW).is_not_null())
    unknown = events.filter(~pl.col(FLOW).is_in(FLOWS))
    if unknown.height:
        raise InvalidInput(f"status {unknown[FLOW][0]!r} is not open, won, lost or no_decision",
                           where=f"opportunity {unknown[s.ID][0]}")
    return events


def _deal_factors(
    states: pl.DataFrame, begin: pl.DataFrame, finish: pl.DataFrame, *, rates: pl.DataFrame, corporate: str
) -> pl.DataFrame:
    """Per deal ever in the pipeline in the window: `factor` (corporate units per record unit, the deal's one
    rate), and for deals in it at both ends `factor0` (the rate at start), `a0`, `v0` (amount and value at
    start)."""
    last_in = states.filter(_IN).group_by(s.ID).agg(pl.col(s.CLOSE_DATE).last().alias("last"),
                                                    pl.col(s.CURRENCY).first())
    ends = finish.select(s.ID, pl.col(s.CLOSE_DATE).alias("c1"), pl.lit(value=True).alias("in1"))
    starts = begin.select(s.ID, pl.col(s.CLOSE_DATE).alias("c0"), pl.lit(value=True).alias("in0"),
                          pl.col(s.AMOUNT).fill_null(0.0).alias("a0"), pl.col(VALUE).alias("v0"))
    deals = (
        last_in.join(ends, on=s.ID, how="left")
        .join(starts, on=s.ID, how="left")
        .with_columns(
            pl.col("in0").fill_null(value=False),
            pl.col("in1").fill_null(value=False),
            pl.lit(1.0).alias("one"),
        )
        .with_columns(
            pl.when("in1").then("c1").when("in0").then("c0").otherwise("last").alias("rate_day")
        )
    )
    deals = to_corporate(deals, rates, corporate=corporate, amount="one", on="rate_day", into="factor")
    return to_corporate(deals, rates, corporate=corporate, amount="one", on="c0", into="factor0")


def _revaluations(factors: pl.DataFrame) -> pl.DataFrame:
    """The currency revaluation of deals in the pipeline at both ends whose rate moved (see the header)."""
    reval = pl.col("a0") * pl.col("factor") - pl.col("v0")
    return factors.filter(pl.col("in0") & pl.col("in1") & (pl.col("factor") != pl.col("factor0"))).select(
        s.ID,
        pl.when(reval >= 0).then(pl.lit(INCREASED)).otherwise(pl.lit(DECREASED)).alias(FLOW),
        reval.abs().alias(VALUE),
        pl.lit(0, pl.Int64).alias(CHANGES),
        reval.abs().alias(REVALUATION),
    )


