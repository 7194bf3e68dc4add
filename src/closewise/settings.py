"""Runtime settings, built by a function (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE = "closewise.db"


@dataclass(frozen=True)
class Settings:
    database_url: str
    debug: bool = False
    session_hours: int = 12
    token_minutes: int = 60


def database_url_from(value: str | None) -> str:
    """Turn `--db URL_OR_PATH` (or CLOSEWISE_DATABASE_URL, or the default file) into a SQLAlchemy URL."""
    raw = value or os.environ.get("CLOSEWISE_DATABASE_URL") or DEFAULT_DATABASE
    if "://" in raw:
        return raw
    return f"sqlite:///{Path(raw).expanduser().resolve()}"


def load_settings(*, db: str | None = None, debug: bool = False) -> Settings:
    return Settings(database_url=database_url_from(db), debug=debug)
