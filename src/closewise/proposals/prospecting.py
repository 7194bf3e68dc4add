"""The prospecting plan: an ideal-customer profile (ICP) learned from the firmographics of the accounts the
org has won, target accounts ranked by how well they fit it (with the reasons), and outbound cadences with
weekly activity goals and each rep's progress against them.

The ICP compares, for each firmographic (industry, segment, country, head-count band), how often a value occurs
among won accounts against how often it occurs among all accounts (Laplace-smoothed). The ratio is the value's
*lift*; an account's fit is `100 × σ(Σ log lift)` over its values, so an account that looks like past wins on
every count scores high and one that looks like none of them scores low. Reasons name the values that lift or
weigh on the fit most.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

FEATURES = ("industry", "segment", "country", "size_band")
FEATURE_LABELS = {"industry": "Industry", "segment": "Segment", "country": "Country", "size_band": "Head count"}
_BANDS = ((0, 50, "under 50"), (50, 200, "50-199"), (200, 1000, "200-999"), (1000, 5000, "1,000-4,999"),
          (5000, 20000, "5,000-19,999"), (20000, 10**12, "20,000+"))
UNKNOWN = "unknown"


def size_band(employees: int | None) -> str:
    if employees is None:
        return UNKNOWN
    for low, high, label in _BANDS:
        if low <= employees < high:
            return label
    return UNKNOWN


def with_features(accounts: pl.DataFrame) -> pl.DataFrame:
    """`accounts` (id, industry, segment, country, employees, ...) with the ICP's features filled in."""
    bands = [size_band(v) for v in accounts["employees"].to_list()]
    return accounts.with_columns(
        *(pl.col(c).cast(pl.String).fill_null(UNKNOWN) for c in ("industry", "segment", "country")),
        pl.Series("size_band", bands, dtype=pl.String),
    )


@dataclass(frozen=True)
class Icp:
    """Per feature, per value: the share among won accounts, among all accounts, and the lift."""

    won_accounts: int
    accounts: int
    lifts: dict[str, dict[str, float]] = field(default_factory=dict)
    won_share: dict[str, dict[str, float]] = field(default_factory=dict)
    base_share: dict[str, dict[str, float]] = field(default_factory=dict)

    def profile(self, top: int = 3) -> list[dict[str, Any]]:
        """The values that define the ICP: per feature, the values won accounts over-index on, best first."""
        rows = []
        for feature in FEATURES:
            values = sorted(self.lifts.get(feature, {}).items(), key=lambda kv: -kv[1])
            for value, lift in values[:top]:
                if value == UNKNOWN:
                    continue
                rows.append({"feature": feature, "label": FEATURE_LABELS[feature], "value": value, "lift": lift,
                             "won_share": self.won_share[feature].get(value, 0.0),
                             "base_share": self.base_share[feature].get(value, 0.0)})
        return rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def won_account_ids(deals: pl.DataFrame) -> pl.Series:
    return deals.filter(pl.col("status") == "won")["account_id"].drop_nulls().unique()


def learn_icp(accounts: pl.DataFrame, won_ids: pl.Series | list[int], *, alpha: float = 1.0) -> Icp:
    """The ICP from `accounts` (all of them: the base) and the ids of the won ones."""
    frame = with_features(accounts)
    won = frame.filter(pl.col("id").is_in(list(won_ids)))
    lifts: dict[str, dict[str, float]] = {}
    won_share: dict[str, dict[str, float]] = {}
    base_share: dict[str, dict[str, float]] = {}
    for feature in FEATURES:
        values = frame[feature].unique().to_list()
        base_counts = dict(frame[feature].value_counts().iter_rows())
        won_counts = dict(won[feature].value_counts().iter_rows()) if won.height else {}
        k = len(values)
        lifts[feature], won_share[feature], base_share[feature] = {}, {}, {}
        for value in values:
            p_won = (won_counts.get(value, 0) + alpha) / (won.height + alpha * k)
            p_all = (base_counts.get(value, 0) + alpha) / (frame.height + alpha * k)
            lifts[feature][value] = p_won / p_all
            won_share[feature][value] = won_counts.get(value, 0) / won.height if won.height else 0.0
            base_share[feature][value] = base_counts.get(value, 0) / frame.height if frame.height else 0.0
    return Icp(won_accounts=won.height, accounts=frame.height, lifts=lifts, won_share=won_share,
               base_share=base_share)


def _reason(feature: str, value: str, lift: float) -> str:
    if lift >= 1:
        return f"{FEATURE_LABELS[feature]} {value}: {lift:.1f}x as common among won accounts"
    return f"{FEATURE_LABELS[feature]} {value}: under-represented among wins ({lift:.1f}x)"


def fit_scores(accounts: pl.DataFrame, icp: Icp, *, reasons: int = 3) -> pl.DataFrame:
    """`accounts` with `fit` (0-100) and `reasons` (the values that move the fit most, strongest first)."""
    frame = with_features(accounts)
    fits: list[float] = []
    why: list[list[str]] = []
    for row in frame.select(*FEATURES).iter_rows(named=True):
        total = 0.0
        parts: list[tuple[float, str]] = []
        for feature in FEATURES:
            lift = icp.lifts.get(feature, {}).get(row[feature], 1.0)
            weight = math.log(lift)
            total += weight
            if row[feature] != UNKNOWN and abs(weight) >= math.log(1.1):
                parts.append((weight, _reason(feature, row[feature], lift)))
        fits.append(round(100.0 / (1.0 + math.exp(-total)), 1))
        parts.sort(key=lambda item: -abs(item[0]))
        why.append([text for _, text in parts[:reasons]] or ["close to the average account"])
    return frame.with_columns(pl.Series("fit", fits, dtype=pl.Float64),
                              pl.Series("reasons", why, dtype=pl.List(pl.String)))


