"""A 12-period monthly backtest of a large org, and the noise floor of the demo's monthly forecasts.

    python benchmarks/bench_backtest.py --db URL_OR_PATH [--start DATE --end DATE]
    python benchmarks/bench_backtest.py --opportunities N      # build a demo org of N deals first
    python benchmarks/bench_backtest.py --oracle               # the noise floor (no database)

Backtest: on an existing database (e.g. one built once by `closewise --db /tmp/f5/m1.db demo --opportunities
1000000 --today 2026-11-22 --no-serve`), times loading the org and its exit-criteria checks, then the backtest
as `closewise backtest` runs it (12 periods plus the 12 earlier ones its calibration needs, each a deal-model
fit and a simulation), printing each period's progress, and the summary.

Oracle (`--oracle`): for each demo month (seed 7, today 2026-11-22, 2025-11 to 2026-10), as of its first
day, every deal then open and every deal the plan will create during the month is simulated forward with the
generator's own rules (`closewise.demo.lifecycle`): stage durations (conditioned on the time already spent
in the current stage), stalls, the advance-or-out logit, exit criteria left unmet, stage jumps, amount
re-scoping and discounts, and the quarter-end spike. The oracle knows far more than any forecaster can: each
deal's latent execution quality, its rep's effective skill, its qualification score, contacts, economic buyer
and competitor, how many stages it left with criteria unmet, whether it will stall in its current stage, and
which deals the plan creates during the month and when. It does not know the future draws (how long stages
take from here, whether each advance happens): the spread of the month's total under those is irreducible,
and no forecast made on the first day can beat the oracle's expected error on average. Printed per month: the
oracle's P10/P50/P90, the actual (USD at the static rates), and the expected absolute percentage error of the
oracle's P50 and of its best point for MAPE (the 1/X-weighted median) under its own distribution.

Figures and the commands that produced them: docs/forecasting.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from measure import demo_database, timed
from scipy.special import ndtr, ndtri

from closewise.demo import lifecycle as lc
from closewise.demo import org
from closewise.demo import vocabulary as vocab
from closewise.demo.deals import plan_deals
from closewise.demo.events import F_AMOUNT, F_STAGE, WON, sigmoid
from closewise.demo.leads import build_leads
from closewise.demo.plan import STATIC_RATES, CalendarLookup, DemoPlan, stream
from closewise.demo.timing import quarter_end_spike
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.ml.backtest import run_backtest
from closewise.ml.forecaster import PeriodForecaster
from closewise.services.forecast import with_criteria
from closewise.services.org_data import load_org

TODAY = date(2026, 11, 22)


def backtest(args: argparse.Namespace) -> None:
    engine = demo_database(args.db, opportunities=args.opportunities, today=TODAY, name="bench.db")
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    print(f"load average at the start: {_load()}", flush=True)
    org_data = timed("load org", lambda: load_org(engine, activities=True))
    timed("timeline", lambda: org_data.timeline)
    forecaster = timed("load exit-criteria checks", lambda: with_criteria(engine, PeriodForecaster()))
    wall, cpu = time.perf_counter(), time.process_time()

    def progress(done: int, total: int) -> None:
        print(f"  period {done:2d}/{total}: {time.perf_counter() - wall:7.1f} s wall "
              f"{time.process_time() - cpu:7.1f} s CPU   load {_load()}", flush=True)

    result = timed("backtest, 12 monthly periods", lambda: run_backtest(
        org_data, kind=PeriodKind.MONTH, start=date.fromisoformat(args.start), end=date.fromisoformat(args.end),
        known_at=datetime(TODAY.year, TODAY.month, TODAY.day), forecaster=forecaster, on_period=progress))
    print(f"total (load, timeline, checks, backtest): {time.perf_counter() - start_wall:.1f} s wall "
          f"{time.process_time() - start_cpu:.1f} s CPU   load average at the end: {_load()}", flush=True)
    summary = {k: v for k, v in result.summary().items() if k != "deal_calibration"}
    print(json.dumps(summary, indent=2))


def _load() -> str:
    """The 1, 5 and 15-minute load averages: wall times on a shared machine mean little without them."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


RATE = np.array([1.0, *STATIC_RATES.values()])
SIGMA = 0.55


