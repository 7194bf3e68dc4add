"""`closewise stages conversion|cycle|velocity|slippage`: stage analytics from the change log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.table import Table

from closewise.analytics.cycle import DEFAULT_MIN_WON, DEFAULT_WINDOW_DAYS
from closewise.cli.common import emit_json, engine_for, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.services import stages as service

stages_app = typer.Typer(no_args_is_help=True)

AS_OF_HELP = "Use only what was known at the end of this day (default: now)."
JSON_HELP = "Print JSON."

Column = tuple[str, str, Callable[[Any], str]]


def _int(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def _days(value: Any) -> str:
    return "" if value is None else f"{value:,.1f}"


def _share(value: Any) -> str:
    return "" if value is None else f"{value:.0%}"


def _money(value: Any) -> str:
    return "" if value is None else f"{value:,.0f}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> Table:
    table = Table(title=title)
    cells = [[render(row.get(key)) for key, _, render in columns] for row in rows]
    for index, (_, header, render) in enumerate(columns):
        if render is _text:
            # Names stay whole on a narrow terminal; the numbers' headers wrap instead.
            widest = max((len(line[index]) for line in cells), default=0)
            table.add_column(header, no_wrap=True, min_width=min(max(widest, len(header)), 24))
        else:
            table.add_column(header, justify="right")
    for line in cells:
        table.add_row(*line)
    return table


@stages_app.command("conversion")
def conversion_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help=AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Per stage: how many deals moved on, the win rate from the stage, and the days spent in it."""
    report = service.conversion_report(engine_for(ctx), as_of=parse_as_of(as_of))
    if as_json:
        emit_json(report)
        return
    columns: list[Column] = [
        ("name", "stage", _text),
        ("entered", "entered", _int),
        ("conversion_rate", "moved on", _share),
        ("win_rate_from_stage", "win rate", _share),
        ("median_days_to_close_won", "days to win", _days),
        ("median_days_in_stage", "days in", _days),
        ("p90_days_in_stage", "p90", _days),
        ("in_stage_now", "now", _int),
    ]
    stdout.print(_table(f"Stage conversion as of {report['as_of'][:10]}", report["stages"], columns))
    stdout.print(
        "moved on: reached a later stage or won, among deals decided for the stage; win rate: won among the "
        "closed that entered the stage; days to win: median from entering it; days in: median (and p90) "
        "before moving on; now: open deals in it."
    )


@stages_app.command("cycle")
def cycle_command(
    ctx: typer.Context,
    by: str = typer.Option("segment", "--by", metavar="segment|owner", help="Group by segment or owner."),
    min_won: int = typer.Option(
        DEFAULT_MIN_WON, "--min-won", help="Fewer wins than this in a group: show the org's cycle instead."
    ),
    window_days: int | None = typer.Option(
        None, "--window-days", help="Only deals won in this many days before --as-of (default: all history)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help=AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sales cycle (days from creation to win) by segment or owner: median, p75, p90."""
    report = service.cycle_report(
        engine_for(ctx), as_of=parse_as_of(as_of), by=by, min_won=min_won, window_days=window_days
    )
    if as_json:
        emit_json(report)
        return
    key: list[Column] = [("name", "owner", _text)] if by == "owner" else [("segment", "segment", _text)]
    columns: list[Column] = [
        *key,
        ("won", "won", _int),
        ("median_days", "median days", _days),
        ("p75_days", "p75", _days),
        ("p90_days", "p90", _days),
        ("basis", "basis", _text),
        ("own_median_days", "own median", _days),
    ]
    overall = {**report["org"], "segment": "all", "name": "all", "basis": "own"}
    stdout.print(_table(f"Sales cycle as of {report['as_of'][:10]}", [*report["groups"], overall], columns))
    stdout.print(f"Groups with fewer than {report['min_won']} wins show the org's cycle (basis 'org').")


@stages_app.command("velocity")
def velocity_command(
    ctx: typer.Context,
    window_days: int = typer.Option(
        DEFAULT_WINDOW_DAYS, "--window-days", help="Win rate, deal size and cycle from deals closed in this window."
    ),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help=AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sales velocity per owner: open deals × win rate × average won amount ÷ cycle days."""
    report = service.velocity_report(engine_for(ctx), as_of=parse_as_of(as_of), window_days=window_days)
    if as_json:
        emit_json(report)
        return
    currency = report["currency"]
    columns: list[Column] = [
        ("name", "owner", _text),
        ("open_deals", "open deals", _int),
        ("win_rate", "win rate", _share),
        ("average_won_amount", f"avg won ({currency})", _money),
        ("cycle_days", "cycle days", _days),
        ("velocity_per_day", f"{currency} / day", _money),
    ]
    rows = [*report["by_owner"], {**report["org"], "name": "all"}]
    stdout.print(_table(f"Sales velocity as of {report['as_of'][:10]}", rows, columns))
    stdout.print(f"velocity = {report['formula']}, over deals closed in the last {report['window_days']} days.")


@stages_app.command("slippage")
def slippage_command(
    ctx: typer.Context,
    window_days: int = typer.Option(
        DEFAULT_WINDOW_DAYS, "--window-days", help="Deals created in this many days before --as-of."
    ),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help=AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Close-date slippage per owner: how often and how far deals are pushed (pull-ins apart)."""
    report = service.slippage_report(engine_for(ctx), as_of=parse_as_of(as_of), window_days=window_days)
    if as_json:
        emit_json(report)
        return
    columns: list[Column] = [
        ("name", "owner", _text),
        ("deals", "deals", _int),
        ("share_pushed", "pushed", _share),
        ("share_pushed_twice", "2+ times", _share),
        ("pushes_per_deal", "per deal", _days),
        ("mean_days_pushed", "days", _days),
        ("share_pulled_in", "pulled", _share),
        ("mean_days_pulled_in", "days", _days),
    ]
    rows = [*report["by_owner"], {**report["org"], "name": "all"}]
    stdout.print(_table(f"Close-date slippage as of {report['as_of'][:10]}", rows, columns))
    stdout.print(
        f"Deals created in the {report['window_days']} days before the as-of date; days: mean days per push "
        "(or pull-in)."
    )


def register(app: typer.Typer) -> None:
    """Add the `stages` command group to the `closewise` app."""
    app.add_typer(stages_app, name="stages", help="Stage conversion, time in stage, sales cycle, velocity, slippage.")
