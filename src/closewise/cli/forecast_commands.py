"""`closewise forecast` and `closewise backtest`: will we hit the number, and how right has the model been?"""

from __future__ import annotations

from datetime import date
from typing import Any

import typer
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stdout, step_progress
from closewise.cli.coverage_commands import parse_amount
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput
from closewise.services.forecast import backtest_report, forecast_report


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a date like 2026-01-31", where=option) from exc


def forecast_command(
    ctx: typer.Context,
    period: str = typer.Option(..., "--period", metavar="P", help="Month (2026-11), quarter (2026-Q4) or year."),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE", help="Forecast as known at the end of DATE."),
    target: str | None = typer.Option(
        None, "--target", metavar="AMOUNT", help="Target in the corporate currency (default: the period's quota)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Will we hit the number? P10/P50/P90, the probability of reaching the target, and the deals behind it."""
    amount = parse_amount(target) if target is not None else None
    report = forecast_report(engine_for(ctx), period=period, as_of=parse_as_of(as_of), target=amount)
    if as_json:
        emit_json(report)
        return
    _print_forecast(report)


def backtest_command(
    ctx: typer.Context,
    period_type: str = typer.Option("month", "--period-type", metavar="month|quarter", help="Period length."),
    start: str = typer.Option(..., "--start", metavar="DATE", help="First period starts on or after DATE."),
    end: str = typer.Option(..., "--end", metavar="DATE", help="Last period starts on or before DATE."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How right has the forecast been? Each period forecast on its first day, beside the baselines."""
    first, last = _day(start, "--start"), _day(end, "--end")
    engine = engine_for(ctx)
    with step_progress() as progress:

        def advance(done: int, total: int) -> None:
            progress("backtest", done, total)

        report = backtest_report(engine, period_type=period_type, start=first, end=last, on_period=advance)
    if as_json:
        emit_json(report)
        return
    _print_backtest(report)


def _print_forecast(report: dict[str, Any]) -> None:
    title = (f"Forecast {report['period']} ({report['period_start']} – {report['period_end']}), "
             f"as of {report['as_of'][:16].replace('T', ' ')} UTC, {report['currency']}")
    summary = Table(show_header=False, title=title)
    summary.add_column()
    summary.add_column(justify="right")
    summary.add_row("closed won", _money(report["closed_won"]))
    summary.add_row("expected", _money(report["expected"]))
    summary.add_row("target" + (f" ({report['target_source']})" if report["target_source"] else ""),
                    _money(report["target"]))
    summary.add_row("probability of reaching the target", _pct(report["probability_of_target"]))
    summary.add_row("new business (not yet created)", _money(report["new_business"]["mean"]))
    stdout.print(summary)

    fan = Table(title="Range (fan) beside the baselines")
    for header in ("", "P10", "P50", "P90", "run rate (3 mo)", "CRM weighted", "commit"):
        fan.add_column(header, justify="right")
    b = report["baselines"]
    fan.add_row("amount", _money(report["p10"]), _money(report["p50"]), _money(report["p90"]),
                _money(b["run_rate_3"]), _money(b["crm_weighted"]), _money(b["commit"]))
    stdout.print(fan)

    owners = Table(title="By owner (P10-P90 from their own deals; new business is not attributed)")
    for header in ("owner", "team", "closed won", "open deals", "pipeline", "expected", "P10", "P90", "target",
                   "P(target)"):
        owners.add_column(header, justify="left" if header in {"owner", "team"} else "right")
    for row in report["by_owner"][:20]:
        owners.add_row(str(row["name"] or row["owner_id"]), str(row["team"] or "—"), _money(row["closed_won"]),
                       str(row["open_deals"]), _money(row["pipeline"]), _money(row["expected"]), _money(row["p10"]),
                       _money(row["p90"]), _money(row["target"]), _pct(row["probability_of_target"]))
    stdout.print(owners)

    deals = Table(title="Deals that matter most (expected = P(won in period), calibrated, x amount)")
    for header in ("deal", "stage", "amount", "P(win)", "P(in period)", "expected", "top reason"):
        deals.add_column(header, justify="left" if header in {"deal", "stage", "top reason"} else "right")
    for deal in report["deals"][:15]:
        reason = deal["reasons"][0] if deal["reasons"] else None
        text = str(reason["text"]) if isinstance(reason, dict) else str(reason or "—")
        deals.add_row(str(deal["name"] or deal["id"]), str(deal["stage"]), _money(deal["amount"]),
                      _pct(deal["p_win"]), _pct(deal["p_close_calibrated"]), _money(deal["expected"]), text)
    stdout.print(deals)


def _print_backtest(report: dict[str, Any]) -> None:
    table = Table(title="Backtest: forecast on each period's first day")
    for header in ("period", "actual", "P10", "P50", "P90", "in range", "run rate", "CRM weighted", "commit"):
        table.add_column(header, justify="left" if header == "period" else "right")
    for row in report["rows"]:
        inside = row["p10"] <= row["actual"] <= row["p90"]
        b = row["baselines"]
        table.add_row(row["period"], _money(row["actual"]), _money(row["p10"]), _money(row["p50"]),
                      _money(row["p90"]), "yes" if inside else "no", _money(b["run_rate_3"]),
                      _money(b["crm_weighted"]), _money(b["commit"]))
    stdout.print(table)
    s = report["summary"]
    scores = Table(title="Track record (MAPE: mean absolute % error; bias: mean signed % error)")
    for header in ("forecast", "MAPE", "bias"):
        scores.add_column(header, justify="left" if header == "forecast" else "right")
    scores.add_row("Closewise P50", _pct(s["p50_mape"]), _pct(s["p50_bias"]))
    for name, score in s["baselines"].items():
        scores.add_row(name, _pct(score["mape"]), _pct(score["bias"]))
    stdout.print(scores)
    stdout.print(
        f"P10–P90 held the actual in {_pct(s['coverage_p10_p90'])} of {s['periods']} periods (80% when "
        f"calibrated); CRPS {_money(s['crps'])} ({_pct(s['crps_relative'])} of the actual); deal Brier "
        f"{s['deal_brier'] if s['deal_brier'] is None else round(s['deal_brier'], 3)}, AUC "
        f"{s['deal_auc'] if s['deal_auc'] is None else round(s['deal_auc'], 3)}.",
        markup=False, highlight=False,
    )
    if s.get("model_card_path"):
        stdout.print(f"Model card: {s['model_card_path']}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast_command)
    app.command("backtest")(backtest_command)
