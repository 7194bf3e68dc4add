"""`closewise hygiene [--as-of DATE]`, `hygiene snooze`, `hygiene sweep [--confirm]`, `hygiene undo`."""

from __future__ import annotations

from datetime import date
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stderr, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput
from closewise.services import hygiene as service
from closewise.services import hygiene_sweep

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

_AS_OF = typer.Option(None, "--as-of", metavar="DATE", help="Look as of the end of this day (default: now).")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app_: typer.Typer) -> None:
    """Add the `hygiene` command group to the `closewise` app."""
    app_.add_typer(app, name="hygiene", help="Stale and risky open deals: findings, snoozes, sweeps.")


@app.callback()
def hygiene(ctx: typer.Context, as_of: str | None = _AS_OF, as_json: bool = _JSON) -> None:
    """Open deals with at least one finding (aged, stuck, past close date, pushed, idle, ...)."""
    if ctx.invoked_subcommand is not None:
        return
    result = service.review(engine_for(ctx), as_of=parse_as_of(as_of))
    if as_json:
        emit_json({"as_of": result.as_of, "deals": [_deal_json(deal) for deal in result.deals]})
        return
    table = _deals_table(f"Hygiene as of {result.as_of:%Y-%m-%d %H:%M} UTC: {len(result.deals)} deals", result.deals)
    stdout.print(table)


@app.command("snooze")
def snooze_command(
    ctx: typer.Context,
    opportunity_id: int = typer.Argument(..., metavar="ID", help="The deal's id (as `closewise hygiene` lists)."),
    code: str = typer.Option(..., "--code", help=f"The finding: {', '.join(service.CODES)}."),
    until: str = typer.Option(..., "--until", metavar="DATE", help="Resume date: the finding shows again then."),
    reason: str = typer.Option(..., "--reason", help="Why it is snoozed."),
    user: str | None = typer.Option(None, "--user", metavar="EMAIL", help="Who snoozes it."),
    as_json: bool = _JSON,
) -> None:
    """Hide one finding of one deal until a resume date."""
    try:
        resume = date.fromisoformat(until.strip())
    except ValueError:
        raise InvalidInput(f"{until!r} is not a date like 2026-12-31", where="--until") from None
    snoozed = service.snooze(engine_for(ctx), opportunity_id=opportunity_id, code=code, until=resume, reason=reason,
                             user_email=user)
    if as_json:
        emit_json(snoozed)
    else:
        stdout.print(f"Snoozed {snoozed.code} on deal {snoozed.opportunity_id} until {snoozed.until.isoformat()}.")


@app.command("sweep")
def sweep_command(
    ctx: typer.Context,
    as_of: str | None = _AS_OF,
    confirm: bool = typer.Option(False, "--confirm", help="Close the listed deals as no decision."),
    user: str | None = typer.Option(None, "--user", metavar="EMAIL", help="Who sweeps (logged with each change)."),
    reason: str | None = typer.Option(None, "--reason", help="Why, added to the change log."),
    as_json: bool = _JSON,
) -> None:
    """Dead deals (aged or stuck, and idle): list them, or close them as no decision with --confirm."""
    engine = engine_for(ctx)
    at = parse_as_of(as_of) if as_of else None
    result = (hygiene_sweep.confirm_sweep(engine, as_of=at, user_email=user, reason=reason) if confirm
              else hygiene_sweep.preview_sweep(engine, as_of=at))
    if as_json:
        emit_json({"as_of": result.as_of, "confirmed": result.confirmed, "sweep_id": result.sweep_id,
                   "deals": [_deal_json(deal) for deal in result.deals], "skipped": result.skipped})
        return
    verb = "Swept" if confirm else "Would sweep"
    stdout.print(_deals_table(f"{verb} {len(result.deals)} deals to no decision", result.deals))
    if result.skipped:
        stderr.print(f"{len(result.skipped)} deals were no longer open and were left alone.")
    if result.sweep_id:
        stdout.print(f"Sweep id {result.sweep_id}: undo with `closewise hygiene undo {result.sweep_id}`.")
    elif not confirm and result.deals:
        stdout.print("Nothing written. Run again with --confirm --user EMAIL to sweep them.")


@app.command("undo")
def undo_command(
    ctx: typer.Context,
    sweep_id: str = typer.Argument(..., metavar="SWEEP_ID", help="The id a confirmed sweep printed."),
    user: str | None = typer.Option(None, "--user", metavar="EMAIL", help="Who undoes it."),
    as_json: bool = _JSON,
) -> None:
    """Reopen the deals a sweep closed, as they were before it."""
    result = hygiene_sweep.undo_sweep(engine_for(ctx), sweep_id=sweep_id, user_email=user)
    if as_json:
        emit_json(result)
        return
    stdout.print(f"Restored {len(result.restored)} deals of sweep {result.sweep_id}.")
    for skipped in result.skipped:
        stderr.print(f"deal {skipped['id']} left alone: {skipped['reason']}")


def _deal_json(deal: service.FlaggedDeal) -> dict[str, Any]:
    return {
        "id": deal.id, "external_id": deal.external_id, "name": deal.name, "owner_id": deal.owner_id,
        "amount": deal.amount, "currency": deal.currency, "record_amount": deal.record_amount,
        "record_currency": deal.record_currency, "stage": deal.stage, "close_date": deal.close_date,
        "reasons": [{"code": reason.code, "detail": reason.detail} for reason in deal.reasons],
    }


def _deals_table(title: str, deals: list[service.FlaggedDeal]) -> Table:
    table = Table(title=title, show_lines=True, expand=True)
    for header in ("id", "owner", "stage", "amount"):
        table.add_column(header, no_wrap=True, justify="right" if header == "amount" else "left")
    table.add_column("deal", ratio=1, overflow="fold")
    table.add_column("findings", ratio=3, overflow="fold")
    for deal in deals:
        amount = "" if deal.amount is None else f"{deal.amount:,.0f} {deal.currency}"
        table.add_row(str(deal.id), str(deal.owner_id or ""), escape(deal.stage), amount, escape(deal.name),
                      "\n".join(f"[bold]{r.code}[/bold]: {escape(r.detail)}" for r in deal.reasons))
    return table
