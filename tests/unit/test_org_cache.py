"""`services.org_cache.OrgCache.remember`: a document asked for by many requests at once is built once; the
others wait for it. A failed build is not kept, and the next caller builds again."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from closewise.services.forecast_view import OrgCache as ReExported
from closewise.services.org_cache import OrgCache


def test_concurrent_requests_build_a_document_once() -> None:
    cache = OrgCache()
    builds: list[int] = []
    started = threading.Barrier(8)

    def build() -> dict[str, int]:
        builds.append(1)
        time.sleep(0.2)  # long enough for every other caller to arrive meanwhile
        return {"value": 42}

    def ask() -> dict[str, int]:
        started.wait()
        document: dict[str, int] = cache.remember(("pipeline", "stamp", None), build)
        return document

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ask(), range(8)))
    assert len(builds) == 1
    assert all(answer is answers[0] for answer in answers)


def test_different_keys_build_in_parallel() -> None:
    cache = OrgCache()
    started = threading.Barrier(2, timeout=5)

    def build(name: str) -> str:
        started.wait()  # both builds must be running at once to pass the barrier
        return name

    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda name: cache.remember(name, lambda: build(name)), ["a", "b"]))
    assert found == ["a", "b"]


def test_a_failed_build_is_not_kept() -> None:
    cache = OrgCache()

    def fail() -> None:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        cache.remember("key", fail)
    assert cache.remember("key", lambda: "built") == "built"
    assert cache.remember("key", fail) == "built"


def test_the_forecast_views_module_still_offers_it() -> None:
    assert ReExported is OrgCache
