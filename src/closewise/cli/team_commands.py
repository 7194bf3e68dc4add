"""`closewise team gap [--as-of DATE] [--json]` and `closewise team ramp [--as-of DATE] [--json]`: top performers
against the rest, and new hires against their cohort (DESIGN.md contracts), over the whole org."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from closewise.cli.common import emit_json, engine_for, stdout
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.domain.timeutil import parse_as_of
from closewise.services import coaching_gap, coaching_ramp

app = typer.Typer(no_args_is_help=True)

_AS_OF = typer.Option(None, "--as-of", metavar="DATE", help="Look as of the end of this day (default: now).")
_JSON = typer.Option(False, "--json", help="Print JSON.")
_EVERYONE = Scope(user_id=0, role=Role.ADMIN, owner_ids=None)


def register(app_: typer.Typer) -> None:
    """Add the `team` command group to the `closewise` app."""
    app_.add_typer(app, name="team", help="Coaching: top performers vs the rest, new-hire ramp.")


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.0%}" if unit == "share" else f"{value:,.1f}"


@app.command("gap")
def gap(ctx: typer.Context, as_of: str | None = _AS_OF, as_json: bool = _JSON,
        window_days: int = typer.Option(365, "--window-days", help="Look-back window for bookings and deals.")) -> None:
    """Who the top performers are (by bookings, rule printed), how their behaviour differs, and the checklist."""
    report = coaching_gap.performance_gap(engine_for(ctx), scope=_EVERYONE, as_of=parse_as_of(as_of) if as_of else None,
                                      window_days=window_days)
    if as_json:
        emit_json(report.to_dict())
        return
    stdout.print(escape(report.rule))
    stdout.print("Top performers: " + escape(", ".join(p["name"] for p in report.top_performers) or "none"))
    table = Table(title=f"Behaviour: top vs rest (controls: {', '.join(report.controls) or 'none'})")
    for column in ("measure", "top", "rest", "effect", "p", "q", ""):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for m in report.metrics:
        table.add_row(escape(m["label"]), _num(m["top"], m["unit"]), _num(m["rest"], m["unit"]),
                      "—" if m["effect_size"] is None else f"{m['effect_size']:+.2f}",
                      "—" if m["p_value"] is None else f"{m['p_value']:.3f}",
                      "—" if m["q_value"] is None else f"{m['q_value']:.3f}", "✓" if m["significant"] else "")
    stdout.print(table)
    for item in report.checklist:
        stdout.print(f"[{escape(item['stage_name'])}] {escape(item['label'])}  ({escape(item['evidence'])})")


@app.command("ramp")
def ramp(ctx: typer.Context, as_of: str | None = _AS_OF, as_json: bool = _JSON) -> None:
    """New hires against the cohort norm at the same month of tenure: behind or on track, and why."""
    report = coaching_ramp.new_hire_ramp(engine_for(ctx), scope=_EVERYONE, as_of=parse_as_of(as_of) if as_of else None)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=f"New hires as of {report.as_of:%Y-%m-%d} (cohort of {len(report.cohort)} reps)")
    for column in ("rep", "hired", "month", "status", "why", "lagging behaviours"):
        table.add_column(column)
    for hire in report.new_hires:
        table.add_row(escape(hire["name"]), hire["hire_date"], str(hire["month"]), hire["status"].replace("_", " "),
                      escape("; ".join(hire["reasons"])), escape(", ".join(lag["label"] for lag in hire["lagging"])))
    stdout.print(table)
