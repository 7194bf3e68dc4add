"""HubSpot contact exports as leads: label headers mapped onto the lead fields.

Decisions, stated once:

- Name: "First Name" and "Last Name" joined (the email when both are empty).
- Created: "Became a Lead Date" when the contact has one (when the speed-to-lead clock starts), else
  "Create Date". "Owner Assigned Date" is the assignment, "Became a Sales Qualified Lead Date" the
  acceptance, "Became an Opportunity Date" the conversion, and the first id of "Associated Deal IDs" the
  converted opportunity.
- Lead Status (HubSpot's default values, as internal names or labels) becomes a lead status:

  | HubSpot                          | Closewise | why                                             |
  |----------------------------------|-----------|-------------------------------------------------|
  | NEW, OPEN                        | new       | nobody has worked it yet                        |
  | ATTEMPTED_TO_CONTACT, CONNECTED  | working   | a rep is trying or talking, not yet qualified   |
  | IN_PROGRESS                      | accepted  | sales took it on and is qualifying it           |
  | OPEN_DEAL                        | converted | a deal was opened from it                       |
  | UNQUALIFIED                      | rejected  | not a fit                                       |
  | BAD_TIMING                       | recycled  | back to nurture, recycle reason `timing`        |

  Any other value is handed to the lead loader as written (it knows Closewise's and Salesforce's words,
  and rejects the row naming the value otherwise).
- Columns no field takes are kept as custom fields (empty ones left out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from closewise.domain.enums import LeadStatus, RecycleReason
from closewise.ingest.canonical import clean_id
from closewise.ingest.generic import FieldPlan
from closewise.ingest.hubspot_deals import SOURCE
from closewise.ingest.mapping import Mapping
from closewise.ingest.readers import SourceRow
from closewise.ingest.refs import UserRef
from closewise.ingest.report import RowError

NAME_COLUMN = "First Name + Last Name"  # synthetic columns, named for error reports
CREATED_COLUMN = "Became a Lead Date, else Create Date"

LEAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("Record ID", "Contact ID", "Record ID - Contact", "hs_object_id"),
    "email": ("Email",),
    "company": ("Company Name", "Company", "Associated Company (Primary)", "Associated Company"),
    "lead_source": ("Lead Source", "Original Source", "Original Source Type"),
    "campaign": ("Campaign", "First Conversion"),
    "country": ("Country/Region", "Country"),
    "timezone": ("Time Zone",),
    "owner": ("Contact owner", "HubSpot Owner", "Owner"),
    "status": ("Lead Status", "hs_lead_status"),
    "assigned_at": ("Owner Assigned Date",),
    "first_touch_at": ("First Engagement Date", "Date of first engagement", "First Contact Date"),
    "accepted_at": ("Became a Sales Qualified Lead Date",),
    "converted_at": ("Became an Opportunity Date",),
    "converted_opportunity": ("Associated Deal IDs", "Associated Deal ID"),
}
FIRST_NAME = ("First Name", "firstname")
LAST_NAME = ("Last Name", "lastname")
BECAME_LEAD = ("Became a Lead Date",)
CREATE_DATE = ("Create Date", "createdate")

LEAD_STATUSES: dict[str, LeadStatus] = {
    "NEW": LeadStatus.NEW,
    "OPEN": LeadStatus.NEW,
    "ATTEMPTED_TO_CONTACT": LeadStatus.WORKING,
    "CONNECTED": LeadStatus.WORKING,
    "IN_PROGRESS": LeadStatus.ACCEPTED,
    "OPEN_DEAL": LeadStatus.CONVERTED,
    "UNQUALIFIED": LeadStatus.REJECTED,
    "BAD_TIMING": LeadStatus.RECYCLED,
}


def is_contact_file(columns: list[str]) -> bool:
    names = {c.strip().lower() for c in columns}
    return bool(names & {"first name", "email", "lead status", "firstname", "hs_lead_status"})


def lead_status(text: str) -> str | None:
    """A HubSpot lead status (`IN_PROGRESS` or `In Progress`) as a Closewise one; other values unchanged."""
    value = text.strip()
    if not value:
        return None
    key = "_".join(value.upper().replace("-", " ").split())
    status = LEAD_STATUSES.get(key)
    return status.value if status is not None else value


def _owner(text: str) -> UserRef | None:
    value = clean_id(text)
    if value is None:
        return None
    return UserRef(email=value) if "@" in value else UserRef(name=value)


def _first_id(text: str) -> str | None:
    return clean_id(text.split(";")[0])


def _pick(present: dict[str, str], candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        if candidate.lower() in present:
            return present[candidate.lower()]
    return None


@dataclass
class ContactPreset:
    file: str
    mapping: Mapping
    notes: list[str] = field(default_factory=list)
    synthetic: tuple[str, ...] = (NAME_COLUMN, CREATED_COLUMN)
    _first: str | None = None
    _last: str | None = None
    _became: str | None = None
    _created: str | None = None

    def augment(self, values: dict[str, str]) -> None:
        parts = [values.get(c, "").strip() for c in (self._first, self._last) if c]
        values[NAME_COLUMN] = " ".join(p for p in parts if p)
        became = values.get(self._became, "").strip() if self._became else ""
        if became:
            values[CREATED_COLUMN] = became
        elif self._became:
            values[CREATED_COLUMN] = values.get(self._created, "") if self._created else ""

    def adjust(self, plans: list[FieldPlan]) -> None:
        special: dict[str, Callable[[str], Any]] = {
            "owner": _owner, "status": lead_status, "converted_opportunity": _first_id,
        }
        for plan in plans:
            if plan.name in special:
                plan.convert = special[plan.name]

    def complete(self, record: dict[str, Any], row: SourceRow) -> dict[str, Any] | RowError:
        if isinstance(record.get("custom"), dict):
            record["custom"] = {k: v for k, v in record["custom"].items() if v.strip()} or None
        if not record.get("name"):
            record["name"] = record.get("email")
        if record.get("status") == LeadStatus.RECYCLED.value:
            record["recycle_reason"] = RecycleReason.TIMING.value
        return record


def contact_preset(path: Path, columns: list[str]) -> ContactPreset:
    present = {name.strip().lower(): name for name in columns}
    mapped: dict[str, str] = {}
    for name, candidates in LEAD_COLUMNS.items():
        found = _pick(present, candidates)
        if found is not None:
            mapped[name] = found
    first, last = _pick(present, FIRST_NAME), _pick(present, LAST_NAME)
    became, created = _pick(present, BECAME_LEAD), _pick(present, CREATE_DATE)
    if first or last:
        mapped["name"] = NAME_COLUMN
    if became:
        mapped["created_at"] = CREATED_COLUMN
    elif created:
        mapped["created_at"] = created
    used = set(mapped.values()) | {c for c in (first, last, became, created) if c}
    custom = tuple(c for c in columns if c not in used)
    preset = ContactPreset(path.name, Mapping(path, "leads", SOURCE, mapped, custom=custom))
    preset._first, preset._last, preset._became, preset._created = first, last, became, created
    return preset
