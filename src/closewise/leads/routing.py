"""Routing new leads to reps.

Rules are tried in order on each unassigned lead, oldest lead first. A rule matches a lead when the lead's
country is among the rule's `countries` and its source among its `sources` (an empty list matches any). The
first matching rule with room assigns the lead to one of its members:

- `round_robin`: the members in turn, starting after the one the rule assigned last;
- `territory`: the same, for a rule that must name its countries (the territory);
- `capacity`: the member with the fewest open leads (new or working), ties in member order.

`max_open` caps the open leads of any member under a rule: a full member is skipped, and a rule whose members
are all full lets the lead fall through to the next rule. With no rule matching, the lead goes round robin to
`fallback` (the active reps) when given, or stays unassigned with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import polars as pl

from closewise.errors import InvalidInput

FALLBACK = "default round robin"


class Method(StrEnum):
    ROUND_ROBIN = "round_robin"
    TERRITORY = "territory"
    CAPACITY = "capacity"


@dataclass(frozen=True)
class Rule:
    name: str
    method: Method
    members: tuple[int, ...]
    countries: frozenset[str] = field(default_factory=frozenset)
    sources: frozenset[str] = field(default_factory=frozenset)
    max_open: int | None = None
    last_member_id: int | None = None
    active: bool = True

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not self.name.strip():
            raise InvalidInput("a routing rule needs a name", where="name")
        if not self.members:
            raise InvalidInput("a routing rule needs at least one member", where=where)
        if len(set(self.members)) != len(self.members):
            raise InvalidInput("a member is listed twice", where=where)
        if self.method is Method.TERRITORY and not self.countries:
            raise InvalidInput("a territory rule must name its countries", where=where)
        if self.max_open is not None and self.max_open < 1:
            raise InvalidInput("max_open must be at least 1", where=where)

    def matches(self, country: str | None, source: str | None) -> bool:
        return (not self.countries or _norm(country) in {_norm(c) for c in self.countries}) and (
            not self.sources or _norm(source) in {_norm(s) for s in self.sources})


@dataclass(frozen=True)
class Routed:
    assignments: pl.DataFrame  # lead_id, owner_id (null: not routed), rule, reason
    pointers: dict[str, int]  # rule name -> the member it assigned last (round robin and territory)


def _norm(value: str | None) -> str:
    return (value or "").strip().casefold()


def _in_turn(rule: Rule, load: Mapping[int, int], last: int | None) -> int | None:
    members = rule.members
    start = members.index(last) + 1 if last in members else 0
    for step in range(len(members)):
        member = members[(start + step) % len(members)]
        if rule.max_open is None or load.get(member, 0) < rule.max_open:
            return member
    return None


def _least_loaded(rule: Rule, load: Mapping[int, int]) -> int | None:
    room = [m for m in rule.members if rule.max_open is None or load.get(m, 0) < rule.max_open]
    return min(room, key=lambda m: (load.get(m, 0), rule.members.index(m))) if room else None


def route(leads: pl.DataFrame, rules: Sequence[Rule], open_load: Mapping[int, int], *,
          fallback: Iterable[int] = (), fallback_last: int | None = None) -> Routed:
    """Assign each lead of `leads` (id, country, lead_source, created_at; taken as unassigned) by the rules.
    `open_load` is each user's open leads now; it grows as leads are assigned."""
    load = dict(open_load)
    pointers = {rule.name: rule.last_member_id for rule in rules}
    active = [rule for rule in rules if rule.active]
    default = tuple(dict.fromkeys(fallback))
    default_rule = Rule(FALLBACK, Method.ROUND_ROBIN, default, last_member_id=fallback_last) if default else None
    pointers[FALLBACK] = fallback_last
    out: list[dict[str, object]] = []
    ordered = leads.sort(["created_at", "id"])
    for lead in ordered.select("id", "country", "lead_source").iter_rows(named=True):
        matching = [rule for rule in active if rule.matches(lead["country"], lead["lead_source"])]
        chosen: tuple[Rule, int] | None = None
        for rule in matching:
            member = (_least_loaded(rule, load) if rule.method is Method.CAPACITY
                      else _in_turn(rule, load, pointers.get(rule.name)))
            if member is not None:
                chosen = (rule, member)
                break
        if chosen is None and not matching and default_rule is not None:
            member = _in_turn(default_rule, load, pointers.get(FALLBACK))
            chosen = (default_rule, member) if member is not None else None
        if chosen is None:
            reason = ("every matching rule's members are at capacity" if matching
                      else "no rule matches and there is no one to fall back to")
            out.append({"lead_id": lead["id"], "owner_id": None, "rule": None, "reason": reason})
            continue
        rule, member = chosen
        load[member] = load.get(member, 0) + 1
        if rule.method is not Method.CAPACITY:
            pointers[rule.name] = member
        how = {Method.ROUND_ROBIN: "next in turn", Method.TERRITORY: "territory, next in turn",
               Method.CAPACITY: "fewest open leads"}[rule.method]
        out.append({"lead_id": lead["id"], "owner_id": member, "rule": rule.name, "reason": how})
    frame = pl.DataFrame(out, schema={"lead_id": pl.Int64, "owner_id": pl.Int64, "rule": pl.String,
                                      "reason": pl.String})
    return Routed(frame, {name: member for name, member in pointers.items() if member is not None})


def rule_from_mapping(data: Mapping[str, object], members_by_email: Mapping[str, int]) -> Rule:
    """A rule from its YAML form: name, method, members (emails), countries, sources, max_open, active."""
    name = str(data.get("name") or "").strip()
    where = f"rule {name!r}" if name else "rule"
    unknown = set(data) - {"name", "method", "members", "countries", "sources", "max_open", "active"}
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))}", where=where)
    try:
        method = Method(str(data.get("method") or Method.ROUND_ROBIN.value))
    except ValueError:
        raise InvalidInput(f"unknown method {data.get('method')!r} (expected "
                           f"{', '.join(m.value for m in Method)})", where=where) from None
    members: list[int] = []
    for email in _strings(data.get("members"), where, "members"):
        user = members_by_email.get(email.strip().lower())
        if user is None:
            raise InvalidInput(f"no active user {email!r}", where=f"{where} members")
        members.append(user)
    max_open = data.get("max_open")
    if max_open is not None and not isinstance(max_open, int):
        raise InvalidInput("max_open must be a whole number", where=where)
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise InvalidInput("active must be true or false", where=where)
    return Rule(name=name, method=method, members=tuple(members),
                countries=frozenset(_strings(data.get("countries"), where, "countries")),
                sources=frozenset(_strings(data.get("sources"), where, "sources")), max_open=max_open,
                active=active)


def _strings(value: object, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    raise InvalidInput(f"{name} must be a list of text", where=where)


def keep_pointers(rules: Sequence[Rule], previous: Sequence[Rule]) -> list[Rule]:
    """Rules replacing `previous` keep the round-robin place of the rule of the same name."""
    last = {rule.name: rule.last_member_id for rule in previous}
    return [replace(rule, last_member_id=last.get(rule.name)) for rule in rules]
