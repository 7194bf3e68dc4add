"""One import run: its record in `import_runs`, its error files, and the shared lookups.

Every import is recorded (kind, path, start, end, counts, errors file). A run still marked `running` when
the same import starts again was killed; it is marked `interrupted` and the new run completes its work
(imports are idempotent, and each batch is its own transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

from closewise.db import bulk_load, tables
from closewise.db import ingest as queries
from closewise.db.org_settings import read_settings
from closewise.domain.enums import ChangeField
from closewise.domain.timeutil import utcnow
from closewise.ingest.context import LoadContext
from closewise.ingest.refs import AccountDirectory, StageBook, StageTarget, UserDirectory
from closewise.ingest.report import EntityCounts, ErrorSink, ImportReport

T = TypeVar("T")
BATCH = 5_000


def batched(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class ImportSession:
    engine: Engine
    kind: str
    path: Path
    source: str
    errors_dir: Path
    now: datetime = field(default_factory=utcnow)
    report: ImportReport = field(init=False)
    sinks: dict[str, ErrorSink] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with self.engine.begin() as connection:
            bulk_load.restore_upkeep(connection)  # an import killed while loading without them
            interrupted = queries.mark_interrupted_runs(connection, kind=self.kind, path=str(self.path))
            run_id = queries.start_import_run(connection, kind=self.kind, path=str(self.path), started_at=self.now)
        self.report = ImportReport(run_id=run_id)
        if interrupted:
            self.report.notes.append(f"completing {interrupted} earlier run(s) of this import that did not finish")

    @property
    def run_id(self) -> int:
        return self.report.run_id

    def entity(self, name: str) -> tuple[EntityCounts, ErrorSink]:
        if name not in self.report.entities:
            counts = EntityCounts()
            self.report.entities[name] = counts
            self.sinks[name] = ErrorSink(self.errors_dir / f"import-{self.run_id}-{name}-errors.csv", counts)
        return self.report.entities[name], self.sinks[name]

    def load_context(
        self, *, stage_mapping: dict[str, StageTarget] | None = None, create_stages: bool = True,
        history_fields: frozenset[ChangeField] = frozenset(), pipeline: str = "default",
    ) -> LoadContext:
        with self.engine.begin() as connection:
            settings = read_settings(connection)
            corporate = settings["corporate_currency"].upper()
            stages = StageBook(connection, pipeline=pipeline, mapping=stage_mapping, create_unknown=create_stages)
            stages.ensure_mapped(connection)
            stored = queries.known_keys(connection, table=tables.opportunities, source=self.source)
            return LoadContext(
                stored_opportunities=stored,
                source=self.source, now=self.now, run_id=self.run_id,
                users=UserDirectory(connection, source=self.source),
                accounts=AccountDirectory(connection, source=self.source),
                stages=stages,
                currencies=queries.currency_codes(connection) | {corporate},
                corporate_currency=corporate, history_fields=history_fields,
            )

    def finish(self, status: str = "done") -> ImportReport:
        for sink in self.sinks.values():
            sink.close()
        errors = [counts.errors_file for counts in self.report.entities.values() if counts.errors_file]
        with self.engine.begin() as connection:
            queries.finish_import_run(
                connection, run_id=self.run_id, status=status, finished_at=utcnow(),
                counts=self.report.as_json(), errors_file=";".join(errors) or None,
            )
        return self.report
