"""`closewise serve` (the web app and REST API) and `closewise score` (store the deal models' scores)."""

from __future__ import annotations

import typer

from closewise.cli.common import emit_json, engine_for, state, stdout
from closewise.settings import Settings


def serve_app(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Run the web app until interrupted (shared by `serve` and `demo`). With more than one worker, uvicorn starts
    that many processes, each building the app from `settings` (handed over in the environment), so every core
    serves requests; each worker keeps its own caches."""
    import os

    import uvicorn

    from closewise.db.engine import make_engine, refresh_planner_statistics
    from closewise.web.app import app_from_environment, create_app, settings_environment

    engine = make_engine(settings.database_url)
    try:
        refresh_planner_statistics(engine)  # once here, before any worker starts reading
    finally:
        engine.dispose()
    if workers <= 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", proxy_headers=True)
        return
    os.environ.update(settings_environment(settings))  # the workers are child processes: they inherit it
    factory = f"{app_from_environment.__module__}:{app_from_environment.__name__}"
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="warning",
                proxy_headers=True)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Server processes (one per core uses every core; each keeps its own caches)."),
) -> None:
    """Serve the web app and the REST API (OpenAPI at /api/openapi.json)."""
    settings = state(ctx).settings
    engine_for(ctx)  # fail now, in one line, if the database is missing or not initialised
    processes = f" with {workers} worker processes" if workers > 1 else ""
    stdout.print(f"Closewise is running at [bold]http://{host}:{port}/[/bold]{processes} (API docs at /api/docs). "
                 "Press Ctrl+C to stop.")
    serve_app(settings, host=host, port=port, workers=workers)


def score(
    ctx: typer.Context,
    backfill_weeks: int = typer.Option(
        0, "--backfill-weeks", min=0, max=260, metavar="N",
        help="Also refit the models as of each of the last N week starts (Monday 00:00 UTC) and keep those "
             "scores in the deals' probability history, each from what was known that week."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Fit the deal models on the history so far and store a win probability for every open deal."""
    from closewise.cli.common import progress_bar
    from closewise.services.scoring import score_deals

    engine = engine_for(ctx)
    with progress_bar() as bar:
        task = bar.add_task("reading the org", total=100)

        def report(message: str, fraction: float) -> None:
            bar.update(task, description=message, completed=round(fraction * 100))

        run = score_deals(engine, backfill_weeks=backfill_weeks, progress=report)
    summary = {"as_of": run.as_of.isoformat(), "period_start": run.period_start.isoformat(),
               "period_end": run.period_end.isoformat(), "deals": run.deals, "model": run.model,
               "history": [{"as_of": moment.isoformat(), "deals": deals} for moment, deals in run.history]}
    if as_json:
        emit_json(summary)
        return
    if run.history:
        points = sum(deals for _, deals in run.history)
        stdout.print(f"Kept {points:,} weekly scores in the probability history "
                     f"({run.history[0][0]:%Y-%m-%d} to {run.history[-1][0]:%Y-%m-%d}).")
    stdout.print(f"Scored {run.deals:,} open deals with {run.model} as of {run.as_of:%Y-%m-%d %H:%M} UTC "
                 f"(period {run.period_start} to {run.period_end}).")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("score")(score)
