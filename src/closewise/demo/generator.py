"""The demo org as a stream of row batches, in an order the foreign keys accept.

`DemoGenerator(plan, password_hash).batches()` yields plain rows (dicts keyed by column name) table by
table and chunk by chunk, so a million-deal org never sits in memory at once: people, accounts and
contacts, leads and their activities, then per chunk of deals the opportunities with their change log,
activities, exit-criteria checks and qualification answers, and last the quotas and forecast calls
(which need the whole org's bookings). Ids are assigned here, after the ones already in the database
(`plan.ids`), so rows reference each other without a round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from closewise.demo import changelog, engagement, events, firmographics, leads, lifecycle, org, submissions
from closewise.demo.deals import plan_deals
from closewise.demo.plan import CalendarLookup, DemoPlan
from closewise.domain.enums import Role

Row = dict[str, Any]
STEPS: Final = ("people", "accounts", "leads", "opportunities", "forecasts")


@dataclass(frozen=True)
class Batch:
    table: str
    rows: list[Row]
    step: str
    done: int
    total: int


@dataclass(frozen=True)
class Login:
    email: str
    role: str


class DemoGenerator:
    def __init__(self, plan: DemoPlan, password_hash: str) -> None:
        self.plan = plan
        self.password_hash = password_hash
        self.lookup = CalendarLookup.build(plan)
        self.people = org.build_people(plan)
        self.intensity = org.rep_intensity(plan, self.people)
        self.accounts = org.build_accounts(plan, self.people, self.intensity)
        self.leads = leads.build_leads(plan, self.people, self.intensity, max_converted=plan.opportunities // 2)
        self.deals = plan_deals(plan, self.people, self.accounts, self.leads, self.intensity)
        # The ICP follows the outcomes, so they are simulated once before the accounts are written (and again,
        # identically, chunk by chunk in `_deal_batches`); nothing the simulation reads changes.
        share = firmographics.won_share(plan, self.people, self.accounts, self.deals, self.lookup)
        self.accounts = firmographics.plant(plan, self.accounts, share)
        self.counts: dict[str, int] = {}
        self._won = np.zeros((len(self.people.rep_user), plan.window_days))
        self._activity_id = plan.ids.first("activities")

    # -- who is who ---------------------------------------------------------------------------------------
    @property
    def login_users(self) -> list[int]:
        """The leader, the admin, the first manager and a seasoned rep of middling skill."""
        people = self.people
        first_manager = people.roles.index(Role.MANAGER)
        veterans = np.flatnonzero(people.hire_day[people.rep_user] < self.plan.start_day)
        pool = veterans if len(veterans) else np.arange(len(people.rep_user))
        middle = pool[np.argsort(people.skill[pool])[len(pool) // 2]]
        return [0, 1, first_manager, int(people.rep_user[middle])]

    @property
    def logins(self) -> list[Login]:
        return [Login(self.people.emails[u], self.people.roles[u].value) for u in self.login_users]

    def planted(self) -> dict[str, list[str]]:
        """Emails of the reps each planted behaviour applies to (docs/demo.md)."""
        people = self.people
        emails = np.array(people.emails, dtype=object)[people.rep_user]
        seasoned = people.hire_day[people.rep_user] < self.plan.start_day
        ranked = np.argsort(-people.skill)
        quarter = max(1, len(ranked) // 4)
        new_hires = people.hire_day[people.rep_user] >= -150
        return {
            "top_skill": sorted(emails[ranked[:quarter]].tolist()),
            "bottom_skill": sorted(emails[ranked[-quarter:]].tolist()),
            "seasoned": sorted(emails[seasoned].tolist()),
            "new_hires": sorted(emails[new_hires].tolist()),
            "slow_starters": sorted(emails[people.slow_starter].tolist()),
            "sandbaggers": sorted(emails[people.bias < 0.9].tolist()),
            "happy_ears": sorted(emails[people.happy_ears].tolist()),
        }

    # -- rows ---------------------------------------------------------------------------------------------
    def _batch(self, table: str, rows: list[Row], step: str, done: int, total: int) -> Batch:
        self.counts[table] = self.counts.get(table, 0) + len(rows)
        return Batch(table, rows, step, done, total)

    def batches(self) -> Iterator[Batch]:
        plan, people, accounts = self.plan, self.people, self.accounts
        chunk = plan.chunk_size
        for table, rows in org.people_rows(plan, people, self.password_hash, set(self.login_users)).items():
            yield self._batch(table, rows, "people", 1, 1)

        n_accounts = len(accounts)
        total = n_accounts + accounts.contacts
        done = 0
        for rows in org.account_rows(plan, people, accounts, chunk * 2):
            done += len(rows)
            yield self._batch("accounts", rows, "accounts", done, total)
        for rows in org.contact_rows(plan, accounts, chunk * 4):
            done += len(rows)
            yield self._batch("contacts", rows, "accounts", done, total)

        yield from self._lead_batches()
        yield from self._deal_batches()

        won = self._won
        first_team = plan.ids.first("teams")
        yield self._batch("quotas", submissions.quota_rows(plan, people, won, first_team), "forecasts", 1, 2)
        for rows in submissions.submission_rows(plan, people, won):
            yield self._batch("forecast_submissions", rows, "forecasts", 2, 2)

    def _lead_batches(self) -> Iterator[Batch]:
        plan, deals, accounts = self.plan, self.deals, self.accounts
        n = len(self.leads)
        company: list[str | None] = [None] * n
        inbound = np.flatnonzero(deals.lead >= 0)
        for lead, account in zip(deals.lead[inbound].tolist(), deals.account[inbound].tolist(), strict=True):
            company[lead] = org.account_name(int(accounts.name_code[account]))
        opportunity_of = deals.opportunity_of_lead(n)
        done = 0
        for rows in leads.lead_rows(plan, self.people, self.leads, opportunity_of, company, plan.chunk_size * 2):
            done += len(rows)
            yield self._batch("leads", rows, "leads", done, n)
        columns = leads.lead_activities(plan, self.people, self.leads)
        total, step = len(columns["lead"]), plan.chunk_size * 4
        for start in range(0, total, step):
            stop = min(start + step, total)
            rows = engagement.lead_activity_rows(plan, columns, self.leads.first_id, self._activity_id, start, stop)
            yield self._batch("activities", rows, "leads", n, n)
        self._activity_id += total

    def _deal_batches(self) -> Iterator[Batch]:
        plan, people, accounts, deals = self.plan, self.people, self.accounts, self.deals
        decoder = changelog.Decoder(self.lookup)
        next_id = {
            table: plan.ids.first(table)
            for table in ("opportunity_changes", "criteria_checks", "qualification_answers")
        }
        total = len(deals)
        for start in range(0, total, plan.chunk_size):
            stop = min(start + plan.chunk_size, total)
            chunk = lifecycle.simulate(plan, people, accounts, deals, self.lookup, start, stop)
            log = changelog.build_log(chunk)
            self._add_bookings(chunk, log)
            batch = self._batch
            rows = changelog.opportunity_rows(plan, chunk, log, people, accounts, deals, decoder)
            yield batch("opportunities", rows, "opportunities", stop, total)
            rows = changelog.change_rows(plan, chunk, log, people, next_id["opportunity_changes"], decoder)
            next_id["opportunity_changes"] += len(rows)
            yield batch("opportunity_changes", rows, "opportunities", stop, total)
            activities = engagement.deal_activities(plan, chunk, accounts)
            rows = engagement.activity_rows(plan, chunk, people, accounts, activities, self._activity_id)
            self._activity_id += len(rows)
            yield batch("activities", rows, "opportunities", stop, total)
            rows = engagement.check_rows(plan, chunk, people, next_id["criteria_checks"])
            next_id["criteria_checks"] += len(rows)
            yield batch("criteria_checks", rows, "opportunities", stop, total)
            rows = engagement.answer_rows(plan, chunk, people, next_id["qualification_answers"])
            next_id["qualification_answers"] += len(rows)
            yield batch("qualification_answers", rows, "opportunities", stop, total)

    def _add_bookings(self, chunk: lifecycle.DealChunk, log: changelog.ChangeLog) -> None:
        won = np.flatnonzero(chunk.status == events.WON)
        day = np.floor(chunk.end[won]).astype(np.int64) - self.plan.start_day
        usd = chunk.amount_usd(log.current[won, events.F_AMOUNT], won)
        np.add.at(self._won, (chunk.rep[won], day), usd)
