"""The playbook as the web app and the REST API show it: each pipeline's stages in order with their exit
criteria, default probability and forecast category, days to rot and guidance (read only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from closewise.db import deals as queries
from closewise.errors import NotFound

DEFAULT_PIPELINE = "default"


def stages(engine: Engine, *, pipeline: str = DEFAULT_PIPELINE) -> list[dict[str, Any]]:
    """The stages of `pipeline` in order (NotFound for a pipeline without stages, unless it is the default,
    which answers an empty list while the playbook is not set up)."""
    if "\x00" in pipeline:
        raise NotFound(f"no pipeline {pipeline!r}", where="pipeline")
    with engine.connect() as connection:
        found = queries.playbook_stages(connection, pipeline=pipeline)
        if not found and pipeline != DEFAULT_PIPELINE:
            known = queries.pipelines(connection)
            raise NotFound(f"no pipeline {pipeline!r}; the playbook has {', '.join(known) or 'no stages yet'}",
                           where="pipeline")
    return found


def pipelines(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return queries.pipelines(connection)
