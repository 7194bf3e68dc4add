"""Loading a batch of new opportunities as columns: the checks, look-ups and defaults of
`opportunities._prepare` and `opportunities._new_record`, done once per distinct value.

The caller guarantees that every id in the frame is new (not stored, not seen earlier in the import,
not repeated in the frame). Rows are checked in the per-row order - an id, a known currency, a stage
that resolves - and each rejected row reports its first failure. References are resolved in the order
their values first appear among the rows still accepted at that step, so records created on the way
(stages, users, accounts) come in the same order, with the same ids, as on the per-row path.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.domain.enums import ChangeField, OpportunityStatus
from closewise.domain.money import round_cents
from closewise.ingest.opportunities import CLOSED_CATEGORY, LoadContext, opening_changes
from closewise.ingest.refs import AccountRef, StageTarget, UserRef
from closewise.ingest.report import EntityCounts, ErrorSink, RowError

OPEN = OpportunityStatus.OPEN.value
NO_STAGE = "the opportunity has no stage and the playbook has none to default to"
# Stored columns that come straight from the canonical row when the source has them.
DIRECT = ("probability", "next_step", "lead_source", "type", "competitor", "custom")


class _Rows:
    """The batch's rows, which of them are still accepted, and the first error of each rejected one."""

    def __init__(self, frame: pl.DataFrame, file: str) -> None:
        self.frame = frame
        self.file = file
        self.lines: list[int] = frame.get_column("_line").to_list()
        self.ok = [True] * frame.height
        self.errors: list[RowError] = []

    def reject(self, index: int, column: str, value: Any, reason: str) -> None:
        self.ok[index] = False
        self.errors.append(RowError(self.file, self.lines[index], column, "" if value is None else str(value), reason))

    def column(self, name: str) -> list[Any]:
        return self.frame.get_column(name).to_list()

    def first_seen(self, name: str) -> list[tuple[int, Any]]:
        """(row, value) of each distinct value of a column, at its first appearance among accepted rows."""
        found: dict[Any, int] = {}
        for index, value in enumerate(self.column(name)):
            if self.ok[index] and value not in found:
                found[value] = index
        return [(index, value) for value, index in found.items()]


def load_new_opportunities(connection: Connection, context: LoadContext, frame: pl.DataFrame, counts: EntityCounts,
                           sink: ErrorSink, *, file: str) -> None:
    """Insert a batch of converted rows of new opportunities inside the caller's transaction."""
    counts.read += frame.height
    rows = _Rows(frame, file)
    for index, key in enumerate(rows.column("external_id")):
        if not key:
            rows.reject(index, "external_id", "", "the record has no id")
    columns: dict[str, pl.Series] = {}
    if "currency" in frame.columns:
        columns["currency"] = _currency(context, rows)
    if "stage" in frame.columns:
        columns.update(_stages(connection, context, rows))
    elif "status" in frame.columns:
        columns["status"] = frame.get_column("status")
    if "owner" in frame.columns:
        columns["owner_id"] = _references(rows, "owner", lambda value: context.users.resolve(
            connection, UserRef(email=value) if "@" in value else UserRef(external_id=value, name=value),
            now=context.now))
    if "account" in frame.columns:
        columns["account_id"] = _references(rows, "account", lambda value: context.accounts.resolve(
            connection, AccountRef(external_id=value, name=value), now=context.now))
    seen = context.seen
    for index, (key, line) in enumerate(zip(rows.column("external_id"), rows.lines, strict=True)):
        if rows.ok[index]:
            seen[key] = line
    prepared = frame.with_columns(**columns)
    first_stage = context.stages.first_stage()
    if first_stage is None:
        stages = prepared.get_column("stage").to_list() if "stage" in prepared.columns else [None] * frame.height
        for index, stage in enumerate(stages):
            if rows.ok[index] and stage is None:
                rows.reject(index, "stage", "", NO_STAGE)
    for error in sorted(rows.errors, key=lambda error: error.line):
        sink.add(error)
    accepted = prepared.filter(pl.Series(rows.ok, dtype=pl.Boolean))
    if accepted.is_empty():
        return
    records = _records(context, accepted, first_stage)
    counts.inserted += queries.insert_frame(connection, table=tables.opportunities, frame=records)
    if ChangeField.STATUS not in context.history_fields:
        _opening(connection, context, records)


def _currency(context: LoadContext, rows: _Rows) -> pl.Series:
    corporate = context.corporate_currency
    codes: list[str | None] = []
    for index, given in enumerate(rows.column("currency")):
        code = (given or corporate).strip().upper()
        codes.append(code)
        if rows.ok[index] and code not in context.currencies:
            rows.reject(index, "currency", given, f"unknown currency {code!r}: no rate to convert it")
    return pl.Series("currency", codes, dtype=pl.String)