@dataclass(frozen=True)
class World:
    plan: DemoPlan
    lookup: CalendarLookup
    chunk: lc.DealChunk
    effective: np.ndarray
    score: np.ndarray
    answer_stage: np.ndarray
    stage_times: list[list[tuple[float, int]]]  # per deal: (time entered, stage), in order
    amount_times: list[list[tuple[float, int]]]
    met_all: dict[tuple[int, int], bool]  # (deal, stage) -> all criteria of that stage checked


def build_world(seed: int = 7, today: date = date(2026, 11, 22), opportunities: int = 2_500) -> World:
    plan = DemoPlan(seed=seed, today=today, opportunities=opportunities, calendar=FiscalCalendar(start_month=1))
    lookup = CalendarLookup.build(plan)
    people = org.build_people(plan)
    intensity = org.rep_intensity(plan, people)
    accounts = org.build_accounts(plan, people, intensity)
    leads = build_leads(plan, people, intensity, max_converted=plan.opportunities // 2)
    deals = plan_deals(plan, people, accounts, leads, intensity)
    assert len(deals) <= plan.chunk_size, "the oracle reads one chunk"
    chunk = lc.simulate(plan, people, accounts, deals, lookup, 0, len(deals))
    # The latent draws of lifecycle.simulate, replayed in its order (the chunk keeps answers only up to today).
    n = len(deals)
    rng = stream(plan.seed, "deals", 0)
    skill = people.skill[deals.rep]
    effective = skill - 1.5 * (1.0 - people.ramp(deals.rep, deals.created))
    quality = 0.75 * effective + 0.65 * rng.standard_normal(n)
    assert np.allclose(quality, chunk.quality)
    rng.random(n), rng.integers(0, len(vocab.COMPETITORS), n)  # competitor draws (the chunk keeps them)
    segment = chunk.segment
    questions = np.where(segment == 0, lc.BANT_QUESTIONS, lc.MEDDICC_QUESTIONS)
    answered = rng.random((n, lc.MEDDICC_QUESTIONS)) < (0.45 + 0.45 * sigmoid(quality))[:, None]
    answered &= np.arange(lc.MEDDICC_QUESTIONS)[None, :] < questions[:, None]
    yes = rng.random((n, lc.MEDDICC_QUESTIONS)) < sigmoid(0.1 + 1.1 * quality)[:, None]
    rest = rng.choice(3, (n, lc.MEDDICC_QUESTIONS), p=[0.45, 0.25, 0.30]) + 1
    answers = np.where(answered, np.where(yes, 0, rest), -1)
    known = chunk.answers >= 0
    assert np.array_equal(answers[known], chunk.answers[known])
    credit = np.select([answers == 0, answers == 1], [1.0, 0.5], 0.0)
    score = credit.sum(axis=1) / questions
    answer_stage = np.where(segment == 0, 1, 2)

    events = chunk.events
    deal, kind, time, value = (np.concatenate(x) for x in (events.deal, events.kind, events.time, events.value))
    first_stage = chunk.initial[:, F_STAGE]
    stage_times = [[(float(chunk.created[i]), int(first_stage[i]))] for i in range(n)]
    amount_times = [[(float(chunk.created[i]), int(chunk.initial[i, F_AMOUNT]))] for i in range(n)]
    order = np.argsort(time, kind="stable")
    for d, k, t, v in zip(deal[order], kind[order], time[order], value[order], strict=True):
        if k == F_STAGE:
            stage_times[d].append((float(t), int(v)))
        elif k == F_AMOUNT:
            amount_times[d].append((float(t), int(v)))
    check_deal, check_key, _ = chunk.checks
    offsets = [0, *np.cumsum([len(c) for c in lc.CRITERIA])]
    stage_of_key = np.searchsorted(offsets, check_key, side="right") - 1
    counts: dict[tuple[int, int], int] = {}
    for d, k in zip(check_deal.tolist(), stage_of_key.tolist(), strict=True):
        counts[d, k] = counts.get((d, k), 0) + 1
    met_all = {key: c == len(lc.CRITERIA[key[1]]) for key, c in counts.items()}
    return World(plan, lookup, chunk, effective, score, answer_stage, stage_times, amount_times, met_all)


def _last(pairs: list[tuple[float, int]], tau: float) -> tuple[float, int, int]:
    """The (time, value, index) of the last pair at or before tau."""
    index = max(i for i, (t, _) in enumerate(pairs) if t <= tau)
    return pairs[index][0], pairs[index][1], index


def month_draws(world: World, month: Period, *, replicates: int = 2000, seed: int = 0) -> tuple[np.ndarray, float]:
    """Draws of the month's bookings (USD at static rates) as of its first day, and the generator's actual."""
    plan, chunk = world.plan, world.chunk
    start = float((month.start - plan.today).days)
    end = float((month.end - plan.today).days)
    won_value = np.array([a[-1][1] for a in world.amount_times]) / RATE[chunk.currency]
    actual = float(won_value[(chunk.status == WON) & (chunk.end >= start) & (chunk.end < end)].sum())

    created, final_end = chunk.created, chunk.end
    open_at = (created <= start) & (np.isnan(final_end) | (final_end > start))
    new = (created > start) & (created < end)
    ids = np.flatnonzero(open_at | new)
    m = len(ids)
    stage = np.empty(m, dtype=np.int64)
    entered = np.empty(m)
    amount = np.empty(m)
    skipped = np.zeros(m, dtype=np.int64)
    stalled_now = np.zeros(m, dtype=bool)
    for j, i in enumerate(ids):
        tau = max(start, float(created[i]))
        t, k, index = _last(world.stage_times[i], tau)
        stage[j], entered[j] = k, t
        amount[j] = _last(world.amount_times[i], tau)[1]
        # Stages left before tau: criteria unmet on leaving, and jumps over a stage.
        for (_, k0), (_, k1) in zip(world.stage_times[i][:index], world.stage_times[i][1:index + 1], strict=True):
            skipped[j] += (not world.met_all.get((i, k0), False)) + (k1 - k0 == 2)
        last_stage = world.stage_times[i][-1][1]
        stalled_now[j] = bool(open_at[i] and chunk.stalled[i] and last_stage == k)
    is_new = new[ids]

    rng = np.random.default_rng(seed)
    shape = (replicates, m)
    seg = chunk.segment[ids]
    eff, q, score = world.effective[ids], chunk.quality[ids], world.score[ids]
    contacts, buyer, competitor = chunk.contacts[ids], chunk.economic_buyer[ids], chunk.competitor[ids] >= 0
    answer_stage, currency = world.answer_stage[ids], chunk.currency[ids]
    k = np.broadcast_to(stage, shape).copy()
    t = np.broadcast_to(entered, shape).copy()
    value = np.broadcast_to(amount, shape).copy()
    skip = np.broadcast_to(skipped, shape).copy()
    alive = np.broadcast_to(~stalled_now, shape).copy()
    total = np.zeros(replicates)
    for step in range(8):
        live = alive & (t < end)
        if not live.any():
            break
        rows, cols = np.nonzero(live)
        kk = k[rows, cols]
        mu = np.log(lc.STAGE_MEDIAN_DAYS[seg[cols], kk]) - 0.12 * eff[cols]
        if step == 0:
            # Already in this stage for (start - entered) days: its duration is known to exceed that.
            elapsed = np.where(is_new[cols], 0.0, start - t[rows, cols])
            floor = ndtr((np.log(np.maximum(elapsed, 1e-9)) - mu) / SIGMA)
            floor = np.where(elapsed > 0, floor, 0.0)
            u = floor + rng.random(len(rows)) * (1.0 - floor)
            duration = np.exp(mu + SIGMA * ndtri(np.clip(u, 1e-12, 1 - 1e-12)))
            stall = is_new[cols] & (rng.random(len(rows)) < sigmoid(-3.3 - 0.45 * q[cols]))
        else:
            duration = np.exp(mu + SIGMA * rng.standard_normal(len(rows)))
            stall = rng.random(len(rows)) < sigmoid(-3.3 - 0.45 * q[cols])
        te = t[rows, cols]
        exit_time = te + duration
        logit = (
            np.log(lc.ADVANCE_RATE[kk] / (1 - lc.ADVANCE_RATE[kk]))
            + 0.2 * eff[cols]
            + np.where(kk >= answer_stage[cols], 1.2 * (score[cols] - 0.5), 0.0)
            + lc.SEGMENT_EFFECT[seg[cols]]
            + np.where(kk >= 2, 0.15 * (contacts[cols] - 2), 0.0)
            + np.where(kk >= 3, 0.35 * buyer[cols], 0.0)
            - 0.5 * np.minimum(skip[rows, cols], 2)
            - 0.2 * competitor[cols]
        )
        advance = ~stall & (rng.random(len(rows)) < sigmoid(logit))
        won = advance & (kk == lc.N_STAGES - 1)
        moved = quarter_end_spike(rng, exit_time, te, world.lookup)
        # Conditioned on being open on the first day: a win pulled back before it stays where it was.
        win_time = np.where(moved > start, moved, exit_time)
        inside = won & (win_time >= start) & (win_time < end)
        np.add.at(total, rows[inside], value[rows[inside], cols[inside]] / RATE[currency[cols[inside]]])
        # Moving on: criteria met on leaving, a jump, the next stage's amount change.
        moving = advance & ~won
        n_criteria = np.array([len(c) for c in lc.CRITERIA])[kk]
        met = rng.random(len(rows)) < sigmoid(1.8 + 1.1 * q[cols]) ** n_criteria
        jump = (kk <= 3) & (rng.random(len(rows)) < 0.07)
        new_stage = np.minimum(kk + np.where(jump, 2, 1), lc.N_STAGES - 1)
        factor = np.where(
            (new_stage <= 3) & (rng.random(len(rows)) < 0.25), rng.uniform(0.6, 1.5, len(rows)),
            np.where((new_stage >= 4) & (rng.random(len(rows)) < 0.30), rng.uniform(0.8, 0.97, len(rows)), 1.0))
        rescaled = np.maximum(500, np.round(value[rows, cols] * factor / 500) * 500)
        skip[rows, cols] += moving & (~met | jump)
        k[rows, cols] = np.where(moving, new_stage, kk)
        t[rows, cols] = np.where(moving, exit_time, te)
        value[rows, cols] = np.where(moving, rescaled, value[rows, cols])
        alive[rows, cols] = moving
    return total, actual


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def floor_table(months: list[Period], *, replicates: int = 4000) -> list[dict[str, float | str]]:
    world = build_world()
    rows: list[dict[str, float | str]] = []
    for n, month in enumerate(months):
        draws, actual = month_draws(world, month, replicates=replicates, seed=n)
        positive = draws[draws > 0]
        median = float(np.median(draws))
        best = weighted_median(positive, 1.0 / positive)  # minimises E|X - c| / X
        rows.append({
            "month": month.label, "actual": actual, "p10": float(np.quantile(draws, 0.1)), "p50": median,
            "p90": float(np.quantile(draws, 0.9)), "mean": float(draws.mean()), "sd": float(draws.std()),
            "expected_ape_p50": float(np.mean(np.abs(median - positive) / positive)),
            "expected_ape_best": float(np.mean(np.abs(best - positive) / positive)),
            "ape_vs_actual": abs(median - actual) / actual if actual else math.nan,
        })
    return rows


def oracle() -> None:
    calendar = FiscalCalendar(start_month=1)
    months = calendar.periods_between(date(2025, 11, 1), date(2026, 10, 1), PeriodKind.MONTH)
    table = floor_table(months)
    print(f"{'month':8} {'actual':>10} {'P10':>10} {'P50':>10} {'P90':>10} {'E[APE] P50':>11} {'E[APE] best':>11}")
    for row in table:
        print(f"{row['month']:8} {row['actual']:10,.0f} {row['p10']:10,.0f} {row['p50']:10,.0f} {row['p90']:10,.0f} "
              f"{row['expected_ape_p50']:11.1%} {row['expected_ape_best']:11.1%}")
    print(f"oracle P50: expected MAPE {np.mean([r['expected_ape_p50'] for r in table]):.1%}, "
          f"best point {np.mean([r['expected_ape_best'] for r in table]):.1%}; "
          f"on these actuals {np.mean([r['ape_vs_actual'] for r in table]):.1%}, "
          f"P10-P90 held {np.mean([r['p10'] <= r['actual'] <= r['p90'] for r in table]):.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL or SQLite path (default: build a demo org)")
    parser.add_argument("--opportunities", type=int, default=2_500)
    parser.add_argument("--start", default="2025-11-01")
    parser.add_argument("--end", default="2026-10-01")
    parser.add_argument("--oracle", action="store_true", help="print the demo's noise floor instead")
    args = parser.parse_args()
    if args.oracle:
        oracle()
    else:
        backtest(args)


if __name__ == "__main__":
    main()
