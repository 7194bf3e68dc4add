"""HubSpot deal exports: label headers mapped onto opportunities, and `Date entered` columns as stage history.

A deal export names its columns by property label ("Deal Name", "Deal Stage", "Close Date", "Deal owner",
...) and holds only the properties the user chose, so the mapping is built from the columns present. Columns
no field takes are kept as custom fields, except the stage-history family (`Date entered`, `Date exited`,
`Time in`, `Cumulative time in`), which is history or derived from it.

Decisions, stated once:

- Status: from "Is Closed Won" / "Is Deal Closed?" when the export has them, else from the stage label
  (`Closed won` / `Closed lost` and their spellings). A closed deal's stage is its last open stage, which
  the stage history sets (ingest/history_load.py).
- Amount: "Amount" in the deal's currency ("Deal currency code" / "Currency"). A single-currency export
  without a currency column uses "Amount in company currency" when it has it (that is the corporate amount).
- Probability: HubSpot writes 0-1; a column whose values are all at most 1 is read as fractions and stored
  as percent (0-100), otherwise as percent already.
- Owner: "Deal owner" holds a person's name (an email when it has `@`), matched to users by name or email.
- Stages: every HubSpot pipeline's stages go into the one playbook (`default`), in the order the export
  lists its `Date entered` columns (HubSpot lists them in pipeline order); the deal keeps its HubSpot
  pipeline name in `pipeline`. A label used by two pipelines is one stage.
- History: each non-empty `Date entered "<stage> (<pipeline>)"` cell is a snapshot "in <stage> from then";
  a `Date exited` cell is a snapshot "still in <stage> until then", which only matters when the next
  stage's entry is missing. Several entries at the same time keep the stage listed later in the pipeline.
  A closed deal's `closed_at` is when it entered its closing stage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from closewise.domain.enums import OpportunityStatus
from closewise.ingest.canonical import clean_id, parse_category
from closewise.ingest.generic import FieldPlan
from closewise.ingest.mapping import Mapping
from closewise.ingest.readers import SourceRow
from closewise.ingest.refs import AccountRef, UserRef, slug
from closewise.ingest.report import RowError
from closewise.ingest.values import DateFormat, infer_date_format, parse_amount, parse_bool, parse_datetime

SOURCE = "hubspot"
STATUS_COLUMN = "_hubspot_status"  # synthetic: open / won / lost from the closed flags or the stage label

DEAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("Record ID", "Deal ID", "Record ID - Deal", "hs_object_id"),
    "name": ("Deal Name", "dealname"),
    "stage": ("Deal Stage", "dealstage"),
    "pipeline": ("Pipeline",),
    "currency": ("Deal currency code", "Currency", "Deal Currency"),
    "close_date": ("Close Date", "closedate"),
    "created_at": ("Create Date", "createdate"),
    "owner": ("Deal owner", "HubSpot Owner", "Owner"),
    "probability": ("Deal probability", "hs_deal_stage_probability"),
    "forecast_category": ("Forecast category", "hs_manual_forecast_category"),
    "type": ("Deal Type", "dealtype"),
    "modified_at": ("Last Modified Date", "hs_lastmodifieddate"),
    "account": ("Associated Company (Primary)", "Associated Company", "Company name", "Company"),
    "next_step": ("Next step", "hs_next_step"),
    "lead_source": ("Original Source Type", "Original Source", "Lead Source", "Deal source"),
    "competitor": ("Competitor",),
}
ACCOUNT_IDS = ("Associated Company IDs (Primary)", "Associated Company IDs", "Associated Company ID")
CLOSED_FLAGS = ("Is Deal Closed?", "Is Closed", "Is Deal Closed")
WON_FLAGS = ("Is Closed Won", "Is closed won")

_HISTORY = re.compile(
    r"""^(?P<what>date entered|date exited|time in|cumulative time in)\s+["'“”‘’](?P<body>.+)["'“”‘’]\s*$""",
    re.IGNORECASE,
)
_PIPELINE = re.compile(r"^(?P<label>.+?)\s*\((?P<pipeline>[^()]*)\)$")
_WON = {"closed_won", "closedwon", "won"}
_LOST = {"closed_lost", "closedlost", "lost"}
_CATEGORIES = {
    "omit": "omitted", "omitted": "omitted", "not forecasted": "omitted", "not_forecasted": "omitted",
    "closed won": "closed", "closed_won": "closed", "best_case": "best_case",
}


