"""How each Salesforce object's API-named columns map onto Closewise's canonical fields.

Only the columns a file has are mapped (exports differ by org and edition). Custom `__c` columns are kept
as custom fields. Row hooks add what needs several columns: a status from IsClosed/IsWon, a person's name
from FirstName and LastName, what a Task or Event is about from the id prefix of WhatId/WhoId.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from closewise.domain.enums import OpportunityStatus, Role
from closewise.errors import InvalidInput
from closewise.ingest.canonical import clean_id
from closewise.ingest.fastpath import FastHook, HookResult
from closewise.ingest.mapping import Mapping
from closewise.ingest.readers import SourceRow
from closewise.ingest.refs import AccountRef, slug
from closewise.ingest.report import RowError
from closewise.ingest.values import DateFormat, parse_bool, parse_datetime

SOURCE = "salesforce"
Hook = Callable[[dict[str, Any], SourceRow], dict[str, Any] | RowError | None]

# Salesforce id prefixes (the first three characters name the object).
OPPORTUNITY, ACCOUNT, LEAD, CONTACT = "006", "001", "00Q", "003"

COLUMNS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "CurrencyType": ("currency_rates", {
        "currency": ("IsoCode",), "rate": ("ConversionRate",), "is_corporate": ("IsCorporate",),
    }),
    "DatedConversionRate": ("currency_rates", {
        "currency": ("IsoCode",), "rate": ("ConversionRate",), "start_date": ("StartDate",),
    }),
    "User": ("users", {
        "external_id": ("Id",), "email": ("Email",), "manager": ("ManagerId",), "title": ("Title",),
        "active": ("IsActive",),
    }),
    "Account": ("accounts", {
        "external_id": ("Id",), "name": ("Name",), "industry": ("Industry",), "employees": ("NumberOfEmployees",),
        "annual_revenue": ("AnnualRevenue",), "country": ("BillingCountry", "Country", "ShippingCountry"),
        "owner": ("OwnerId",), "created_at": ("CreatedDate",),
    }),
    "Contact": ("contacts", {
        "external_id": ("Id",), "account": ("AccountId",), "email": ("Email",), "title": ("Title",),
    }),
    "Opportunity": ("opportunities", {
        "external_id": ("Id",), "name": ("Name",), "account": ("AccountId",), "owner": ("OwnerId",),
        "stage": ("StageName",), "amount": ("Amount",), "currency": ("CurrencyIsoCode",), "close_date": ("CloseDate",),
        "created_at": ("CreatedDate",), "forecast_category": ("ForecastCategoryName", "ForecastCategory"),
        "probability": ("Probability",), "next_step": ("NextStep",), "lead_source": ("LeadSource",),
        "type": ("Type",), "modified_at": ("LastModifiedDate",),
    }),
    "OpportunityHistory": ("opportunity_changes", {
        "opportunity": ("OpportunityId",), "changed_at": ("CreatedDate",), "stage": ("StageName",),
        "amount": ("Amount",), "close_date": ("CloseDate",), "probability": ("Probability",),
        "forecast_category": ("ForecastCategory",),
    }),
    "Lead": ("leads", {
        "external_id": ("Id",), "email": ("Email",), "company": ("Company",), "lead_source": ("LeadSource",),
        "status": ("Status",), "owner": ("OwnerId",), "created_at": ("CreatedDate",), "country": ("Country",),
        "converted_at": ("ConvertedDate",), "converted_opportunity": ("ConvertedOpportunityId",),
    }),
    "Task": ("activities", {
        "external_id": ("Id",), "subject": ("Subject",), "owner": ("OwnerId",), "completed": ("IsClosed",),
    }),
    "Event": ("activities", {
        "external_id": ("Id",), "subject": ("Subject",), "owner": ("OwnerId",),
    }),
}


def preset(obj: str, columns: list[str], *, file: str) -> Mapping:
    entity, wanted = COLUMNS[obj]
    present = {name.strip().lower(): name for name in columns}
    mapped: dict[str, str] = {}
    for name, candidates in wanted.items():
        for candidate in candidates:
            if candidate.lower() in present:
                mapped[name] = present[candidate.lower()]
                break
    key = {"opportunity_changes": "opportunity", "currency_rates": "currency"}.get(entity, "external_id")
    if key not in mapped:
        raise InvalidInput(f"{file} has no {wanted[key][0]} column", where=file)
    custom = tuple(name for name in columns if name.endswith("__c"))
    return Mapping(Path(file), entity, SOURCE, mapped, custom=custom if entity in ("opportunities", "accounts")
                   else ())


def _value(row: SourceRow, *names: str) -> str:
    for name in names:
        value = row.values.get(name)
        if value is not None and value.strip():
            return value.strip()
    return ""


def _deleted(record: dict[str, Any], row: SourceRow) -> bool | RowError:
    """Whether the row is marked deleted, or the RowError naming a bad IsDeleted."""
    text = _value(row, "IsDeleted")
    try:
        return is_deleted(text)
    except ValueError as exc:
        return RowError(row_file(record), row.line, "IsDeleted", text, str(exc))


def is_deleted(text: str) -> bool:
    """IsDeleted (stripped text; empty means no); ValueError for a value that is not yes or no."""
    return parse_bool(text or "0") is True


def _person_name(row: SourceRow) -> str | None:
    name = _value(row, "Name") or " ".join(p for p in (_value(row, "FirstName"), _value(row, "LastName")) if p)
    return name or None


def opportunity_status(closed: str, won: str, stage: str | None) -> str | None:
    """The status IsClosed / IsWon say (None when IsClosed is empty); ValueError names a bad IsClosed.

    A closed, not won deal whose stage reads like "no decision" is `no_decision`, not `lost`.
    """
    if not closed:
        return None
    if not parse_bool(closed):
        return OpportunityStatus.OPEN.value
    status = OpportunityStatus.WON if parse_bool(won or "0") else OpportunityStatus.LOST
    if status is OpportunityStatus.LOST and "no_decision" in slug(stage or ""):
        status = OpportunityStatus.NO_DECISION
    return status.value


def stage_order(text: str) -> int | None:
    """StageSortOrder, when it is a plain number."""
    return int(text) if text.isascii() and text.isdigit() else None


def opportunity_hook(record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError | None:
    deleted = _deleted(record, row)
    if isinstance(deleted, RowError):
        return deleted
    if deleted:
        return None
    closed, won = _value(row, "IsClosed"), _value(row, "IsWon")
    try:
        status = opportunity_status(closed, won, record.get("stage"))
    except ValueError as exc:
        return RowError(row_file(record), row.line, "IsClosed", closed, str(exc))
    if status is not None:
        record["status"] = status
    order = stage_order(_value(row, "StageSortOrder"))
    if order is not None:
        record["_stage_order"] = order
    if record.get("probability") is not None:
        record["_stage_probability"] = record["probability"]
    return record


def row_file(record: dict[str, Any]) -> str:
    return str(record.get("_file", ""))


def history_hook(record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError | None:
    deleted = _deleted(record, row)
    if isinstance(deleted, RowError):
        return deleted
    return None if deleted else record


def user_hook(roles: dict[str, str]) -> Hook:
    """Users: a name from its parts, a role from the UserRole name, a hire date from CreatedDate."""

    def hook(record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError | None:
        record["name"] = _person_name(row) or _value(row, "Username") or record.get("email") or record["external_id"]
        role_name = roles.get(_value(row, "UserRoleId"), "").lower()
        if role_name:
            if any(word in role_name for word in ("ceo", "cro", "chief", "vp", "vice president", "head of sales")):
                record["role"] = Role.LEADER.value
            elif any(word in role_name for word in ("manager", "director", "lead")):
                record["role"] = Role.MANAGER.value
            else:
                record["role"] = Role.REP.value
        created = _value(row, "CreatedDate")
        if created:
            try:
                parsed = parse_when(created)
            except ValueError:
                parsed = None
            if parsed is not None:
                record["hire_date"] = parsed.date()
        return record

    return hook


def person_hook(record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError | None:
    deleted = _deleted(record, row)
    if isinstance(deleted, RowError):
        return deleted
    if deleted:
        return None
    record["name"] = _person_name(row)
    return record


def activity_hook(kind: str) -> Hook:
    """Tasks and Events: what they concern (WhatId/WhoId by id prefix), their type and time."""

    def hook(record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError | None:
        deleted = _deleted(record, row)
        if isinstance(deleted, RowError):
            return deleted
        if deleted:
            return None
        what, who = clean_id(_value(row, "WhatId")) or "", clean_id(_value(row, "WhoId")) or ""
        if what.startswith(OPPORTUNITY):
            record["opportunity"] = what
        elif what.startswith(ACCOUNT):
            record["account"] = AccountRef(external_id=what)
        if clean_id(_value(row, "AccountId") or "") and "account" not in record:
            record["account"] = AccountRef(external_id=_value(row, "AccountId"))
        if who.startswith(LEAD):
            record["lead"] = who
        elif who.startswith(CONTACT):
            record["contact"] = who
        if kind == "Event":
            record["type"] = "meeting"
            when = _value(row, "ActivityDateTime", "StartDateTime", "ActivityDate", "CreatedDate")
            record["completed"] = True
        else:
            record["type"] = _value(row, "TaskSubtype", "Type") or "task"
            when = _value(row, "CompletedDateTime", "ActivityDate", "CreatedDate")
            if "completed" not in record or record["completed"] is None:
                record["completed"] = _value(row, "Status").lower() == "completed"
        try:
            record["occurred_at"] = parse_when(when) if when else None
        except ValueError as exc:
            return RowError(row_file(record), row.line, "ActivityDate", when, str(exc))
        if record["occurred_at"] is None:
            return RowError(row_file(record), row.line, "ActivityDate", "", "the activity has no date")
        return record

    return hook


_ISO = DateFormat.iso(with_time=True)
_US = DateFormat.numeric("mdy", "/")


def parse_when(text: str) -> datetime | None:
    """A Data Export timestamp (`2024-01-02 03:04:05`), or the Excel-style `01/02/24 3:04 AM`."""
    try:
        return parse_datetime(text, _ISO)
    except ValueError:
        return parse_datetime(text, _US)


OPPORTUNITY_HOOK_COLUMNS = ("IsDeleted", "IsClosed", "IsWon", "StageSortOrder")


def opportunity_frame_hook(raw: pl.DataFrame, converted: pl.DataFrame) -> HookResult:
    """`opportunity_hook` for a whole frame: the same functions, called once per distinct combination."""
    stages = converted.get_column("stage") if "stage" in converted.columns else pl.Series([None] * raw.height,
                                                                                         dtype=pl.String)
    keys = pl.DataFrame({"deleted": raw.get_column("IsDeleted"), "closed": raw.get_column("IsClosed"),
                         "won": raw.get_column("IsWon"), "order": raw.get_column("StageSortOrder"),
                         "stage": stages}).with_row_index("row")
    fields = ["deleted", "closed", "won", "order", "stage"]
    outcomes: list[dict[str, Any]] = []
    for deleted, closed, won, order, stage in keys.select(fields).unique().iter_rows():
        outcome: dict[str, Any] = {"deleted": deleted, "closed": closed, "won": won, "order": order, "stage": stage,
                                   "keep": True, "status": None, "stage_order": None, "error": None,
                                   "error_column": None, "error_value": None}
        try:
            gone = is_deleted(deleted.strip())
        except ValueError as exc:
            outcome.update(error=str(exc), error_column="IsDeleted", error_value=deleted.strip())
            outcomes.append(outcome)
            continue
        if gone:
            outcome["keep"] = False
            outcomes.append(outcome)
            continue
        outcome["stage_order"] = stage_order(order.strip())
        try:
            outcome["status"] = opportunity_status(closed.strip(), won.strip(), stage)
        except ValueError as exc:
            outcome.update(error=str(exc), error_column="IsClosed", error_value=closed.strip())
        outcomes.append(outcome)
    schema = {"deleted": pl.String, "closed": pl.String, "won": pl.String, "order": pl.String, "stage": pl.String,
              "keep": pl.Boolean, "status": pl.String, "stage_order": pl.Int64, "error": pl.String,
              "error_column": pl.String, "error_value": pl.String}
    joined = keys.join(pl.DataFrame(outcomes, schema=schema), on=fields, how="left", nulls_equal=True) \
        .sort("row")
    errors = {
        int(row): (str(column), str(value), str(reason))
        for row, column, value, reason in joined.filter(pl.col("error").is_not_null())
        .select("row", "error_column", "error_value", "error")
        .iter_rows()
    }
    probability = converted.get_column("probability") if "probability" in converted.columns else None
    return HookResult(keep=joined.get_column("keep"), status=joined.get_column("status"),
                      stage_order=joined.get_column("stage_order"), stage_probability=probability, errors=errors)


OPPORTUNITY_FAST_HOOK = FastHook(opportunity_hook, opportunity_frame_hook, OPPORTUNITY_HOOK_COLUMNS)


def history_frame_hook(raw: pl.DataFrame, converted: pl.DataFrame) -> HookResult:
    """`history_hook` for a whole frame: IsDeleted read once per distinct value (with Python's strip, as
    `_value` strips)."""
    deleted = raw.get_column("IsDeleted")
    keep: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    for text in deleted.unique().to_list():
        try:
            keep[text] = not is_deleted(text.strip())
        except ValueError as exc:
            keep[text], reasons[text] = True, str(exc)
    errors: dict[int, tuple[str, str, str]] = {}
    if reasons:
        bad = deleted.is_in(list(reasons))
        for index, text in zip(bad.arg_true().to_list(), deleted.filter(bad).to_list(), strict=True):
            errors[index] = ("IsDeleted", text.strip(), reasons[text])
    kept = deleted.replace_strict(keep, return_dtype=pl.Boolean) if keep else pl.Series([], dtype=pl.Boolean)
    return HookResult(keep=kept.alias("keep"), errors=errors)


HISTORY_FAST_HOOK = FastHook(history_hook, history_frame_hook, ("IsDeleted",))
