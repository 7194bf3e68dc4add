"""The history features' as-of reads (`ml.history_features`) against the rule applied one row at a time.

The running totals are read with a binary search per row (`_last_at_or_before`) and the owners' records from
running sums of closing events; both must give what a direct reading gives: the last row at or before each
moment (the last of equal times, which holds everything known then), and per date the owner's deals closed
at that date in the snapshot (`analytics.snapshots.snapshot`), reopened deals and owner changes included.
Stage norms must be the Polars medians of the visits finished by each date, and the labels of a few deals'
examples (read from those deals' logs only) those read from the whole org. The orgs are random, with many ties
in time (changes at one instant, several activities at one instant).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from closewise.analytics import schema as s
from closewise.analytics.snapshots import snapshot
from closewise.domain.changes import encode
from closewise.domain.enums import ChangeField
from closewise.ml import features as f
from closewise.ml import history_features as hf
from closewise.ml.frames import OrgFrames
from closewise.ml.training_set import label_examples

T0 = datetime(2025, 1, 1)
STAGES = pl.DataFrame({"key": ["a", "b", "c"], "name": ["A", "B", "C"], "order": [1, 2, 3],
                       "default_probability": [10.0, 40.0, 70.0]})
RATES = pl.DataFrame({"currency": ["USD"], "rate": [1.0], "start_date": [date(2020, 1, 1)]})


@pytest.mark.parametrize("seed", range(5))
def test_last_at_or_before_is_the_last_row_at_or_before(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(0, 30, 400))
    times = np.concatenate([np.sort(rng.integers(0, 20, int((keys == k).sum()))) for k in np.unique(keys)])
    left_keys, moments = rng.integers(-1, 32, 300), rng.integers(-2, 22, 300)
    found = hf._last_at_or_before(keys, times, left_keys, moments)
    for key, moment, index in zip(left_keys, moments, found, strict=True):
        matches = np.flatnonzero((keys == key) & (times <= moment))
        assert index == (matches[-1] if matches.size else -1)


def _random_org(seed: int, n: int = 60) -> OrgFrames:
    """Deals that close, reopen, close again and change owner (also after closing), with pushes and activities,
    many of them at one shared instant."""
    rng = np.random.default_rng(seed)
    opps: list[dict[str, object]] = []
    changes: list[tuple[int, str, str | None, str | None, datetime]] = []
    activities: list[tuple[int, str, datetime, int]] = []
    for deal in range(1, n + 1):
        created = T0 + timedelta(days=int(rng.integers(0, 60)))
        owner, status, close, stage = int(rng.integers(1, 6)), "open", date(2025, 4, 1), "a"
        moment = created
        for _ in range(int(rng.integers(0, 7))):
            moment += timedelta(days=int(rng.integers(0, 12)))  # 0: several changes at one instant
            kind = rng.integers(0, 4)
            if kind == 0:
                new_status = "open" if status != "open" else str(rng.choice(["won", "lost"]))
                changes.append((deal, "status", status, new_status, moment))
                status = new_status
            elif kind == 1:
                new_owner = int(rng.integers(1, 6))
                changes.append((deal, "owner_id", encode(ChangeField.OWNER, owner), encode(ChangeField.OWNER,
                                                                                            new_owner), moment))
                owner = new_owner
            elif kind == 2:
                new_close = close + timedelta(days=int(rng.integers(-10, 30)))
                changes.append((deal, "close_date", close.isoformat(), new_close.isoformat(), moment))
                close = new_close
            else:
                new_stage = str(rng.choice(["a", "b", "c"]))
                changes.append((deal, "stage", stage, new_stage, moment))
                stage = new_stage
        for _ in range(int(rng.integers(0, 6))):
            when = created + timedelta(days=int(rng.integers(0, 5)) * 7)  # whole weeks: ties with each other
            activities.append((deal, str(rng.choice(["call", "email", "meeting", "task"])), when,
                               int(rng.integers(1, 4))))
        opps.append({s.ID: deal, s.OWNER_ID: owner, s.ACCOUNT_ID: None, s.STAGE: stage,
                     s.STATUS: status, s.AMOUNT: 1000.0, s.CURRENCY: "USD", s.CLOSE_DATE: close,
                     s.FORECAST_CATEGORY: "pipeline", s.PROBABILITY: 20.0, s.NEXT_STEP: None, s.CREATED_AT: created,
                     s.CLOSED_AT: moment if status != "open" else None})
    opportunities = pl.DataFrame(opps, schema=dict(s.OPPORTUNITY_SCHEMA))
    log = pl.DataFrame(changes, schema=dict(s.CHANGE_SCHEMA), orient="row").sort(s.CHANGED_AT, maintain_order=True)
    acts = pl.DataFrame(activities, schema={"opportunity_id": pl.Int64(), "type": pl.String(),
                                            "occurred_at": s.TIMESTAMP, "contact_id": pl.Int64()}, orient="row")
    return OrgFrames(opportunities, log, acts, STAGES, RATES, "USD")


DATES = [T0 + timedelta(days=7 * k) for k in range(1, 20)]


@pytest.mark.parametrize("seed", range(4))
def test_owner_record_is_read_from_the_snapshot_of_each_date(seed: int) -> None:
    """owner_win_rate = (owner's wins + m x org rate) / (owner's closed + m) over the deals closed in the
    snapshot at the date (m = OWNER_PRIOR); owner_pushes likewise with each deal's pushes before it closed."""
    frames = _random_org(seed)
    rows = f.features_at(frames, DATES)
    pushes = dict(zip(*hf._pushes_before_first_close(frames).select(s.ID, "_pushes").get_columns(), strict=True))
    m = hf.OWNER_PRIOR
    checked = 0
    for day in DATES:
        closed = snapshot(frames.timeline, day).filter(pl.col(s.STATUS) != "open")
        ids, owners, won = (closed[c].to_list() for c in (s.ID, s.OWNER_ID, s.STATUS))
        org_rate = sum(w == "won" for w in won) / len(ids) if ids else None
        org_pushes = sum(pushes.get(i, 0.0) for i in ids) / len(ids) if ids else None
        for row in rows.filter(pl.col(s.AS_OF) == day).iter_rows(named=True):
            mine = [k for k, o in enumerate(owners) if o == row[s.OWNER_ID]]
            if org_rate is None or org_pushes is None:
                assert row["owner_win_rate"] is None and row["owner_pushes"] is None
                continue
            wins = sum(won[k] == "won" for k in mine)
            assert row["owner_win_rate"] == (wins + m * org_rate) / (len(mine) + m)
            owner_pushes = sum(pushes.get(ids[k], 0.0) for k in mine)
            assert row["owner_pushes"] == (owner_pushes + m * org_pushes) / (len(mine) + m)
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("seed", range(4))
def test_activity_counts_are_those_at_or_before_each_date(seed: int) -> None:
    """Activities at the very instant of the date count (all of them, ties included); the 30-day counts are
    those in (date - 30 days, date]."""
    frames = _random_org(seed)
    rows = f.features_at(frames, DATES)
    acts = frames.activities
    for row in rows.iter_rows(named=True):
        mine = acts.filter(pl.col("opportunity_id") == row[s.ID], pl.col("occurred_at") <= row[s.AS_OF])
        recent = mine.filter(pl.col("occurred_at") > row[s.AS_OF] - timedelta(days=hf.ACTIVITY_WINDOW_DAYS))
        assert row["activities"] == mine.height
        assert row["calls_30d"] == recent.filter(pl.col("type") == "call").height
        assert row["contacts"] == mine["contact_id"].n_unique()
    assert rows.height > 100


