"""What an import tells its user: counts per entity and the rejected rows, each with its reason.

Rejected rows go to a CSV errors file (file, line, column, value, reason) written only when there is
something to write; good rows load regardless.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass
class EntityCounts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors_file: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors_file": self.errors_file,
        }


@dataclass
class ErrorSink:
    """Collects the rejected rows of one entity into `path`, opened on the first error."""

    path: Path
    counts: EntityCounts
    _handle: IO[str] | None = field(default=None, repr=False)
    _writer: Any = field(default=None, repr=False)
    first: RowError | None = None

    def add(self, error: RowError) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["file", "line", "column", "value", "reason"])
            self.counts.errors_file = str(self.path)
        if self.first is None:
            self.first = error
        self._writer.writerow([error.file, error.line, error.column, _inert(error.value), error.reason])
        self.counts.rejected += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _inert(value: str) -> str:
    """Keep a spreadsheet from running a rejected value as a formula when someone opens the report."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@dataclass
class ImportReport:
    run_id: int
    entities: dict[str, EntityCounts] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {name: counts.as_json() for name, counts in self.entities.items()}
