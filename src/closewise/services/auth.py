"""Signing in: passwords checked with argon2, browser sessions and API bearer tokens that expire.

Secrets are random (`secrets.token_urlsafe`), handed to the client once and stored only as SHA-256 hashes. A
wrong email and a wrong password give the same answer, and both cost one argon2 verification, so the sign-in
form does not tell which addresses have accounts.

Working out who is asking (the credential, the user, and their scope, which walks the hierarchy) costs about
3 ms of CPU; every request needs it. `PrincipalCache` keeps the answer per credential for at most
`PRINCIPAL_CACHE_SECONDS` (5 s): a credential's own expiry is still checked on every request, and any write to
the users, sessions or tokens tables through the same engine (sign-out, revoking, a role, manager or active-flag
change, a user imported) empties it at once. What no write through this process's engine announces — a change
made by another server worker or by the CLI — reaches the cached answers within those 5 seconds at most: a
revoked or deactivated credential stops working within 5 s on every worker.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import auth as auth_queries
from closewise.db import users as user_queries
from closewise.db.scope import scope_for
from closewise.db.tables import api_tokens, users, web_sessions
from closewise.domain.scope import Scope
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import AuthError
from closewise.services.passwords import hash_password, verify_password

WRONG_CREDENTIALS = "wrong email or password"
PRINCIPAL_CACHE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Principal:
    """A signed-in user and what they may see."""

    user_id: int
    email: str | None
    name: str
    scope: Scope
    csrf_token: str | None = None  # set for browser sessions


@dataclass(frozen=True)
class Issued:
    secret: str
    expires_at: datetime
    csrf_token: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def authenticate(engine: Engine, *, email: str, password: str) -> int:
    """The id of the active user with this email and password, else AuthError."""
    with engine.connect() as connection:
        user = user_queries.get_by_email(connection, email=email) if email.strip() else None
    if user is None or not user.active or not user.password_hash:
        verify_password(_decoy_hash(), password)
        raise AuthError(WRONG_CREDENTIALS)
    if not verify_password(user.password_hash, password):
        raise AuthError(WRONG_CREDENTIALS)
    return user.id


def open_session(engine: Engine, *, user_id: int, hours: int) -> Issued:
    now = utcnow()
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=hours)
    with engine.begin() as connection:
        auth_queries.delete_expired(connection, now=now)
        auth_queries.insert_session(connection, token_hash=_digest(secret), user_id=user_id, csrf_token=csrf,
                                    created_at=now, expires_at=expires)
        audit.record(connection, at=now, actor_id=user_id, action="session.open", entity="user", entity_id=user_id)
    return Issued(secret, expires, csrf)


def close_session(engine: Engine, *, secret: str) -> None:
    with engine.begin() as connection:
        auth_queries.delete_session(connection, token_hash=_digest(secret))


def issue_token(engine: Engine, *, user_id: int, minutes: int) -> Issued:
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=minutes)
    with engine.begin() as connection:
        auth_queries.delete_expired(connection, now=now)
        auth_queries.insert_token(connection, token_hash=_digest(secret), user_id=user_id, created_at=now,
                                  expires_at=expires)
        audit.record(connection, at=now, actor_id=user_id, action="token.issue", entity="user", entity_id=user_id)
    return Issued(secret, expires)


def session_principal(engine: Engine, *, secret: str, cache: PrincipalCache | None = None) -> Principal:
    """The user of a live browser session (AuthError when it is unknown or expired)."""
    return _resolve(engine, "session", secret, cache, auth_queries.find_session,
                    "your session has expired; sign in again")


def token_principal(engine: Engine, *, secret: str, cache: PrincipalCache | None = None) -> Principal:
    """The user of a live API token (AuthError when it is unknown or expired)."""
    return _resolve(engine, "token", secret, cache, auth_queries.find_token,
                    "the bearer token is unknown or has expired; ask POST /api/auth/token for a new one")


def _resolve(engine: Engine, kind: str, secret: str, cache: PrincipalCache | None,
             find: Callable[..., auth_queries.Credential | None], expired: str) -> Principal:
    if cache is not None:
        cached = cache.get(kind, secret)
        if cached is not None:
            return cached
        generation = cache.generation(engine)  # before reading: a write meanwhile makes this answer stale
    with engine.connect() as connection:
        found = find(connection, token_hash=_digest(secret), now=utcnow())
        if found is None:
            raise AuthError(expired)
        principal = _principal(connection, found)
    if cache is not None:
        cache.put(engine, kind, secret, principal, expires_at=found.expires_at, generation=generation)
    return principal


def _principal(connection: Connection, found: auth_queries.Credential) -> Principal:
    user = user_queries.get_by_id(connection, user_id=found.user_id)
    if user is None:
        raise AuthError("this account no longer exists")
    return Principal(user.id, user.email, user.name, scope_for(connection, user_id=user.id), found.csrf_token)


# Writes to these tables can change or end a cached principal: who a user is, their role and place in the
# hierarchy (and so everyone's scope above them), and which sessions and tokens exist.
_WATCHED: Final = frozenset({users.name, web_sessions.name, api_tokens.name})
_generations: weakref.WeakKeyDictionary[Engine, list[int]] = weakref.WeakKeyDictionary()
_watching = threading.Lock()


def _watch(engine: Engine) -> list[int]:
    """The engine's write counter for `_WATCHED` (one listener per engine, installed on first use).

    It moves when such a statement is executed and again when the connection that ran it goes back to the pool
    (after its commit or rollback), so a principal read while the write was not yet committed is not kept."""
    with _watching:
        counter = _generations.get(engine)
        if counter is not None:
            return counter
        counter = [0]
        _generations[engine] = counter

        def executed(conn: Connection, clause: Any, *_: Any) -> None:
            if not isinstance(clause, sa.sql.dml.UpdateBase):
                return
            table = getattr(clause.table, "name", None)
            # A new token or session changes no one's answer; a new user may join someone's hierarchy.
            if table in _WATCHED and not (isinstance(clause, sa.sql.dml.Insert) and table != users.name):
                conn.info["closewise_auth_written"] = True
                counter[0] += 1

        def returned(dbapi_connection: Any, record: Any) -> None:
            if record.info.pop("closewise_auth_written", False):
                counter[0] += 1

        def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            record.info.pop("closewise_auth_written", None)

        event.listen(engine, "after_execute", executed)
        event.listen(engine, "checkin", returned)
        event.listen(engine, "checkout", checked_out)
        return counter


class PrincipalCache:
    """Principals by (kind, credential hash), each kept for at most `seconds` and never past its credential's
    expiry; at most `size` of them (the least recently used go first); all forgotten when the watched tables are
    written through the engine (`_watch`). One per app (`app.state.principals`)."""

    def __init__(self, *, seconds: float = PRINCIPAL_CACHE_SECONDS, size: int = 4096,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utcnow) -> None:
        self.seconds = seconds
        self.size = size
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[Principal, datetime, float, Engine, int]] = OrderedDict()

    def generation(self, engine: Engine) -> int:
        return _watch(engine)[0]

    def get(self, kind: str, secret: str) -> Principal | None:
        """The cached principal of this `session` or `token` secret, or None (unknown, older than `seconds`, past
        its expiry, or written since)."""
        key = (kind, _digest(secret))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            principal, expires_at, stored, engine, generation = entry
            if (self._clock() - stored >= self.seconds or self._now() >= expires_at
                    or _watch(engine)[0] != generation):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return principal

    def put(self, engine: Engine, kind: str, secret: str, principal: Principal, *, expires_at: datetime,
            generation: int) -> None:
        """Keep `principal` for `secret`, read from `engine` when its write counter was `generation`."""
        if self.seconds <= 0 or _watch(engine)[0] != generation:
            return  # the tables changed while it was read: do not keep what may be the old answer
        key = (kind, _digest(secret))
        with self._lock:
            self._entries[key] = (principal, as_utc(expires_at), self._clock(), engine, generation)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class LoginThrottle:
    """Slows password guessing: after `limit` failed sign-ins for one email within `window`, further attempts
    for it are refused until the window has passed (held in memory by the running server)."""

    def __init__(self, *, limit: int = 10, window: timedelta = timedelta(minutes=15)) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[datetime]] = {}

    def check(self, email: str) -> None:
        key = email.strip().lower()
        now = utcnow()
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        self._failures[key] = recent
        if len(recent) >= self.limit:
            wait = int((recent[0] + self.window - now).total_seconds() // 60) + 1
            raise AuthError(f"too many failed sign-ins for this address; try again in {wait} minutes")

    def failed(self, email: str) -> None:
        self._failures.setdefault(email.strip().lower(), []).append(utcnow())

    def succeeded(self, email: str) -> None:
        self._failures.pop(email.strip().lower(), None)

    def authenticate(self, engine: Engine, *, email: str, password: str) -> int:
        self.check(email)
        try:
            user_id = authenticate(engine, email=email, password=password)
        except AuthError:
            self.failed(email)
            raise
        self.succeeded(email)
        return user_id
