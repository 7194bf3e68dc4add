"""`closewise init`, `status` and `user ...` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from closewise.db.engine import make_engine
from closewise.db.users import get_by_email
from closewise.domain.periods import FiscalCalendar, PeriodKind
from closewise.services.passwords import verify_password
from tests.cli_runner import run_cli

Cap = pytest.CaptureFixture[str]
Mp = pytest.MonkeyPatch


def test_status_before_init_says_what_to_do(database_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    result = run_cli(capsys, monkeypatch, "--db", database_url, "status", "--json")
    assert result.code == 1
    assert result.stdout == ""
    assert "closewise init" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_init_then_status_json(database_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    again = run_cli(capsys, monkeypatch, "--db", database_url, "init")
    assert again.code == 0 and "up to date" in again.stdout
    status = run_cli(capsys, monkeypatch, "--db", database_url, "status", "--json").json()
    for key in ("opportunities", "opportunity_changes", "users", "accounts", "activities", "leads"):
        assert status[key] == 0 and isinstance(status[key], int)
    expected_quarter = FiscalCalendar().period_containing(date.today(), PeriodKind.QUARTER).label
    assert status["current_quarter"] == expected_quarter


def test_database_from_environment(database_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    monkeypatch.setenv("CLOSEWISE_DATABASE_URL", database_url)
    assert run_cli(capsys, monkeypatch, "init").code == 0
    assert run_cli(capsys, monkeypatch, "status", "--json").json()["users"] == 0


def test_user_add_list_and_password(database_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    db = ("--db", database_url)
    run_cli(capsys, monkeypatch, *db, "init")
    added = run_cli(
        capsys,
        monkeypatch,
        *db,
        "user",
        "add",
        "Boss@Example.com",
        "--role",
        "leader",
        "--password-stdin",
        stdin="first-password\n",
    )
    assert added.code == 0, added.stderr
    rep = run_cli(
        capsys, monkeypatch, *db, "user", "add", "rep@example.com", "--role", "rep", "--manager", "boss@example.com"
    )
    assert rep.code == 0, rep.stderr
    listed = run_cli(capsys, monkeypatch, *db, "user", "list", "--json").json()
    by_email = {row["email"]: row for row in listed}
    assert set(by_email) == {"boss@example.com", "rep@example.com"}
    assert by_email["rep@example.com"]["manager_id"] == by_email["boss@example.com"]["id"]
    assert by_email["boss@example.com"]["role"] == "leader"
    assert set(listed[0]) == {"id", "email", "name", "role", "manager_id"}

    changed = run_cli(
        capsys,
        monkeypatch,
        *db,
        "user",
        "set-password",
        "boss@example.com",
        "--password-stdin",
        stdin="second-password\n",
    )
    assert changed.code == 0, changed.stderr
    engine = make_engine(database_url)
    with engine.connect() as connection:
        boss = get_by_email(connection, email="boss@example.com")
    engine.dispose()
    assert boss is not None and boss.password_hash is not None
    assert boss.password_hash.startswith("$argon2id$")  # hashed, never stored as given
    assert verify_password(boss.password_hash, "second-password")
    assert not verify_password(boss.password_hash, "first-password")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("user", "add", "x@example.com", "--role", "wizard"), "", "unknown role 'wizard'"),
        (("user", "add", "not-an-email", "--role", "rep"), "", "is not an email address"),
        (
            ("user", "add", "x@example.com", "--role", "rep", "--manager", "ghost@example.com"),
            "",
            "no user with email ghost@example.com",
        ),
        (("user", "add", "x@example.com", "--role", "rep", "--password-stdin"), "short\n", "at least 8"),
        (("user", "set-password", "ghost@example.com", "--password-stdin"), "long-enough\n", "no user with email"),
        (("user", "add"), "", "Missing argument"),
        (("frobnicate",), "", "No such command"),
    ],
)
def test_bad_input_is_one_clear_line(
    database_url: str, capsys: Cap, monkeypatch: Mp, args: tuple[str, ...], stdin: str, message: str
) -> None:
    run_cli(capsys, monkeypatch, "--db", database_url, "init")
    result = run_cli(capsys, monkeypatch, "--db", database_url, *args, stdin=stdin)
    assert result.code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    # Nothing was lost or half-written.
    assert run_cli(capsys, monkeypatch, "--db", database_url, "user", "list", "--json").json() == []


def test_duplicate_email_is_refused(database_url: str, capsys: Cap, monkeypatch: Mp) -> None:
    run_cli(capsys, monkeypatch, "--db", database_url, "init")
    run_cli(capsys, monkeypatch, "--db", database_url, "user", "add", "a@example.com", "--role", "rep")
    again = run_cli(capsys, monkeypatch, "--db", database_url, "user", "add", "A@example.com", "--role", "admin")
    assert again.code == 1 and "already exists" in again.stderr
    users = run_cli(capsys, monkeypatch, "--db", database_url, "user", "list", "--json").json()
    assert [(u["email"], u["role"]) for u in users] == [("a@example.com", "rep")]


def test_unknown_database_kind_is_one_line(capsys: Cap, monkeypatch: Mp) -> None:
    result = run_cli(capsys, monkeypatch, "--db", "bogus://somewhere", "status")
    assert result.code == 1
    assert result.stderr.strip() == (
        "error: unknown database kind 'bogus': give a SQLite file path or a postgresql:// URL"
    )


def test_unreadable_path_is_one_line(database_url: str, capsys: Cap, monkeypatch: Mp, tmp_path: Path) -> None:
    run_cli(capsys, monkeypatch, "--db", database_url, "init")
    (tmp_path / "deals.csv").write_text("id\n1\n", encoding="utf-8")
    # A folder where the mapping file should be: the OS refuses to read it.
    result = run_cli(capsys, monkeypatch, "--db", database_url, "import", "csv", str(tmp_path / "deals.csv"),
                     "--mapping", str(tmp_path))
    assert result.code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert str(tmp_path) in result.stderr