@pytest.mark.parametrize("seed", range(4))
def test_stage_norms_are_the_medians_of_the_visits_finished_by_each_date(seed: int) -> None:
    frames = _random_org(seed, n=120)
    visits = hf._finished_visits(frames)
    norms = hf._stage_norms(frames, DATES)
    expected = pl.concat([
        visits.filter(pl.col("left_at") <= day).group_by(s.STAGE).agg(pl.col("days").median().alias("_norm"))
        .with_columns(pl.lit(day, dtype=s.TIMESTAMP).alias(s.AS_OF)) for day in DATES
    ]).select(s.AS_OF, s.STAGE, pl.col("_norm").clip(lower_bound=0.5))
    assert visits.height > 30
    assert norms.sort(s.AS_OF, s.STAGE).equals(expected.sort(s.AS_OF, s.STAGE))
    assert hf._stage_norms(frames, DATES[3:5]).equals(norms.filter(pl.col(s.AS_OF).is_in(DATES[3:5])))  # kept


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10])
def test_prefix_median_is_polars_median(count: int) -> None:
    values = np.random.default_rng(count).random(12) * 1e3
    assert hf._prefix_median(values, count) == pl.Series(values[:count]).median()
    assert hf._prefix_median(values, 0) is None


@pytest.mark.parametrize("seed", range(3))
def test_labels_of_a_few_deals_are_those_of_the_whole_org(seed: int) -> None:
    """`label_examples` reads only the examples' deals when they are few (a large org's sampled training set):
    each deal's outcome comes from its own log, so the labels are those read from the whole org."""
    frames = _random_org(seed, n=120)
    examples = f.features_at(frames, DATES[:8])
    few = examples.filter(pl.col(s.ID) % 5 == 0)
    assert 0 < few[s.ID].n_unique() < frames.opportunities.height // 2 < examples[s.ID].n_unique()
    cutoff = DATES[12]
    whole = label_examples(examples, frames, cutoff=cutoff).filter(pl.col(s.ID) % 5 == 0)
    assert label_examples(few, frames, cutoff=cutoff).equals(whole)
    assert whole["resolved"].sum() > 0
