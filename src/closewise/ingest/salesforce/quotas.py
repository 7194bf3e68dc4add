"""ForecastingQuota rows -> canonical quota rows (owner, fiscal period, amount, currency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from closewise.domain.periods import PeriodKind
from closewise.ingest.canonical import clean_id
from closewise.ingest.readers import BadRow, SourceRow, open_table
from closewise.ingest.refs import UserRef
from closewise.ingest.report import ErrorSink, RowError
from closewise.ingest.salesforce.presets import parse_when
from closewise.ingest.values import parse_amount
from closewise.services.org import fiscal_calendar


def _period_kinds(periods: Path | None) -> dict[str, PeriodKind]:
    kinds: dict[str, PeriodKind] = {}
    if periods is None:
        return kinds
    with open_table(periods) as table:
        for row in table:
            if isinstance(row, SourceRow):
                kind = row.values.get("Type", "").strip().lower()
                if kind in ("month", "quarter", "year"):
                    kinds[row.values.get("Id", "")] = PeriodKind(kind)
    return kinds


def quota_rows(connection: Connection, path: Path, periods: Path | None, sink: ErrorSink) -> list[dict[str, Any]]:
    calendar = fiscal_calendar(connection)
    kinds = _period_kinds(periods)
    rows: list[dict[str, Any]] = []
    with open_table(path) as table:
        for row in table:
            if isinstance(row, BadRow):
                sink.counts.read += 1
                sink.add(RowError(path.name, row.line, "", row.raw[:200], row.reason))
                continue
            values = row.values
            start_text, amount_text = values.get("StartDate", ""), values.get("QuotaAmount", "")
            try:
                start = parse_when(start_text)
            except ValueError as exc:
                sink.counts.read += 1
                sink.add(RowError(path.name, row.line, "StartDate", start_text, str(exc)))
                continue
            try:
                amount = parse_amount(amount_text)
            except ValueError as exc:
                sink.counts.read += 1
                sink.add(RowError(path.name, row.line, "QuotaAmount", amount_text, str(exc)))
                continue
            if start is None:
                sink.counts.read += 1
                sink.add(RowError(path.name, row.line, "StartDate", start_text, "the quota has no start date"))
                continue
            if amount is None:
                sink.counts.read += 1
                sink.add(RowError(path.name, row.line, "QuotaAmount", amount_text, "the quota has no amount"))
                continue
            kind = kinds.get(values.get("PeriodId", ""), PeriodKind.QUARTER)
            rows.append({
                "_file": path.name, "_line": row.line,
                "owner": UserRef(external_id=clean_id(values.get("QuotaOwnerId", ""))),
                "period": calendar.period_containing(start.date(), kind).label, "amount": amount,
                "currency": (values.get("CurrencyIsoCode") or "").strip().upper() or None,
            })
    return rows
