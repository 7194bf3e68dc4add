"""Opening and initialising the database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from closewise.db.engine import make_engine
from closewise.db.migrate import require_current, upgrade
from closewise.settings import Settings


def open_database(settings: Settings) -> Engine:
    """An engine on an initialised, up-to-date database (or a DatabaseError saying what to do)."""
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
    except Exception:
        engine.dispose()
        raise
    return engine


def init_database(settings: Settings) -> tuple[str | None, str]:
    """Create or migrate; returns (revision before, revision after)."""
    engine = make_engine(settings.database_url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()
