"""db/frames.py on a real database (SQLite, or PostgreSQL with CLOSEWISE_TEST_DATABASE_URL), and the as-of
engine over what it loads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.analytics import schema as s
from closewise.analytics.snapshots import build_timeline, snapshot
from closewise.db import tables
from closewise.db.frames import load_changes, load_opportunities
from closewise.errors import DatabaseError

CREATED = datetime(2024, 1, 1, 9, tzinfo=UTC)
REPRICED = datetime(2024, 2, 1, 10, tzinfo=UTC)  # stage and amount changed together
PUSHED = datetime(2024, 2, 20, 10, tzinfo=UTC)
WON = datetime(2024, 3, 10, 16, tzinfo=UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _opportunity(opp_id: int, **values: object) -> dict[str, object]:
    return {
        "id": opp_id,
        "source": "test",
        "external_id": f"opp-{opp_id}",
        "name": f"Deal {opp_id}",
        "currency": "EUR",
        **values,
    }


def _change(opp_id: int, field: str, old: str | None, new: str | None, at: datetime) -> dict[str, object]:
    return {
        "opportunity_id": opp_id,
        "field": field,
        "old_value": old,
        "new_value": new,
        "changed_at": at,
        "source": "app",
    }


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    """Deal 1: created 1 Jan in discovery at 10,000 closing 29 Feb; on 1 Feb moved to proposal at 12,000.50;
    on 20 Feb pushed to 15 Mar; won on 10 Mar. Deal 2: created 1 Mar, never changed."""
    with engine.begin() as connection:
        connection.execute(
            sa.insert(tables.opportunities),
            [
                _opportunity(
                    1,
                    stage="proposal",
                    status="won",
                    amount=12_000.5,
                    close_date=date(2024, 3, 15),
                    created_at=CREATED,
                    closed_at=WON,
                    forecast_category="closed",
                    probability=1.0,
                    next_step=None,
                ),
                _opportunity(
                    2,
                    stage="discovery",
                    status="open",
                    amount=None,
                    close_date=None,
                    created_at=datetime(2024, 3, 1, tzinfo=UTC),
                    closed_at=None,
                    forecast_category="pipeline",
                    probability=0.1,
                    next_step="Intro call — Zoë",
                ),
            ],
        )
        connection.execute(
            sa.insert(tables.opportunity_changes),
            [
                _change(1, "stage", "discovery", "proposal", REPRICED),
                _change(1, "amount", "10000.0", "12000.5", REPRICED),
                _change(1, "close_date", "2024-02-29", "2024-03-15", PUSHED),
                _change(1, "status", "open", "won", WON),
                _change(1, "forecast_category", "commit", "closed", WON),
                _change(1, "probability", "0.6", "1.0", WON),
            ],
        )
    return engine


def test_frames_have_the_analytics_schema_and_values(seeded: Engine) -> None:
    with seeded.connect() as connection:
        opportunities = load_opportunities(connection)
        changes = load_changes(connection)
    assert dict(opportunities.schema) == dict(s.OPPORTUNITY_SCHEMA)
    assert dict(changes.schema) == dict(s.CHANGE_SCHEMA)
    s.validate_opportunities(opportunities)
    s.validate_changes(changes)

    first, second = opportunities.rows(named=True)
    assert first[s.AMOUNT] == 12_000.5 and first[s.CLOSE_DATE] == date(2024, 3, 15)
    assert first[s.CREATED_AT] == _naive(CREATED) and first[s.CLOSED_AT] == _naive(WON)
    assert first[s.OWNER_ID] is None and first[s.NEXT_STEP] is None
    assert second[s.AMOUNT] is None and second[s.CLOSED_AT] is None
    assert second[s.NEXT_STEP] == "Intro call — Zoë"

    # In the order written: by time, ties by row id (stage before amount at REPRICED).
    assert changes[s.FIELD].to_list() == ["stage", "amount", "close_date", "status", "forecast_category", "probability"]
    assert changes[s.CHANGED_AT][0] == _naive(REPRICED)


def test_timestamps_come_back_as_naive_utc_whatever_the_zone(seeded: Engine) -> None:
    # 12:00 at UTC+2 is 10:00 UTC.
    plus_two = timezone(timedelta(hours=2))
    with seeded.begin() as connection:
        if connection.dialect.name == "sqlite":
            # SQLite keeps no zone: writers store UTC; an offset written by hand is still honoured.
            connection.exec_driver_sql(
                "INSERT INTO opportunity_changes (opportunity_id, field, old_value, new_value, changed_at, source) "
                "VALUES (2, 'next_step', 'a', 'b', '2024-03-02T12:00:00+02:00', 'app')"
            )
        else:
            connection.execute(
                sa.insert(tables.opportunity_changes),
                [_change(2, "next_step", "a", "b", datetime(2024, 3, 2, 12, tzinfo=plus_two))],
            )
    with seeded.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TIME ZONE 'America/New_York'")
        changes = load_changes(connection)
        opportunities = load_opportunities(connection)
    assert changes[s.CHANGED_AT].dtype == pl.Datetime("us")
    assert changes.filter(pl.col(s.OPPORTUNITY_ID) == 2)[s.CHANGED_AT].to_list() == [datetime(2024, 3, 2, 10)]
    assert opportunities[s.CREATED_AT][0] == datetime(2024, 1, 1, 9)


def test_loads_outside_a_transaction_too(seeded: Engine) -> None:
    with seeded.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert load_opportunities(connection)[s.ID].to_list() == [1, 2]
        assert load_changes(connection).height == 6


def test_unreadable_sqlite_timestamp_is_named(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL refuses such a value when it is written")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO opportunities (source, external_id, name, pipeline, stage, status, currency, created_at) "
            "VALUES ('test', 'x', 'x', 'default', 'discovery', 'open', 'EUR', 'last tuesday')"
        )
    with engine.connect() as connection, pytest.raises(DatabaseError, match=r"opportunities\.created_at"):
        load_opportunities(connection)


def test_empty_database_gives_empty_frames(engine: Engine) -> None:
    with engine.connect() as connection:
        opportunities = load_opportunities(connection)
        changes = load_changes(connection)
    assert opportunities.is_empty() and dict(opportunities.schema) == dict(s.OPPORTUNITY_SCHEMA)
    assert changes.is_empty() and dict(changes.schema) == dict(s.CHANGE_SCHEMA)


def test_snapshots_over_loaded_frames(seeded: Engine) -> None:
    with seeded.connect() as connection:
        timeline = build_timeline(load_opportunities(connection), load_changes(connection))

    # Before the repricing: every changed field holds its first change's old value.
    mid_january = snapshot(timeline, datetime(2024, 1, 15, tzinfo=UTC))
    assert mid_january[s.ID].to_list() == [1]  # deal 2 did not exist yet
    assert mid_january.select(s.STAGE, s.STATUS, s.AMOUNT, s.CLOSE_DATE, s.FORECAST_CATEGORY, s.PROBABILITY).row(0) == (
        "discovery",
        "open",
        10_000.0,
        date(2024, 2, 29),
        "commit",
        0.6,
    )

    # Exactly at the repricing: included, both changes at once.
    repriced = snapshot(timeline, REPRICED).row(0, named=True)
    assert (repriced[s.STAGE], repriced[s.AMOUNT], repriced[s.CLOSE_DATE]) == ("proposal", 12_000.5, date(2024, 2, 29))
    assert repriced[s.CLOSED_AT] is None

    # After the win both deals exist; deal 1 is the stored row, closed when the log says.
    after = snapshot(timeline, datetime(2024, 4, 1, tzinfo=UTC)).sort(s.ID)
    assert after[s.ID].to_list() == [1, 2]
    won = after.row(0, named=True)
    assert (won[s.STATUS], won[s.CLOSE_DATE], won[s.CLOSED_AT]) == ("won", date(2024, 3, 15), _naive(WON))
    assert after.row(1, named=True)[s.NEXT_STEP] == "Intro call — Zoë"
