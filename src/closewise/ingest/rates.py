"""Loading currency rates, upserted by (currency, start date).

A rate is how many units of the currency one unit of the corporate currency buys (Salesforce's
ConversionRate). A rate without a start date is the static rate (CurrencyType); a dated one applies from
its start date on (DatedConversionRate). A row marked as the corporate currency makes that currency the
organisation's own when it is not already. Loaded codes join the import's known currencies, so the
opportunities that follow in the same import may use them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.db.org_settings import read_settings, write_setting
from closewise.ingest.context import LoadContext
from closewise.ingest.loadkit import BadValue, Prepared, Row, boolean, changed_values, day, number, prepare_rows, text
from closewise.ingest.report import EntityCounts, ErrorSink

_CODE = re.compile(r"[A-Z]{3}")


def _prepare_rate(row: Row, corporate: dict[str, int]) -> Prepared:
    written = text(row, "currency")
    code = (written or "").upper()
    if not _CODE.fullmatch(code):
        raise BadValue("currency", written, f"{written or ''!r} is not a currency code like EUR")
    rate = number(row, "rate")
    if rate is None:
        raise BadValue("rate", "", "the rate is missing")
    if rate <= 0:
        raise BadValue("rate", row.get("rate"), f"a rate must be above zero, not {rate:g}")
    start = day(row, "start_date")
    is_corporate = bool(boolean(row, "is_corporate"))
    if is_corporate and corporate and code not in corporate:
        first, line = next(iter(corporate.items()))
        raise BadValue("is_corporate", code, f"{first} is already the corporate currency (line {line})")
    if is_corporate:
        corporate.setdefault(code, int(row.get("_line", 0)))
    return Prepared(f"{code}/{start.isoformat() if start else 'static'}", row, {"rate": rate},
                    {"currency": code, "start_date": start, "is_corporate": is_corporate})


def load_currency_rate_batch(
    connection: Connection, context: LoadContext, rows: Sequence[Row], counts: EntityCounts, sink: ErrorSink,
    *, notes: list[str] | None = None,
) -> None:
    """Upsert one batch of canonical currency-rate rows inside the caller's transaction.

    Fields: currency (required), rate (required, > 0), start_date (none for the static rate), is_corporate.
    """
    counts.read += len(rows)
    corporate: dict[str, int] = {}
    items = prepare_rows(context, "currency_rates", rows, sink, lambda row: _prepare_rate(row, corporate),
                         key_column="currency")
    stored = {
        (str(record["currency"]).upper(), record["start_date"]): record
        for record in queries.currency_rates_for(connection, currencies=[item.links["currency"] for item in items])
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for item in items:
        record = stored.get((item.links["currency"], item.links["start_date"]))
        if record is None:
            inserts.append({"currency": item.links["currency"], "start_date": item.links["start_date"],
                            **item.values})
            continue
        changes = changed_values(record, item.values)
        if changes:
            counts.updated += 1
            updates.append({"id": record["id"], **changes})
        else:
            counts.unchanged += 1
    counts.inserted += len(queries.insert_returning_ids(connection, table=tables.currency_rates, rows=inserts))
    queries.update_by_id(connection, table=tables.currency_rates, rows=updates)
    context.currencies.update(item.links["currency"] for item in items)
    for code in corporate:
        was = read_settings(connection)["corporate_currency"].upper()
        if code != was:
            write_setting(connection, key="corporate_currency", value=code)
            if notes is not None:
                notes.append(f"corporate currency set to {code} (was {was})")
        context.corporate_currency = code
        context.currencies.add(code)
