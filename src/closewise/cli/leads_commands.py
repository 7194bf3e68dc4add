"""`closewise leads ...`: funnel, sla, effect, quality, recycle, show, accept, reject, return, route, rules, policy."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stderr, stdout
from closewise.domain.timeutil import parse_as_of
from closewise.errors import InvalidInput
from closewise.services import lead_routing, lead_verdicts
from closewise.services import leads as service

app = typer.Typer(no_args_is_help=True)

_JSON = typer.Option(False, "--json", help="Print JSON.")
_AS_OF = typer.Option(None, "--as-of", metavar="DATE", help="Look as of the end of this day (default: now).")
_USER = typer.Option(None, "--user", metavar="EMAIL", help="Who does it (written to the lead's history).")
_NOTE = typer.Option(None, "--note", help="A note kept with the event.")


def register(app_: typer.Typer) -> None:
    """Add the `leads` command group to the `closewise` app."""
    app_.add_typer(app, name="leads", help="Marketing leads: funnel, speed to lead, recycling, routing.")


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def _num(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{float(value):,.{digits}f}"


@app.command("funnel")
def funnel_command(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Lead → accepted → opportunity → won, overall, by source and by campaign."""
    result = service.funnel(engine_for(ctx))
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"Lead funnel: {result['leads']:,} leads, {result['won']:,} won "
                        f"({_pct(result['conversion_rate'])}), revenue {_num(result['revenue'])} {result['currency']}")
    for header in ("source", "leads", "accepted", "opps", "won", "conversion", "days to win", "revenue/lead"):
        table.add_column(header, justify="left" if header == "source" else "right")
    for row in result["by_source"]:
        table.add_row(escape(str(row["source"])), f"{row['leads']:,}", f"{row['accepted']:,}",
                      f"{row['opportunities']:,}", f"{row['won']:,}", _pct(row["conversion_rate"]),
                      _num(row["days_to_win"], 1), _num(row["revenue_per_lead"]))
    stdout.print(table)


@app.command("sla")
def sla_command(
    ctx: typer.Context,
    as_of: str | None = _AS_OF,
    days: int = typer.Option(service.DEFAULT_DAYS, "--days", min=1, help="Leads created in the last N days."),
    all_history: bool = typer.Option(False, "--all", help="Every lead, whatever its age."),
    as_json: bool = _JSON,
) -> None:
    """Speed to lead against the SLA (business hours): by owner and source, breaches, escalations per manager."""
    result = service.sla(engine_for(ctx), as_of=parse_as_of(as_of), days=None if all_history else days)
    if as_json:
        emit_json(result)
        return
    summary = result["summary"]
    stdout.print(f"SLA: {result['policy']['description']}. {summary['leads']:,} leads, "
                 f"met {_pct(summary['met_rate'])}, {summary['breaches']:,} breaches "
                 f"({summary['open_breaches']:,} still untouched).")
    table = Table(title="By owner")
    for header in ("owner", "leads", "met", "late", "overdue", "met rate", "median working min"):
        table.add_column(header, justify="left" if header == "owner" else "right")
    for row in result["by_owner"]:
        table.add_row(escape(str(row["owner"] or "(unassigned)")), str(row["leads"]), str(row["met"]),
                      str(row["late"]), str(row["overdue"]), _pct(row["met_rate"]),
                      _num(row["median_business_minutes"]))
    stdout.print(table)
    for manager in result["escalations"]:
        stdout.print(f"Escalate to {escape(str(manager['manager'] or '(whoever routes leads)'))}: "
                     f"{manager['breaches']} untouched leads past the SLA "
                     f"({escape(', '.join(manager['owners']) or 'unassigned')})")


