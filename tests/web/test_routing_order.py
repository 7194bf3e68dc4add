"""The routers are included most requested first (`web.routes`); that is safe only because no path is claimed by
two modules: whatever the order, each request reaches the same endpoint. Checked here for every route of every
module against every route of every other module, with each path parameter filled the way a client would."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import compile_path

from closewise.web import routes

_PARAMETER = re.compile(r"\{[^}]+\}")


def _concrete(path: str) -> list[str]:
    """The path with every parameter filled by a number and by a word (an id, a key)."""
    return [_PARAMETER.sub(value, path) for value in ("1", "word")]


def test_no_two_modules_claim_the_same_request() -> None:
    claimed: list[tuple[str, str, set[str], re.Pattern[str]]] = []
    for prefix, module, router in routes.modules():
        for route in router.routes:
            if isinstance(route, APIRoute):
                path = prefix + route.path
                claimed.append((module, path, set(route.methods), compile_path(path)[0]))
    assert len(claimed) > 100  # every module was found
    clashes = [
        (module, path, other, other_path)
        for module, path, methods, _ in claimed
        for other, other_path, other_methods, pattern in claimed
        if other != module and methods & other_methods and any(pattern.match(p) for p in _concrete(path))
    ]
    assert clashes == []


def test_the_everyday_api_modules_are_tried_first() -> None:
    order = [module.rsplit(".", 1)[-1] for prefix, module, _ in routes.modules() if prefix == "/api"]
    assert order[:len(routes.FIRST)] == list(routes.FIRST)
    assert sorted(order[len(routes.FIRST):]) == order[len(routes.FIRST):]
    assert all(prefix == "" for prefix, _, _ in routes.modules()[len(order):])  # pages after the API
