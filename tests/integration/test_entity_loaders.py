"""The batch loaders of accounts, contacts, users, activities, leads, quotas and currency rates.

Each test loads canonical rows (as an importer would hand them over) into a migrated empty database, and
checks the counts, the stored records, the rejections (column and reason) and that a re-load changes
nothing. A fresh `LoadContext` stands for a new import; reusing one stands for entities of the same import.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import tables
from closewise.db.org_settings import read_settings
from closewise.db.users import insert_user
from closewise.ingest import entities
from closewise.ingest.context import LoadContext
from closewise.ingest.entities import BatchLoader
from closewise.ingest.opportunities import load_opportunity_batch
from closewise.ingest.refs import AccountRef, UserRef
from closewise.ingest.report import EntityCounts, ErrorSink
from closewise.ingest.session import ImportSession

MAY = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


@dataclass
class Outcome:
    counts: EntityCounts
    errors: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def tally(self) -> tuple[int, int, int, int, int]:
        c = self.counts
        return c.read, c.inserted, c.updated, c.unchanged, c.rejected

    def reasons(self) -> dict[str, tuple[str, str]]:
        """{line: (column, reason)} of the rejected rows."""
        return {error["line"]: (error["column"], error["reason"]) for error in self.errors}


class Loads:
    """Runs loaders as imports do: one transaction per batch, errors written to a CSV file."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self.runs = 0

    def context(self) -> LoadContext:
        session = ImportSession(self.engine, kind="test", path=self.tmp_path / "x.csv", source="test",
                                errors_dir=self.tmp_path)
        return session.load_context()

    def __call__(self, loader: BatchLoader, rows: list[dict[str, Any]], context: LoadContext | None = None) -> Outcome:
        self.runs += 1
        counts = EntityCounts()
        path = self.tmp_path / f"errors-{self.runs}.csv"
        sink = ErrorSink(path, counts)
        notes: list[str] = []
        with self.engine.begin() as connection:
            loader(connection, context or self.context(), rows, counts, sink, notes=notes)
        sink.close()
        errors: list[dict[str, str]] = []
        if path.exists():
            with path.open(encoding="utf-8", newline="") as handle:
                errors = list(csv.DictReader(handle))
        return Outcome(counts, errors, notes)

    def select(self, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
        query = sa.select(table).where(*where).order_by(*table.primary_key.columns)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def select_external_ids(self) -> list[dict[str, Any]]:
        return self.select(tables.user_external_ids)


@pytest.fixture
def loads(engine: Engine, tmp_path: Path) -> Loads:
    return Loads(engine, tmp_path)


def row(line: int, **fields: Any) -> dict[str, Any]:
    return {"_file": "x.csv", "_line": line, **fields}


def opportunity(line: int, external_id: str, **fields: Any) -> dict[str, Any]:
    return row(line, external_id=external_id, name=f"Deal {external_id}", stage="Prospecting", amount=1000.0,
               close_date=date(2024, 6, 30), created_at=MAY, **fields)


def load_opportunities(loads: Loads, rows: list[dict[str, Any]], context: LoadContext | None = None) -> None:
    counts = EntityCounts()
    sink = ErrorSink(loads.tmp_path / "opportunity-errors.csv", counts)
    with loads.engine.begin() as connection:
        load_opportunity_batch(connection, context or loads.context(), rows, counts, sink)
    assert counts.rejected == 0


# --- accounts and contacts -----------------------------------------------------------------------------


def account_rows() -> list[dict[str, Any]]:
    return [
        row(2, external_id="001A", name="Acme", industry="Manufacturing", employees=250, annual_revenue=1_200_000.456,
            country="DE", segment="mid-market", owner=UserRef(external_id="005X", name="Nora Field"),
            created_at=MAY, custom={"Tier__c": "Gold"}),
        row(3, external_id="001B", name="Globex", employees=None),
    ]


def test_accounts_insert_reload_and_update(loads: Loads) -> None:
    first = loads(entities.load_account_batch, account_rows())
    assert first.tally == (2, 2, 0, 0, 0)
    acme, globex = loads.select(tables.accounts)
    assert (acme["external_id"], acme["name"], acme["employees"], acme["custom"]) == ("001A", "Acme", 250,
                                                                                      {"Tier__c": "Gold"})
    assert acme["annual_revenue"] == pytest.approx(1_200_000.46)  # stored to the cent
    assert globex["industry"] is None
    (owner,) = loads.select(tables.users)
    assert (owner["name"], owner["role"]) == ("Nora Field", "rep") and acme["owner_id"] == owner["id"]

    # The same rows again, as a new import: nothing to write.
    assert loads(entities.load_account_batch, account_rows()).tally == (2, 0, 0, 2, 0)

    changed = account_rows()
    changed[1]["industry"] = "Energy"
    assert loads(entities.load_account_batch, changed).tally == (2, 0, 1, 1, 0)
    assert loads.select(tables.accounts)[1]["industry"] == "Energy"
    # A field the source does not give is left alone: Globex's row without `industry` keeps "Energy".
    assert loads(entities.load_account_batch, account_rows()[1:]).tally == (1, 0, 0, 1, 0)
    assert loads.select(tables.accounts)[1]["industry"] == "Energy"


def test_account_rejections(loads: Loads) -> None:
    rows = [
        row(2, external_id="", name="No id"),
        row(3, external_id="001A", name="Acme"),
        row(4, external_id="001A", name="Acme again"),
        row(5, external_id="001C", employees="many"),
        row(6, external_id="001D", employees=-3),
        row(7, external_id="001E", name="x" * 300),
        row(8, external_id="001F", custom="Tier=Gold"),
    ]
    outcome = loads(entities.load_account_batch, rows)
    # 7 read; only line 3 is good.
    assert outcome.tally == (7, 1, 0, 0, 6)
    reasons = outcome.reasons()
    assert reasons["2"] == ("external_id", "the account has no id")
    assert reasons["4"] == ("external_id", "duplicate record (first seen on line 3)")
    assert reasons["5"][0] == "employees" and "not a number" in reasons["5"][1]
    assert reasons["6"] == ("employees", "-3 is below 0")
    assert reasons["7"] == ("name", "300 characters; the field holds at most 255")
    assert reasons["8"][0] == "custom"


def test_accounts_are_found_by_opportunities_of_the_same_import(loads: Loads) -> None:
    context = loads.context()
    loads(entities.load_account_batch, account_rows(), context)
    load_opportunities(loads, [opportunity(2, "006A", account=AccountRef(external_id="001B"))], context)
    (deal,) = loads.select(tables.opportunities)
    globex = loads.select(tables.accounts, tables.accounts.c.external_id == "001B")[0]
    assert deal["account_id"] == globex["id"]
    assert len(loads.select(tables.accounts)) == 2  # no placeholder account was made


def test_account_file_takes_over_the_placeholder_made_for_its_name(loads: Loads) -> None:
    # An opportunity file naming its account only by name makes a placeholder (external id == name).
    load_opportunities(loads, [opportunity(2, "006A", account=AccountRef(external_id="Acme", name="Acme"))])
    (placeholder,) = loads.select(tables.accounts)
    outcome = loads(entities.load_account_batch, account_rows()[:1])
    assert outcome.tally == (1, 0, 1, 0, 0)
    (account,) = loads.select(tables.accounts)
    assert (account["id"], account["external_id"], account["industry"]) == (placeholder["id"], "001A",
                                                                            "Manufacturing")
    assert loads(entities.load_account_batch, account_rows()[:1]).tally == (1, 0, 0, 1, 0)


def contact_rows() -> list[dict[str, Any]]:
    return [
        row(2, external_id="003A", account=AccountRef(external_id="001A"), name="Ida Park", email="Ida@Acme.example",
            title="CFO", buying_role="Economic Buyer"),
        row(3, external_id="003B", email="ops@acme.example"),
    ]


def test_contacts_insert_reload_update_and_reject(loads: Loads) -> None:
    loads(entities.load_account_batch, account_rows())
    outcome = loads(entities.load_contact_batch, [*contact_rows(), row(4, external_id=None, name="Nobody")])
    assert outcome.tally == (3, 2, 0, 0, 1)
    assert outcome.reasons() == {"4": ("external_id", "the contact has no id")}
    ida, ops = loads.select(tables.contacts)
    acme = loads.select(tables.accounts, tables.accounts.c.external_id == "001A")[0]
    assert (ida["account_id"], ida["email"], ida["buying_role"]) == (acme["id"], "ida@acme.example", "economic_buyer")
    assert ops["name"] == "ops@acme.example"  # no name given: the email stands in

    assert loads(entities.load_contact_batch, contact_rows()).tally == (2, 0, 0, 2, 0)
    changed = contact_rows()
    changed[0]["title"] = "CEO"
    assert loads(entities.load_contact_batch, changed).tally == (2, 0, 1, 1, 0)
    assert loads.select(tables.contacts)[0]["title"] == "CEO"


# --- users ---------------------------------------------------------------------------------------------


def user_rows() -> list[dict[str, Any]]:
    return [
        row(2, external_id="005A", name="Ann Lee", email="ann@corp.example", role="Manager", title="RVP",
            hire_date=date(2021, 3, 1), active=True, team="East"),
        row(3, external_id="005B", name="Bo Chan", email="bo@corp.example", team="east", active=False,
            manager=UserRef(external_id="005A")),
    ]


def test_users_insert_reload_and_update(loads: Loads) -> None:
    outcome = loads(entities.load_user_batch, user_rows())
    assert outcome.tally == (2, 2, 0, 0, 0)
    ann, bo = loads.select(tables.users)
    (team,) = loads.select(tables.teams)  # "East" and "east" are one team
    assert (ann["role"], ann["title"], ann["hire_date"], ann["team_id"]) == ("manager", "RVP", date(2021, 3, 1),
                                                                            team["id"])
    assert (bo["role"], bo["active"], bo["manager_id"], bo["team_id"]) == ("rep", False, ann["id"], team["id"])
    assert bo["password_hash"] is None
    ids = {(r["source"], r["external_id"]): r["user_id"] for r in loads.select_external_ids()}
    assert ids == {("test", "005A"): ann["id"], ("test", "005B"): bo["id"]}

    assert loads(entities.load_user_batch, user_rows()).tally == (2, 0, 0, 2, 0)
    changed = user_rows()
    changed[1]["title"] = "AE"
    assert loads(entities.load_user_batch, changed).tally == (2, 0, 1, 1, 0)
    assert loads.select(tables.users)[1]["title"] == "AE"


def test_user_rejections(loads: Loads) -> None:
    rows = [
        row(2, external_id="", name="No id"),
        row(3, external_id="005A", name="Ann", role="superuser"),
        row(4, external_id="005B", name="Bo", email="bo at corp"),
        row(5, external_id="005C", name="Cy"),
        row(6, external_id="005C", name="Cy again"),
    ]
    outcome = loads(entities.load_user_batch, rows)
    assert outcome.tally == (5, 1, 0, 0, 4)
    reasons = outcome.reasons()
    assert reasons["2"] == ("external_id", "the user has no id")
    assert reasons["3"] == ("role", "unknown role 'superuser' (expected admin, leader, manager, rep, viewer)")
    assert reasons["4"] == ("email", "'bo at corp' is not an email address")
    assert reasons["6"] == ("external_id", "duplicate record (first seen on line 5)")


def test_user_matched_by_email_gains_the_external_id_and_keeps_its_password(loads: Loads) -> None:
    with loads.engine.begin() as connection:
        admin = insert_user(connection, email="ann@corp.example", name="Ann", role="admin", manager_id=None,
                            created_at=MAY, password_hash="argon2-hash")
    rows = [row(2, external_id="005A", name="Ann Lee", email="ANN@corp.example", role="rep")]
    # Matched by email (case aside): one update (the name), no new person; the admin stays an admin.
    outcome = loads(entities.load_user_batch, rows)
    assert outcome.tally == (1, 0, 1, 0, 0)
    assert outcome.notes == ["1 user rows had a problem that did not reject them: "
                             "line 2: Ann is an admin here; role rep not applied"]
    (ann,) = loads.select(tables.users)
    assert (ann["id"], ann["name"], ann["role"], ann["password_hash"]) == (admin, "Ann Lee", "admin", "argon2-hash")
    assert [(r["external_id"], r["user_id"]) for r in loads.select_external_ids()] == [("005A", admin)]
    # Now matched by its external id: nothing to do.
    assert loads(entities.load_user_batch, rows).tally == (1, 0, 0, 1, 0)


def test_owner_created_by_name_is_the_same_person_as_the_user_row(loads: Loads) -> None:
    load_opportunities(loads, [opportunity(2, "006A", owner=UserRef(name="Bo Chan"))])
    (stub,) = loads.select(tables.users)
    outcome = loads(entities.load_user_batch, user_rows()[1:])
    # Bo matched by name: an update (email, team, active, external id); the manager 005A is unknown.
    assert outcome.tally == (1, 0, 1, 0, 0)
    (bo,) = loads.select(tables.users)
    assert (bo["id"], bo["email"], bo["manager_id"]) == (stub["id"], "bo@corp.example", None)
    assert outcome.notes and "manager '005A' is not among the users; manager left unchanged" in outcome.notes[0]


def test_manager_later_in_the_file_and_unknown_managers(loads: Loads) -> None:
    rows = [
        row(2, external_id="005R", name="Rae Rep", manager=UserRef(external_id="005M")),
        row(3, external_id="005S", name="Sol Rep", manager=UserRef(external_id="005Z")),
        row(4, external_id="005M", name="Max Manager", role="manager", manager=None),
    ]
    outcome = loads(entities.load_user_batch, rows)
    assert outcome.tally == (3, 3, 0, 0, 0)  # the unknown manager does not reject Sol
    rae, sol, max_ = loads.select(tables.users)
    assert (rae["manager_id"], sol["manager_id"], max_["manager_id"]) == (max_["id"], None, None)
    assert outcome.notes == [
        "1 user rows had a problem that did not reject them: "
        "line 3: manager '005Z' is not among the users; left without a manager"
    ]
    assert loads(entities.load_user_batch, rows).tally == (3, 0, 0, 3, 0)


def test_namesakes_of_one_source_stay_two_people(loads: Loads) -> None:
    rows = [row(2, external_id="005A", name="Sam Diaz"), row(3, external_id="005B", name="Sam Diaz")]
    assert loads(entities.load_user_batch, rows).tally == (2, 2, 0, 0, 0)
    assert len(loads.select(tables.users)) == 2


# --- activities ----------------------------------------------------------------------------------------


def activity_rows() -> list[dict[str, Any]]:
    return [
        row(2, external_id="00TA", type="Call", subject="Discovery", owner=UserRef(name="Ann Lee"),
            opportunity="006A", occurred_at=MAY),
        row(3, external_id="00TB", type="Event", occurred_at=MAY, completed=False),
        row(4, external_id="00TC", type="Email", occurred_at=date(2024, 5, 3), opportunity=None),
        row(5, external_id="00TD", type="Send Letter", occurred_at=MAY, account=AccountRef(external_id="001A")),
    ]


def test_activities_insert_reload_and_update(loads: Loads) -> None:
    load_opportunities(loads, [opportunity(2, "006A")])
    outcome = loads(entities.load_activity_batch, activity_rows())
    assert outcome.tally == (4, 4, 0, 0, 0)
    call, meeting, email, task = loads.select(tables.activities)
    (deal,) = loads.select(tables.opportunities)
    assert [a["type"] for a in (call, meeting, email, task)] == ["call", "meeting", "email", "task"]
    assert (call["opportunity_id"], call["completed"], meeting["completed"]) == (deal["id"], True, False)
    assert email["occurred_at"].replace(tzinfo=None) == datetime(2024, 5, 3)  # a bare date is its midnight UTC
    assert task["account_id"] is not None  # the unknown account was created, as for opportunities

    assert loads(entities.load_activity_batch, activity_rows()).tally == (4, 0, 0, 4, 0)
    changed = activity_rows()
    changed[0]["subject"] = "Discovery call"
    assert loads(entities.load_activity_batch, changed).tally == (4, 0, 1, 3, 0)
    assert loads.select(tables.activities)[0]["subject"] == "Discovery call"


def test_activity_rejections_and_missing_links(loads: Loads) -> None:
    rows = [
        row(2, external_id=None, occurred_at=MAY),
        row(3, external_id="00TA"),
        row(4, external_id="00TB", occurred_at=MAY, opportunity="006ZZZ"),
        row(5, external_id="00TC", occurred_at=MAY, lead="00QX"),
    ]
    outcome = loads(entities.load_activity_batch, rows)
    # Lines 2-4 rejected; line 5 loads without its unknown lead.
    assert outcome.tally == (4, 1, 0, 0, 3)
    assert outcome.reasons() == {
        "2": ("external_id", "the activity has no id"),
        "3": ("occurred_at", "the activity has no date (occurred_at)"),
        "4": ("opportunity", "no opportunity '006ZZZ'"),
    }
    (kept,) = loads.select(tables.activities)
    assert kept["lead_id"] is None
    assert outcome.notes == ["1 activities name a lead or contact that is not stored (link left empty): "
                             "line 5: no lead '00QX'"]


# --- leads ---------------------------------------------------------------------------------------------


def lead_rows() -> list[dict[str, Any]]:
    return [
        row(2, external_id="00QA", name="Lia Stone", email="Lia@Prospect.example", company="Prospect",
            lead_source="Web", status="Open - Not Contacted", created_at=MAY, owner=UserRef(name="Ann Lee"),
            custom={"Score__c": 80}),
        row(3, external_id="00QB", status="Closed - Not Converted", created_at=MAY, rejected_at=MAY,
            recycle_reason="Bad timing, try next quarter", re_engage_at=date(2024, 9, 1)),
        row(4, external_id="00QC", status="Qualified", created_at=MAY, recycle_reason="they were rude"),
    ]


def test_leads_insert_reload_and_update(loads: Loads) -> None:
    outcome = loads(entities.load_lead_batch, lead_rows())
    assert outcome.tally == (3, 3, 0, 0, 0)
    lia, bad_timing, qualified = loads.select(tables.leads)
    assert (lia["status"], lia["email"], lia["custom"], lia["recycled_count"]) == ("new", "lia@prospect.example",
                                                                                 {"Score__c": 80}, 0)
    assert (bad_timing["status"], bad_timing["recycle_reason"], bad_timing["re_engage_at"]) == (
        "rejected", "timing", date(2024, 9, 1))
    assert (qualified["status"], qualified["recycle_reason"]) == ("accepted", "other")

    assert loads(entities.load_lead_batch, lead_rows()).tally == (3, 0, 0, 3, 0)
    changed = lead_rows()
    changed[1]["status"] = "recycled"
    assert loads(entities.load_lead_batch, changed).tally == (3, 0, 1, 2, 0)
    recycled = loads.select(tables.leads)[1]
    assert (recycled["status"], recycled["recycled_count"]) == ("recycled", 1)
    assert loads(entities.load_lead_batch, changed).tally == (3, 0, 0, 3, 0)  # recycling counted once


def test_lead_rejections(loads: Loads) -> None:
    rows = [
        row(2, external_id="", created_at=MAY),
        row(3, external_id="00QA", status="Maybe", created_at=MAY),
        row(4, external_id="00QB", status="working", created_at=None),
    ]
    outcome = loads(entities.load_lead_batch, rows)
    assert outcome.tally == (3, 0, 0, 0, 3)
    reasons = outcome.reasons()
    assert reasons["2"] == ("external_id", "the lead has no id")
    assert reasons["3"][0] == "status" and reasons["3"][1].startswith("unknown lead status 'Maybe'")
    assert reasons["4"] == ("created_at", "the lead has no creation date (created_at)")


def test_leads_from_a_source_without_creation_dates(loads: Loads) -> None:
    context = loads.context()
    rows = [row(2, external_id="00QA", status="converted", converted_at=MAY, modified_at=datetime(2024, 6, 1,
                                                                                                tzinfo=UTC)),
            row(3, external_id="00QB")]
    outcome = loads(entities.load_lead_batch, rows, context)
    assert outcome.tally == (2, 2, 0, 0, 0)
    converted, bare = loads.select(tables.leads)
    # The earliest time the row knows (converted_at before modified_at); else the import's time.
    assert converted["created_at"].replace(tzinfo=None) == MAY.replace(tzinfo=None)
    assert bare["created_at"].replace(tzinfo=None) == context.now.replace(tzinfo=None)
    assert outcome.notes == ["2 new leads had no creation date in the source; dated by their earliest known time "
                             "(or the import): line 2; line 3"]
    # Loaded again later: the stored date stays.
    assert loads(entities.load_lead_batch, rows).tally == (2, 0, 0, 2, 0)


def test_converted_lead_and_its_opportunity_point_at_each_other(loads: Loads) -> None:
    load_opportunities(loads, [opportunity(2, "006A")])
    rows = [row(2, external_id="00QA", status="Closed - Converted", created_at=MAY, converted_at=MAY,
                converted_opportunity="006A"),
            row(3, external_id="00QB", status="converted", created_at=MAY, converted_opportunity="006NOPE")]
    outcome = loads(entities.load_lead_batch, rows)
    assert outcome.tally == (2, 2, 0, 0, 0)
    converted, dangling = loads.select(tables.leads)
    (deal,) = loads.select(tables.opportunities)
    assert (converted["converted_opportunity_id"], deal["lead_id"]) == (deal["id"], converted["id"])
    assert dangling["converted_opportunity_id"] is None
    assert "line 3: no opportunity '006NOPE'" in outcome.notes[0]

    assert loads(entities.load_lead_batch, rows).tally == (2, 0, 0, 2, 0)
    assert loads.select(tables.opportunities)[0]["updated_at"] == deal["updated_at"]  # the link was not rewritten


# --- quotas and currency rates -------------------------------------------------------------------------


def quota_rows() -> list[dict[str, Any]]:
    return [
        row(2, owner=UserRef(name="Ann Lee"), period="2024-Q2", amount=300_000.0),
        row(3, team="East", period="2024", amount=2_000_000.0, currency="usd"),
        row(4, owner=UserRef(name="Ann Lee"), period="2024-05", amount=100_000.0),
    ]


def test_quotas_insert_reload_and_update(loads: Loads) -> None:
    assert loads(entities.load_quota_batch, quota_rows()).tally == (3, 3, 0, 0, 0)
    quarter, year, month = loads.select(tables.quotas)
    (ann,) = loads.select(tables.users)
    (east,) = loads.select(tables.teams)
    assert (quarter["user_id"], quarter["team_id"], quarter["period"]) == (ann["id"], None, "2024-Q2")
    # With the default calendar (January start) Q2 is April to June; the stored end is its last day.
    assert (quarter["period_start"], quarter["period_end"], quarter["currency"]) == (date(2024, 4, 1),
                                                                                   date(2024, 6, 30), "USD")
    assert (year["team_id"], year["period_end"], month["period_start"]) == (east["id"], date(2024, 12, 31),
                                                                            date(2024, 5, 1))

    assert loads(entities.load_quota_batch, quota_rows()).tally == (3, 0, 0, 3, 0)
    changed = quota_rows()
    changed[0]["amount"] = 320_000.0
    assert loads(entities.load_quota_batch, changed).tally == (3, 0, 1, 2, 0)
    assert loads.select(tables.quotas)[0]["amount"] == 320_000.0


def test_quota_rejections(loads: Loads) -> None:
    ann = UserRef(name="Ann Lee")
    rows = [
        row(2, owner=ann, period="2024-13", amount=1.0),
        row(3, owner=ann, period="next quarter", amount=1.0),
        row(4, owner=ann, period="2024-Q3"),
        row(5, owner=ann, period="2024-Q4", amount=1.0, currency="XYZ"),
        row(6, period="2024-Q4", amount=1.0),
        row(7, owner=ann, team="East", period="2024-Q4", amount=1.0),
        row(8, owner=ann, period="2024-Q1", amount=1.0),
        row(9, owner=ann, period="2024-q1", amount=2.0),
    ]
    outcome = loads(entities.load_quota_batch, rows)
    assert outcome.tally == (8, 1, 0, 0, 7)
    reasons = outcome.reasons()
    assert reasons["2"] == ("period", "month must be 1-12, got 13")
    assert reasons["3"][0] == "period" and "is not a month (2023-05), a quarter (2023-Q2)" in reasons["3"][1]
    assert reasons["4"] == ("amount", "the quota has no amount")
    assert reasons["5"] == ("currency", "unknown currency 'XYZ': no rate to convert it")
    assert reasons["6"] == ("owner", "the quota names neither an owner nor a team")
    assert reasons["7"] == ("team", "a quota belongs to an owner or to a team, not both")
    assert reasons["9"][1] == "duplicate record (first seen on line 8)"  # 2024-q1 is 2024-Q1


def rate_rows() -> list[dict[str, Any]]:
    return [
        row(2, currency="USD", rate=1.0, is_corporate=True),
        row(3, currency="EUR", rate=0.92, is_corporate=False),
        row(4, currency="EUR", rate=0.9, start_date=date(2024, 1, 1)),
        row(5, currency="gbp", rate=0.79),
    ]


def test_currency_rates_insert_reload_update_and_unlock_quotas(loads: Loads) -> None:
    context = loads.context()
    assert "EUR" not in context.currencies
    assert loads(entities.load_currency_rate_batch, rate_rows(), context).tally == (4, 4, 0, 0, 0)
    stored = {(r["currency"], r["start_date"]): r["rate"] for r in loads.select(tables.currency_rates)}
    assert stored == {("USD", None): 1.0, ("EUR", None): 0.92, ("EUR", date(2024, 1, 1)): 0.9, ("GBP", None): 0.79}
    # The codes are now known to the import: a EUR quota of the same import loads.
    quota = [row(2, owner=UserRef(name="Ann Lee"), period="2024", amount=5.0, currency="EUR")]
    assert loads(entities.load_quota_batch, quota, context).tally == (1, 1, 0, 0, 0)

    assert loads(entities.load_currency_rate_batch, rate_rows()).tally == (4, 0, 0, 4, 0)
    changed = rate_rows()
    changed[2]["rate"] = 0.91
    assert loads(entities.load_currency_rate_batch, changed).tally == (4, 0, 1, 3, 0)


def test_currency_rate_rejections(loads: Loads) -> None:
    rows = [
        row(2, currency="EURO", rate=1.1),
        row(3, currency="EUR", rate=0),
        row(4, currency="EUR"),
        row(5, currency="EUR", rate=0.9),
        row(6, currency="EUR", rate=0.95),
    ]
    outcome = loads(entities.load_currency_rate_batch, rows)
    assert outcome.tally == (5, 1, 0, 0, 4)
    assert outcome.reasons() == {
        "2": ("currency", "'EURO' is not a currency code like EUR"),
        "3": ("rate", "a rate must be above zero, not 0"),
        "4": ("rate", "the rate is missing"),
        "6": ("currency", "duplicate record (first seen on line 5)"),
    }


def test_corporate_currency_row_sets_the_organisation_currency(loads: Loads) -> None:
    context = loads.context()
    rows = [row(2, currency="EUR", rate=1.0, is_corporate=True), row(3, currency="USD", rate=1.08)]
    outcome = loads(entities.load_currency_rate_batch, rows, context)
    assert outcome.notes == ["corporate currency set to EUR (was USD)"]
    assert context.corporate_currency == "EUR"
    with loads.engine.connect() as connection:
        assert read_settings(connection)["corporate_currency"] == "EUR"
    # Said again, it is already so: no note.
    assert loads(entities.load_currency_rate_batch, rows).notes == []
