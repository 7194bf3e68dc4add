"""`closewise forecast-bias [--as-of DATE] [--json]`: who sandbags, who has happy ears."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.services.rep_bias import rep_bias_report

_STYLE = {"sandbagger": "yellow", "happy_ears": "red", "accurate": "green"}


def register(app: typer.Typer) -> None:
    """Add the `forecast-bias` command to the `closewise` app."""
    app.command("forecast-bias")(forecast_bias_command)


def forecast_bias_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help="Judge as known at the end of DATE."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each rep's forecast tendency: median commit call / booked, over the periods that have ended."""
    report = rep_bias_report(engine_for(ctx), as_of=parse_as_of(as_of))
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=f"Forecast bias as of {report.as_of:%Y-%m-%d} (commit call / closed-won)")
    for header in ("rep", "tendency", "median ratio", "correction", "periods", "calls"):
        table.add_column(header, justify="left" if header in ("rep", "tendency") else "right")
    for row in report.reps:
        style = _STYLE.get(row.label, "")
        table.add_row(
            escape(row.name or row.email),
            f"[{style}]{row.label.replace('_', ' ')}[/{style}]" if style else row.label,
            f"{row.median_ratio:.2f}",
            f"÷ {row.shrunk_ratio:.2f}",
            str(row.periods),
            str(row.calls),
        )
    stdout.print(table)
    if not report.reps:
        stdout.print("No calls yet for a period that has ended.")
