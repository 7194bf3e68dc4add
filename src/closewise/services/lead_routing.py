"""Lead routing: the routing rules (read, replaced from YAML), routing the new unassigned leads by them, and how
many wait.

Routing writes leave an `assigned` `lead_events` row per lead, naming the user who ran it (None: the CLI).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import yaml
from sqlalchemy.engine import Connection, Engine

from closewise.db import leads as db
from closewise.domain.timeutil import utcnow
from closewise.errors import InvalidInput
from closewise.leads import events as lead_events
from closewise.leads import routing as routing_mod


def _rules(connection: Connection) -> list[routing_mod.Rule]:
    return [routing_mod.Rule(
        name=row["name"], method=routing_mod.Method(row["method"]), members=tuple(int(m) for m in row["members"]),
        countries=frozenset(row["countries"] or ()), sources=frozenset(row["sources"] or ()),
        max_open=row["max_open"], last_member_id=row["last_member_id"], active=bool(row["active"]))
        for row in db.list_rules(connection)]


def _rule_json(rule: routing_mod.Rule, emails: dict[int, str]) -> dict[str, Any]:
    return {"name": rule.name, "method": rule.method.value, "members": [emails.get(m, str(m)) for m in rule.members],
            "countries": sorted(rule.countries), "sources": sorted(rule.sources), "max_open": rule.max_open,
            "active": rule.active}


def rules(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = _rules(connection)
        emails = {user: email for email, user in db.active_user_emails(connection).items()}
    return [_rule_json(rule, emails) for rule in found]


def set_rules(engine: Engine, text: str) -> list[dict[str, Any]]:
    """Replace the routing rules with the YAML `rules:` list in `text` (see docs/leads.md)."""
    try:
        document = yaml.safe_load(text) if text.strip() else {"rules": []}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not YAML: {' '.join(str(exc).split())}", where="rules") from None
    items = document.get("rules") if isinstance(document, dict) else document
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidInput("expected a list of rules under `rules:`", where="rules")
    with engine.begin() as connection:
        people = db.active_user_emails(connection)
        wanted = [routing_mod.rule_from_mapping(item, people) for item in items]
        names = [rule.name for rule in wanted]
        if len(set(names)) != len(names):
            raise InvalidInput("two rules have the same name", where="rules")
        kept = routing_mod.keep_pointers(wanted, _rules(connection))
        db.replace_rules(connection, [
            {"name": rule.name, "position": position, "method": rule.method.value, "members": list(rule.members),
             "countries": sorted(rule.countries), "sources": sorted(rule.sources), "max_open": rule.max_open,
             "last_member_id": rule.last_member_id, "active": rule.active}
            for position, rule in enumerate(kept, start=1)])
    return rules(engine)


def route(engine: Engine, *, dry_run: bool = False, user_id: int | None = None) -> dict[str, Any]:
    """Assign every new unassigned lead by the routing rules (the active reps in turn when none match)."""
    with engine.begin() as connection:
        pending = db.unassigned_leads(connection)
        found = _rules(connection)
        settings = db.lead_settings(connection)
        last = int(settings["leads_route_last"]) if settings["leads_route_last"].isdigit() else None
        result = routing_mod.route(pending, found, db.open_load(connection), fallback=db.active_reps(connection),
                                   fallback_last=last)
        people = db.load_users(connection)
        names = dict(zip(people["id"].to_list(), people["name"].to_list(), strict=True))
        assigned = result.assignments.filter(pl.col("owner_id").is_not_null())
        if not dry_run and assigned.height:
            now = utcnow()
            pairs = list(zip(assigned["lead_id"].to_list(), assigned["owner_id"].to_list(), strict=True))
            db.assign(connection, pairs, at=now)
            db.add_events(connection, [
                {"lead_id": lead, "kind": lead_events.LeadEvent.ASSIGNED.value, "occurred_at": now,
                 "user_id": user_id, "owner_id": owner, "reason": None, "re_engage_at": None,
                 "note": f"routed by {rule}: {why}"}
                for lead, owner, rule, why in assigned.select("lead_id", "owner_id", "rule", "reason").iter_rows()])
            for name, member in result.pointers.items():
                if name == routing_mod.FALLBACK:
                    db.write_lead_setting(connection, key="leads_route_last", value=str(member))
                else:
                    db.set_rule_pointer(connection, name=name, member=member)
    lookup = pending.select("id", "name", "company", "lead_source", "country")
    listed = result.assignments.join(lookup, left_on="lead_id", right_on="id", how="left")
    items = [{"lead_id": row["lead_id"], "name": row["name"], "company": row["company"],
              "source": row["lead_source"], "country": row["country"], "owner_id": row["owner_id"],
              "owner": names.get(row["owner_id"]) if row["owner_id"] is not None else None,
              "rule": row["rule"], "reason": row["reason"]} for row in listed.iter_rows(named=True)]
    return {"dry_run": dry_run, "routed": [item for item in items if item["owner_id"] is not None],
            "unrouted": [item for item in items if item["owner_id"] is None]}


def unassigned_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return db.unassigned_leads(connection).height

