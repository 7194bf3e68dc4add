"""`closewise import salesforce|hubspot|csv`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from closewise.cli.common import StepProgress, emit_json, engine_for, stdout, step_progress
from closewise.ingest.report import ImportReport
from closewise.services import imports

app = typer.Typer(no_args_is_help=True)

ErrorsDir = typer.Option(
    Path("closewise-import-errors"), "--errors-dir", help="Where files of rejected rows are written."
)
Json = typer.Option(False, "--json", help="Print the counts as JSON.")


def _show(report: ImportReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_json())
        for note in report.notes:
            sys.stderr.write(f"note: {note}\n")
        return
    table = Table("entity", "read", "inserted", "updated", "unchanged", "rejected", "errors file",
                  title=f"Import run {report.run_id}")
    for name, counts in report.entities.items():
        table.add_row(name, *(f"{n:,}" for n in (counts.read, counts.inserted, counts.updated, counts.unchanged,
                                                   counts.rejected)), counts.errors_file or "")
    stdout.print(table)
    for note in report.notes:
        stdout.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _with_progress(run: Callable[[StepProgress], ImportReport]) -> ImportReport:
    with step_progress() as report:
        return run(report)


@app.command("csv")
def import_csv(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A CSV or XLSX file."),
    mapping: Path = typer.Option(..., "--mapping", help="A mapping YAML file (see docs/importing.md)."),
    errors_dir: Path = ErrorsDir,
    as_json: bool = Json,
) -> None:
    """Import any CSV or XLSX file through a mapping file."""
    engine = engine_for(ctx)
    report = _with_progress(lambda p: imports.import_csv(engine, path, mapping_path=mapping, errors_dir=errors_dir,
                                                         progress=p))
    _show(report, as_json)


@app.command("salesforce")
def import_salesforce(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A Salesforce Data Export folder or zip."),
    errors_dir: Path = ErrorsDir,
    as_json: bool = Json,
) -> None:
    """Import a Salesforce Data Export (folder or zip of CSV files)."""
    engine = engine_for(ctx)
    report = _with_progress(lambda p: imports.import_salesforce(engine, path, errors_dir=errors_dir, progress=p))
    _show(report, as_json)


@app.command("hubspot")
def import_hubspot(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A HubSpot deals/contacts export (file, folder or zip)."),
    errors_dir: Path = ErrorsDir,
    as_json: bool = Json,
) -> None:
    """Import HubSpot deal and contact exports (label headers)."""
    engine = engine_for(ctx)
    report = _with_progress(lambda p: imports.import_hubspot(engine, path, errors_dir=errors_dir, progress=p))
    _show(report, as_json)
