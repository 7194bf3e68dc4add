"""The principal cache (`services.auth.PrincipalCache`): a cached answer costs no query, and a credential that
ends — expires, is revoked, or its user changes — stops being honoured at once when the change goes through this
engine, and within `PRINCIPAL_CACHE_SECONDS` when it comes from elsewhere (another worker, the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.tables import api_tokens, users
from closewise.domain.enums import Role
from closewise.domain.timeutil import utcnow
from closewise.errors import AuthError
from closewise.services.auth import (
    PRINCIPAL_CACHE_SECONDS,
    PrincipalCache,
    close_session,
    issue_token,
    open_session,
    session_principal,
    token_principal,
)
from closewise.services.users import add_user


class Clock:
    """A monotonic clock and a wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.wall = utcnow()

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> PrincipalCache:
    return PrincipalCache(clock=clock.monotonic, now=clock.now)


@pytest.fixture
def queries(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs from now on."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def team(engine: Engine) -> dict[str, int]:
    """A manager with one rep: user ids by role."""
    boss = add_user(engine, email="mia.manager@example.com", role="manager")
    rep = add_user(engine, email="ray.rep@example.com", role="rep", manager_email="mia.manager@example.com")
    return {"manager": boss.id, "rep": rep.id}


def test_a_cached_principal_costs_no_query(engine: Engine, cache: PrincipalCache, team: dict[str, int],
                                           queries: list[str]) -> None:
    secret = issue_token(engine, user_id=team["manager"], minutes=60).secret
    first = token_principal(engine, secret=secret, cache=cache)
    read = len(queries)
    assert read >= 2  # the token and the user, at least
    again = token_principal(engine, secret=secret, cache=cache)
    assert again == first and len(queries) == read
    assert first.scope.owner_ids == frozenset(team.values())


def test_answers_are_kept_at_most_the_window(engine: Engine, cache: PrincipalCache, clock: Clock,
                                             team: dict[str, int], queries: list[str]) -> None:
    secret = issue_token(engine, user_id=team["rep"], minutes=60).secret
    token_principal(engine, secret=secret, cache=cache)
    clock.advance(PRINCIPAL_CACHE_SECONDS - 0.1)
    read = len(queries)
    token_principal(engine, secret=secret, cache=cache)
    assert len(queries) == read
    clock.advance(0.1)
    token_principal(engine, secret=secret, cache=cache)
    assert len(queries) > read


def test_an_expired_token_is_refused_the_moment_it_expires(engine: Engine, cache: PrincipalCache, clock: Clock,
                                                          team: dict[str, int]) -> None:
    issued = issue_token(engine, user_id=team["rep"], minutes=1)
    token_principal(engine, secret=issued.secret, cache=cache)
    clock.wall = issued.expires_at  # the cache's clock says it has expired; the window has not passed
    assert cache.get("token", issued.secret) is None


def test_signing_out_ends_the_session_at_once(engine: Engine, cache: PrincipalCache, team: dict[str, int]) -> None:
    secret = open_session(engine, user_id=team["rep"], hours=1).secret
    assert session_principal(engine, secret=secret, cache=cache).user_id == team["rep"]
    close_session(engine, secret=secret)
    with pytest.raises(AuthError):
        session_principal(engine, secret=secret, cache=cache)


def test_a_role_change_through_this_engine_shows_at_once(engine: Engine, cache: PrincipalCache,
                                                         team: dict[str, int]) -> None:
    secret = issue_token(engine, user_id=team["manager"], minutes=60).secret
    assert token_principal(engine, secret=secret, cache=cache).scope.role is Role.MANAGER
    with engine.begin() as connection:
        connection.execute(users.update().where(users.c.id == team["manager"]).values(role="leader"))
    promoted = token_principal(engine, secret=secret, cache=cache)
    assert promoted.scope.role is Role.LEADER and promoted.scope.everything


def test_a_new_report_widens_the_managers_scope_at_once(engine: Engine, cache: PrincipalCache,
                                                       team: dict[str, int]) -> None:
    secret = issue_token(engine, user_id=team["manager"], minutes=60).secret
    assert token_principal(engine, secret=secret, cache=cache).scope.owner_ids == frozenset(team.values())
    newcomer = add_user(engine, email="nia.new@example.com", role="rep", manager_email="mia.manager@example.com")
    assert newcomer.id in (token_principal(engine, secret=secret, cache=cache).scope.owner_ids or ())


def test_revoking_elsewhere_is_honoured_within_the_window(engine: Engine, database_url: str,
                                                         cache: PrincipalCache, clock: Clock,
                                                         team: dict[str, int]) -> None:
    """A write through another engine (another worker process, the CLI) is not announced to this one: the
    cached answer lasts until the window ends, and not a moment longer."""
    secret = issue_token(engine, user_id=team["rep"], minutes=60).secret
    token_principal(engine, secret=secret, cache=cache)
    elsewhere = make_engine(database_url)
    try:
        with elsewhere.begin() as connection:
            connection.execute(api_tokens.delete())
            connection.execute(users.update().where(users.c.id == team["rep"]).values(active=False))
    finally:
        elsewhere.dispose()
    assert token_principal(engine, secret=secret, cache=cache).user_id == team["rep"]
    clock.advance(PRINCIPAL_CACHE_SECONDS)
    with pytest.raises(AuthError):
        token_principal(engine, secret=secret, cache=cache)


def test_an_answer_read_while_the_users_changed_is_not_kept(engine: Engine, cache: PrincipalCache,
                                                           team: dict[str, int]) -> None:
    secret = issue_token(engine, user_id=team["rep"], minutes=60).secret
    before = cache.generation(engine)
    principal = token_principal(engine, secret=secret)
    with engine.begin() as connection:
        connection.execute(users.update().where(users.c.id == team["rep"]).values(name="Ray Renamed"))
    cache.put(engine, "token", secret, principal, expires_at=utcnow() + timedelta(hours=1), generation=before)
    assert cache.get("token", secret) is None


def test_new_tokens_do_not_empty_the_cache(engine: Engine, cache: PrincipalCache, team: dict[str, int],
                                          queries: list[str]) -> None:
    secret = issue_token(engine, user_id=team["rep"], minutes=60).secret
    token_principal(engine, secret=secret, cache=cache)
    with engine.begin() as connection:  # what issue_token writes, without its sweep of expired credentials
        connection.execute(api_tokens.insert().values(token_hash="x" * 64, user_id=team["manager"],
                                                      created_at=utcnow(), expires_at=utcnow() + timedelta(hours=1)))
    read = len(queries)
    token_principal(engine, secret=secret, cache=cache)
    assert len(queries) == read


def test_the_cache_is_bounded(engine: Engine, clock: Clock, team: dict[str, int]) -> None:
    small = PrincipalCache(size=3, clock=clock.monotonic, now=clock.now)
    secrets = [issue_token(engine, user_id=team["rep"], minutes=60).secret for _ in range(5)]
    for secret in secrets:
        token_principal(engine, secret=secret, cache=small)
    assert len(small) == 3
    assert small.get("token", secrets[0]) is None and small.get("token", secrets[-1]) is not None


def test_a_cache_of_zero_seconds_keeps_nothing(engine: Engine, team: dict[str, int]) -> None:
    off = PrincipalCache(seconds=0)
    secret = issue_token(engine, user_id=team["rep"], minutes=60).secret
    token_principal(engine, secret=secret, cache=off)
    assert len(off) == 0
