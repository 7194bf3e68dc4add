"""Mapping files: how the columns of any CSV or XLSX become one canonical entity (DESIGN.md).

```yaml
entity: opportunities          # see ingest/fields.py for each entity's fields
source: mycrm                  # (source, external_id) is the upsert key
columns: {external_id: opportunity_id, owner: sales_agent, ...}
constants: {currency: USD}
formats: {date: "%d-%m-%y"}    # optional: date, datetime; otherwise inferred and reported
stages: {Prospecting: prospecting, Won: {status: won}}
custom: [region, tier]         # optional: source columns kept as custom fields
```
Every problem names the mapping file and the key at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from closewise.domain.enums import OpportunityStatus
from closewise.errors import InvalidInput
from closewise.ingest.fields import ENTITIES, REQUIRED
from closewise.ingest.refs import StageTarget


@dataclass(frozen=True)
class Mapping:
    path: Path
    entity: str
    source: str
    columns: dict[str, str]
    constants: dict[str, Any] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    stages: dict[str, StageTarget] | None = None
    custom: tuple[str, ...] = ()

    def check_columns(self, available: list[str], *, file: str) -> None:
        """Every mapped column must exist in the file."""
        present = {name.strip().lower() for name in available}
        for canonical, column in self.columns.items():
            if column.strip().lower() not in present:
                shown = ", ".join(_printable(name) for name in available[:30]) + (" ..." if len(available) > 30 else "")
                raise InvalidInput(
                    f"columns.{canonical} names column {column!r}, which {file} does not have (it has: {shown})",
                    where=str(self.path),
                )
        for column in self.custom:
            if column.strip().lower() not in present:
                raise InvalidInput(f"custom names column {column!r}, which {file} does not have", where=str(self.path))


def _printable(name: str) -> str:
    """A column name fit for a one-line message (a binary file's 'header' is not)."""
    text = "".join(char if char.isprintable() else "?" for char in name)
    return text if len(text) <= 40 else text[:39] + "…"


def _stage_target(where: Path, value_name: str, raw: Any) -> StageTarget:
    if isinstance(raw, str):
        return StageTarget(stage=raw.strip())
    if isinstance(raw, dict):
        unknown = set(raw) - {"stage", "status"}
        if unknown:
            raise InvalidInput(f"stages.{value_name}: unknown key(s) {', '.join(sorted(unknown))}", where=str(where))
        status = None
        if raw.get("status") is not None:
            try:
                status = OpportunityStatus(str(raw["status"]).strip().lower())
            except ValueError:
                allowed = ", ".join(s.value for s in OpportunityStatus)
                raise InvalidInput(
                    f"stages.{value_name}.status {raw['status']!r} is not one of {allowed}", where=str(where)
                ) from None
        stage = str(raw["stage"]).strip() if raw.get("stage") is not None else None
        if stage is None and status is None:
            raise InvalidInput(f"stages.{value_name} needs a stage or a status", where=str(where))
        return StageTarget(stage=stage, status=status)
    raise InvalidInput(f"stages.{value_name} must be a stage key or {{status: won}}", where=str(where))


def load_mapping(path: Path) -> Mapping:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("no such mapping file", where=str(path)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"not a readable YAML file ({' '.join(str(exc).split())})", where=str(path)) from None
    if not isinstance(document, dict):
        raise InvalidInput("a mapping file must be a YAML mapping with entity, source and columns", where=str(path))
    unknown = set(document) - {"entity", "source", "columns", "constants", "formats", "stages", "custom"}
    if unknown:
        raise InvalidInput(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}", where=str(path))
    entity = str(document.get("entity", "")).strip()
    if entity not in ENTITIES:
        raise InvalidInput(f"entity {entity!r} is not one of {', '.join(ENTITIES)}", where=str(path))
    source = str(document.get("source") or "").strip()
    if not source:
        raise InvalidInput("source is missing (it names the system the ids come from, e.g. mycrm)", where=str(path))
    fields = ENTITIES[entity]

    def section(name: str) -> dict[str, Any]:
        value = document.get(name) or {}
        if not isinstance(value, dict):
            raise InvalidInput(f"{name} must be a mapping of field: value", where=str(path))
        return {str(k): v for k, v in value.items()}

    columns = {key: str(value) for key, value in section("columns").items()}
    constants = section("constants")
    for block, names in (("columns", columns), ("constants", constants)):
        for name in names:
            if name not in fields:
                raise InvalidInput(
                    f"{block}.{name} is not a field of {entity} (fields: {', '.join(fields)})", where=str(path)
                )
    for name in REQUIRED[entity]:
        if name not in columns and name not in constants:
            raise InvalidInput(f"columns.{name} is required for {entity}", where=str(path))
    formats = {key: str(value) for key, value in section("formats").items()}
    for key in formats:
        if key not in ("date", "datetime"):
            raise InvalidInput(f"formats.{key} is not a format (use date or datetime)", where=str(path))
    stages = None
    if document.get("stages") is not None:
        stages = {str(name): _stage_target(path, str(name), raw) for name, raw in section("stages").items()}
    custom = document.get("custom") or []
    if not isinstance(custom, list):
        raise InvalidInput("custom must be a list of column names", where=str(path))
    return Mapping(path, entity, source, columns, constants, formats, stages, tuple(str(c) for c in custom))
