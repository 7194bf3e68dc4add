"""The as-of engine (analytics/snapshots.py) against the reconstruction rule of domain/changes.py.

The property tests draw opportunities with consistent change histories (each change's old value is the
field's previous new value; the current row holds the last new values) and compare the engine with the rule
applied one value at a time (`_rule_state`), and with itself on a truncated log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closewise.analytics import schema as s
from closewise.analytics.history import deal_outcomes
from closewise.analytics.snapshots import build_timeline, is_closed, snapshot, snapshots
from closewise.domain.changes import TRACKED_FIELDS, Value, decode, encode
from closewise.domain.enums import ChangeField, ForecastCategory, OpportunityStatus
from closewise.errors import InvalidInput

T0 = datetime(2024, 1, 1)
TRACKED = [f.value for f in TRACKED_FIELDS]
ALWAYS = datetime(2100, 1, 1)  # after every generated change


# --- building frames -------------------------------------------------------------------------------------


@dataclass
class Opp:
    id: int
    created_at: datetime
    initial: dict[str, Value]
    # (when, field, new value), in log order
    changes: list[tuple[datetime, str, Value]] = field(default_factory=list)
    closed_at: datetime | None = None

    def state(self, until: datetime) -> dict[str, Value]:
        """The generator's own account: the last value written at or before `until` (log order)."""
        values = dict(self.initial)
        for when, name, value in self.changes:
            if when <= until:
                values[name] = value
        return values


def _row(opp: Opp, values: dict[str, Value]) -> dict[str, Any]:
    return {
        s.ID: opp.id,
        s.ACCOUNT_ID: None,
        s.CURRENCY: "EUR",
        s.CREATED_AT: opp.created_at,
        s.CLOSED_AT: opp.closed_at,
        **values,
    }


def _row_at(opp: Opp, until: datetime) -> dict[str, Any]:
    """The record at `until`. DESIGN: a deal closed without a status change was open until its closing."""
    row = _row(opp, opp.state(until))
    closing = max(opp.closed_at or opp.created_at, opp.created_at)
    logged = [when for when, name, _ in opp.changes if name == "status"]
    if not any(when <= until for when in logged) and row["status"] not in (None, "open"):
        if logged:
            # A later status change's old value says it was closed since creation (closed_at then tells
            # nothing known at `until`: the implied change falls on the creation, as the full log has it).
            row |= {s.CLOSED_AT: None}
        elif closing > until:
            row |= {"status": "open", s.CLOSED_AT: None}  # closed later: still open at `until`
    return row


def _frames(opps: list[Opp], until: datetime = ALWAYS) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Opportunities (state at `until`) and the log of changes at or before `until`, in log order."""
    rows = [_row_at(opp, until) for opp in opps]
    log: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for opp in opps:
        previous = dict(opp.initial)
        for seq, (when, name, value) in enumerate(opp.changes):
            entry = {
                s.OPPORTUNITY_ID: opp.id,
                s.FIELD: name,
                s.OLD_VALUE: encode(ChangeField(name), previous[name]),
                s.NEW_VALUE: encode(ChangeField(name), value),
                s.CHANGED_AT: when,
            }
            previous[name] = value
            if when <= until:
                log.append((when, opp.id, seq, entry))
    # Log order: by time; one opportunity's ties keep the order they were made in.
    log.sort(key=lambda item: (item[0], item[1], item[2]))
    opportunities = pl.DataFrame(rows, schema=dict(s.OPPORTUNITY_SCHEMA), orient="row")
    changes = pl.DataFrame([item[3] for item in log], schema=dict(s.CHANGE_SCHEMA), orient="row")
    return opportunities, changes


def _rule_state(opportunities: pl.DataFrame, changes: pl.DataFrame, as_of: datetime) -> dict[int, dict[str, Value]]:
    """domain/changes.py's rule, one opportunity and field at a time, in plain Python."""
    states: dict[int, dict[str, Value]] = {}
    log = changes.rows(named=True)
    for opp in opportunities.rows(named=True):
        if opp[s.CREATED_AT] > as_of:
            continue
        mine = [
            (max(c[s.CHANGED_AT], opp[s.CREATED_AT]), i, c)
            for i, c in enumerate(log)
            if c[s.OPPORTUNITY_ID] == opp[s.ID]
        ]
        mine.sort(key=lambda item: (item[0], item[1]))
        state: dict[str, Value] = {}
        for name in TRACKED:
            of_field = [(when, c) for when, _, c in mine if c[s.FIELD] == name]
            before = [c for when, c in of_field if when <= as_of]
            if before:
                state[name] = decode(ChangeField(name), before[-1][s.NEW_VALUE])
            elif of_field:
                state[name] = decode(ChangeField(name), of_field[0][1][s.OLD_VALUE])
            elif name == "status" and opp[name] not in (None, "open"):
                # DESIGN: closed without history means open from creation, closed at its close date.
                closing = opp[s.CLOSED_AT] or opp[s.CREATED_AT]
                state[name] = opp[name] if max(closing, opp[s.CREATED_AT]) <= as_of else "open"
            else:
                state[name] = opp[name]
        states[opp[s.ID]] = state
    return states


