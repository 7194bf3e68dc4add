"""Every router of the app: each module of `web/pages` (pages) and `web/api` (REST API under `/api`) exposes a
`router`. The API's most requested modules come first (`FIRST`), then the rest of the API, then the pages, each
group in name order.

Why the order: a request is matched against the routes one regex at a time, and FastAPI does not skip an
included router by its prefix, so with about 150 routes a deal-list request cost 0.4-0.6 ms of matching when the
pages came first — a quarter of the request. No two modules claim the same path
(`tests/web/test_routing_order.py`), so the order decides nothing else."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from fastapi import APIRouter, FastAPI

from closewise.web import api, pages

# The API clients' everyday calls: the deal list and deals, who am I, the playbook, the forecast and pipeline.
FIRST = ("opportunities", "auth", "playbook", "forecast", "pipeline")


def modules() -> list[tuple[str, str, APIRouter]]:
    """(prefix, module name, router) in the order they are included."""
    found: list[tuple[str, str, APIRouter]] = []
    for package, prefix in ((api, "/api"), (pages, "")):
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
        if package is api:
            names = [name for name in FIRST if name in names] + [name for name in names if name not in FIRST]
        for name in names:
            found.append((prefix, f"{package.__name__}.{name}", _router(importlib.import_module(
                f"{package.__name__}.{name}"))))
    return found


def include_all(app: FastAPI) -> None:
    for prefix, _, router in modules():
        app.include_router(router, prefix=prefix)


def _router(module: ModuleType) -> APIRouter:
    router = module.router
    assert isinstance(router, APIRouter), f"{module.__name__}.router is not an APIRouter"
    return router
