"""`closewise proposal ...`: candidates, generate, differentiation, prospecting. The CLI acts as the org's
administrator (it sees every deal), or as `--user EMAIL` (that user's scope and permissions)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import Engine

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.db.scope import scope_for
from closewise.db.tables import users
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.errors import NotFound
from closewise.services import proposals as service

app = typer.Typer(no_args_is_help=True)

_JSON = typer.Option(False, "--json", help="Print JSON.")
_USER = typer.Option(None, "--user", metavar="EMAIL", help="Act as this user (their scope); default: everything.")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="proposal", help="Proposals with a personalised executive summary; "
                                              "differentiation and prospecting.")


def _scope(engine: Engine, email: str | None) -> Scope:
    with engine.connect() as connection:
        if email is None:
            admin = connection.execute(sa.select(users.c.id).where(users.c.role == Role.ADMIN.value)
                                       .order_by(users.c.id)).scalar()
            return Scope(user_id=int(admin or 0), role=Role.ADMIN, owner_ids=None)
        found = connection.execute(sa.select(users.c.id).where(users.c.email == email)).scalar()
        if found is None:
            raise NotFound(f"no user with email {email}", where="--user")
        return scope_for(connection, user_id=int(found))


@app.command("candidates")
def candidates_command(ctx: typer.Context, user: str | None = _USER, as_json: bool = _JSON) -> None:
    """Open deals ready for a proposal (from the stage before Proposal on)."""
    engine = engine_for(ctx)
    rows = service.candidates(engine, scope=_scope(engine, user))
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} deals ready for a proposal")
    for header in ("id", "deal", "account", "stage", "amount", "close", "pain", "outcomes", "proposal"):
        table.add_column(header)
    for row in rows:
        ready = row["ready"]
        verdict = {None: "—", True: "passed", False: "failed"}[row["proposal_passed"]]
        table.add_row(str(row["id"]), escape(row["name"]), escape(row["account"] or ""), row["stage_name"] or "",
                      f"{row['amount'] or 0:,.0f} {row['currency']}", row["close_date"] or "—",
                      "yes" if ready["pain"] else "no", "yes" if ready["outcomes"] else "no", verdict)
    stdout.print(table)


@app.command("generate")
def generate_command(
    ctx: typer.Context,
    deal_id: int = typer.Argument(..., metavar="ID", help="The deal's id."),
    fmt: str = typer.Option("docx", "--format", help="docx, html or pdf."),
    out: Path = typer.Option(..., "--out", metavar="PATH", help="Where to write the document."),
    user: str | None = _USER,
    as_json: bool = _JSON,
) -> None:
    """Write the proposal for a deal, with its executive summary and quality checks."""
    engine = engine_for(ctx)
    result = service.generate(engine, scope=_scope(engine, user), deal_id=deal_id, fmt=fmt, out=out)
    document = {key: result[key] for key in ("id", "deal_id", "path", "format", "executive_summary", "checks",
                                             "passed", "polished_by")}
    if as_json:
        emit_json(document)
        return
    stdout.print(f"Wrote {escape(str(result['path']))}\n")
    stdout.print(escape(result["executive_summary"]) + "\n")
    for check in result["checks"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]fail[/]"
        stdout.print(f"{mark} {escape(check['label'])}: {escape(check['detail'])}")


@app.command("differentiation")
def differentiation_command(ctx: typer.Context, user: str | None = _USER, as_json: bool = _JSON) -> None:
    """The record against each competitor and the talking points per persona."""
    engine = engine_for(ctx)
    result = service.differentiation(engine, scope=_scope(engine, user))
    if as_json:
        emit_json(result)
        return
    table = Table(title="Win rate against each competitor")
    for header in ("competitor", "closed", "won", "win rate", "vs no competitor", "open deals"):
        table.add_column(header)
    for row in result["competitors"]:
        rate = "—" if row["win_rate"] is None else f"{row['win_rate']:.0%}"
        gap = "—" if row["gap"] is None else f"{row['gap'] * 100:+.0f} pts"
        table.add_row(escape(row["competitor"]), str(row["closed"]), str(row["won"]), rate, gap,
                      str(row["open_deals"]))
    stdout.print(table)


@app.command("prospecting")
def prospecting_command(ctx: typer.Context, user: str | None = _USER,
                        limit: int = typer.Option(25, "--limit", min=1, help="Target accounts to list."),
                        as_json: bool = _JSON) -> None:
    """The ideal-customer profile, target accounts ranked by fit, cadences and each rep's progress."""
    engine = engine_for(ctx)
    result = service.prospecting_plan(engine, scope=_scope(engine, user), limit=limit)
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"Target accounts ({result['targets_total']:,}), best fit first")
    for header in ("account", "rep", "fit", "why"):
        table.add_column(header)
    for row in result["targets"]:
        table.add_row(escape(row["name"]), escape(row["owner"] or "—"), f"{row['fit']:.0f}",
                      escape("; ".join(row["reasons"])))
    stdout.print(table)
