"""What every benchmark prints: wall and CPU time of a step (CPU is steadier on a shared machine) and peak RSS."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

T = TypeVar("T")


def peak_gib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 2**30


def measured(label: str, fn: Callable[[], T], *, width: int = 56) -> tuple[T, float, float]:
    """Run `fn`, print its wall time, CPU time and the peak RSS so far, and return (result, wall, CPU)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<{width}} {wall:7.2f} s wall {cpu:7.2f} s CPU   peak RSS {peak_gib():5.2f} GiB", flush=True)
    return result, wall, cpu


def timed(label: str, fn: Callable[[], T], *, width: int = 56) -> T:
    """Run `fn` and print its wall time, CPU time and the peak RSS so far."""
    return measured(label, fn, width=width)[0]


def demo_database(db: str | None, *, opportunities: int, today: date, name: str,
                  history_quarters: int = 8, seed: int = 7) -> Engine:
    """The engine of `db` (a URL, or a SQLite path), or of a demo org of `opportunities` deals (`seed`, `today`,
    `history_quarters` of history) built first in a temporary SQLite file called `name` when `db` is None."""
    from closewise.db.engine import make_engine
    from closewise.db.migrate import upgrade
    from closewise.services.demo import build_demo

    if db is None:
        engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / name}")
        upgrade(engine)
        timed(f"build demo ({opportunities:,} deals, seed {seed})",
              lambda: build_demo(engine, seed=seed, today=today, opportunities=opportunities,
                                 history_quarters=history_quarters))
        return engine
    return make_engine(db if "://" in db else f"sqlite:///{db}")
