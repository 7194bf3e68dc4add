"""Every router of the app: each module of `web/pages` (pages) and `web/api` (REST API under `/api`) exposes a
`router`; they are included in name order, pages first."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter, FastAPI

from closewise.web import api, pages


def include_all(app: FastAPI) -> None:
    for package, prefix in ((pages, ""), (api, "/api")):
        for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")):
            router = importlib.import_module(f"{package.__name__}.{module}").router
            assert isinstance(router, APIRouter), f"{package.__name__}.{module}.router is not an APIRouter"
            app.include_router(router, prefix=prefix)
