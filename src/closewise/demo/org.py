"""The people and the book of business: users in a hierarchy with teams, reps with latent traits,
accounts with firmographics and their contacts.

Reps carry the latent traits the rest of the generator plants behaviour from (docs/demo.md): `skill`
(standard normal), a ramp (`hire_day`, `ramp_days`, slow starters), a forecasting `bias`, whether they
have "happy ears" and how fast they answer a new lead. `intensity` is how many deals a rep opens on each
day of the window relative to the others; deals and leads are both drawn from it, so a rep hired last
month has few.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from closewise.demo import vocabulary as vocab
from closewise.demo.plan import EMAIL_DOMAIN, SOURCE, BoolArray, DemoPlan, FloatArray, IntArray, stream
from closewise.domain.enums import Role

Row = dict[str, Any]

NORMAL_RAMP_DAYS = 120
SLOW_RAMP_DAYS = 360
SEGMENT_DEAL_RATE = np.array([1.4, 1.0, 0.6])  # smb reps open more, smaller deals
EMPLOYEE_RANGE = np.array([[10, 200], [200, 2_000], [2_000, 100_000]])  # head count per segment (log-uniform)


@dataclass(frozen=True)
class People:
    first_id: int
    names: list[str]
    emails: list[str]
    roles: list[Role]
    titles: list[str]
    manager: IntArray  # user index of the manager, -1 for none
    team: IntArray  # team index, -1 for none
    hire_day: IntArray
    team_names: list[str]
    # Reps (index r; their user index is rep_user[r]).
    rep_user: IntArray
    skill: FloatArray
    segment: IntArray
    ramp_days: FloatArray
    slow_starter: BoolArray
    bias: FloatArray
    happy_ears: BoolArray
    response_minutes: FloatArray  # median minutes to first touch a new lead

    @property
    def rep_ids(self) -> IntArray:
        return self.rep_user + self.first_id

    def ramp(self, rep: IntArray, day: IntArray | FloatArray) -> FloatArray:
        """Share of full productivity a rep has on a day (0 before the hire date, 1 once ramped)."""
        tenure = np.asarray(day, dtype=np.float64) - self.hire_day[self.rep_user[rep]]
        return np.clip(tenure / self.ramp_days[rep], 0.0, 1.0)


def build_people(plan: DemoPlan) -> People:
    rng = stream(plan.seed, "people")
    n_reps, n_managers, n_directors = plan.reps, plan.managers, plan.directors
    n_users = 2 + n_directors + n_managers + n_reps
    names, emails = _unique_names(rng, n_users)
    roles = [Role.LEADER, Role.ADMIN] + [Role.MANAGER] * (n_directors + n_managers) + [Role.REP] * n_reps
    manager = np.full(n_users, -1, dtype=np.int64)
    team = np.full(n_users, -1, dtype=np.int64)
    first_director, first_manager = 2, 2 + n_directors
    first_rep = first_manager + n_managers
    manager[1] = 0
    manager[first_director:first_manager] = 0
    for m in range(n_managers):
        manager[first_manager + m] = first_director + m % n_directors if n_directors else 0
        team[first_manager + m] = m
    rep_user = np.arange(first_rep, n_users, dtype=np.int64)
    rep_manager = np.arange(n_reps) % n_managers
    manager[rep_user] = first_manager + rep_manager
    team[rep_user] = rep_manager
    team_segment = np.arange(n_managers) % 3
    team_names = [
        f"{vocab.SEGMENT_LABELS[team_segment[m]]} {vocab.REGIONS[(m // 3) % len(vocab.REGIONS)]}"
        + (f" {m // (3 * len(vocab.REGIONS)) + 1}" if m >= 3 * len(vocab.REGIONS) else "")
        for m in range(n_managers)
    ]
    segment = team_segment[rep_manager]
    titles = ["VP Sales", "RevOps Analyst"] + ["Regional Director"] * n_directors + ["Sales Manager"] * n_managers
    titles += [f"{vocab.SEGMENT_LABELS[s]} Account Executive" for s in segment]

    # Hire dates: veterans from before the window, some hired during it, new hires 2-5 months ago.
    hire_day = plan.start_day - rng.integers(60, 2_000, n_users)
    order = rng.permutation(n_reps)
    n_new = max(4, round(0.15 * n_reps))
    n_mid = round(0.30 * n_reps)
    new_hires, mid_hires = order[:n_new], order[n_new : n_new + n_mid]
    hire_day[rep_user[new_hires]] = -rng.integers(60, 151, n_new)
    hire_day[rep_user[mid_hires]] = rng.integers(plan.start_day, -180, n_mid)
    skill = rng.standard_normal(n_reps)
    slow_starter = np.zeros(n_reps, dtype=np.bool_)
    slow_starter[new_hires[: max(2, round(0.03 * n_reps))]] = True
    skill[slow_starter] = np.minimum(skill[slow_starter], -0.5)
    ramp_days = np.where(slow_starter, SLOW_RAMP_DAYS, NORMAL_RAMP_DAYS * np.exp(-0.1 * skill))

    # Forecasting personality: 20% sandbag, 20% have happy ears, the rest call it straight.
    persona = rng.permutation(n_reps) % 5
    bias = np.where(
        persona == 0,
        rng.uniform(0.70, 0.85, n_reps),
        np.where(persona == 1, rng.uniform(1.20, 1.45, n_reps), rng.uniform(0.95, 1.05, n_reps)),
    )
    response = np.clip(240.0 * np.exp(-0.4 * skill + rng.normal(0.0, 1.0, n_reps)), 5.0, 6_000.0)
    return People(
        first_id=plan.ids.first("users"),
        names=names,
        emails=emails,
        roles=roles,
        titles=titles,
        manager=manager,
        team=team,
        hire_day=hire_day,
        team_names=team_names,
        rep_user=rep_user,
        skill=skill,
        segment=segment,
        ramp_days=ramp_days,
        slow_starter=slow_starter,
        bias=bias,
        happy_ears=persona == 1,
        response_minutes=response,
    )


def _unique_names(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    n_first, n_last = len(vocab.FIRST_NAMES), len(vocab.LAST_NAMES)
    picks = rng.permutation(n_first * n_last)
    names, emails = [], []
    for index in range(count):
        combo = int(picks[index % len(picks)])
        first, last = vocab.FIRST_NAMES[combo % n_first], vocab.LAST_NAMES[combo // n_first]
        suffix = "" if index < len(picks) else str(index // len(picks) + 1)
        names.append(f"{first} {last}")
        emails.append(f"{first.lower()}.{last.lower()}{suffix}@{EMAIL_DOMAIN}")
    return names, emails


def rep_intensity(plan: DemoPlan, people: People) -> FloatArray:
    """Relative rate at which each rep opens deals (and is routed leads) on each window day: zero before
    the hire date, growing with the ramp, lower at weekends, and the whole business growing ~30%."""
    days = np.arange(plan.start_day, 0)
    reps = np.arange(len(people.rep_user))
    ramp = people.ramp(reps[:, None], days[None, :])
    hired = days[None, :] >= people.hire_day[people.rep_user][:, None]
    weekday = np.array([plan.date_of(int(d)).weekday() for d in days[:7]])
    weekend = np.isin((weekday[np.arange(len(days)) % 7]), (5, 6))
    daily = np.where(weekend, 0.1, 1.0) * np.linspace(0.85, 1.15, len(days))
    per_rep = SEGMENT_DEAL_RATE[people.segment] * np.exp(0.15 * people.skill)
    intensity: FloatArray = hired * (0.15 + 0.85 * ramp) * daily[None, :] * per_rep[:, None]
    return intensity


def sample_rep_days(
    plan: DemoPlan, intensity: FloatArray, rng: np.random.Generator, count: int
) -> tuple[IntArray, IntArray]:
    """`count` (rep, day) pairs drawn in proportion to the intensity."""
    cumulative = np.cumsum(intensity.ravel())
    cells = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    cells = np.minimum(cells, cumulative.size - 1)
    width = intensity.shape[1]
    return (cells // width).astype(np.int64), (plan.start_day + cells % width).astype(np.int64)


def people_rows(plan: DemoPlan, people: People, password_hash: str, logins: set[int]) -> dict[str, list[Row]]:
    first_team = plan.ids.first("teams")
    teams = [{"id": first_team + t, "name": name} for t, name in enumerate(people.team_names)]
    users: list[Row] = []
    external: list[Row] = []
    for index, name in enumerate(people.names):
        user_id = people.first_id + index
        hire = plan.date_of(int(people.hire_day[index]))
        users.append(
            {
                "id": user_id,
                "email": people.emails[index],
                "name": name,
                "role": people.roles[index].value,
                "manager_id": people.first_id + int(people.manager[index]) if people.manager[index] >= 0 else None,
                "team_id": first_team + int(people.team[index]) if people.team[index] >= 0 else None,
                "title": people.titles[index],
                "hire_date": hire,
                "active": True,
                "password_hash": password_hash if index in logins else None,
                "created_at": plan.timestamps(np.array([people.hire_day[index]]))[0],
            }
        )
        external.append({"source": SOURCE, "external_id": f"DEMO-USR-{index + 1:06d}", "user_id": user_id})
    return {"teams": teams, "users": users, "user_external_ids": external}


@dataclass(frozen=True)
class Accounts:
    first_id: int
    owner: IntArray  # rep index
    segment: IntArray
    country: IntArray
    industry: IntArray
    employees: IntArray
    name_code: IntArray
    book_start: IntArray  # per rep: first account index of its book (accounts are sorted by owner)
    book_size: IntArray
    contact_start: IntArray  # per account: first contact index
    contact_count: IntArray
    contact_first_id: int

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def contacts(self) -> int:
        return int(self.contact_count.sum())


def build_accounts(plan: DemoPlan, people: People, intensity: FloatArray) -> Accounts:
    rng = stream(plan.seed, "accounts")
    share = intensity.sum(axis=1) / intensity.sum()
    book_size = np.maximum(1, np.round(share * plan.accounts)).astype(np.int64)
    book_start = np.concatenate(([0], np.cumsum(book_size)[:-1]))
    owner = np.repeat(np.arange(len(book_size)), book_size)
    n = len(owner)
    segment = np.where(rng.random(n) < 0.85, people.segment[owner], rng.integers(0, 3, n))
    weights = np.array([country[1] for country in vocab.COUNTRIES])
    country = rng.choice(len(weights), n, p=weights / weights.sum())
    low, high = EMPLOYEE_RANGE[segment, 0], EMPLOYEE_RANGE[segment, 1]
    employees = np.round(np.exp(rng.uniform(np.log(low), np.log(high)))).astype(np.int64)
    contact_count = rng.integers(3, 9, n)
    # Industry and head count drawn here are provisional: `firmographics.plant` redraws them from the deal
    # outcomes (the draws stay, so the later ones of this stream do not move).
    return Accounts(
        first_id=plan.ids.first("accounts"),
        owner=owner,
        segment=segment,
        country=country,
        industry=rng.integers(0, len(vocab.INDUSTRIES), n),
        employees=employees,
        name_code=rng.permutation(n),
        book_start=book_start,
        book_size=book_size,
        contact_start=np.concatenate(([0], np.cumsum(contact_count)[:-1])),
        contact_count=contact_count,
        contact_first_id=plan.ids.first("contacts"),
    )


def account_name(code: int) -> str:
    prefixes, cores, suffixes = vocab.COMPANY_PREFIXES, vocab.COMPANY_CORES, vocab.COMPANY_SUFFIXES
    name = f"{prefixes[code % len(prefixes)]} {cores[(code // len(prefixes)) % len(cores)]}"
    base = len(prefixes) * len(cores)
    name += f" {suffixes[(code // base) % len(suffixes)]}"
    base *= len(suffixes)
    if code >= base:
        name += f" {vocab.CITIES[(code // base) % len(vocab.CITIES)]}"
        base *= len(vocab.CITIES)
        if code >= base:
            name += f" {code // base + 1}"
    return name


def account_rows(plan: DemoPlan, people: People, accounts: Accounts, chunk: int) -> Iterator[list[Row]]:
    rng = stream(plan.seed, "account-rows")
    created = plan.timestamps(plan.start_day - rng.uniform(30, 1_500, len(accounts)))
    revenue = accounts.employees * rng.uniform(80_000, 300_000, len(accounts))
    owners = people.rep_ids[accounts.owner]
    for start in range(0, len(accounts), chunk):
        rows: list[Row] = []
        for a in range(start, min(start + chunk, len(accounts))):
            rows.append(
                {
                    "id": accounts.first_id + a,
                    "source": SOURCE,
                    "external_id": f"DEMO-ACC-{a + 1:07d}",
                    "name": account_name(int(accounts.name_code[a])),
                    "industry": vocab.INDUSTRIES[accounts.industry[a]],
                    "employees": int(accounts.employees[a]),
                    "annual_revenue": float(round(revenue[a], -3)),
                    "country": vocab.COUNTRIES[accounts.country[a]][0],
                    "segment": vocab.SEGMENTS[accounts.segment[a]],
                    "owner_id": int(owners[a]),
                    "created_at": created[a],
                }
            )
        yield rows


def contact_rows(plan: DemoPlan, accounts: Accounts, chunk: int) -> Iterator[list[Row]]:
    rng = stream(plan.seed, "contacts")
    total = accounts.contacts
    account = np.repeat(np.arange(len(accounts)), accounts.contact_count)
    position = np.arange(total) - accounts.contact_start[account]
    other = rng.integers(0, len(vocab.OTHER_ROLES), total)
    first = rng.integers(0, len(vocab.FIRST_NAMES), total)
    last = rng.integers(0, len(vocab.LAST_NAMES), total)
    for start in range(0, total, chunk):
        rows: list[Row] = []
        for c in range(start, min(start + chunk, total)):
            a, p = int(account[c]), int(position[c])
            role = vocab.KEY_ROLES[p] if p < len(vocab.KEY_ROLES) else vocab.OTHER_ROLES[other[c]]
            given, family = vocab.FIRST_NAMES[first[c]], vocab.LAST_NAMES[last[c]]
            domain = account_name(int(accounts.name_code[a])).split(" ")[0].lower()
            rows.append(
                {
                    "id": accounts.contact_first_id + c,
                    "source": SOURCE,
                    "external_id": f"DEMO-CON-{c + 1:08d}",
                    "account_id": accounts.first_id + a,
                    "name": f"{given} {family}",
                    "email": f"{given.lower()}.{family.lower()}@{domain}{a + 1}.example",
                    "title": vocab.ROLE_TITLES[role],
                    "buying_role": role,
                }
            )
        yield rows