def _engine_state(frame: pl.DataFrame) -> dict[int, dict[str, Value]]:
    return {row[s.ID]: {name: row[name] for name in TRACKED} for row in frame.rows(named=True)}


# --- strategies ------------------------------------------------------------------------------------------

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "stage": st.sampled_from(["prospecting", "discovery", "proposal"]),
    "status": st.sampled_from([status.value for status in OpportunityStatus]),
    "amount": st.none() | st.floats(0, 1e9, allow_nan=False) | st.sampled_from([0.1, 1500.0, 1e6]),
    "close_date": st.none() | st.dates(date(2023, 1, 1), date(2026, 12, 31)),
    "forecast_category": st.none() | st.sampled_from([c.value for c in ForecastCategory]),
    "owner_id": st.none() | st.integers(1, 5),
    "probability": st.none() | st.floats(0, 1, allow_nan=False),
    # Empty text is how the log writes None, so a next step is never "".
    "next_step": st.none() | st.text(min_size=1, max_size=8),
}
# Half-hour steps: ties between changes, creations and as-of dates happen often.
_times = st.integers(-4, 40).map(lambda n: T0 + timedelta(minutes=30 * n))


@st.composite
def _opportunity(draw: st.DrawFn, opp_id: int) -> Opp:
    created_at = draw(st.integers(0, 20).map(lambda n: T0 + timedelta(minutes=30 * n)))
    initial = {name: draw(strategy) for name, strategy in _VALUES.items()}
    initial["status"] = draw(st.sampled_from(["open", "open", "won"]))
    events = draw(st.lists(st.tuples(_times, st.sampled_from(TRACKED)), max_size=8))
    changes = [(when, name, draw(_VALUES[name])) for when, name in sorted(events, key=lambda e: e[0])]
    return Opp(opp_id, created_at, initial, changes, draw(st.none() | _times))


@st.composite
def _portfolio(draw: st.DrawFn) -> list[Opp]:
    count = draw(st.integers(0, 5))
    return [draw(_opportunity(opp_id)) for opp_id in range(1, count + 1)]


_settings = settings(deadline=None, max_examples=120)


# --- properties ------------------------------------------------------------------------------------------


@_settings
@given(_portfolio())
def test_after_every_change_the_snapshot_is_the_current_row(opps: list[Opp]) -> None:
    opportunities, changes = _frames(opps)
    current = snapshot(build_timeline(opportunities, changes), ALWAYS).sort(s.ID)
    assert current.select(s.ID, *TRACKED).equals(opportunities.sort(s.ID).select(s.ID, *TRACKED))


