"""Background work for the web app: a forecast, an import or a scoring run started by a request and watched by
the page that started it (htmx polls its progress).

One worker thread: the work is CPU-bound (Polars and LightGBM release the GIL and use the cores themselves),
and one job at a time keeps a 2-core server responsive. Jobs live in memory; a restart forgets them (their
results are in the database or recomputed).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError

Progress = Callable[[str, float | None], None]


@dataclass
class Job:
    id: str
    kind: str
    owner_id: int  # the user who started it; only they see it
    started_at: datetime
    message: str = "waiting to start"
    fraction: float | None = None
    result: Any = None
    error: str | None = None
    done: bool = False
    key: str | None = None
    _future: Future[Any] | None = field(default=None, repr=False)


class JobRunner:
    def __init__(self, *, keep: int = 200) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="closewise-job")
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, kind: str, owner_id: int, work: Callable[[Progress], Any], *, key: str | None = None) -> Job:
        """Run `work(progress)` in the background. With `key`, a job with the same key still running (or done
        without error) is returned instead of starting another: two people opening the same forecast share
        one computation."""
        with self._lock:
            if key is not None and key in self._by_key:
                existing = self._jobs.get(self._by_key[key])
                if existing is not None and existing.error is None:
                    return existing
            job = Job(uuid.uuid4().hex, kind, owner_id, utcnow(), key=key)
            self._jobs[job.id] = job
            if key is not None:
                self._by_key[key] = job.id
            self._trim()

        def progress(message: str, fraction: float | None = None) -> None:
            job.message, job.fraction = message, fraction

        def run() -> None:
            progress("working", 0.0)
            try:
                job.result = work(progress)
                job.message, job.fraction = "done", 1.0
            except CloseWiseError as exc:
                job.error = str(exc)
            except Exception as exc:  # a job must end with a message, never silently
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.done = True

        job._future = self._pool.submit(run)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def by_key(self, key: str) -> Job | None:
        job_id = self._by_key.get(key)
        return self._jobs.get(job_id) if job_id else None

    def forget(self, key: str) -> None:
        with self._lock:
            self._by_key.pop(key, None)

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        if job._future is not None:
            job._future.result(timeout=timeout)
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _trim(self) -> None:
        if len(self._jobs) <= self._keep:
            return
        for job_id in [j.id for j in self._jobs.values() if j.done][: len(self._jobs) - self._keep]:
            job = self._jobs.pop(job_id)
            if job.key is not None and self._by_key.get(job.key) == job_id:
                del self._by_key[job.key]