@dataclass(frozen=True)
class HistoryColumn:
    column: str
    entered: bool  # False: a `Date exited` column
    label: str
    pipeline: str | None
    position: int  # header order among the entered columns (pipeline order)


def is_deal_file(columns: list[str]) -> bool:
    names = {c.strip().lower() for c in columns}
    return bool(names & {"deal name", "deal stage", "dealname", "dealstage"})


def history_columns(columns: list[str]) -> list[HistoryColumn]:
    found: list[HistoryColumn] = []
    for column in columns:
        match = _HISTORY.match(column.strip())
        if match is None or match["what"].lower() not in ("date entered", "date exited"):
            continue
        body = match["body"].strip()
        part = _PIPELINE.match(body)
        label, pipeline = (part["label"].strip(), part["pipeline"].strip()) if part else (body, None)
        found.append(HistoryColumn(column, match["what"].lower() == "date entered", label, pipeline, len(found)))
    return found


def _is_history_family(column: str) -> bool:
    return _HISTORY.match(column.strip()) is not None


def stage_status(label: str) -> OpportunityStatus:
    key = slug(label)
    if key in _WON:
        return OpportunityStatus.WON
    if key in _LOST:
        return OpportunityStatus.LOST
    return OpportunityStatus.OPEN


def _first(present: dict[str, str], candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        if candidate.lower() in present:
            return present[candidate.lower()]
    return None


def _owner(text: str) -> UserRef | None:
    value = clean_id(text)
    if value is None:
        return None
    return UserRef(email=value) if "@" in value else UserRef(name=value)


def _category(text: str) -> str | None:
    key = " ".join(text.strip().lower().split())
    return _CATEGORIES.get(key) or parse_category(text)


def _number(text: str) -> tuple[float | None, bool]:
    """The value and whether it was written with `%`."""
    stripped = text.strip()
    percent = stripped.endswith("%")
    return parse_amount(stripped.rstrip("%")), percent


@dataclass
class DealPreset:
    """How one deal file is read: the mapping, its converters and the per-row completion."""

    file: str
    mapping: Mapping
    history: list[HistoryColumn]
    history_format: DateFormat | None
    fraction: bool
    notes: list[str] = field(default_factory=list)
    synthetic: tuple[str, ...] = (STATUS_COLUMN,)
    _closed_flag: str | None = None
    _won_flag: str | None = None
    _stage_column: str | None = None
    _account_ids: str | None = None

    def augment(self, values: dict[str, str]) -> None:
        """Add the synthetic status column (from the closed flags, else the stage label)."""
        closed = values.get(self._closed_flag, "") if self._closed_flag else ""
        status = ""
        try:
            if closed.strip():
                won = values.get(self._won_flag, "") if self._won_flag else ""
                status = ("won" if parse_bool(won or "0") else "lost") if parse_bool(closed) else "open"
        except ValueError:
            status = ""  # a flag that is not yes/no: fall back on the stage
        if not status and self._stage_column:
            label = values.get(self._stage_column, "")
            status = stage_status(label).value if label.strip() else ""
        values[STATUS_COLUMN] = status

    def adjust(self, plans: list[FieldPlan]) -> None:
        """HubSpot-specific readings of the owner, probability and forecast category."""
        scale = 100.0 if self.fraction else 1.0

        def probability(text: str) -> float | None:
            value, percent = _number(text)
            if value is None:
                return None
            return value if percent else value * scale

        special: dict[str, Callable[[str], Any]] = {
            "owner": _owner, "probability": probability, "forecast_category": _category,
        }
        for plan in plans:
            if plan.name in special:
                plan.convert = special[plan.name]

    def complete(self, record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError:
        """Drop empty custom values, attach the stage snapshots (`_history`) and set closed_at from them."""
        if isinstance(record.get("custom"), dict):
            record["custom"] = {k: v for k, v in record["custom"].items() if v.strip()} or None
        if self._account_ids and isinstance(record.get("account"), AccountRef):
            first_id = row.values.get(self._account_ids, "").split(";")[0].strip()
            name = record["account"].name
            if first_id:
                record["account"] = AccountRef(external_id=first_id, name=name.split(";")[0].strip() if name else None)
        if record.get("probability") is not None:
            record["_stage_probability"] = record["probability"]
        snapshots: dict[datetime, tuple[bool, int, str]] = {}
        for column in self.history:
            text = row.values.get(column.column, "")
            if not text.strip():
                continue
            try:
                moment = parse_datetime(text, self.history_format or DateFormat.iso())
            except ValueError as exc:
                return RowError(self.file, row.line, column.column, text, str(exc))
            assert moment is not None
            at = moment.astimezone(UTC).replace(tzinfo=None)
            rank = (column.entered, column.position, column.label)
            if at not in snapshots or rank > snapshots[at]:
                snapshots[at] = rank
        record["_history"] = sorted((at, label) for at, (_, _, label) in snapshots.items())
        if record.get("status") in (OpportunityStatus.WON.value, OpportunityStatus.LOST.value) and \
                "closed_at" not in self.mapping.columns:
            closing = [at for at, label in record["_history"] if stage_status(label) is not OpportunityStatus.OPEN]
            if closing:
                record["closed_at"] = max(closing).replace(tzinfo=UTC)
        return record


def deal_preset(path: Path, columns: list[str], sample: list[SourceRow]) -> DealPreset:
    """The mapping of a deal file's columns (only those present), with the date and probability readings."""
    present = {name.strip().lower(): name for name in columns}
    mapped: dict[str, str] = {}
    for name, candidates in DEAL_COLUMNS.items():
        found = _first(present, candidates)
        if found is not None:
            mapped[name] = found
    notes: list[str] = []
    amount = _first(present, ("Amount",))
    company_amount = _first(present, ("Amount in company currency",))
    if "currency" not in mapped and company_amount:
        mapped["amount"] = company_amount
        notes.append(f"{path.name}: no currency column; amounts read from {company_amount!r} (corporate currency)")
    elif amount:
        mapped["amount"] = amount
    elif company_amount:
        mapped["amount"] = company_amount
    mapped["status"] = STATUS_COLUMN
    history = history_columns(columns)
    used = set(mapped.values()) | set(CLOSED_FLAGS) | set(WON_FLAGS)
    custom = tuple(c for c in columns if c not in used and not _is_history_family(c)
                   and c.strip().lower() not in {a.lower() for a in ACCOUNT_IDS})
    mapping = Mapping(path, "opportunities", SOURCE, mapped, custom=custom)
    history_format = None
    if history:
        values = [row.values.get(c.column, "") for row in sample for c in history]
        history_format = infer_date_format(v for v in values if v.strip())
        notes.append(f"{path.name}: stage history columns ({len(history)} Date entered/exited): "
                     f"{history_format.description}")
    fraction = False
    if "probability" in mapped:
        numbers = []
        for row in sample:
            try:
                value, percent = _number(row.values.get(mapped["probability"], ""))
            except ValueError:
                continue
            if value is not None:
                numbers.append(100.0 if percent else value)
        fraction = bool(numbers) and max(numbers) <= 1.0
        if fraction:
            notes.append(f"{path.name}: {mapped['probability']!r} holds fractions (0-1); stored as percent")
    preset = DealPreset(path.name, mapping, history, history_format, fraction, notes)
    preset._closed_flag = _first(present, CLOSED_FLAGS)
    preset._won_flag = _first(present, WON_FLAGS)
    preset._stage_column = mapped.get("stage")
    preset._account_ids = _first(present, ACCOUNT_IDS)
    return preset


def stage_probabilities(preset: DealPreset, sample: list[dict[str, Any]]) -> dict[str, float]:
    """The most common probability of each stage label among converted sample rows (HubSpot's default for
    a stage is what its deals carry unless a rep overrode it)."""
    counts: dict[str, dict[float, int]] = {}
    for record in sample:
        label, probability = record.get("stage"), record.get("probability")
        if label and probability is not None:
            per = counts.setdefault(str(label).strip().lower(), {})
            per[float(probability)] = per.get(float(probability), 0) + 1
    return {label: max(per, key=lambda p: per[p]) for label, per in counts.items()}