@_settings
@given(_portfolio(), _times)
def test_snapshot_follows_the_rule_and_uses_nothing_after_as_of(opps: list[Opp], as_of: datetime) -> None:
    opportunities, changes = _frames(opps)
    got = snapshot(build_timeline(opportunities, changes), as_of)

    # (c) only what existed at as_of, (the rule) value by value
    assert _engine_state(got) == _rule_state(opportunities, changes, as_of)
    assert set(got[s.ID]) == {opp.id for opp in opps if opp.created_at <= as_of}

    # (b) the same as from a log that ends at as_of, whose current rows are the state at as_of
    known_opps, known_changes = _frames([opp for opp in opps if opp.created_at <= as_of], until=as_of)
    from_known = snapshot(build_timeline(known_opps, known_changes), ALWAYS)
    columns = [s.ID, s.VALID_FROM, *TRACKED]
    assert got.sort(s.ID).select(columns).equals(from_known.sort(s.ID).select(columns))
    assert got.filter(pl.col(s.CLOSED_AT) > as_of).is_empty()


@_settings
@given(_portfolio(), st.lists(_times, max_size=6))
def test_snapshots_at_many_dates_equal_one_snapshot_per_date(opps: list[Opp], as_ofs: list[datetime]) -> None:
    timeline = build_timeline(*_frames(opps))
    many = snapshots(timeline, as_ofs)
    assert set(many[s.AS_OF]) <= set(as_ofs)
    for as_of in set(as_ofs):
        one = snapshot(timeline, as_of).sort(s.ID)
        assert many.filter(pl.col(s.AS_OF) == as_of).drop(s.AS_OF).equals(one)


@_settings
@given(_portfolio())
def test_timeline_intervals_tile_each_opportunity_from_creation(opps: list[Opp]) -> None:
    timeline = build_timeline(*_frames(opps))
    for opp in opps:
        rows = timeline.filter(pl.col(s.ID) == opp.id)
        starts, ends = rows[s.VALID_FROM].to_list(), rows[s.VALID_TO].to_list()
        assert starts[0] == opp.created_at
        assert ends[:-1] == starts[1:] and ends[-1] is None
        assert starts == sorted(set(starts))


# --- examples --------------------------------------------------------------------------------------------


def _one(initial: dict[str, Value] | None = None, **kwargs: Any) -> Opp:
    values: dict[str, Value] = {
        "stage": "discovery",
        "status": "open",
        "amount": 10_000.0,
        "close_date": date(2024, 3, 31),
        "forecast_category": "pipeline",
        "owner_id": 7,
        "probability": 0.2,
        "next_step": "demo",
    }
    return Opp(id=1, created_at=T0, initial=values | (initial or {}), **kwargs)


def _state_at(opps: list[Opp], when: datetime) -> dict[str, Any]:
    rows = snapshot(build_timeline(*_frames(opps)), when).rows(named=True)
    assert len(rows) == 1
    return rows[0]


def test_close_date_pushed_twice() -> None:
    # Created 1 Jan to close 31 Mar; pushed to 30 Apr on 15 Feb, then to 30 Jun on 20 Mar.
    opp = _one(
        changes=[
            (datetime(2024, 2, 15, 10), "close_date", date(2024, 4, 30)),
            (datetime(2024, 3, 20, 9), "close_date", date(2024, 6, 30)),
        ]
    )
    timeline = build_timeline(*_frames([opp]))
    assert timeline[s.CLOSE_DATE].to_list() == [date(2024, 3, 31), date(2024, 4, 30), date(2024, 6, 30)]
    # Before the first push: the first change's old value, the original date.
    assert _state_at([opp], datetime(2024, 2, 1))["close_date"] == date(2024, 3, 31)
    # A change made exactly at as_of counts.
    assert _state_at([opp], datetime(2024, 2, 15, 10))["close_date"] == date(2024, 4, 30)
    assert _state_at([opp], datetime(2024, 2, 15, 9, 59))["close_date"] == date(2024, 3, 31)
    # Fields that never changed keep their current value throughout.
    assert _state_at([opp], datetime(2024, 3, 31))["amount"] == 10_000.0
    assert _state_at([opp], datetime(2024, 3, 31))["close_date"] == date(2024, 6, 30)


