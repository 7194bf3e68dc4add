"""Zip uploads cannot write outside their extraction folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from closewise.errors import InvalidInput
from closewise.ingest.archive import extract_zip


def test_extracts_wanted_members_only(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("export/Opportunity.csv", "Id\n1\n")
        handle.writestr("export/readme.txt", "hello")
    extract_zip(archive, tmp_path / "out", wanted=lambda name: name.suffix == ".csv")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()] == [
        "export/Opportunity.csv"
    ]


@pytest.mark.parametrize("name", ["../escape.csv", "a/../../escape.csv", "/tmp/abs.csv"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(name, "Id\n1\n")
    with pytest.raises(InvalidInput, match="unsafe path"):
        extract_zip(archive, tmp_path / "out", wanted=lambda _: True)
    assert not (tmp_path / "escape.csv").exists()
