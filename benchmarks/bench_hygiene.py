"""Time the hygiene findings (every check, on every open deal) and the sweep rule at scale.

    python benchmarks/bench_hygiene.py [--opportunities N] [--seed N]   # synthetic frames
    python benchmarks/bench_hygiene.py --db URL_OR_PATH                  # an existing org (e.g. `demo --opportunities`)

Synthetic frames are built with numpy in the analytics schema, shaped like the demo org: deals created over
two years, moving through the six default stages (exponential stays, mean 15 days), won, lost or no
decision at the end unless still open; about 1.5 close-date pushes, 0.3 amount changes and 6 completed
activities per deal, and two qualification answers on 60% of the deals. It prints the time to build the
timeline (the as-of engine's, shared by every analysis and measured by bench_snapshots.py) and the time of
`findings` + `apply_snoozes` + `dead_deals` on it, for today and for a date a year back.

Measured on this machine (2 vCPU shared with other jobs, load average ~6 during the runs, Python 3.11,
Polars 1.x), 1,000,000 synthetic opportunities (5.2M changes, 6.0M activities, 1.2M answers; 6.2M timeline
rows; 48k open deals with findings):
    data synthesised in 4.6-16 s; timeline 13.7-23.7 s (not part of hygiene: built once per org and shared by
    every analysis, see bench_snapshots.py)
    findings + snoozes + sweep rule as of today: best 3.3 s of 3 (1.55-5.4 s across runs)
    the same a year back: best 1.5 s of 3
    per step (as of today, one run): runs over the timeline 1.3 s, open deals 0.9 s, won cycles 0.5 s, stage
    stays 0.6 s, pushes 0.4 s, activity recency 0.3 s, the rest < 0.1 s each; these now run as one
    `collect_all` plan.
So hygiene takes about 1.5-3.3 s of the "all analytics on 1M under 10 s" budget once the timeline exists.
The demo's 1M org has more changes (13.1M); `--db` measures on one built with `closewise demo
--opportunities 1000000` (not run here: building it takes ~7 min).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from closewise.analytics import hygiene
from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline

STAGES = ["prospecting", "qualification", "discovery", "solution", "proposal", "negotiation"]
END = datetime(2026, 11, 22)
DAY_US = 86_400_000_000


def _us(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("us"))


def synthesise(n: int, seed: int) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    end_us = int((END - datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    created = end_us - (rng.uniform(0, 730, n) * DAY_US).astype(np.int64)
    stays = (rng.exponential(15, (n, 6)) * DAY_US).astype(np.int64)
    entries = created[:, None] + np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(stays, 1)[:, :-1]], 1)
    final = rng.integers(0, 6, n)
    exit_at = entries[np.arange(n), final] + stays[np.arange(n), final]
    closed = exit_at < end_us
    won = closed & (final == 5) & (rng.random(n) < 0.6)
    status = np.where(~closed, "open", np.where(won, "won", np.where(rng.random(n) < 0.15, "no_decision", "lost")))
    ids = np.arange(1, n + 1)
    last_seen = np.minimum(exit_at, end_us)

    parts = []
    for k in range(1, 6):  # stage k entered
        mask = final >= k
        parts.append(pl.DataFrame({s.OPPORTUNITY_ID: ids[mask], s.FIELD: "stage", s.OLD_VALUE: STAGES[k - 1],
                                   s.NEW_VALUE: STAGES[k], s.CHANGED_AT: _us(entries[mask, k])}))
    parts.append(pl.DataFrame({s.OPPORTUNITY_ID: ids[closed], s.FIELD: "status", s.OLD_VALUE: "open",
                               s.NEW_VALUE: status[closed], s.CHANGED_AT: _us(exit_at[closed])}))
    # Close-date pushes: chained old -> new dates, 10-45 days each, at times inside the deal's life.
    first_close = created + 60 * DAY_US
    counts = rng.poisson(1.5, n)
    owner = np.repeat(np.arange(n), counts)
    step = rng.integers(10, 46, owner.size) * DAY_US
    cum = np.cumsum(step)
    after = cum - np.repeat(np.concatenate([[0], cum])[np.cumsum(counts) - counts], counts)
    new = first_close[owner] + after
    old = new - step
    when = created[owner] + ((last_seen - created)[owner] * np.sort(rng.random(owner.size))).astype(np.int64)
    close_dates = pl.DataFrame({"o": _us(old), "n": _us(new)}).select(
        pl.col("o").dt.strftime("%Y-%m-%d"), pl.col("n").dt.strftime("%Y-%m-%d"))
    parts.append(pl.DataFrame({s.OPPORTUNITY_ID: ids[owner], s.FIELD: "close_date", s.OLD_VALUE: close_dates["o"],
                               s.NEW_VALUE: close_dates["n"], s.CHANGED_AT: _us(when)}))
    final_close = first_close + np.bincount(owner, weights=step, minlength=n).astype(np.int64)
    # Amount changes (one at most), x U(0.5, 1.6).
    amount0 = np.round(rng.lognormal(10.5, 0.8, n), -2)
    changed = rng.random(n) < 0.3
    amount = np.where(changed, np.round(amount0 * rng.uniform(0.5, 1.6, n), -2), amount0)
    at = created + ((last_seen - created) * rng.random(n)).astype(np.int64)
    parts.append(pl.DataFrame({s.OPPORTUNITY_ID: ids[changed], s.FIELD: "amount",
                               s.OLD_VALUE: pl.Series(amount0[changed]).cast(pl.String),
                               s.NEW_VALUE: pl.Series(amount[changed]).cast(pl.String),
                               s.CHANGED_AT: _us(at[changed])}))
    changes = pl.concat(parts).sort(s.CHANGED_AT)

    opportunities = pl.DataFrame({
        s.ID: ids, s.OWNER_ID: rng.integers(1, 5000, n), s.ACCOUNT_ID: rng.integers(1, 400_000, n),
        s.STAGE: np.array(STAGES)[final], s.STATUS: status, s.AMOUNT: amount, s.CURRENCY: "USD",
        s.CLOSE_DATE: _us(np.where(closed, exit_at, final_close)).dt.date(),
        s.FORECAST_CATEGORY: "pipeline", s.PROBABILITY: 20.0,
        s.NEXT_STEP: pl.Series(["call the buyer"] * n, dtype=pl.String).scatter(
            np.flatnonzero(rng.random(n) < 0.1), None),
        s.CREATED_AT: _us(created), s.CLOSED_AT: _us(np.where(closed, exit_at, 0)),
        "segment": np.array(["smb", "mid_market", "enterprise"])[rng.integers(0, 3, n)],
    }).with_columns(pl.when(pl.col(s.STATUS) != "open").then(pl.col(s.CLOSED_AT)).alias(s.CLOSED_AT))

    per = rng.poisson(6, n)
    who = np.repeat(np.arange(n), per)
    activities = pl.DataFrame({
        "opportunity_id": ids[who],
        "occurred_at": _us(created[who] + ((last_seen - created)[who] * rng.random(who.size)).astype(np.int64)),
        "completed": True,
    }).sort("opportunity_id", "occurred_at")
    asked = np.repeat(np.flatnonzero(rng.random(n) < 0.6), 2)
    answers = pl.DataFrame({"opportunity_id": ids[asked],
                            "answered_at": _us(created[asked] + (rng.uniform(0, 20, asked.size) * DAY_US))})
    stages = pl.DataFrame({"key": STAGES, "days_to_rot": [21, 21, 30, 30, 21, 14],
                           "requalify_days": [30, 30, 30, 21, 14, 7]})
    return {"opportunities": opportunities, "changes": changes, "activities": activities, "answers": answers,
            "stages": stages}


def from_database(url: str) -> dict[str, pl.DataFrame]:
    from closewise.db.engine import make_engine
    from closewise.db.hygiene import load_answers
    from closewise.services.org_data import load_org
    from closewise.settings import database_url_from

    engine = make_engine(database_url_from(url))
    org = load_org(engine)
    with engine.connect() as connection:
        answers = load_answers(connection)
    engine.dispose()
    return {"opportunities": org.opportunities, "changes": org.changes, "activities": org.activities,
            "answers": answers, "stages": org.stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", help="read an existing org instead of synthesising one")
    parser.add_argument("--repeat", type=int, default=3, help="runs per date (the best is the figure)")
    args = parser.parse_args()

    started = time.perf_counter()
    data = from_database(args.db) if args.db else synthesise(args.opportunities, args.seed)
    print(f"data: {data['opportunities'].height:,} opportunities, {data['changes'].height:,} changes, "
          f"{data['activities'].height:,} activities, {data['answers'].height:,} answers "
          f"({time.perf_counter() - started:.1f} s)")
    started = time.perf_counter()
    timeline = build_timeline(data["opportunities"], data["changes"])
    print(f"timeline: {timeline.height:,} rows in {time.perf_counter() - started:.2f} s (shared by all analytics)")
    snoozes = pl.DataFrame(schema=hygiene.SNOOZE_SCHEMA)
    for label, as_of in (("today", END), ("a year back", END - timedelta(days=365))):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            found = hygiene.findings(timeline, as_of=as_of, stages=data["stages"], changes=data["changes"],
                                     activities=data["activities"], answers=data["answers"])
            found = hygiene.apply_snoozes(found, snoozes, as_of=as_of)
            dead = hygiene.dead_deals(found)
            times.append(time.perf_counter() - started)
        print(f"findings as of {label} ({as_of:%Y-%m-%d}): best {min(times):.2f} s, first {times[0]:.2f} s "
              f"of {args.repeat}; {found['id'].n_unique():,} deals with {found.height:,} findings, "
              f"{dead.height:,} dead")

if __name__ == "__main__":
    main()