def test_changes_at_one_instant_make_one_state_and_the_last_written_wins() -> None:
    at = datetime(2024, 2, 1)
    opp = _one(changes=[(at, "stage", "proposal"), (at, "amount", 12_000.0), (at, "amount", 15_000.0)])
    timeline = build_timeline(*_frames([opp]))
    # Two rows: the state from creation, and one for everything changed on 1 Feb.
    assert timeline.height == 2
    assert (timeline[s.STAGE][1], timeline[s.AMOUNT][1]) == ("proposal", 15_000.0)
    assert timeline[s.AMOUNT][0] == 10_000.0  # the old value of the first of the two amount changes


def test_a_change_stamped_before_creation_counts_from_creation() -> None:
    opp = _one(changes=[(T0 - timedelta(hours=1), "stage", "proposal")])
    timeline = build_timeline(*_frames([opp]))
    assert timeline.height == 1
    assert timeline.row(0, named=True)[s.VALID_FROM] == T0
    assert timeline[s.STAGE].to_list() == ["proposal"]
    assert snapshot(timeline, T0 - timedelta(seconds=1)).is_empty()  # not yet created


def test_closed_at_is_when_the_current_closed_run_began() -> None:
    lost, reopened, won = datetime(2024, 2, 1), datetime(2024, 2, 10), datetime(2024, 3, 1)
    opp = _one(
        changes=[
            (lost, "status", "lost"),
            (reopened, "status", "open"),
            (datetime(2024, 2, 20), "amount", 9_000.0),
            (won, "status", "won"),
            (datetime(2024, 3, 5), "next_step", "kick-off"),
        ],
        closed_at=won,
    )
    timeline = build_timeline(*_frames([opp]))
    assert timeline[s.CLOSED_AT].to_list() == [None, lost, None, None, won, won]
    assert timeline.filter(is_closed())[s.STATUS].to_list() == ["lost", "won", "won"]
    assert _state_at([opp], datetime(2024, 2, 5))[s.CLOSED_AT] == lost
    assert _state_at([opp], datetime(2024, 2, 25))[s.CLOSED_AT] is None


def test_closed_without_history_is_open_until_its_closing() -> None:
    # DESIGN: imported without history, a deal is open from its creation and closed at its close date.
    won = datetime(2024, 2, 1)
    opp = _one({"status": "won"}, closed_at=won)
    before = _state_at([opp], datetime(2024, 1, 15))
    assert before[s.STATUS] == "open" and before[s.CLOSED_AT] is None
    assert _state_at([opp], won)[s.STATUS] == "won"
    after = _state_at([opp], datetime(2024, 2, 15))
    assert after[s.STATUS] == "won" and after[s.CLOSED_AT] == won


def test_closed_without_history_agrees_with_deal_outcomes() -> None:
    won = datetime(2024, 2, 1)
    opportunities, changes = _frames([_one({"status": "won"}, closed_at=won)])
    timeline = build_timeline(opportunities, changes)
    for as_of in (datetime(2024, 1, 15), won, datetime(2024, 2, 15)):
        row = snapshot(timeline, as_of).row(0, named=True)
        outcome = deal_outcomes(opportunities, changes, as_of=as_of).row(0, named=True)
        assert (row[s.STATUS], row[s.CLOSED_AT]) == (outcome[s.STATUS], outcome[s.CLOSED_AT])


