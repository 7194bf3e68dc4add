"""`services.org_cache.OrgCache.remember`: a document asked for by many requests at once is built once; the
others wait for it. A failed build is not kept, and the next caller builds again. `remember_now`: a new minute
is answered with the last minute's document while one background refresh builds the new one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

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


def test_a_new_minute_serves_the_last_answer_while_one_refresh_runs() -> None:
    cache = OrgCache()
    first, second = datetime(2026, 11, 23, 9, 0), datetime(2026, 11, 23, 9, 1)
    release = threading.Event()
    built_for: list[datetime] = []

    def build(minute: datetime) -> str:
        built_for.append(minute)
        if minute == second:
            release.wait(5)  # the refresh stays under way until the test lets it finish
        return f"as of {minute:%H:%M}"

    assert cache.remember_now("pipeline", first, build) == "as of 09:00"
    assert cache.remember_now("pipeline", first, build) == "as of 09:00" and built_for == [first]
    # The next minute: answered at once with the last one, whoever asks while the refresh runs.
    answers = [cache.remember_now("pipeline", second, build) for _ in range(5)]
    assert answers == ["as of 09:00"] * 5
    refreshes = cache.refreshing()
    assert len(refreshes) == 1 and built_for == [first, second]  # one refresh for the five callers
    release.set()
    refreshes[0].join(5)
    assert cache.remember_now("pipeline", second, build) == "as of 09:01"
    assert built_for == [first, second] and cache.refreshing() == []


def test_a_failed_refresh_keeps_the_last_answer_and_is_tried_again() -> None:
    cache = OrgCache()
    first, second = datetime(2026, 11, 23, 9, 0), datetime(2026, 11, 23, 9, 1)
    failing = [True]

    def build(minute: datetime) -> str:
        if minute == second and failing[0]:
            raise RuntimeError("the database went away")
        return f"as of {minute:%H:%M}"

    assert cache.remember_now("key", first, build) == "as of 09:00"
    assert cache.remember_now("key", second, build) == "as of 09:00"
    for worker in cache.refreshing():
        worker.join(5)
    failing[0] = False
    assert cache.remember_now("key", second, build) == "as of 09:00"  # starts a second try
    for worker in cache.refreshing():
        worker.join(5)
    assert cache.remember_now("key", second, build) == "as of 09:01"