@app.command("effect")
def effect_command(
    ctx: typer.Context, as_of: str | None = _AS_OF,
    min_age: int = typer.Option(30, "--min-age", min=0, help="Count leads at least this many days old."),
    as_json: bool = _JSON,
) -> None:
    """Conversion by time to first touch, with 95% intervals: does answering faster win more?"""
    result = service.response_effect(engine_for(ctx), as_of=parse_as_of(as_of), min_age_days=min_age)
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"Conversion by response time ({result['leads']:,} leads at least {min_age} days old)")
    for header in ("first touch", "leads", "converted", "rate", "95% interval", "vs source mix"):
        table.add_column(header, justify="left" if header == "first touch" else "right")
    for row in result["buckets"]:
        interval = "—" if row["low"] is None else f"{_pct(row['low'])}-{_pct(row['high'])}"
        table.add_row(row["bucket"], str(row["leads"]), str(row["converted"]), _pct(row["rate"]), interval,
                      _num(row["vs_expected"], 2))
    stdout.print(table)
    if result["hour_vs_day"] is not None:
        stdout.print(f"Within an hour converts {result['hour_vs_day']:.1f}x as often as within a day, "
                     f"{(result['hour_vs_later'] or 0):.1f}x as often as after a day.")


@app.command("quality")
def quality_command(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Lead quality by source, for marketing."""
    rows = service.quality(engine_for(ctx))
    if as_json:
        emit_json(rows)
        return
    table = Table(title="Lead quality by source")
    for header in ("source", "leads", "accepted", "conversion", "revenue/lead", "index", "top reason", "SLA met"):
        table.add_column(header, justify="left" if header in ("source", "top reason") else "right")
    for row in rows:
        table.add_row(escape(str(row["source"])), f"{row['leads']:,}", _pct(row["acceptance_rate"]),
                      _pct(row["conversion_rate"]), _num(row["revenue_per_lead"]), _num(row["quality_index"], 2),
                      str(row["top_reason"] or "—"), _pct(row.get("sla_met_rate")))
    stdout.print(table)


@app.command("recycle")
def recycle_command(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Leads in nurture (due to re-engage first), the reasons, and the leads that came back."""
    result = service.recycle(engine_for(ctx))
    if as_json:
        emit_json(result)
        return
    back = result["come_backs"]
    stdout.print(f"{result['in_nurture']:,} leads in nurture, {result['due']:,} due to re-engage. "
                 f"{back['came_back']:,} came back, {back['converted']:,} converted.")
    table = Table(title="Due to re-engage")
    for header in ("id", "lead", "owner", "reason", "re-engage"):
        table.add_column(header)
    for row in [row for row in result["nurture"] if row["due"]][:30]:
        table.add_row(str(row["id"]), escape(f"{row['name']} ({row['company']})"), escape(str(row["owner"] or "—")),
                      str(row["reason"] or "—"), str(row["re_engage_at"]))
    stdout.print(table)


@app.command("show")
def show_command(ctx: typer.Context, lead_id: int = typer.Argument(..., metavar="ID"), as_json: bool = _JSON) -> None:
    """One lead with its SLA state and history."""
    _print_lead(service.lead_detail(engine_for(ctx), lead_id=lead_id), as_json)


@app.command("accept")
def accept_command(ctx: typer.Context, lead_id: int = typer.Argument(..., metavar="ID"), user: str | None = _USER,
                   note: str | None = _NOTE, as_json: bool = _JSON) -> None:
    """Sales accepts a lead."""
    _print_lead(lead_verdicts.accept(engine_for(ctx), lead_id=lead_id, user_email=user, note=note), as_json)


@app.command("reject")
def reject_command(
    ctx: typer.Context,
    lead_id: int = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option(..., "--reason", help=f"One of {', '.join(lead_verdicts.REASONS)}."),
    re_engage: str | None = typer.Option(None, "--re-engage", metavar="DATE", help="Back to nurture until then."),
    nurture: bool | None = typer.Option(None, "--nurture/--no-nurture",
                                        help="Back to nurture or closed (default: by the reason)."),
    user: str | None = _USER,
    note: str | None = _NOTE,
    as_json: bool = _JSON,
) -> None:
    """Sales rejects a lead with a reason; 'not now' reasons go back to nurture with a re-engage date."""
    when = None
    if re_engage is not None:
        try:
            when = date.fromisoformat(re_engage.strip())
        except ValueError:
            raise InvalidInput(f"{re_engage!r} is not a date like 2027-03-01", where="--re-engage") from None
    _print_lead(lead_verdicts.reject(engine_for(ctx), lead_id=lead_id, reason=reason, re_engage_at=when,
                                     nurture=nurture, user_email=user, note=note), as_json)


@app.command("return")
def return_command(ctx: typer.Context, lead_id: int = typer.Argument(..., metavar="ID"), user: str | None = _USER,
                   note: str | None = _NOTE, as_json: bool = _JSON) -> None:
    """A recycled or rejected lead came back: working again."""
    _print_lead(lead_verdicts.give_back(engine_for(ctx), lead_id=lead_id, user_email=user, note=note), as_json)


@app.command("route")
def route_command(ctx: typer.Context,
                  dry_run: bool = typer.Option(False, "--dry-run", help="Show the assignments; write nothing."),
                  as_json: bool = _JSON) -> None:
    """Assign new unassigned leads by the routing rules (the active reps in turn when none match)."""
    result = lead_routing.route(engine_for(ctx), dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    verb = "Would route" if dry_run else "Routed"
    table = Table(title=f"{verb} {len(result['routed'])} leads ({len(result['unrouted'])} left unassigned)")
    for header in ("lead", "source", "country", "owner", "rule"):
        table.add_column(header)
    for row in result["routed"]:
        table.add_row(escape(f"{row['lead_id']} {row['name'] or ''}"), str(row["source"] or "—"),
                      str(row["country"] or "—"), escape(str(row["owner"])), escape(str(row["rule"])))
    stdout.print(table)
    for row in result["unrouted"]:
        stderr.print(f"lead {row['lead_id']} left unassigned: {row['reason']}")


@app.command("rules")
def rules_command(
    ctx: typer.Context,
    set_file: Path | None = typer.Option(None, "--set", metavar="FILE.yml", help="Replace the rules with a file's."),
    as_json: bool = _JSON,
) -> None:
    """List the routing rules, or replace them from a YAML file (`rules: [{name, method, members, ...}]`)."""
    engine = engine_for(ctx)
    rows = (lead_routing.set_rules(engine, set_file.read_text(encoding="utf-8")) if set_file
            else lead_routing.rules(engine))
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} routing rules (tried in order)")
    for header in ("name", "method", "countries", "sources", "members", "max open"):
        table.add_column(header)
    for row in rows:
        table.add_row(escape(row["name"]), row["method"], escape(", ".join(row["countries"]) or "any"),
                      escape(", ".join(row["sources"]) or "any"), escape(", ".join(row["members"])),
                      str(row["max_open"] or "—"))
    stdout.print(table)


@app.command("policy")
def policy_command(
    ctx: typer.Context,
    minutes: int | None = typer.Option(None, "--minutes", help="Working minutes allowed to the first touch."),
    hours: str | None = typer.Option(None, "--hours", help="Business hours, like 'Mon-Fri 09:00-17:00'."),
    timezone: str | None = typer.Option(None, "--timezone", help="The org's time zone (IANA name)."),
    clock: str | None = typer.Option(None, "--clock", help="Count hours in the lead's time zone (lead) or the org's."),
    as_json: bool = _JSON,
) -> None:
    """Show or change the speed-to-lead SLA."""
    policy = service.set_policy(engine_for(ctx), minutes=minutes, business_hours=hours, timezone=timezone,
                                clock=clock)
    document = {"minutes": policy.minutes, "business_hours": policy.hours.describe(), "timezone": policy.timezone,
                "clock": policy.clock, "description": policy.describe()}
    if as_json:
        emit_json(document)
    else:
        stdout.print(f"SLA: {policy.describe()}.")


def _print_lead(lead: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(lead)
        return
    stdout.print(f"Lead {lead['id']} {escape(str(lead['name']))} ({escape(str(lead['company']))}): {lead['status']}, "
                 f"owner {escape(str(lead['owner'] or '—'))}, source {lead['source']}, SLA {lead['state'] or '—'}")
    for event in lead["events"]:
        extra = " ".join(str(x) for x in (event["reason"], event["re_engage_at"], event["user"]) if x)
        stdout.print(f"  {event['occurred_at']:%Y-%m-%d %H:%M}  {event['kind']:<12} {escape(extra)}")
