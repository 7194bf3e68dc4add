"""Who is signed in: browser sessions and API bearer tokens, each stored as a hash."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import String

from closewise.db.tables.schema import Timestamp, fk, metadata, pk

# A signed-in browser session. Only a hash of the cookie's token is stored, so a copy of the database does not
# let anyone sign in; `csrf_token` is the per-session secret every form and htmx request must echo.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    pk(),
    sa.Column("token_hash", String(64), nullable=False, unique=True),
    fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("csrf_token", String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# An API bearer token (`POST /api/auth/token`), stored as a hash like sessions, with its own expiry.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    pk(),
    sa.Column("token_hash", String(64), nullable=False, unique=True),
    fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)
