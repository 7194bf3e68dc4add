"""What every batch of one import shares: the source, the run, the directories of people, accounts and
stages, the known currencies, and the keys already loaded (to refuse a record given twice)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from closewise.domain.enums import ChangeField
from closewise.ingest.refs import AccountDirectory, StageBook, UserDirectory


@dataclass
class LoadContext:
    """What every batch of one import shares."""

    source: str
    now: datetime
    run_id: int
    users: UserDirectory
    accounts: AccountDirectory
    stages: StageBook
    currencies: set[str]
    corporate_currency: str
    history_fields: frozenset[ChangeField] = frozenset()
    seen: dict[str, int] = field(default_factory=dict)
    # External ids of this source's opportunities already stored when the import started (None: unknown,
    # look every row up); rows whose id is not in it are new and need no look-up.
    stored_opportunities: set[str] | None = None
    # When the import also brings history: for each opportunity (`external_id`), the stage value of its latest
    # history row that does not read as closed (`_stage_hint`). A closed deal keeps the last open stage it
    # reached, which only the history knows; new closed deals are inserted with it rather than updated once the
    # history is loaded (on PostgreSQL 700,000 such updates took longer than the rest of the import). The history
    # step still checks every closed deal's stage and corrects any the hint got wrong.
    stage_hints: pl.DataFrame | None = None
