"""`closewise init` and `closewise status`."""

from __future__ import annotations

import typer
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, state, stdout
from closewise.services.database import init_database
from closewise.services.status import database_status


def init(ctx: typer.Context) -> None:
    """Create the database, or migrate it to this version's schema."""
    before, after = init_database(state(ctx).settings)
    if before == after:
        stdout.print(f"Database is up to date (schema {after}).")
    elif before is None:
        stdout.print(f"Created the database (schema {after}).")
    else:
        stdout.print(f"Migrated the database from schema {before} to {after}.")


def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What the database holds."""
    report = database_status(engine_for(ctx))
    if as_json:
        emit_json(report)
        return
    table = Table(title=f"Closewise — {report['database']}", show_header=False)
    for key, value in report.items():
        if key != "database":
            table.add_row(key.replace("_", " "), str(value))
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
