"""Extracting an uploaded zip safely: no entry may write outside the folder it is extracted into."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from closewise.errors import InvalidInput


def extract_zip(path: Path, into: Path, *, wanted: Callable[[Path], bool]) -> None:
    """Extract the files of `path` for which `wanted(name)` holds into the folder `into`."""
    root = into.resolve()
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            target = (root / member.filename).resolve()
            if not target.is_relative_to(root):  # "zip slip": ../../etc/passwd and the like
                raise InvalidInput(f"unsafe path {member.filename!r} in the zip", where=str(path))
            if not member.is_dir() and wanted(Path(member.filename)):
                archive.extract(member, root)
