"""Resolving what an imported row names (an owner, an account, a stage) to stored records.

Owners are matched by external id within the import's source, then by email, then by name, and created
as reps when missing (DESIGN.md). Accounts by external id, then by exact name. Stages by key or name
(case-insensitive), through the import's stage mapping when it has one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from closewise.db import ingest as queries
from closewise.db import tables
from closewise.db.users import insert_user
from closewise.domain.enums import ForecastCategory, OpportunityStatus, Role


@dataclass(frozen=True)
class UserRef:
    external_id: str | None = None
    email: str | None = None
    name: str | None = None

    def is_empty(self) -> bool:
        return not (self.external_id or self.email or self.name)


@dataclass(frozen=True)
class AccountRef:
    external_id: str | None = None
    name: str | None = None

    def is_empty(self) -> bool:
        return not (self.external_id or self.name)


class UserDirectory:
    def __init__(self, connection: Connection, *, source: str) -> None:
        self.source = source
        people, external = queries.user_directory(connection)
        self._by_external = {ext: uid for src, ext, uid in external if src == source}
        self._by_email = {str(p["email"]).lower(): int(p["id"]) for p in people if p["email"]}
        self._by_name = {str(p["name"]).strip().lower(): int(p["id"]) for p in people}
        self.created = 0

    def find(self, ref: UserRef) -> int | None:
        if ref.external_id and ref.external_id in self._by_external:
            return self._by_external[ref.external_id]
        if ref.email and ref.email.lower() in self._by_email:
            return self._by_email[ref.email.lower()]
        if ref.name and ref.name.strip().lower() in self._by_name:
            return self._by_name[ref.name.strip().lower()]
        return None

    def resolve(self, connection: Connection, ref: UserRef, *, now: datetime) -> int | None:
        """The user's id, creating a rep when nobody matches; None for an empty reference."""
        if ref.is_empty():
            return None
        found = self.find(ref)
        if found is None:
            name = (ref.name or (ref.email or "").split("@")[0] or f"{self.source} user {ref.external_id}").strip()
            found = insert_user(
                connection, email=ref.email.lower() if ref.email else None, name=name, role=Role.REP.value,
                manager_id=None, created_at=now,
            )
            self.created += 1
            if ref.email:
                self._by_email[ref.email.lower()] = found
            self._by_name.setdefault(name.lower(), found)
        if ref.external_id and ref.external_id not in self._by_external:
            queries.insert_external_ids(
                connection, rows=[{"source": self.source, "external_id": ref.external_id, "user_id": found}]
            )
            self._by_external[ref.external_id] = found
        return found

    def remember(self, external_id: str, user_id: int) -> None:
        self._by_external[external_id] = user_id


class AccountDirectory:
    def __init__(self, connection: Connection, *, source: str) -> None:
        self.source = source
        self._by_external: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        for src, external_id, name, account_id in queries.account_directory(connection):
            if src == source:
                self._by_external[external_id] = account_id
            self._by_name.setdefault(name.strip().lower(), account_id)
        self.created = 0

    def known(self, external_ids: list[str]) -> list[int | None]:
        """The account stored under each external id of the source, or None (what `resolve` returns for a
        reference by that id, without its side effects)."""
        get = self._by_external.get
        return [get(external_id) for external_id in external_ids]

    def resolve(self, connection: Connection, ref: AccountRef, *, now: datetime) -> int | None:
        if ref.is_empty():
            return None
        if ref.external_id and ref.external_id in self._by_external:
            return self._by_external[ref.external_id]
        if ref.name and ref.name.strip().lower() in self._by_name:
            return self._by_name[ref.name.strip().lower()]
        external_id = ref.external_id or ref.name or ""
        name = ref.name or ref.external_id or ""
        (account_id,) = queries.insert_returning_ids(
            connection, table=tables.accounts,
            rows=[{"source": self.source, "external_id": external_id, "name": name, "created_at": now}],
        )
        self.created += 1
        self._by_external[external_id] = account_id
        self._by_name.setdefault(name.strip().lower(), account_id)
        return account_id

    def remember(self, external_id: str, name: str, account_id: int) -> None:
        self._by_external[external_id] = account_id
        self._by_name.setdefault(name.strip().lower(), account_id)


@dataclass(frozen=True)
class StageTarget:
    """What a source's stage value means: a stage of the playbook, a closed status, or both."""

    stage: str | None = None
    status: OpportunityStatus | None = None


