"""`closewise user list|add|set-password`."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.errors import InvalidInput
from closewise.services import users as user_service

app = typer.Typer(no_args_is_help=True)


def _read_password() -> str:
    lines = sys.stdin.read().splitlines()
    if not lines or not lines[0]:
        raise InvalidInput("--password-stdin: no password on standard input")
    return lines[0]


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every user with their role and manager."""
    people = user_service.list_users(engine_for(ctx))
    if as_json:
        emit_json(
            [{"id": u.id, "email": u.email, "name": u.name, "role": u.role, "manager_id": u.manager_id} for u in people]
        )
        return
    table = Table("id", "email", "name", "role", "manager")
    for person in people:
        table.add_row(str(person.id), person.email or "", person.name, person.role, str(person.manager_id or ""))
    stdout.print(table)


@app.command("add")
def add_command(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The user's email, which is also their login."),
    role: str = typer.Option(..., "--role", help="admin, leader, manager, rep or viewer."),
    manager: str | None = typer.Option(None, "--manager", metavar="EMAIL", help="Their manager's email."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: from the email)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read a password from stdin."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add a user."""
    password = _read_password() if password_stdin else None
    user = user_service.add_user(
        engine_for(ctx), email=email, role=role, name=name, manager_email=manager, password=password
    )
    if as_json:
        emit_json(user)
    else:
        stdout.print(f"Added {user.email} ({user.role}) as user {user.id}.")


@app.command("set-password")
def set_password_command(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The user's email."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Set a user's password (read from standard input)."""
    if not password_stdin:
        raise InvalidInput("pass the new password on standard input with --password-stdin")
    user_service.set_password(engine_for(ctx), email=email, password=_read_password())
    stdout.print(f"Password set for {email.strip().lower()}.")
