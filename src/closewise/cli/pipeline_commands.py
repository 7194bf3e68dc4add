"""`closewise pipeline` and `closewise waterfall`: the pipeline as of a date, and how it changed."""

from __future__ import annotations

from typing import Any, Final

import typer
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.services import pipeline as service

_FLOW_ROWS: Final = (
    ("created", "+", "Created"),
    ("increased", "+", "Increased"),
    ("decreased", "−", "Decreased"),
    ("won", "−", "Won"),
    ("lost", "−", "Lost"),
    ("no_decision", "−", "No decision"),
    ("pulled_in", "+", "Pulled in"),
    ("pushed_out", "−", "Pushed out"),
)


def pipeline(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help="End of this day, UTC (default: now)."),
    by: str = typer.Option("stage", "--by", help="stage, owner, team, segment or period (close period)."),
    period_type: str = typer.Option("quarter", "--period-type", help="For --by period: month or quarter."),
    period: str | None = typer.Option(
        None, "--period", metavar="P", help="Only deals expected to close in P (2026-05, 2026-Q2, 2026)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The open pipeline as of a date, in the corporate currency: count, total and weighted per group."""
    report = service.pipeline_report(
        engine_for(ctx),
        as_of=parse_as_of(as_of),
        by=service.parse_grouping(by),
        period_kind=service.parse_period_kind(period_type),
        period=period,
    )
    if as_json:
        emit_json(report)
        return
    currency = report["currency"]
    scope = f", closing in {report['period']['label']}" if report["period"] else ""
    table = Table(title=f"Pipeline as of {report['as_of'][:10]}{scope} ({currency})")
    table.add_column(report["by"].capitalize())
    for name in ("Deals", "Total", "Weighted"):
        table.add_column(name, justify="right")
    for group in report["groups"]:
        table.add_row(group["label"], f"{group['count']:,}", _money(group["total"]), _money(group["weighted"]))
    table.add_section()
    table.add_row("Total", f"{report['count']:,}", _money(report["total"]), _money(report["weighted"]), style="bold")
    stdout.print(table)


def waterfall(
    ctx: typer.Context,
    from_: str = typer.Option(..., "--from", metavar="DATE", help="Start of this day: the pipeline just before it."),
    to: str = typer.Option(..., "--to", metavar="DATE", help="End of this day: the pipeline then."),
    period: str | None = typer.Option(
        None, "--period", metavar="P", help="Only deals expected to close in P (2026-05, 2026-Q2, 2026)."
    ),
    deals: bool = typer.Option(False, "--deals", help="List the deals behind each flow (in JSON: a 'deals' key)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How the pipeline changed between two dates: created, increased, decreased, won, lost, no decision,
    pulled in and pushed out, in the corporate currency. The flows add up to the change."""
    start, end = service.parse_window(from_, to)
    report = service.waterfall_report(engine_for(ctx), start=start, end=end, period=period, deals=deals)
    if as_json:
        emit_json(report)
        return
    _print_waterfall(report)
    if deals:
        _print_deals(report["deals"], report["currency"])


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline)
    app.command("waterfall")(waterfall)


# --- rendering -------------------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _print_waterfall(report: dict[str, Any]) -> None:
    scope = f"deals closing in {report['period']['label']}" if report["period"] else "all open deals"
    table = Table(title=f"Pipeline waterfall {report['from'][:10]} to {report['to'][:10]}",
                  caption=f"{scope} ({report['currency']})", min_width=60)
    table.add_column("")
    table.add_column("Deals", justify="right")
    table.add_column("Amount", justify="right")
    table.add_row("Start pipeline", "", _money(report["start_value"]), style="bold")
    for key, sign, label in _FLOW_ROWS:
        value = report["flows"][key]
        colour = "green" if sign == "+" else "red"
        shown = f"[{colour}]{sign}{_money(value)}[/]" if value else _money(0.0)
        table.add_row(f"{sign} {label}", f"{report['deal_counts'][key]:,}", shown)
    table.add_section()
    table.add_row("End pipeline", "", _money(report["end_value"]), style="bold")
    stdout.print(table)


def _print_deals(rows: list[dict[str, Any]], currency: str) -> None:
    table = Table(title=f"Deals behind the flows ({currency})")
    table.add_column("Flow", no_wrap=True)
    table.add_column("Deal", overflow="ellipsis", no_wrap=True, max_width=36)
    table.add_column("Stage", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Close date", no_wrap=True, min_width=10)
    table.add_column("Amount", justify="right", no_wrap=True, min_width=11)
    for row in rows:
        table.add_row(row["flow"].replace("_", " "), row["name"] or str(row["id"]), row["stage"] or "",
                      row["status"] or "", str(row["close_date"] or ""), _money(row["value"]))
    stdout.print(table)
