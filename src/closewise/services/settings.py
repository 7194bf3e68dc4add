"""Organisation settings an admin or a leader keeps: the fiscal calendar, the corporate currency and its rates,
and quotas per user or team and period. Reads follow the caller's scope (a rep sees their own quotas); every
write needs `Action.MANAGE_SETTINGS` and goes to the audit log with the actor.

Changing the corporate currency re-expresses every stored rate against the new one: a rate is "units of the
currency per one unit of the corporate currency" (Salesforce's convention, `domain/money.py`), so a rate r_c
becomes r_c / r_new on the same day, and the old corporate currency gets 1 / r_new. Totals stay the same
money, only counted in another unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection, Engine

from closewise.db import audit
from closewise.db import org_settings as settings_queries
from closewise.db import quotas as quota_queries
from closewise.db import users as user_queries
from closewise.domain.money import CurrencyConverter
from closewise.domain.periods import FiscalCalendar, Period, PeriodKind
from closewise.domain.scope import Action, Scope
from closewise.domain.timeutil import utcnow
from closewise.errors import Conflict, Forbidden, InvalidInput, NotFound

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class OrgSettings:
    corporate_currency: str
    fiscal_year_start_month: int
    fiscal_year_name_by_end: bool
    current_quarter: str
    current_quarter_start: date
    current_quarter_end: date  # inclusive
    current_year: str

    @property
    def calendar(self) -> FiscalCalendar:
        return FiscalCalendar(self.fiscal_year_start_month, self.fiscal_year_name_by_end)


def _require(scope: Scope) -> None:
    if not scope.may(Action.MANAGE_SETTINGS):
        raise Forbidden(f"a {scope.role.value} cannot manage settings")


def _stored(connection: Connection, today: date) -> OrgSettings:
    stored = settings_queries.read_settings(connection)
    calendar = FiscalCalendar(int(stored["fiscal_year_start_month"]), stored["fiscal_year_name_by_end"] == "1")
    quarter = calendar.period_containing(today, PeriodKind.QUARTER)
    year = calendar.period_containing(today, PeriodKind.YEAR)
    return OrgSettings(stored["corporate_currency"].upper(), calendar.start_month, calendar.name_by_end,
                       quarter.label, quarter.start, quarter.last_day, year.label)


def read_org_settings(engine: Engine, *, today: date | None = None) -> OrgSettings:
    with engine.connect() as connection:
        return _stored(connection, today or utcnow().date())


def currency_code(text: str, *, where: str = "currency") -> str:
    code = text.strip().upper()
    if not _CURRENCY.match(code):
        raise InvalidInput(f"{text!r} is not a three-letter currency code (ISO 4217, e.g. USD)", where=where)
    return code


def _converter(connection: Connection, corporate: str) -> CurrencyConverter:
    converter = CurrencyConverter(corporate=corporate)
    for rate in settings_queries.list_rates(connection):
        if rate.start_date is None:
            converter.static[rate.currency] = rate.rate
        else:
            converter.add_dated(rate.currency, rate.start_date, rate.rate)
    return converter


def _rebased(connection: Connection, old: str, new: str) -> list[tuple[str, float, date | None]]:
    converter = _converter(connection, old)
    if not converter.known(new):
        raise Conflict(f"there is no rate for {new}: add one (units of {new} per {old}) before making it the "
                       "corporate currency", where="corporate_currency")
    rows: list[tuple[str, float, date | None]] = []
    days: set[date | None] = set()
    for rate in settings_queries.list_rates(connection):
        days.add(rate.start_date)
        if rate.currency != new:
            rows.append((rate.currency, rate.rate / converter.rate(new, rate.start_date), rate.start_date))
    rows.extend((old, 1.0 / converter.rate(new, day), day) for day in sorted(days, key=lambda d: (d is not None, d)))
    return rows


def update_org_settings(engine: Engine, actor: Scope, *, corporate_currency: str | None = None,
                        fiscal_year_start_month: int | None = None,
                        fiscal_year_name_by_end: bool | None = None) -> OrgSettings:
    _require(actor)
    with engine.begin() as connection:
        before = _stored(connection, utcnow().date())
        changes: dict[str, dict[str, Any]] = {}
        if fiscal_year_start_month is not None and fiscal_year_start_month != before.fiscal_year_start_month:
            if not 1 <= fiscal_year_start_month <= 12:
                raise InvalidInput("the fiscal year start month must be 1 to 12", where="fiscal_year_start_month")
            settings_queries.write_setting(connection, key="fiscal_year_start_month",
                                           value=str(fiscal_year_start_month))
            changes["fiscal_year_start_month"] = {"from": before.fiscal_year_start_month,
                                                  "to": fiscal_year_start_month}
        if fiscal_year_name_by_end is not None and fiscal_year_name_by_end != before.fiscal_year_name_by_end:
            settings_queries.write_setting(connection, key="fiscal_year_name_by_end",
                                           value="1" if fiscal_year_name_by_end else "0")
            changes["fiscal_year_name_by_end"] = {"from": before.fiscal_year_name_by_end,
                                                  "to": fiscal_year_name_by_end}
        if corporate_currency is not None:
            code = currency_code(corporate_currency, where="corporate_currency")
            if code != before.corporate_currency:
                settings_queries.replace_rates(connection, rows=_rebased(connection, before.corporate_currency,
                                                                         code))
                settings_queries.write_setting(connection, key="corporate_currency", value=code)
                changes["corporate_currency"] = {"from": before.corporate_currency, "to": code}
        if changes:
            audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="settings.change",
                         entity="org_settings", entity_id=None, detail=changes)
        return _stored(connection, utcnow().date())


# -- currency rates ----------------------------------------------------------------------------------------


def list_rates(engine: Engine) -> list[settings_queries.RateRow]:
    with engine.connect() as connection:
        return settings_queries.list_rates(connection)


def set_rate(engine: Engine, actor: Scope, *, currency: str, rate: float,
             start_date: date | None) -> tuple[settings_queries.RateRow, bool]:
    """Store a rate (units of `currency` per corporate unit) from `start_date`, or the static rate; returns it
    and whether it is new (an existing rate for that day is replaced)."""
    _require(actor)
    code = currency_code(currency)
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise InvalidInput("a rate must be a positive number", where="rate")
    with engine.begin() as connection:
        corporate = settings_queries.read_settings(connection)["corporate_currency"].upper()
        if code == corporate:
            raise InvalidInput(f"{code} is the corporate currency: its rate is always 1", where="currency")
        rate_id, created = settings_queries.set_rate(connection, currency=code, rate=rate, start_date=start_date)
        audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="currency_rate.set",
                     entity="currency_rate", entity_id=rate_id,
                     detail={"currency": code, "rate": rate, "start_date": start_date and start_date.isoformat()})
    return settings_queries.RateRow(rate_id, code, rate, start_date), created


# -- quotas ------------------------------------------------------------------------------------------------


def list_quotas(engine: Engine, scope: Scope, *, period: str | None = None,
                user_id: int | None = None) -> list[quota_queries.QuotaRow]:
    with engine.connect() as connection:
        label = _period(connection, period).label if period else None
        return quota_queries.list_quotas(connection, scope=scope, period=label, user_id=user_id)


def quota_periods(engine: Engine, scope: Scope) -> list[str]:
    with engine.connect() as connection:
        return quota_queries.quota_periods(connection, scope=scope)


def _period(connection: Connection, text: str) -> Period:
    try:
        return _stored(connection, utcnow().date()).calendar.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, where="period") from None


def _visible_quota(connection: Connection, scope: Scope, quota_id: int) -> quota_queries.QuotaRow:
    found = quota_queries.get_quota(connection, quota_id=quota_id, scope=scope)
    if found is None:
        raise NotFound(f"no quota with id {quota_id}")
    return found


def get_quota(engine: Engine, scope: Scope, quota_id: int) -> quota_queries.QuotaRow:
    with engine.connect() as connection:
        return _visible_quota(connection, scope, quota_id)


def _amount(value: float) -> float:
    if not value >= 0 or value == float("inf"):
        raise InvalidInput("a quota amount must be zero or more", where="amount")
    return round(float(value), 2)


def _known_currency(connection: Connection, text: str | None) -> str:
    corporate = settings_queries.read_settings(connection)["corporate_currency"].upper()
    if text is None or not text.strip():
        return corporate
    code = currency_code(text)
    if code != corporate and code not in {rate.currency for rate in settings_queries.list_rates(connection)}:
        raise InvalidInput(f"there is no rate for {code}: add one under Currencies first", where="currency")
    return code


def create_quota(engine: Engine, actor: Scope, *, period: str, amount: float, user_id: int | None = None,
                 team_id: int | None = None, currency: str | None = None) -> quota_queries.QuotaRow:
    """A quota for one user or one team (not both) for a month, quarter or year of the fiscal calendar."""
    _require(actor)
    if (user_id is None) == (team_id is None):
        raise InvalidInput("a quota belongs to one user or to one team: give user_id or team_id", where="user_id")
    with engine.begin() as connection:
        if user_id is not None and (user_queries.get_by_id(connection, user_id=user_id) is None
                                    or not actor.sees_owner(user_id)):
            raise InvalidInput(f"no user with id {user_id}", where="user_id")
        if team_id is not None and not quota_queries.team_exists(connection, team_id=team_id):
            raise InvalidInput(f"no team with id {team_id}", where="team_id")
        chosen = _period(connection, period)
        if quota_queries.find_quota(connection, user_id=user_id, team_id=team_id, period=chosen.label) is not None:
            raise Conflict(f"there is already a quota for {chosen.label}: change that one", where="period")
        values = {"user_id": user_id, "team_id": team_id, "period": chosen.label, "period_start": chosen.start,
                  "period_end": chosen.last_day, "amount": _amount(amount),
                  "currency": _known_currency(connection, currency)}
        quota_id = quota_queries.insert_quota(connection, values=values)
        audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="quota.add", entity="quota",
                     entity_id=quota_id, detail={**values, "period_start": chosen.start.isoformat(),
                                                 "period_end": chosen.last_day.isoformat()})
        return _visible_quota(connection, actor, quota_id)


def change_quota(engine: Engine, actor: Scope, quota_id: int, *, amount: float | None = None,
                 currency: str | None = None, period: str | None = None) -> quota_queries.QuotaRow:
    _require(actor)
    with engine.begin() as connection:
        found = _visible_quota(connection, actor, quota_id)
        values: dict[str, Any] = {}
        if amount is not None and _amount(amount) != found.amount:
            values["amount"] = _amount(amount)
        if currency is not None and (code := _known_currency(connection, currency)) != found.currency:
            values["currency"] = code
        if period is not None:
            chosen = _period(connection, period)
            if chosen.label != found.period:
                other = quota_queries.find_quota(connection, user_id=found.user_id, team_id=found.team_id,
                                                 period=chosen.label)
                if other is not None:
                    raise Conflict(f"there is already a quota for {chosen.label}", where="period")
                values.update(period=chosen.label, period_start=chosen.start, period_end=chosen.last_day)
        if values:
            quota_queries.update_quota(connection, quota_id=quota_id, values=values)
            before = {"amount": found.amount, "currency": found.currency, "period": found.period,
                      "period_start": found.period_start.isoformat(), "period_end": found.period_end.isoformat()}
            audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="quota.change", entity="quota",
                         entity_id=quota_id, detail={key: {"from": before.get(key), "to": _plain(value)}
                                                     for key, value in values.items()})
        return _visible_quota(connection, actor, quota_id)


def delete_quota(engine: Engine, actor: Scope, quota_id: int) -> None:
    _require(actor)
    with engine.begin() as connection:
        found = _visible_quota(connection, actor, quota_id)
        quota_queries.delete_quota(connection, quota_id=quota_id)
        audit.record(connection, at=utcnow(), actor_id=actor.user_id, action="quota.delete", entity="quota",
                     entity_id=quota_id, detail={"user_id": found.user_id, "team_id": found.team_id,
                                                 "period": found.period, "amount": found.amount,
                                                 "currency": found.currency})


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def team_choices(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        return sorted(user_queries.team_names(connection).items(), key=lambda item: item[1])
