"""Signing in: passwords checked with argon2, browser sessions and API bearer tokens that expire.

Secrets are random (`secrets.token_urlsafe`), handed to the client once and stored only as SHA-256 hashes. A
wrong email and a wrong password give the same answer, and both cost one argon2 verification, so the sign-in
form does not tell which addresses have accounts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import auth as auth_queries
from closewise.db import users as user_queries
from closewise.db.scope import scope_for
from closewise.domain.scope import Scope
from closewise.domain.timeutil import utcnow
from closewise.errors import AuthError
from closewise.services.passwords import hash_password, verify_password

WRONG_CREDENTIALS = "wrong email or password"


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


def session_principal(engine: Engine, *, secret: str) -> Principal:
    """The user of a live browser session (AuthError when it is unknown or expired)."""
    with engine.connect() as connection:
        found = auth_queries.find_session(connection, token_hash=_digest(secret), now=utcnow())
        if found is None:
            raise AuthError("your session has expired; sign in again")
        return _principal(connection, found)


def token_principal(engine: Engine, *, secret: str) -> Principal:
    """The user of a live API token (AuthError when it is unknown or expired)."""
    with engine.connect() as connection:
        found = auth_queries.find_token(connection, token_hash=_digest(secret), now=utcnow())
        if found is None:
            raise AuthError("the bearer token is unknown or has expired; ask POST /api/auth/token for a new one")
        return _principal(connection, found)


def _principal(connection: Connection, found: auth_queries.Credential) -> Principal:
    user = user_queries.get_by_id(connection, user_id=found.user_id)
    if user is None:
        raise AuthError("this account no longer exists")
    return Principal(user.id, user.email, user.name, scope_for(connection, user_id=user.id), found.csrf_token)


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
