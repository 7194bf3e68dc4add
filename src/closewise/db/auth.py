"""Queries on browser sessions and API tokens (stored as SHA-256 hashes of the secret)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db.tables import api_tokens, users, web_sessions


@dataclass(frozen=True)
class Credential:
    """A live session or token: whose, and (for a session) the CSRF secret its forms must echo."""

    user_id: int
    expires_at: datetime
    csrf_token: str | None = None


def insert_session(connection: Connection, *, token_hash: str, user_id: int, csrf_token: str, created_at: datetime,
                   expires_at: datetime) -> None:
    connection.execute(web_sessions.insert().values(token_hash=token_hash, user_id=user_id, csrf_token=csrf_token,
                                                    created_at=created_at, expires_at=expires_at))


def find_session(connection: Connection, *, token_hash: str, now: datetime) -> Credential | None:
    row = connection.execute(
        sa.select(web_sessions.c.user_id, web_sessions.c.expires_at, web_sessions.c.csrf_token)
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.token_hash == token_hash, web_sessions.c.expires_at > now, users.c.active.is_(True))
    ).first()
    return Credential(row.user_id, row.expires_at, row.csrf_token) if row else None


def delete_session(connection: Connection, *, token_hash: str) -> None:
    connection.execute(web_sessions.delete().where(web_sessions.c.token_hash == token_hash))


def insert_token(connection: Connection, *, token_hash: str, user_id: int, created_at: datetime,
                 expires_at: datetime) -> None:
    connection.execute(api_tokens.insert().values(token_hash=token_hash, user_id=user_id, created_at=created_at,
                                                  expires_at=expires_at))


def find_token(connection: Connection, *, token_hash: str, now: datetime) -> Credential | None:
    row = connection.execute(
        sa.select(api_tokens.c.user_id, api_tokens.c.expires_at)
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == token_hash, api_tokens.c.expires_at > now, users.c.active.is_(True))
    ).first()
    return Credential(row.user_id, row.expires_at) if row else None


def delete_expired(connection: Connection, *, now: datetime) -> int:
    """Forget sessions and tokens past their expiry; returns how many went."""
    gone = connection.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now)).rowcount
    gone += connection.execute(api_tokens.delete().where(api_tokens.c.expires_at <= now)).rowcount
    return int(gone)
