"""Speed of the as-of engine (analytics/snapshots.py) on synthetic frames.

    python benchmarks/bench_snapshots.py [--opportunities N] [--dates D] [--loop-dates L] [--seed S]

Synthesises N opportunities created over three years and about six logged changes each (consistent chains:
each change's old value is the previous new value), then prints the time to build the timeline, to take
one snapshot, to total the open pipeline at D as-of dates with `snapshots_lazy` and with a loop of
`snapshot` (timed on L of the dates, checked to agree), and to materialise `snapshots` at 20 dates; wall and
CPU time and the peak RSS after each step.

Figures on the development container (2 vCPU shared with other jobs, 23 GB RAM; polars 2.1, numpy 2.4),
N = 1,000,000: 6,098,896 changes, 7,098,895 state rows (775 MiB).

    synthesise 1,000,000 opportunities                  13.5 s
    build_timeline                                      10.1 s wall, 10.8 s CPU  (7.8-13.8 s over runs)
                                                        now 5.4-6.5 s CPU (one sort, no joins;
                                                        see bench_analytics.py)
    snapshot, one date                                   0.06 s  (665,857 existing, 356,819 open)
    open pipeline at 1,000 dates, snapshots_lazy         7.4 s  (filter + group_by before collect)
    open pipeline, loop of snapshot()                   59 ms a date, so ~59 s for 1,000 dates
    snapshots() materialised at 20 dates                 3.7 s  (9.5M rows)
    peak RSS                                             3.7 GiB, set by the synthesis; with the two
                                                         frames read from Parquet instead (0.6 GiB),
                                                         build_timeline peaks at 2.3 GiB for the process

So: build the timeline once; for many dates use `snapshots_lazy` and reduce before collecting (a thousand
full snapshots of a million deals would be ~500M rows); `snapshot` alone for a handful of dates.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from measure import timed

from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline, is_closed, snapshot, snapshots, snapshots_lazy

START = datetime(2022, 1, 1)
SPAN_SECONDS = 3 * 365 * 86400
STAGES = ["prospecting", "qualification", "discovery", "proposal", "negotiation"]
CATEGORIES = ["pipeline", "best_case", "commit", "omitted"]
STEPS = ["call back", "send proposal", "demo with CFO", "legal review", "intro to champion"]
FIELDS = ["stage", "amount", "close_date", "forecast_category", "probability", "next_step", "owner_id", "status"]
# Status changes are rarer: at most one closing per opportunity is drawn below.
FIELD_WEIGHTS = np.array([0.25, 0.15, 0.2, 0.12, 0.12, 0.1, 0.06, 0.0])


def _text(field: str, n: int, rng: np.random.Generator) -> pl.Series:
    """Random encoded values (domain/changes.py) of one field."""
    if field == "stage":
        return pl.Series(np.array(STAGES)[rng.integers(0, len(STAGES), n)])
    if field == "forecast_category":
        return pl.Series(np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)])
    if field == "next_step":
        return pl.Series(np.array(STEPS)[rng.integers(0, len(STEPS), n)])
    if field == "amount":
        return pl.Series(np.round(rng.lognormal(10, 1, n), 2)).cast(pl.String)
    if field == "probability":
        return pl.Series(rng.integers(0, 11, n) / 10).cast(pl.String)
    if field == "owner_id":
        return pl.Series(rng.integers(1, 500, n)).cast(pl.String)
    if field == "close_date":
        days = rng.integers(0, 4 * 365, n)
        return (pl.Series(days, dtype=pl.Int32).cast(pl.Date) + timedelta(days=19000)).cast(pl.String)
    raise ValueError(field)


def synthesise(n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    created_s = rng.integers(0, SPAN_SECONDS, n)
    created = pl.Series(created_s * 1_000_000, dtype=pl.Int64).cast(s.TIMESTAMP) + (START - datetime(1970, 1, 1))

    per_opp = rng.poisson(5.5, n)
    closes = rng.random(n) < 0.6  # closed deals log one status change on top
    opp_of = np.repeat(ids, per_opp)
    m = len(opp_of)
    field_idx = rng.choice(len(FIELDS), size=m, p=FIELD_WEIGHTS / FIELD_WEIGHTS.sum())
    offset = rng.integers(0, 200 * 86400, m)
    close_offset = rng.integers(30 * 86400, 300 * 86400, n)
    opp_of = np.concatenate([opp_of, ids[closes]])
    field_idx = np.concatenate([field_idx, np.full(int(closes.sum()), FIELDS.index("status"))])
    offset = np.concatenate([offset, close_offset[closes]])
    m = len(opp_of)
    changed = created.gather(opp_of - 1) + pl.Series(offset * 1_000_000, dtype=pl.Duration("us"))
    field_names = np.array(FIELDS)[field_idx]
    pieces = []
    for f_i, field in enumerate(FIELDS):
        mask = field_idx == f_i
        count = int(mask.sum())
        values = (
            pl.Series(rng.choice(["won", "lost", "no_decision"], count))
            if field == "status"
            else _text(field, count, rng)
        )
        pieces.append(pl.DataFrame({"_row": np.flatnonzero(mask), s.NEW_VALUE: values}))
    new_value = pl.concat(pieces).sort("_row")[s.NEW_VALUE]
    log = pl.DataFrame(
        {
            s.OPPORTUNITY_ID: opp_of,
            s.FIELD: field_names,
            s.NEW_VALUE: new_value,
            s.CHANGED_AT: changed,
        }
    ).sort(s.OPPORTUNITY_ID, s.FIELD, s.CHANGED_AT)

    # Initial values; old_value = previous new_value of the same field, the first one the initial value.
    initial = pl.DataFrame({s.ID: ids}).with_columns(
        *(_text(field, n, rng).alias(field) for field in FIELDS if field != "status"),
        pl.lit("open").alias("status"),
    )
    first_of_field = pl.struct(s.OPPORTUNITY_ID, s.FIELD).is_first_distinct()
    log = log.with_columns(pl.when(~first_of_field).then(pl.col(s.NEW_VALUE).shift(1)).alias(s.OLD_VALUE))
    long_initial = initial.unpivot(index=s.ID, variable_name=s.FIELD, value_name="_initial")
    log = (
        log.join(long_initial, left_on=[s.OPPORTUNITY_ID, s.FIELD], right_on=[s.ID, s.FIELD], how="left")
        .with_columns(pl.coalesce(s.OLD_VALUE, "_initial").alias(s.OLD_VALUE))
        .select(s.OPPORTUNITY_ID, s.FIELD, s.OLD_VALUE, s.NEW_VALUE, s.CHANGED_AT)
        .sort(s.CHANGED_AT)
    )
    last = (
        log.group_by(s.OPPORTUNITY_ID, s.FIELD)
        .agg(pl.col(s.NEW_VALUE).sort_by(s.CHANGED_AT).last())
        .pivot(on=s.FIELD, index=s.OPPORTUNITY_ID, values=s.NEW_VALUE)
    )
    current = initial.join(last, left_on=s.ID, right_on=s.OPPORTUNITY_ID, how="left", suffix="_last")
    closed_at = log.filter(pl.col(s.FIELD) == "status").select(
        pl.col(s.OPPORTUNITY_ID).alias(s.ID), pl.col(s.CHANGED_AT).alias(s.CLOSED_AT)
    )
    opportunities = (
        current.select(
            s.ID,
            *(pl.coalesce(f"{f}_last", f).alias(f) if f"{f}_last" in current.columns else pl.col(f) for f in FIELDS),
        )
        .with_columns(
            pl.col(s.AMOUNT).cast(pl.Float64),
            pl.col(s.PROBABILITY).cast(pl.Float64),
            pl.col(s.OWNER_ID).cast(pl.Int64),
            pl.col(s.CLOSE_DATE).str.to_date(),
            pl.lit(None, dtype=pl.Int64).alias(s.ACCOUNT_ID),
            pl.lit("USD").alias(s.CURRENCY),
            pl.Series(s.CREATED_AT, created),
        )
        .join(closed_at, on=s.ID, how="left")
        .select(list(s.OPPORTUNITY_SCHEMA))
    )
    return opportunities, log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--dates", type=int, default=1_000)
    parser.add_argument("--loop-dates", type=int, default=100, help="dates for the snapshot() loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    opportunities, changes = timed(
        f"synthesise {args.opportunities:,} opportunities", lambda: synthesise(args.opportunities, args.seed)
    )
    print(f"  {changes.height:,} changes", flush=True)
    timeline = timed("build_timeline", lambda: build_timeline(opportunities, changes))
    print(f"  {timeline.height:,} state rows, {timeline.estimated_size() / 2**20:,.0f} MiB", flush=True)

    as_of = START + timedelta(days=730)
    one = timed("snapshot (one date)", lambda: snapshot(timeline, as_of))
    print(f"  {one.height:,} opportunities existed, {one.filter(~is_closed()).height:,} open", flush=True)

    step = timedelta(seconds=SPAN_SECONDS) / args.dates
    dates = [START + step * (i + 1) for i in range(args.dates)]

    def open_pipeline_lazy(days: list[datetime]) -> pl.DataFrame:
        return (
            snapshots_lazy(timeline, days)
            .filter(~is_closed())
            .group_by(s.AS_OF)
            .agg(pl.len().alias("deals"), pl.col(s.AMOUNT).sum())
            .sort(s.AS_OF)
            .collect()
        )

    def open_pipeline_loop(days: list[datetime]) -> pl.DataFrame:
        rows = [
            snapshot(timeline, day)
            .filter(~is_closed())
            .select(pl.lit(day).alias(s.AS_OF), pl.len().alias("deals"), pl.col(s.AMOUNT).sum())
            for day in days
        ]
        return pl.concat(rows)

    lazy = timed(f"open pipeline at {len(dates):,} dates: snapshots_lazy+group_by", lambda: open_pipeline_lazy(dates))
    sample = dates[:: max(1, len(dates) // args.loop_dates)]
    began = time.perf_counter()
    loop = timed(f"open pipeline at {len(sample):,} dates: loop of snapshot()", lambda: open_pipeline_loop(sample))
    per_date = (time.perf_counter() - began) / max(1, len(sample))
    print(f"  {per_date * 1000:.0f} ms a date, so {per_date * len(dates):.0f} s for {len(dates):,} dates", flush=True)
    both = loop.join(lazy, on=s.AS_OF, how="left", suffix="_lazy").fill_null(0)
    gap = both.select((pl.col(s.AMOUNT) - pl.col(f"{s.AMOUNT}_lazy")).abs().max()).item()
    assert gap < 1e-6 * max(1.0, float(loop.select(pl.col(s.AMOUNT).max()).item() or 0)), (
        f"the two ways disagree by {gap}"
    )
    assert both["deals"].equals(both["deals_lazy"]), "the two ways disagree on counts"

    few = dates[:: max(1, len(dates) // 20)]
    full = timed(f"snapshots() materialised at {len(few)} dates", lambda: snapshots(timeline, few))
    print(f"  {full.height:,} rows", flush=True)


if __name__ == "__main__":
    main()
