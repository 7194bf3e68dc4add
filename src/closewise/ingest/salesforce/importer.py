"""`closewise import salesforce PATH`: a Salesforce Data Export folder or zip, object by object.

Order matters: currencies and the fiscal calendar first (amounts and quotas need them), then people and
accounts (owners), opportunities, their history (OpportunityHistory holds the full state from each
row's CreatedDate; OpportunityFieldHistory adds owner and next-step changes), leads (which point at the
opportunities they became), activities and quotas. Each object's rows go through the same loaders as
any other import, so row errors, idempotency and interrupted runs behave the same everywhere.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy.engine import Engine

from closewise.db.org_settings import write_setting
from closewise.domain.enums import ChangeField
from closewise.ingest import entities
from closewise.ingest.context import LoadContext
from closewise.ingest.fastpath import load_opportunity_file
from closewise.ingest.generic import count_lines, mapped_rows
from closewise.ingest.history_load import CHUNK, load_history
from closewise.ingest.history_read import spool_snapshots, stage_hints
from closewise.ingest.opportunities import load_opportunity_batch
from closewise.ingest.readers import SourceRow, open_table
from closewise.ingest.report import ImportReport
from closewise.ingest.salesforce import presets
from closewise.ingest.salesforce.fieldhistory import load_field_history
from closewise.ingest.salesforce.files import export_files
from closewise.ingest.session import BATCH, ImportSession, batched

Progress = Callable[[str, int, int], None]
HISTORY_FIELDS = ["stage", "amount", "close_date", "probability", "forecast_category"]

LOADERS: dict[str, Callable[..., None]] = {
    "CurrencyType": entities.load_currency_rate_batch,
    "DatedConversionRate": entities.load_currency_rate_batch,
    "User": entities.load_user_batch,
    "Account": entities.load_account_batch,
    "Contact": entities.load_contact_batch,
    "Opportunity": load_opportunity_batch,
    "Lead": entities.load_lead_batch,
    "Task": entities.load_activity_batch,
    "Event": entities.load_activity_batch,
}


def import_salesforce_export(engine: Engine, path: Path, *, errors_dir: Path,
                             progress: Progress | None = None) -> ImportReport:
    with export_files(path) as files:
        session = ImportSession(engine, kind="salesforce", path=path.resolve(), source=presets.SOURCE,
                                errors_dir=errors_dir)
        try:
            _run(session, files, progress)
        except BaseException:
            session.finish("failed")
            raise
        return session.finish()


def _columns(path: Path) -> list[str]:
    with open_table(path) as table:
        return list(table.columns)


def _run(session: ImportSession, files: dict[str, Path], progress: Progress | None) -> None:
    _fiscal_calendar(session, files)
    history = frozenset(ChangeField(f) for f in [*HISTORY_FIELDS, "status"]) if "OpportunityHistory" in files \
        else frozenset()
    context = session.load_context(history_fields=history)
    # The rate loader adds the codes it loads (and the corporate currency) to the context.
    for obj in ("CurrencyType", "DatedConversionRate"):
        if obj in files:
            _load_object(session, context, obj, files[obj], progress)
    roles = _roles(files["UserRole"]) if "UserRole" in files else {}
    hooks: dict[str, presets.Hook] = {
        "User": presets.user_hook(roles), "Contact": presets.person_hook, "Lead": presets.person_hook,
        "Opportunity": presets.opportunity_hook, "Task": presets.activity_hook("Task"),
        "Event": presets.activity_hook("Event"),
    }
    for obj in ("User", "Account", "Contact"):
        if obj in files:
            _load_object(session, context, obj, files[obj], progress, hooks.get(obj))
    with tempfile.TemporaryDirectory(prefix="closewise-history-") as spool:
        # The history is read first: it tells which stage each new closed deal should be inserted with.
        spooled = _read_history(session, files["OpportunityHistory"], Path(spool), progress,
                                hints="Opportunity" in files) if "OpportunityHistory" in files else None
        if "Opportunity" in files:
            context.stage_hints = spooled.hints if spooled is not None else None
            _load_object(session, context, "Opportunity", files["Opportunity"], progress, hooks.get("Opportunity"))
            context.stage_hints = None
        if spooled is not None and spooled.rows:
            _load_history(session, context, spooled, progress)
    if "OpportunityFieldHistory" in files:
        counts, sink = session.entity("opportunity_field_history")
        written = load_field_history(session.engine, context, files["OpportunityFieldHistory"], counts=counts,
                                     sink=sink)
        session.report.notes.append(f"OpportunityFieldHistory: {written:,} owner / next-step change rows written")
    for obj in ("Lead", "Task", "Event"):
        if obj in files:
            _load_object(session, context, obj, files[obj], progress, hooks.get(obj))
    if "ForecastingQuota" in files:
        _load_quotas(session, context, files["ForecastingQuota"], files.get("Period"))
    if context.stages.created:
        session.report.notes.append(f"stages added to the playbook: {', '.join(context.stages.created)}")


def _load_object(session: ImportSession, context: LoadContext, obj: str, path: Path, progress: Progress | None,
                 hook: presets.Hook | None = None) -> None:
    mapping = presets.preset(obj, _columns(path), file=path.name)
    counts, sink = session.entity(mapping.entity)
    loader = LOADERS[obj]
    total = count_lines(path)
    read_before = counts.read  # Task and Event share the activities counts
    if obj == "Opportunity":
        load_opportunity_file(
            session.engine, context, path, mapping, counts=counts, sink=sink, notes=session.report.notes,
            hook=presets.OPPORTUNITY_FAST_HOOK,
            progress=(lambda done: progress(obj, done, max(total, done))) if progress is not None else None,
        )
        return
    with mapped_rows(path, mapping, counts=counts, sink=sink, notes=session.report.notes, post=hook) as rows:
        for batch in batched(rows, BATCH):
            with session.engine.begin() as connection:
                loader(connection, context, batch, counts, sink, notes=session.report.notes)
            if progress is not None:
                done = counts.read - read_before
                progress(obj, done, max(total, done))


@dataclass(frozen=True)
class _History:
    """An OpportunityHistory file read into Parquet files (see `history_read.spool_snapshots`)."""

    fields: list[str]
    buckets: int
    rows: int
    snapshots: pl.LazyFrame
    hints: pl.DataFrame | None  # see LoadContext.stage_hints


def _read_history(session: ImportSession, path: Path, spool: Path, progress: Progress | None, *,
                  hints: bool) -> _History:
    """OpportunityHistory: typed snapshots spooled to Parquet files in `spool`, bucketed by opportunity, and
    (with `hints`) the stage each opportunity's history last reached."""
    mapping = presets.preset("OpportunityHistory", _columns(path), file=path.name)
    counts, sink = session.entity("opportunity_changes")
    fields = [f for f in HISTORY_FIELDS if f in mapping.columns]
    total = count_lines(path)
    # Buckets of about CHUNK opportunities, reckoning five history rows per opportunity.
    buckets = max(1, -(-total // (5 * CHUNK)))
    rows = spool_snapshots(
        path, mapping, spool, fields=fields, buckets=buckets, counts=counts, sink=sink, notes=session.report.notes,
        hook=presets.HISTORY_FAST_HOOK,
        progress=(lambda done: progress("OpportunityHistory (read)", done, max(total, done))) if progress else None,
    )
    snapshots = pl.scan_parquet(spool / "*.parquet") if rows else pl.LazyFrame()
    found = stage_hints(snapshots) if hints and rows and "stage" in fields else None
    if progress is not None:
        progress("OpportunityHistory (read)", rows, max(total, rows))  # the hints belong to this step's time
    return _History(fields, buckets, rows, snapshots, found)


def _load_history(session: ImportSession, context: LoadContext, history: _History, progress: Progress | None) -> None:
    """Derive and load the change rows one bucket of opportunities at a time (5M history rows never sit in
    memory at once)."""
    counts, sink = session.entity("opportunity_changes")
    written = load_history(
        session.engine, context, history.snapshots, fields=history.fields, counts=counts, sink=sink,
        buckets=history.buckets,
        progress=(lambda done, total_: progress("OpportunityHistory (load)", done, total_)) if progress else None,
    )
    session.report.notes.append(f"OpportunityHistory: {written:,} change-log rows written")


def _roles(path: Path) -> dict[str, str]:
    with open_table(path) as table:
        return {row.values.get("Id", ""): row.values.get("Name", "") for row in table if isinstance(row, SourceRow)}


def _fiscal_calendar(session: ImportSession, files: dict[str, Path]) -> None:
    """The fiscal year's first month, from Period.csv (first quarter or year rows) or FiscalYearSettings."""
    months: list[int] = []
    for obj in ("FiscalYearSettings", "Period"):
        if obj not in files:
            continue
        with open_table(files[obj]) as table:
            for row in table:
                if not isinstance(row, SourceRow):
                    continue
                kind = row.values.get("Type", "").strip().lower()
                number = row.values.get("Number", "").strip()
                start = row.values.get("StartDate", "").strip()
                if obj == "FiscalYearSettings" or kind == "year" or (kind == "quarter" and number == "1"):
                    parsed = presets.parse_when(start) if start else None
                    if parsed is not None:
                        months.append(parsed.month)
    if months:
        month = max(set(months), key=months.count)
        with session.engine.begin() as connection:
            write_setting(connection, key="fiscal_year_start_month", value=str(month))
        session.report.notes.append(f"fiscal year starts in month {month} (from the export's periods)")


def _load_quotas(session: ImportSession, context: LoadContext, path: Path, periods: Path | None) -> None:
    """ForecastingQuota rows: an owner, a start date and an amount; the period is the quarter (or month)."""
    from closewise.ingest.salesforce.quotas import quota_rows

    columns = _columns(path)
    if not {"QuotaOwnerId", "StartDate", "QuotaAmount"} <= set(columns):
        session.report.notes.append(f"{path.name}: no QuotaOwnerId/StartDate/QuotaAmount columns; quotas skipped")
        return
    counts, sink = session.entity("quotas")
    with session.engine.begin() as connection:
        rows = quota_rows(connection, path, periods, sink)
        entities.load_quota_batch(connection, context, rows, counts, sink, notes=session.report.notes)
