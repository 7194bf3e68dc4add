"""`closewise demo`: build the seeded demo org (and serve it once the web app exists)."""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from closewise.cli.common import emit_json, progress_bar, state, stdout, step_progress
from closewise.errors import InvalidInput
from closewise.services.database import init_database, open_database


def demo(
    ctx: typer.Context,
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives the same org."),
    opportunities: int | None = typer.Option(
        None, "--opportunities", min=1, help="Number of deals (default: a ~2,500-deal org)."
    ),
    today: str | None = typer.Option(
        None, "--today", metavar="DATE", help="Date the org's history ends on (default: today)."
    ),
    history_quarters: int | None = typer.Option(
        None, "--history-quarters",
        help="Fiscal quarters of history, 4 to 20, ending with today's (default 8; the same deals spread over them).",
    ),
    no_serve: bool = typer.Option(False, "--no-serve", help="Build the org and stop; do not serve it."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to serve on."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Build a seeded synthetic B2B sales org into the database."""
    from closewise.services.demo import build_demo

    settings = state(ctx).settings
    try:
        anchor = date.fromisoformat(today) if today else None
    except ValueError:
        raise InvalidInput(f"--today {today!r} is not a date like 2026-11-22") from None
    init_database(settings)
    engine = open_database(settings)
    try:
        with step_progress() as report:
            span = {} if history_quarters is None else {"history_quarters": history_quarters}  # range: build_demo's
            summary = build_demo(engine, seed=seed, opportunities=opportunities, today=anchor, progress=report, **span)
        if not no_serve:
            # The deal list shows each deal's win probability, the deal page its last weeks: fit the models as
            # of each of the last 6 week starts (each on what was known then) and now, before serving.
            from closewise.services.scoring import score_deals

            with progress_bar() as bar:
                task = bar.add_task("scoring open deals (6 weeks back)", total=100)
                score_deals(engine, backfill_weeks=6,
                            progress=lambda message, share: bar.update(task, completed=int(share * 100),
                                                                       description=message))
    finally:
        engine.dispose()
    if as_json:
        emit_json(summary)
        return
    table = Table("what", "count", title=f"Demo org (seed {seed})")
    for key, value in summary.counts.items():
        table.add_row(key, f"{value:,}")
    stdout.print(table)
    logins = Table("login", "role", "password", title="Demo logins")
    for login in summary.logins:
        logins.add_row(login.email, login.role, login.password)
    stdout.print(logins)
    if not no_serve:
        from closewise.cli.serve_commands import serve_app

        stdout.print(f"Closewise is running at [bold]http://{host}:{port}/[/bold] — sign in with a demo login "
                     "above. Press Ctrl+C to stop.")
        serve_app(settings, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
