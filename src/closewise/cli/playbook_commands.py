"""`closewise playbook …`: export and import the playbook as YAML, the gate analysis, and re-qualification."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.db.scope import scope_for
from closewise.db.users import get_by_email
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput, NotFound

app = typer.Typer(no_args_is_help=True)

_USER = typer.Option(None, "--user", metavar="EMAIL", help="Only what this user sees (default: everything).")
_AS_OF = typer.Option(None, "--as-of", metavar="DATE", help="As known at the end of this day (default: now).")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _scope(engine: Engine, email: str | None) -> Scope:
    """The CLI is run by the operator of the database, who sees everything unless `--user` narrows it."""
    if email is None:
        return Scope(user_id=0, role=Role.ADMIN, owner_ids=None)
    with engine.connect() as connection:
        user = get_by_email(connection, email=email)
        if user is None:
            raise NotFound(f"no user with email {email.strip()!r}", where="--user")
        return scope_for(connection, user_id=user.id)


@app.command("export")
def export(ctx: typer.Context,
           out: Path | None = typer.Option(None, "--out", help="Write to this file (default: stdout).")) -> None:
    """Write the playbook (stages, exit criteria, frameworks) as YAML."""
    from closewise.services.playbook import export_playbook

    text = export_playbook(engine_for(ctx))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    stdout.print(f"Wrote the playbook to {out}")


@app.command("import")
def import_(ctx: typer.Context, path: Path = typer.Argument(..., help="A playbook YAML file.")) -> None:
    """Replace the playbook with the one in a YAML file (checked first; nothing changes on an error)."""
    from closewise.services.playbook import import_playbook

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8 text", where=str(path)) from None
    playbook = import_playbook(engine_for(ctx), text=text, source=str(path))
    criteria = sum(len(stage.exit_criteria) for stage in playbook.stages)
    stdout.print(f"Imported {len(playbook.stages)} stages, {criteria} exit criteria and "
                 f"{len(playbook.frameworks)} qualification frameworks from {path}")


@app.command("gates")
def gates(ctx: typer.Context, as_of: str | None = _AS_OF, user: str | None = _USER, as_json: bool = _JSON) -> None:
    """Do the gates matter? Win and slip rates of deals that advanced with their exit criteria met vs not."""
    from closewise.services.playbook import gate_analysis

    engine = engine_for(ctx)
    effect = gate_analysis(engine, scope=_scope(engine, user), as_of=parse_as_of(as_of))
    if as_json:
        emit_json(effect.to_dict())
        return
    table = Table("stage", "left with criteria", "win rate", "left without", "win rate", "lift",
                  title=f"Deals leaving each stage, closed by {effect.as_of:%Y-%m-%d}")
    for row in effect.stages.iter_rows(named=True):
        table.add_row(row["stage"], f"{row['met_deals']:,}", _pct(row["met_win_rate"]), f"{row['unmet_deals']:,}",
                      _pct(row["unmet_win_rate"]), "—" if row["lift"] is None else f"{row['lift']:.2f}x")
    stdout.print(table)
    groups = Table("deals that advanced", "deals", "closed", "won", "win rate", "slip rate")
    for row in effect.groups.iter_rows(named=True):
        groups.add_row(row["group"], f"{row['deals']:,}", f"{row['closed']:,}", f"{row['won']:,}",
                       _pct(row["win_rate"]), _pct(row["slip_rate"]))
    stdout.print(groups)


@app.command("requalify")
def requalify(ctx: typer.Context, as_of: str | None = _AS_OF, user: str | None = _USER, as_json: bool = _JSON,
              warn_days: int = typer.Option(7, "--warn-days", min=0, help="Days ahead that count as due.")) -> None:
    """Open deals due or overdue for re-qualification, soonest first."""
    from closewise.services.playbook import requalification_due

    engine = engine_for(ctx)
    rows = requalification_due(engine, scope=_scope(engine, user), as_of=parse_as_of(as_of), warn_days=warn_days)
    if as_json:
        emit_json({"deals": rows})
        return
    table = Table("deal", "owner", "stage", "last qualified", "due on", "status")
    for row in rows:
        table.add_row(f"{row['name']} (#{row['id']})", row["owner"] or "—", row["stage"],
                      (row["last_qualified_at"] or "never")[:10], row["due_on"], row["status"])
    stdout.print(table)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"
