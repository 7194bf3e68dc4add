"""`/settings`: users and the hierarchy (admins change them, leaders read them), quotas, the fiscal calendar and
currencies (admins and leaders, `manage_settings`).

Each section is a partial that its forms re-render through htmx (`hx-post` → the section, with a message); the
same forms work as plain posts (the browser comes back to the page's section). Every change goes through the
services, which check the role again and write the audit log.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from closewise.domain.enums import Role
from closewise.domain.periods import PeriodKind
from closewise.domain.scope import Action
from closewise.domain.timeutil import utcnow
from closewise.errors import CloseWiseError, Conflict, Forbidden, InvalidInput, NotFound
from closewise.services import settings as settings_service
from closewise.services import users as user_service
from closewise.services.auth import Principal
from closewise.web.deps import EngineDep, PageUser, PageWriter
from closewise.web.render import page

router = APIRouter(include_in_schema=False)

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
SECTIONS = {"users": "settings_users", "quotas": "settings_quotas", "calendar": "settings_calendar",
            "currencies": "settings_currencies"}
Ident = Annotated[int, Path(ge=1, le=2**63 - 1)]
Text = Annotated[str, Form()]
OptionalText = Annotated[str, Form()]


def _may_open(user: Principal) -> None:
    if not (user.scope.may(Action.MANAGE_SETTINGS) or user.scope.may(Action.MANAGE_USERS)):
        raise Forbidden(f"a {user.scope.role.value} cannot open the settings")


# -- what each section shows -------------------------------------------------------------------------------


def _users(engine: Engine, user: Principal) -> dict[str, Any]:
    people = user_service.visible_users(engine, user.scope)
    names = {person.id: person.name for person in people}
    return {"people": people, "names": names, "roles": [role.value for role in Role], "edit_id": None,
            "active_people": [p for p in people if p.active],
            "admins": sum(1 for p in people if p.role == Role.ADMIN.value and p.active)}


def _quotas(engine: Engine, user: Principal, period: str | None) -> dict[str, Any]:
    org = settings_service.read_org_settings(engine)
    periods = settings_service.quota_periods(engine, user.scope)
    chosen = period if period is not None else (org.current_quarter if org.current_quarter in periods
                                                else (periods[0] if periods else ""))
    quotas = settings_service.list_quotas(engine, user.scope, period=chosen or None)
    everyone = user_service.visible_users(engine, user.scope)
    reps = {p.id for p in everyone if p.role == Role.REP.value}
    return {"quotas": quotas, "quota_periods": periods, "quota_period": chosen,
            "quota_people": [p for p in everyone if p.active], "teams": settings_service.team_choices(engine),
            "rep_total": sum(q.amount for q in quotas if q.user_id in reps),
            "team_total": sum(q.amount for q in quotas if q.team_id is not None),
            "org": org, "currencies": _currency_codes(engine, org.corporate_currency)}


def _calendar(engine: Engine) -> dict[str, Any]:
    org = settings_service.read_org_settings(engine)
    calendar = org.calendar
    year = calendar.period_containing(org.current_quarter_start, PeriodKind.YEAR)
    quarters = [calendar.quarter(int(year.label), q) for q in range(1, 5)]
    return {"org": org, "months": list(enumerate(MONTHS, start=1)), "fiscal_year": year, "quarters": quarters}


def _currency_codes(engine: Engine, corporate: str) -> list[str]:
    return sorted({corporate} | {rate.currency for rate in settings_service.list_rates(engine)})


def _currencies(engine: Engine) -> dict[str, Any]:
    org = settings_service.read_org_settings(engine)
    rates = settings_service.list_rates(engine)
    latest: dict[str, Any] = {}
    today = utcnow().date()
    for rate in rates:  # static first, then dated by day: the last one seen is the one in force today
        if rate.start_date is None or rate.start_date <= today:
            latest[rate.currency] = rate
    return {"org": org, "rates": rates, "latest": latest, "currencies": _currency_codes(engine, org.corporate_currency)}


def _context(engine: Engine, user: Principal, section: str, period: str | None = None) -> dict[str, Any]:
    if section == "users":
        return _users(engine, user)
    if section == "quotas":
        return _quotas(engine, user, period)
    if section == "calendar":
        return _calendar(engine)
    return _currencies(engine)


# -- answering a form ----------------------------------------------------------------------------------------


def _status(exc: CloseWiseError) -> int:
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 422


def _section(request: Request, engine: Engine, user: Principal, section: str, *, ok: str | None = None,
             error: CloseWiseError | None = None, period: str | None = None) -> Response:
    """The section re-rendered with a message for htmx; for a plain form post, the page (on an error) or a
    redirect back to the section (on success)."""
    if error is not None and isinstance(error, Forbidden):
        raise error
    flash = ("ok", ok) if ok else (("error", _sentence(error)) if error else None)
    status = _status(error) if error else 200
    if not request.headers.get("HX-Request"):
        if error is None:
            return RedirectResponse(f"/settings#{section}", status_code=303)
        return _full_page(request, engine, user, flash_for={section: flash}, status_code=status)
    context = _context(engine, user, section, period)
    return page(request, f"partials/{SECTIONS[section]}.html", user, title="Settings", status_code=status,
                flash=flash, **context)


def _sentence(exc: CloseWiseError | None) -> str:
    if exc is None:
        return ""
    text = exc.message
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _full_page(request: Request, engine: Engine, user: Principal, *, flash_for: dict[str, Any] | None = None,
               period: str | None = None, edit_id: int | None = None, status_code: int = 200) -> HTMLResponse:
    context: dict[str, Any] = {}
    for section in SECTIONS:
        context.update(_context(engine, user, section, period))
    context["edit_id"] = edit_id if user.scope.may(Action.MANAGE_USERS) else None
    return page(request, "settings.html", user, title="Settings", status_code=status_code,
                flashes=flash_for or {}, **context)


def _run(request: Request, engine: Engine, user: Principal, section: str, action: Any, ok: str,
         period: str | None = None) -> Response:
    try:
        action()
    except (InvalidInput, Conflict, NotFound) as exc:
        return _section(request, engine, user, section, error=exc, period=period)
    return _section(request, engine, user, section, ok=ok, period=period)


def _int(text: str, field: str) -> int | None:
    value = text.strip()
    if not value:
        return None
    if not value.lstrip("-").isdigit():
        raise InvalidInput(f"{field} must be a whole number", where=field)
    return int(value)


def _number(text: str, field: str) -> float:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a number, not {text!r}", where=field) from None


# -- the page ----------------------------------------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: PageUser, engine: EngineDep, period: str | None = None,
                  edit: int | None = None) -> HTMLResponse:
    _may_open(user)
    try:
        return _full_page(request, engine, user, period=period, edit_id=edit)
    except InvalidInput as exc:  # a period that is not one: show the page for the current quarter, and say so
        return _full_page(request, engine, user, edit_id=edit, flash_for={"quotas": ("error", _sentence(exc))},
                          status_code=422)


@router.get("/settings/section/{name}", response_class=HTMLResponse)
def section(request: Request, name: str, user: PageUser, engine: EngineDep) -> HTMLResponse:
    """One section, fresh (htmx: a cancelled edit)."""
    _may_open(user)
    if name not in SECTIONS:
        raise NotFound(f"no settings section {name!r}")
    return page(request, f"partials/{SECTIONS[name]}.html", user, title="Settings", flash=None,
                **_context(engine, user, name))


@router.get("/settings/users/{user_id}/edit", response_class=HTMLResponse)
def edit_user_row(request: Request, user_id: Ident, user: PageUser, engine: EngineDep) -> Response:
    """The row of one user as a form (htmx); without htmx, the page with that row open."""
    _may_open(user)
    if not request.headers.get("HX-Request"):
        return RedirectResponse(f"/settings?edit={user_id}#users", status_code=303)
    target = user_service.get_user(engine, user.scope, user_id)
    return page(request, "partials/settings_user_row.html", user, title="Settings", p=target, editing=True,
                editable=user.scope.may(Action.MANAGE_USERS), **_users(engine, user))


@router.get("/settings/quotas", response_class=HTMLResponse)
def quotas_section(request: Request, user: PageUser, engine: EngineDep, period: str | None = None) -> Response:
    _may_open(user)
    if not request.headers.get("HX-Request"):
        return RedirectResponse(f"/settings?period={period or ''}#quotas", status_code=303)
    try:
        return page(request, "partials/settings_quotas.html", user, title="Settings",
                    **_quotas(engine, user, period))
    except InvalidInput as exc:
        return _section(request, engine, user, "quotas", error=exc)


# -- users -------------------------------------------------------------------------------------------------


@router.post("/settings/users", response_model=None)
def add_user(request: Request, user: PageWriter, engine: EngineDep, email: Text = "", role: Text = "rep",
             name: OptionalText = "", manager_id: OptionalText = "", password: OptionalText = "") -> Response:
    def act() -> None:
        user_service.create_user(engine, user.scope, email=email, role=role, name=name or None,
                                 manager_id=_int(manager_id, "manager_id"), password=password or None)

    return _run(request, engine, user, "users", act, f"{email.strip()} was added.")


@router.post("/settings/users/{user_id}", response_model=None)
def change_user(request: Request, user_id: Ident, user: PageWriter, engine: EngineDep, role: Text = "",
                manager_id: OptionalText = "") -> Response:
    def act() -> None:
        manager = _int(manager_id, "manager_id")
        changes = user_service.UserChanges(role=role or None, manager_id=manager, clear_manager=manager is None)
        user_service.change_user(engine, user.scope, user_id, changes)

    return _run(request, engine, user, "users", act, "The change is saved; it applies from their next request.")


@router.post("/settings/users/{user_id}/active", response_model=None)
def set_active(request: Request, user_id: Ident, user: PageWriter, engine: EngineDep, active: Text = "") -> Response:
    wanted = active.strip().lower() in ("1", "true", "on", "yes")

    def act() -> None:
        user_service.change_user(engine, user.scope, user_id, user_service.UserChanges(active=wanted))

    return _run(request, engine, user, "users", act,
                "The account is active again." if wanted else "The account is deactivated and signed out.")


@router.post("/settings/users/{user_id}/password", response_model=None)
def reset_password(request: Request, user_id: Ident, user: PageWriter, engine: EngineDep,
                   password: Text = "") -> Response:
    def act() -> None:
        user_service.reset_password(engine, user.scope, user_id, password=password)

    return _run(request, engine, user, "users", act, "The password is reset; their other sessions are ended.")


# -- quotas ------------------------------------------------------------------------------------------------


@router.post("/settings/quotas", response_model=None)
def add_quota(request: Request, user: PageWriter, engine: EngineDep, owner: Text = "", period: Text = "",
              amount: Text = "", currency: OptionalText = "") -> Response:
    def act() -> None:
        kind, _, ident = owner.partition(":")
        if kind not in ("user", "team") or not ident.isdigit():
            raise InvalidInput("choose the user or team the quota belongs to", where="owner")
        settings_service.create_quota(engine, user.scope, period=period, amount=_number(amount, "amount"),
                                      user_id=int(ident) if kind == "user" else None,
                                      team_id=int(ident) if kind == "team" else None, currency=currency or None)

    shown = period.strip() or None
    return _run(request, engine, user, "quotas", act, "The quota was added.", period=shown)


@router.post("/settings/quotas/{quota_id}", response_model=None)
def change_quota(request: Request, quota_id: Ident, user: PageWriter, engine: EngineDep, amount: Text = "",
                 currency: OptionalText = "", period: OptionalText = "") -> Response:
    def act() -> None:
        settings_service.change_quota(engine, user.scope, quota_id, amount=_number(amount, "amount"),
                                      currency=currency or None)

    return _run(request, engine, user, "quotas", act, "The quota is saved.", period=period or None)


@router.post("/settings/quotas/{quota_id}/delete", response_model=None)
def delete_quota(request: Request, quota_id: Ident, user: PageWriter, engine: EngineDep,
                 period: OptionalText = "") -> Response:
    def act() -> None:
        settings_service.delete_quota(engine, user.scope, quota_id)

    return _run(request, engine, user, "quotas", act, "The quota was deleted.", period=period or None)


# -- calendar and currencies -------------------------------------------------------------------------------


@router.post("/settings/calendar", response_model=None)
def change_calendar(request: Request, user: PageWriter, engine: EngineDep, start_month: Text = "1",
                    name_by_end: OptionalText = "") -> Response:
    def act() -> None:
        settings_service.update_org_settings(engine, user.scope,
                                             fiscal_year_start_month=_int(start_month, "start_month"),
                                             fiscal_year_name_by_end=name_by_end.lower() in ("1", "on", "true"))

    return _run(request, engine, user, "calendar", act, "The fiscal calendar is saved.")


@router.post("/settings/currency", response_model=None)
def change_currency(request: Request, user: PageWriter, engine: EngineDep, corporate_currency: Text = "") -> Response:
    def act() -> None:
        settings_service.update_org_settings(engine, user.scope, corporate_currency=corporate_currency)

    return _run(request, engine, user, "currencies", act,
                "The corporate currency is saved; every rate is now expressed against it.")


@router.post("/settings/rates", response_model=None)
def add_rate(request: Request, user: PageWriter, engine: EngineDep, currency: Text = "", rate: Text = "",
             start_date: OptionalText = "") -> Response:
    def act() -> None:
        day = None
        if start_date.strip():
            try:
                day = date.fromisoformat(start_date.strip())
            except ValueError:
                raise InvalidInput(f"{start_date!r} is not a date (YYYY-MM-DD)", where="start_date") from None
        settings_service.set_rate(engine, user.scope, currency=currency, rate=_number(rate, "rate"), start_date=day)

    return _run(request, engine, user, "currencies", act, "The rate is saved.")