def slug(text: str) -> str:
    """`Negociación` -> `negociacion`, `Id. Decision Makers` -> `id_decision_makers`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.strip().lower()).strip("_") or "stage"


_WON = {"closed_won", "closedwon", "won"}
_LOST = {"closed_lost", "closedlost", "lost"}


def reads_closed(value: str) -> bool:
    """Whether a stage value reads as a closed outcome (`Closed Won`, `lost`...) or is empty: what a playbook
    without such a stage resolves to a status, not a stage."""
    return not value.strip() or slug(value) in _WON | _LOST


class StageBook:
    """The pipeline's stages, and how this import's stage values map onto them.

    With an explicit mapping (a `stages:` block), a value outside it is an unknown stage and its row is
    rejected. Without one, values match stages by key or name, and a value no stage has is added to the
    playbook (a CRM export brings its own stage list); `Closed Won` / `Closed Lost` style values become
    statuses.
    """

    def __init__(
        self, connection: Connection, *, pipeline: str = "default",
        mapping: dict[str, StageTarget] | None = None, create_unknown: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.mapping = {key.strip().lower(): target for key, target in (mapping or {}).items()}
        self.explicit = mapping is not None
        self.create_unknown = create_unknown
        self._stages: list[dict[str, Any]] = queries.stage_directory(connection, pipeline=pipeline)
        self.created: list[str] = []
        self._resolved: dict[str, StageTarget] = {}

    @property
    def keys(self) -> list[str]:
        return [str(stage["key"]) for stage in self._stages]

    def first_stage(self) -> str | None:
        return self.keys[0] if self._stages else None

    def default_category(self, key: str) -> str | None:
        for stage in self._stages:
            if stage["key"] == key:
                return str(stage["forecast_category"])
        return None

    def _match(self, value: str) -> str | None:
        wanted = value.strip().lower()
        for stage in self._stages:
            if stage["key"] == wanted or str(stage["name"]).strip().lower() == wanted:
                return str(stage["key"])
        return None

    def ensure(
        self, connection: Connection, key: str, *, name: str | None = None, probability: float | None = None,
        order: int | None = None,
    ) -> str:
        """The stage's key, adding the stage to the playbook when it has none of that key or name."""
        found = self._match(key) or (self._match(name) if name else None)
        if found is not None:
            return found
        new_key = slug(key)
        next_order = order if order is not None else (max((int(s["order"]) for s in self._stages), default=0) + 1)
        percent = probability if probability is not None else 10.0
        category = (
            ForecastCategory.COMMIT if percent >= 70 else ForecastCategory.BEST_CASE if percent >= 40
            else ForecastCategory.PIPELINE
        )
        row = {
            "pipeline": self.pipeline, "key": new_key, "name": name or key.strip(), "order": next_order,
            "default_probability": percent, "forecast_category": category.value,
        }
        row["id"] = queries.insert_stage(connection, row=row)
        self._stages.append(row)
        self._stages.sort(key=lambda stage: int(stage["order"]))
        self.created.append(new_key)
        return new_key

    def ensure_mapped(self, connection: Connection) -> None:
        """Add the stages an explicit mapping names, in the mapping's order, before any row needs them."""
        for target in self.mapping.values():
            if target.stage is not None:
                self.ensure(connection, target.stage)

    def known(self, value: str) -> StageTarget | None:
        """What `resolve` already made of a value in this import (None when it has not seen it)."""
        return self._resolved.get(value)

    def resolve(
        self, connection: Connection, value: str, *, probability: float | None = None, order: int | None = None
    ) -> StageTarget:
        """Map a source value; raises ValueError naming an unknown stage."""
        cached = self._resolved.get(value)
        if cached is not None:
            return cached
        target = self._resolve(connection, value, probability=probability, order=order)
        self._resolved[value] = target
        return target

    def _resolve(
        self, connection: Connection, value: str, *, probability: float | None = None, order: int | None = None
    ) -> StageTarget:
        text = value.strip()
        if not text:
            raise ValueError("the stage is empty")
        if self.explicit:
            target = self.mapping.get(text.lower())
            if target is None:
                raise ValueError(f"unknown stage {text!r} (not among the mapping's stages)")
            if target.stage is not None:
                return StageTarget(self.ensure(connection, target.stage), target.status)
            return target
        key = self._match(text)
        if key is not None:
            return StageTarget(key, None)
        if slug(text) in _WON:
            return StageTarget(None, OpportunityStatus.WON)
        if slug(text) in _LOST:
            return StageTarget(None, OpportunityStatus.LOST)
        if not self.create_unknown:
            raise ValueError(f"unknown stage {text!r}; the playbook has {', '.join(self.keys) or 'no stages'}")
        return StageTarget(self.ensure(connection, text, probability=probability, order=order), None)
