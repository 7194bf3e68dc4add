"""`closewise coverage`: do I have enough pipeline for a period's target?"""

from __future__ import annotations

import re

import typer
from rich.table import Table

from closewise.analytics.coverage import CoverageReport, CoverageStatus
from closewise.cli.common import emit_json, engine_for, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput
from closewise.services.coverage import coverage_report

_AMOUNT = re.compile(r"^\s*([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([kKmM]?)\s*$")
_STYLE = {
    CoverageStatus.REACHED: "green",
    CoverageStatus.ON_TRACK: "green",
    CoverageStatus.SHORT: "yellow",
    CoverageStatus.LATE: "red",
    CoverageStatus.UNKNOWN: "yellow",
}


def parse_amount(text: str) -> float:
    """`1200000`, `1,200,000`, `1.2M` or `500k`, in the corporate currency."""
    match = _AMOUNT.match(text)
    if match is None:
        raise InvalidInput(f"{text!r} is not an amount like 1200000, 1,200,000, 1.2M or 500k", where="--target")
    value = float(match[1].replace(",", "").replace("_", "")) * {"": 1, "k": 1e3, "m": 1e6}[match[2].lower()]
    if value <= 0:
        raise InvalidInput(f"the target must be positive, got {text!r}", where="--target")
    return value


def coverage_command(
    ctx: typer.Context,
    period: str = typer.Option(..., "--period", metavar="P", help="Month (2026-11), quarter (2026-Q4) or year."),
    target: str | None = typer.Option(
        None, "--target", metavar="AMOUNT", help="Target in the corporate currency (default: the period's quotas)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help="Answer as known at the end of DATE."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Do I have enough pipeline? Coverage of the target from the org's own conversion and cycle times."""
    amount = parse_amount(target) if target is not None else None
    report = coverage_report(engine_for(ctx), period=period, target=amount, as_of=parse_as_of(as_of))
    if as_json:
        emit_json(report.to_dict())
        return
    _print(report)


def _print(report: CoverageReport) -> None:
    def money(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}"

    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}x"

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    summary = Table(
        show_header=False,
        title=f"Coverage {report.period} ({report.period_start} – {report.period_end}), "
        f"as of {report.as_of:%Y-%m-%d %H:%M} UTC, {report.currency}",
    )
    summary.add_column(justify="left")
    summary.add_column(justify="right")
    for label, value in (
        ("target", money(report.target)),
        ("closed won", money(report.closed_won)),
        ("gap", money(report.gap)),
        (f"open pipeline closing in period ({report.open_deals} deals)", money(report.open_pipeline)),
        (
            "expected from pipeline (± 1 sd)",
            f"{money(report.expected_from_pipeline)} ± {money(report.expected_from_pipeline_sd)}",
        ),
        ("remaining gap", money(report.remaining_gap)),
        (f"conversion with {report.days_left:.0f} days left", pct(report.overall_conversion)),
        ("coverage ratio", ratio(report.coverage_ratio)),
        (
            "required coverage (history / today's mix)",
            f"{ratio(report.required_coverage_ratio)} / {ratio(report.required_coverage_for_mix)}",
        ),
        ("new pipeline needed", money(report.pipeline_needed)),
        (
            "create new pipeline by (median / fastest quarter of wins)",
            f"{report.create_by or '—'} / {report.create_by_latest or '—'}",
        ),
        ("usually added by deals outside the pipeline", money(report.typical_other_bookings)),
    ):
        summary.add_row(label, value)
    stdout.print(summary)

    stages = Table(title="By stage (conversion: won share of pipeline amount with as many days left)")
    stages.add_column("stage", no_wrap=True)
    for header in ("deals", "pipeline", "conversion", "expected", "needed", "n"):
        stages.add_column(header, justify="right", no_wrap=True)
    for row in report.by_stage:
        stages.add_row(
            row.stage,
            str(row.open_deals),
            money(row.open_pipeline),
            pct(row.conversion),
            money(row.expected),
            money(row.pipeline_needed),
            str(row.history_deals),
        )
    stdout.print(stages)

    if report.cycles:
        cycles = Table(title="Created-to-won cycle (days) and the last day to create pipeline")
        cycles.add_column("segment", no_wrap=True)
        for header in ("wins", "median", "p25", "create by", "at the latest"):
            cycles.add_column(header, justify="right", no_wrap=True)
        for cycle in report.cycles:
            cycles.add_row(
                cycle.segment,
                str(cycle.won_deals),
                f"{cycle.median_days:.0f}",
                f"{cycle.p25_days:.0f}",
                str(cycle.create_by),
                str(cycle.create_by_latest),
            )
        stdout.print(cycles)
    stdout.print(report.verdict, style=f"bold {_STYLE[report.status]}", markup=False, highlight=False)
    for note in report.notes:
        stdout.print(f"note: {note}", markup=False, highlight=False)
    stdout.print(
        f"Needed: the remaining gap / conversion, as pipeline of that stage. n: deals of that stage in "
        f"{', '.join(report.history_periods)} with as many days left.",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage_command)
