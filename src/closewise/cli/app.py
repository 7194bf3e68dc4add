"""The `closewise` command: global options, command groups, and one-line errors."""

from __future__ import annotations

import sys

import sqlalchemy as sa
import typer
from typer.exceptions import TyperException

from closewise.cli import (
    call_commands,
    coverage_commands,
    database_commands,
    demo_commands,
    export_commands,
    forecast_bias_commands,
    forecast_commands,
    hygiene_commands,
    import_commands,
    leads_commands,
    pipeline_commands,
    playbook_commands,
    proposal_commands,
    serve_commands,
    stage_commands,
    team_commands,
    user_commands,
)
from closewise.cli.common import State, stderr
from closewise.errors import CloseWiseError
from closewise.settings import load_settings

app = typer.Typer(
    name="closewise",
    help="Closewise: revenue forecasting and sales coaching from your own CRM history.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="URL_OR_PATH",
        help="Database: a SQLAlchemy URL or a SQLite file path (default: $CLOSEWISE_DATABASE_URL or ./closewise.db).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    ctx.obj = State(settings=load_settings(db=db, debug=debug))


database_commands.register(app)
export_commands.register(app)
coverage_commands.register(app)
stage_commands.register(app)
hygiene_commands.register(app)
team_commands.register(app)
leads_commands.register(app)
proposal_commands.register(app)
pipeline_commands.register(app)
forecast_bias_commands.register(app)
forecast_commands.register(app)
demo_commands.register(app)
serve_commands.register(app)
app.add_typer(user_commands.app, name="user", help="List and manage users.")
app.add_typer(playbook_commands.app, name="playbook", help="The playbook: stages, exit criteria, gates, "
              "qualification and re-qualification.")
app.add_typer(call_commands.app, name="call", help="The forecast call: submit, adjust, roll up, accuracy.")
app.add_typer(import_commands.app, name="import", help="Import CRM exports: Salesforce, HubSpot, any CSV/XLSX.")


def _fail(message: str, code: int) -> None:
    """Print one line (whatever the message held) and exit."""
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; any error the user can fix ends as one line on stderr and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="closewise", standalone_mode=False)
    except TyperException as exc:
        # Usage errors (unknown option, missing argument) and other parser errors: one line.
        context = getattr(exc, "ctx", None)
        hint = f" (try `{context.command_path} --help`)" if context is not None else ""
        _fail(f"{exc.format_message()}{hint}", exc.exit_code)
    except typer.Abort:
        stderr.print("aborted", markup=False)
        sys.exit(130)
    except CloseWiseError as exc:
        if debug:
            raise
        _fail(str(exc), 1)
    except sa.exc.SQLAlchemyError as exc:
        if debug:
            raise
        cause = getattr(exc, "orig", None) or exc
        _fail(f"database: {str(cause).strip().splitlines()[0]}", 1)
    except OSError as exc:
        # A path the user named that cannot be read or written (a folder given as a file, no permission).
        if debug:
            raise
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}", 1)
    except Exception as exc:  # the contract is one line, even for a bug nobody has found yet
        if debug:
            raise
        _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback", 1)
    sys.exit(code if isinstance(code, int) else 0)