def _stages(connection: Connection, context: LoadContext, rows: _Rows) -> dict[str, pl.Series]:
    """Stage keys and statuses (a row's own status first, else the one its stage value means)."""
    frame = rows.frame
    probabilities = rows.column("_stage_probability") if "_stage_probability" in frame.columns else None
    orders = rows.column("_stage_order") if "_stage_order" in frame.columns else None
    targets: dict[Any, StageTarget] = {}
    failures: dict[Any, str] = {}
    for index, value in rows.first_seen("stage"):
        try:
            targets[value] = context.stages.resolve(
                connection, str(value or ""), probability=probabilities[index] if probabilities else None,
                order=orders[index] if orders else None,
            )
        except ValueError as exc:
            failures[value] = str(exc)
    keys: list[str | None] = []
    statuses = rows.column("status") if "status" in frame.columns else [None] * frame.height
    for index, value in enumerate(rows.column("stage")):
        target = targets.get(value)
        if rows.ok[index] and target is None:
            rows.reject(index, "stage", value, failures[value])
        keys.append(target.stage if target is not None else None)
        if statuses[index] is None and target is not None and target.status is not None:
            statuses[index] = target.status.value
    return {"stage": pl.Series("stage", keys, dtype=pl.String), "status": pl.Series("status", statuses,
                                                                                     dtype=pl.String)}


def _references(rows: _Rows, name: str, resolve: Any) -> pl.Series:
    ids: dict[Any, int | None] = {None: None}
    for _, value in rows.first_seen(name):
        if value is not None:
            ids[value] = resolve(value)
    return rows.frame.get_column(name).replace_strict(ids, default=None, return_dtype=pl.Int64)


def _records(context: LoadContext, frame: pl.DataFrame, first_stage: str | None) -> pl.DataFrame:
    """The stored columns of new opportunities (see `opportunities._new_record`)."""
    stages = context.stages
    now = context.now.astimezone(UTC).replace(tzinfo=None)
    col = frame.get_column

    def given(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name) if name in frame.columns else pl.lit(None, dtype)

    stage = pl.col("stage").fill_null(first_stage) if "stage" in frame.columns else pl.lit(first_stage, pl.String)
    status = given("status", pl.String()).fill_null(OPEN)
    midnight = given("close_date", pl.Date()).cast(pl.Datetime("us"))
    created = pl.coalesce(given("created_at", pl.Datetime("us")), midnight, pl.lit(now, pl.Datetime("us")))
    keys = frame.select(stage.unique()).to_series().to_list()
    defaults = {key: stages.default_category(key) for key in keys if key is not None}
    amounts = None
    if "amount" in frame.columns:
        amounts = pl.Series("amount", [None if value is None else round_cents(value) for value in col("amount")],
                            dtype=pl.Float64)
    records = frame.select(
        source=pl.lit(context.source),
        external_id=pl.col("external_id"),
        name=pl.coalesce(given("name", pl.String()), pl.col("external_id")),
        account_id=given("account_id", pl.Int64()),
        owner_id=given("owner_id", pl.Int64()),
        pipeline=given("pipeline", pl.String()).fill_null(stages.pipeline),
        stage=stage,
        status=status,
        amount=pl.lit(None, pl.Float64),
        currency=given("currency", pl.String()).fill_null(context.corporate_currency),
        close_date=given("close_date", pl.Date()),
        created_at=created,
        closed_at=pl.when(status == OPEN).then(given("closed_at", pl.Datetime("us")))
        .otherwise(pl.coalesce(given("closed_at", pl.Datetime("us")), midnight, created)),
        forecast_category=pl.coalesce(
            given("forecast_category", pl.String()),
            status.replace_strict(CLOSED_CATEGORY, default=None, return_dtype=pl.String),
            stage.replace_strict(defaults, default=None, return_dtype=pl.String),
        ),
        **{name: given(name, pl.Float64() if name == "probability" else pl.String()) for name in DIRECT},
        lead_id=pl.lit(None, pl.Int64),
        updated_at=pl.lit(now, pl.Datetime("us")),
    )
    return records.with_columns(amounts) if amounts is not None else records


def _opening(connection: Connection, context: LoadContext, records: pl.DataFrame) -> None:
    """Status (and category) change rows of deals imported closed without history."""
    closing = records.filter(pl.col("status") != OPEN).select("external_id", "status", "closed_at", "owner_id",
                                                              "stage", "forecast_category")
    if closing.is_empty():
        return
    ids = queries.ids_by_key(connection, table=tables.opportunities, source=context.source,
                             external_ids=closing.get_column("external_id").to_list())
    changes: list[dict[str, Any]] = []
    for record in closing.to_dicts():
        record["closed_at"] = record["closed_at"].replace(tzinfo=UTC)
        changes.extend(opening_changes(context, ids[record["external_id"]], record))
    queries.insert_changes(connection, rows=changes)
