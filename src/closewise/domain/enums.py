"""The fixed vocabularies of the data model. Stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    LEADER = "leader"
    MANAGER = "manager"
    REP = "rep"
    VIEWER = "viewer"


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    NO_DECISION = "no_decision"

    @property
    def is_closed(self) -> bool:
        return self is not OpportunityStatus.OPEN


class ForecastCategory(StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


class ChangeField(StrEnum):
    """Fields of an opportunity whose every change is kept in the append-only log."""

    STAGE = "stage"
    STATUS = "status"
    AMOUNT = "amount"
    CLOSE_DATE = "close_date"
    FORECAST_CATEGORY = "forecast_category"
    OWNER = "owner_id"
    PROBABILITY = "probability"
    NEXT_STEP = "next_step"
    CURRENCY = "currency"


class ActivityType(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    TASK = "task"


class LeadStatus(StrEnum):
    NEW = "new"
    WORKING = "working"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RECYCLED = "recycled"
    CONVERTED = "converted"


class RecycleReason(StrEnum):
    NO_BUDGET = "no_budget"
    NO_AUTHORITY = "no_authority"
    TIMING = "timing"
    NOT_A_FIT = "not_a_fit"
    NO_RESPONSE = "no_response"
    COMPETITOR = "competitor"
    OTHER = "other"


class ChangeSource(StrEnum):
    """Where a change-log row came from."""

    CREATED = "created"
    IMPORT = "import"
    HISTORY = "history"
    APP = "app"
    DEMO = "demo"
    SWEEP = "sweep"
