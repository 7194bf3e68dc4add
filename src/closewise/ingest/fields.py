"""The canonical fields each entity accepts from a mapping, and the kind of value each holds."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    ID = "id"
    AMOUNT = "amount"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    USER = "user"  # matched by external id, then email, then name
    ACCOUNT = "account"  # matched by external id, then name
    STAGE = "stage"
    STATUS = "status"
    CATEGORY = "category"
    CURRENCY = "currency"


ENTITIES: dict[str, dict[str, Kind]] = {
    "opportunities": {
        "external_id": Kind.ID, "name": Kind.TEXT, "account": Kind.ACCOUNT, "owner": Kind.USER,
        "stage": Kind.STAGE, "status": Kind.STATUS, "amount": Kind.AMOUNT, "currency": Kind.CURRENCY,
        "close_date": Kind.DATE, "created_at": Kind.DATETIME, "closed_at": Kind.DATETIME,
        "forecast_category": Kind.CATEGORY, "probability": Kind.NUMBER, "next_step": Kind.TEXT,
        "lead_source": Kind.TEXT, "type": Kind.TEXT, "competitor": Kind.TEXT, "lead": Kind.ID,
        "pipeline": Kind.TEXT, "modified_at": Kind.DATETIME,
    },
    "opportunity_changes": {
        "opportunity": Kind.ID, "changed_at": Kind.DATETIME, "stage": Kind.STAGE, "amount": Kind.AMOUNT,
        "close_date": Kind.DATE, "probability": Kind.NUMBER, "forecast_category": Kind.CATEGORY,
    },
    "accounts": {
        "external_id": Kind.ID, "name": Kind.TEXT, "industry": Kind.TEXT, "employees": Kind.INTEGER,
        "annual_revenue": Kind.AMOUNT, "country": Kind.TEXT, "segment": Kind.TEXT, "owner": Kind.USER,
        "created_at": Kind.DATETIME,
    },
    "contacts": {
        "external_id": Kind.ID, "account": Kind.ACCOUNT, "name": Kind.TEXT, "email": Kind.TEXT,
        "title": Kind.TEXT, "buying_role": Kind.TEXT,
    },
    "users": {
        "external_id": Kind.ID, "name": Kind.TEXT, "email": Kind.TEXT, "role": Kind.TEXT, "manager": Kind.USER,
        "title": Kind.TEXT, "hire_date": Kind.DATE, "active": Kind.BOOL, "team": Kind.TEXT,
    },
    "activities": {
        "external_id": Kind.ID, "type": Kind.TEXT, "subject": Kind.TEXT, "owner": Kind.USER,
        "opportunity": Kind.ID, "account": Kind.ACCOUNT, "lead": Kind.ID, "contact": Kind.ID,
        "occurred_at": Kind.DATETIME, "completed": Kind.BOOL,
    },
    "leads": {
        "external_id": Kind.ID, "name": Kind.TEXT, "email": Kind.TEXT, "company": Kind.TEXT,
        "lead_source": Kind.TEXT, "campaign": Kind.TEXT, "country": Kind.TEXT, "timezone": Kind.TEXT,
        "owner": Kind.USER, "status": Kind.TEXT, "created_at": Kind.DATETIME, "assigned_at": Kind.DATETIME,
        "first_touch_at": Kind.DATETIME, "accepted_at": Kind.DATETIME, "rejected_at": Kind.DATETIME,
        "recycle_reason": Kind.TEXT, "re_engage_at": Kind.DATE, "converted_at": Kind.DATETIME,
        "converted_opportunity": Kind.ID,
    },
    "currency_rates": {
        "currency": Kind.CURRENCY, "rate": Kind.NUMBER, "start_date": Kind.DATE, "is_corporate": Kind.BOOL,
    },
    "quotas": {
        "owner": Kind.USER, "team": Kind.TEXT, "period": Kind.TEXT, "amount": Kind.AMOUNT, "currency": Kind.CURRENCY,
    },
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "opportunities": ("external_id",),
    "opportunity_changes": ("opportunity", "changed_at"),
    "accounts": ("external_id",),
    "contacts": ("external_id",),
    "users": ("external_id",),
    "activities": ("external_id", "occurred_at"),
    "leads": ("external_id", "created_at"),
    "quotas": ("period", "amount"),
    "currency_rates": ("currency", "rate"),
}
