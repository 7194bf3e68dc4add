"""What every command shares: the global options, JSON output, consoles and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from closewise.services.database import open_database
from closewise.settings import Settings

stdout = Console()
stderr = Console(stderr=True)


@dataclass
class State:
    settings: Settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def engine_for(ctx: typer.Context) -> Engine:
    """The database engine for this command, disposed of when the command ends."""
    engine = open_database(state(ctx).settings)
    ctx.call_on_close(engine.dispose)
    return engine


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout; everything else goes to stderr."""
    sys.stdout.write(json.dumps(document, default=_default, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


class _LazyProgress(Progress):
    """Shown from the first task on: a command that fails before any work prints no empty bar."""

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        if not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A Rich progress bar on stderr, so `--json` output stays clean."""
    bar = _LazyProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )
    try:
        yield bar
    finally:
        if bar.live.is_started:
            bar.stop()


StepProgress = Callable[[str, int, int], None]


@contextmanager
def step_progress() -> Iterator[StepProgress]:
    """A `progress(step, done, total)` callback for services: one bar per step, on stderr (total 0: unknown)."""
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total or None)
            bar.update(tasks[step], completed=done, total=total or None)

        yield report
