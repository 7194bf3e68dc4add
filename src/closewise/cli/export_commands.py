"""`closewise export opportunities --format csv|xlsx --out PATH [--json]`."""

from __future__ import annotations

from pathlib import Path

import typer

from closewise.cli.common import emit_json, engine_for, stderr, stdout, step_progress
from closewise.services.export import ExportResult, export_opportunities, parse_format

app = typer.Typer(no_args_is_help=True)


@app.command("opportunities")
def opportunities(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="The file to write (a mapping to re-import it is written beside)."),
    fmt: str | None = typer.Option(None, "--format", metavar="csv|xlsx", help="Default: from --out (.xlsx), else csv."),
    as_json: bool = typer.Option(False, "--json", help="Print {path, rows, format} as JSON."),
) -> None:
    """Export every opportunity, spreadsheet-safe (formula-like text made inert) and re-importable."""
    chosen = parse_format(fmt, out)
    engine = engine_for(ctx)
    with step_progress() as report:
        result = export_opportunities(engine, out, fmt=chosen, progress=report)
    _show(result, as_json)


def _show(result: ExportResult, as_json: bool) -> None:
    reimport = f"re-import with: closewise import csv {result.path} --mapping {result.mapping_path}"
    if as_json:
        emit_json(result.as_json())
        stderr.print(f"note: {reimport}", markup=False, highlight=False)
        return
    stdout.print(f"Wrote {result.rows:,} opportunities to {result.path} ({result.format.value})", markup=False,
                 highlight=False)
    stdout.print(reimport, markup=False, highlight=False)


def register(main: typer.Typer) -> None:
    """Add the `export` command group to the `closewise` app."""
    main.add_typer(app, name="export", help="Export data: opportunities to CSV or XLSX.")
