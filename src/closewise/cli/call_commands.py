"""`closewise call …`: submit a forecast call, adjust a report's, roll the calls up, and their accuracy."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from closewise.cli.common import emit_json, engine_for, stderr, stdout
from closewise.db.scope import scope_for
from closewise.db.users import get_by_email
from closewise.domain.scope import Scope
from closewise.domain.timeutil import parse_as_of
from closewise.errors import NotFound

app = typer.Typer(no_args_is_help=True)
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _user_scope(engine: Engine, email: str, option: str) -> Scope:
    with engine.connect() as connection:
        user = get_by_email(connection, email=email)
        if user is None:
            raise NotFound(f"no user with email {email.strip()!r}", where=option)
        return scope_for(connection, user_id=user.id)


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


@app.command("submit")
def submit(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", metavar="EMAIL", help="Whose call it is."),
    period: str = typer.Option(..., "--period", metavar="P", help="2026-Q4, 2026-11 or 2026."),
    commit: float = typer.Option(..., "--commit", help="The number they commit to."),
    best_case: float = typer.Option(..., "--best-case", help="What they could reach if the best case lands."),
    notes: str | None = typer.Option(None, "--notes", help="What the number rests on."),
    as_json: bool = _JSON,
) -> None:
    """Submit a forecast call (every call is kept; the latest counts)."""
    from closewise.services.forecast_call import submit as submit_call

    engine = engine_for(ctx)
    receipt = submit_call(engine, scope=_user_scope(engine, user, "--user"), period=period, commit=commit,
                          best_case=best_case, notes=notes)
    if as_json:
        emit_json(vars(receipt))
        return
    stdout.print(f"Recorded {user}'s call for {receipt.period}: commit {_money(receipt.commit)}, "
                 f"best case {_money(receipt.best_case)}.")


@app.command("adjust")
def adjust(
    ctx: typer.Context,
    manager: str = typer.Option(..., "--manager", metavar="EMAIL", help="The manager adjusting."),
    user: str = typer.Option(..., "--user", metavar="EMAIL", help="The report whose number is adjusted."),
    period: str = typer.Option(..., "--period", metavar="P"),
    commit: float = typer.Option(..., "--commit"),
    best_case: float = typer.Option(..., "--best-case"),
    note: str = typer.Option(..., "--note", help="Why the number is adjusted."),
    as_json: bool = _JSON,
) -> None:
    """A manager replaces a report's number in their roll-up, with a note."""
    from closewise.services.forecast_call import adjust as adjust_call

    engine = engine_for(ctx)
    with engine.connect() as connection:
        subject = get_by_email(connection, email=user)
    if subject is None:
        raise NotFound(f"no user with email {user.strip()!r}", where="--user")
    receipt = adjust_call(engine, scope=_user_scope(engine, manager, "--manager"), subject_id=subject.id,
                          period=period, commit=commit, best_case=best_case, note=note)
    if as_json:
        emit_json(vars(receipt))
        return
    stdout.print(f"{manager} adjusted {user}'s {receipt.period} number to commit {_money(receipt.commit)}, "
                 f"best case {_money(receipt.best_case)}.")


@app.command("rollup")
def rollup(
    ctx: typer.Context,
    period: str = typer.Option(..., "--period", metavar="P"),
    manager: str | None = typer.Option(None, "--manager", metavar="EMAIL",
                                       help="Whose team (default: the top of the hierarchy)."),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE"),
    model: bool = typer.Option(True, "--model/--no-model", help="Put the model's P10/P50/P90 beside the calls "
                                                                 "(fits the deal models: ~15 s on the demo)."),
    as_json: bool = _JSON,
) -> None:
    """The team's calls rolled up through the hierarchy, with the model's range for the same scope."""
    from closewise.domain.enums import Role
    from closewise.ml.forecaster import PeriodForecaster
    from closewise.services.forecast_call import rollup_report
    from closewise.services.org_data import load_org

    engine = engine_for(ctx)
    scope = _user_scope(engine, manager, "--manager") if manager else Scope(user_id=0, role=Role.ADMIN,
                                                                             owner_ids=None)
    at = parse_as_of(as_of)
    org = load_org(engine)
    forecast = None
    if model:
        stderr.print("[dim]forecasting the period with the deal models…[/dim]")
        span = org.calendar.parse(period)
        forecast = PeriodForecaster().forecast(org, span, at.replace(tzinfo=None), target=None)
    report = rollup_report(engine, scope=scope, period=period, as_of=at, forecast=forecast, org=org)
    if as_json:
        emit_json(report)
        return
    title = f"{report['period']} call of {report['manager']}'s team: commit {_money(report['team_commit'])}, " \
            f"best case {_money(report['team_best_case'])} {report['currency']}"
    table = Table("who", "submitted commit", "adjusted", "counts", "best case", "model P50", "bias", title=title)
    for row in report["by_user"]:
        submitted = row["submitted"]
        table.add_row(row["name"] or str(row["user_id"]), _money(submitted["commit"]) if submitted else "not submitted",
                      _money(row["adjustment"]["commit"]) if row["adjustment"] else "", _money(row["commit"]),
                      _money(row["best_case"]), _money((row["model"] or {}).get("p50")), row["bias"]["label"] or "")
    stdout.print(table)
    if report["model"]:
        m = report["model"]
        stdout.print(f"Model for the same team: P10 {_money(m['p10'])}, P50 {_money(m['p50'])}, "
                     f"P90 {_money(m['p90'])}")


@app.command("accuracy")
def accuracy(ctx: typer.Context, as_of: str | None = typer.Option(None, "--as-of", metavar="DATE"),
             as_json: bool = _JSON) -> None:
    """Every call of an ended period against what was won, and each person's track record."""
    from closewise.domain.enums import Role
    from closewise.services.forecast_call import accuracy_report

    report = accuracy_report(engine_for(ctx), scope=Scope(user_id=0, role=Role.ADMIN, owner_ids=None),
                             as_of=parse_as_of(as_of))
    if as_json:
        emit_json(report)
        return
    table = Table("who", "periods", "MAPE", "bias", "track record")
    for row in report["track_record"]:
        table.add_row(row["name"] or str(row["user_id"]), str(row["periods"]), f"{row['mape'] * 100:.0f}%",
                      f"{row['bias'] * 100:+.0f}%", row["label"])
    stdout.print(table)