def statuses_as_of(deals: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """`deals` as they stood at `as_of` (aware UTC): those created by then, with `status` "won"/"lost" only if
    they had closed before it and "open" otherwise. `deals` holds created_at and closed_at (aware UTC)."""
    moment = pl.lit(as_of).dt.convert_time_zone("UTC")
    closed = pl.col("closed_at").is_not_null() & (pl.col("closed_at") < moment)
    return (deals.filter(pl.col("created_at").is_null() | (pl.col("created_at") < moment))
            .with_columns(status=pl.when(closed & pl.col("status").is_in(["won", "lost"]))
                          .then(pl.col("status")).otherwise(pl.lit("open"))))


def targets(accounts: pl.DataFrame, deals: pl.DataFrame, icp: Icp, *, limit: int | None = None) -> pl.DataFrame:
    """Accounts to prospect: those without an open deal, ranked by fit (best first). `kind` tells a past
    customer (a won deal: expansion) from a prospect."""
    open_ids = deals.filter(pl.col("status") == "open")["account_id"].drop_nulls().unique().to_list()
    won_ids = won_account_ids(deals).to_list()
    scored = fit_scores(accounts.filter(~pl.col("id").is_in(open_ids)), icp)
    scored = scored.with_columns(
        kind=pl.when(pl.col("id").is_in(won_ids)).then(pl.lit("customer")).otherwise(pl.lit("prospect")))
    ranked = scored.sort(["fit", "id"], descending=[True, False])
    return ranked if limit is None else ranked.head(limit)


# --- cadences -----------------------------------------------------------------------------------------------

ACTIVITY_KINDS = ("call", "email", "meeting")


@dataclass(frozen=True)
class CadenceStep:
    week: int
    day: int
    kind: str  # call | email | meeting
    label: str


@dataclass(frozen=True)
class Cadence:
    name: str
    steps: tuple[CadenceStep, ...]
    accounts_per_rep: int  # accounts each rep works through the cadence at a time
    weeks: int = 0
    source: str = "built-in"
    id: int | None = None

    def weekly_goals(self) -> dict[str, int]:
        """Activities a rep should log per week to keep `accounts_per_rep` accounts moving through the steps."""
        span = max(self.weeks, max((s.week for s in self.steps), default=1))
        goals = {}
        for kind in ACTIVITY_KINDS:
            per_account = sum(1 for s in self.steps if s.kind == kind)
            goals[kind] = math.ceil(per_account * self.accounts_per_rep / span) if per_account else 0
        return goals

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weekly_goals": self.weekly_goals()}


DEFAULT_CADENCES: tuple[Cadence, ...] = (
    Cadence("New logo: 4-week outbound", (
        CadenceStep(1, 1, "email", "Personal email on the ICP's pain, with a peer example"),
        CadenceStep(1, 2, "call", "Call the likely economic buyer"),
        CadenceStep(1, 4, "call", "Call the likely champion"),
        CadenceStep(2, 1, "email", "Share a short case study from the same industry"),
        CadenceStep(2, 3, "call", "Follow-up call"),
        CadenceStep(3, 1, "email", "Offer a 20-minute forecast review"),
        CadenceStep(3, 3, "call", "Call and leave a voicemail"),
        CadenceStep(4, 1, "meeting", "Discovery meeting booked"),
        CadenceStep(4, 3, "email", "Break-up email"),
    ), accounts_per_rep=10, weeks=4),
    Cadence("Customer expansion: 3 weeks", (
        CadenceStep(1, 1, "email", "Usage recap and one new use case"),
        CadenceStep(1, 3, "call", "Call the champion"),
        CadenceStep(2, 2, "meeting", "Business review with the economic buyer"),
        CadenceStep(3, 1, "email", "Expansion proposal outline"),
    ), accounts_per_rep=5, weeks=3),
)


def cadence_progress(cadences: list[Cadence], activities: pl.DataFrame, reps: pl.DataFrame, *,
                     as_of: datetime, days: int = 7) -> list[dict[str, Any]]:
    """Per rep: completed calls, emails and meetings in the `days` before `as_of` against the weekly goals of
    all cadences together (scaled to `days`), and the share reached. `activities` needs owner_id, type,
    occurred_at, completed; `reps` id and name."""
    goals = {kind: sum(c.weekly_goals()[kind] for c in cadences) * days / 7 for kind in ACTIVITY_KINDS}
    start = as_of - timedelta(days=days)
    recent = activities.filter(pl.col("completed") & (pl.col("occurred_at") >= start)
                               & (pl.col("occurred_at") < as_of))
    counts: dict[tuple[int, str], int] = {
        (owner, kind): n for owner, kind, n in
        recent.group_by("owner_id", "type").len().iter_rows()}
    rows = []
    for rep in reps.sort("name").iter_rows(named=True):
        done = {kind: counts.get((rep["id"], kind), 0) for kind in ACTIVITY_KINDS}
        shares = [min(1.0, done[k] / goals[k]) for k in ACTIVITY_KINDS if goals[k] > 0]
        rows.append({"rep_id": rep["id"], "rep": rep["name"], "done": done,
                     "goals": {k: round(goals[k], 1) for k in ACTIVITY_KINDS},
                     "progress": sum(shares) / len(shares) if shares else None})
    return rows