def test_aware_as_of_is_read_in_utc() -> None:
    opp = _one(changes=[(datetime(2024, 2, 1, 12), "stage", "proposal")])
    # 13:00 in UTC+2 is 11:00 UTC, before the change; 15:00 in UTC+2 is after it.
    plus_two = timezone(timedelta(hours=2))
    assert _state_at([opp], datetime(2024, 2, 1, 13, tzinfo=plus_two))["stage"] == "discovery"
    assert _state_at([opp], datetime(2024, 2, 1, 15, tzinfo=plus_two))["stage"] == "proposal"
    assert _state_at([opp], datetime(2024, 2, 1, 12, tzinfo=UTC))["stage"] == "proposal"


def test_untracked_changes_and_unknown_opportunities_are_ignored() -> None:
    opportunities, changes = _frames([_one()])
    extra = pl.DataFrame(
        [
            (1, "currency", "EUR", "USD", datetime(2024, 2, 1)),
            (99, "stage", "a", "b", datetime(2024, 2, 1)),
        ],
        schema=dict(s.CHANGE_SCHEMA),
        orient="row",
    )
    timeline = build_timeline(opportunities, pl.concat([changes, extra]))
    assert timeline.height == 1 and timeline[s.CURRENCY].to_list() == ["EUR"]


def test_extra_opportunity_columns_are_carried_along() -> None:
    opportunities, changes = _frames([_one(changes=[(datetime(2024, 2, 1), "stage", "proposal")])])
    timeline = build_timeline(opportunities.with_columns(pl.lit("Acme renewal").alias("name")), changes)
    assert timeline["name"].to_list() == ["Acme renewal", "Acme renewal"]


def test_empty_frames_give_an_empty_timeline() -> None:
    timeline = build_timeline(s.empty_opportunities(), s.empty_changes())
    assert timeline.is_empty()
    assert snapshot(timeline, T0).is_empty()
    assert snapshots(timeline, [T0, ALWAYS]).is_empty()


def test_a_missing_or_mistyped_column_is_named() -> None:
    opportunities, changes = _frames([_one()])
    with pytest.raises(InvalidInput, match="'close_date'"):
        build_timeline(opportunities.drop(s.CLOSE_DATE), changes)
    with pytest.raises(InvalidInput, match="'changed_at' is String"):
        build_timeline(opportunities, changes.with_columns(pl.col(s.CHANGED_AT).cast(pl.String)))
    with pytest.raises(InvalidInput, match="more than once"):
        build_timeline(pl.concat([opportunities, opportunities]), changes)


def test_an_unreadable_logged_value_is_named() -> None:
    opportunities, _ = _frames([_one()])
    bad = pl.DataFrame(
        [(1, "amount", "10000.0", "lots", datetime(2024, 2, 1))], schema=dict(s.CHANGE_SCHEMA), orient="row"
    )
    with pytest.raises(InvalidInput, match="'lots' as amount"):
        build_timeline(opportunities, bad)


def test_a_timeline_of_some_fields_gives_the_same_states_of_those_fields() -> None:
    opp = _one(
        changes=[
            (datetime(2024, 2, 1), "forecast_category", "commit"),
            (datetime(2024, 2, 5), "stage", "proposal"),
            (datetime(2024, 3, 1), "status", "won"),
        ]
    )
    opportunities, changes = _frames([opp])
    full = build_timeline(opportunities, changes)
    some = build_timeline(opportunities, changes, fields=["stage", "amount"])
    assert s.FORECAST_CATEGORY not in some.columns and s.STATUS in some.columns
    assert some.height == full.height - 1  # the forecast category change starts no state row
    for at in (T0, datetime(2024, 2, 2), datetime(2024, 2, 6), ALWAYS):
        assert (
            snapshot(some, at)
            .drop(s.VALID_FROM)
            .equals(snapshot(full, at).select(snapshot(some, at).columns).drop(s.VALID_FROM))
        )
    with pytest.raises(InvalidInput, match="colour is not a tracked field"):
        build_timeline(opportunities, changes, fields=["colour"])
