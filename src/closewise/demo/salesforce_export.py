"""A synthetic Salesforce Data Export of any size, in the real layout (every field quoted).

Used to exercise the importer at scale (benchmarks, interrupted-import tests) without real data: users,
accounts, opportunities, and 2-8 full-state OpportunityHistory rows per opportunity, whose last row
matches the opportunity. Deterministic for a seed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

STAGES = [
    ("Prospecting", 10),
    ("Qualification", 20),
    ("Needs Analysis", 30),
    ("Proposal/Price Quote", 60),
    ("Negotiation/Review", 80),
]
EPOCH = datetime(2022, 1, 1)


def _ids(prefix: str, count: int) -> pl.Series:
    return pl.Series([f"{prefix}{i:012d}AAA" for i in range(count)], dtype=pl.String)


def write_export(
    folder: Path, *, opportunities: int, seed: int = 1, history_per_opportunity: float = 5.0, chunk: int = 250_000
) -> dict[str, int]:
    """Write User.csv, Account.csv, Opportunity.csv and OpportunityHistory.csv; returns row counts."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_users = max(10, opportunities // 2_000)
    n_accounts = max(10, opportunities // 10)
    user_ids = _ids("005", n_users)
    pl.DataFrame(
        {
            "Id": user_ids,
            "FirstName": [f"Rep{i}" for i in range(n_users)],
            "LastName": ["Synthetic"] * n_users,
            "Email": [f"rep{i}@synthetic.test" for i in range(n_users)],
            "IsActive": ["1"] * n_users,
            "ManagerId": ["000000000000000AAA"] * n_users,
            "CreatedDate": ["2021-06-01 09:00:00"] * n_users,
        }
    ).write_csv(folder / "User.csv", quote_style="always")
    pl.DataFrame(
        {
            "Id": _ids("001", n_accounts),
            "Name": [f"Account {i}" for i in range(n_accounts)],
            "Industry": rng.choice(["Software", "Retail", "Banking", "Manufacturing"], n_accounts).tolist(),
            "NumberOfEmployees": rng.integers(10, 20_000, n_accounts).astype(str).tolist(),
        }
    ).write_csv(folder / "Account.csv", quote_style="always")
    history_total = 0
    opp_path, hist_path = folder / "Opportunity.csv", folder / "OpportunityHistory.csv"
    for start in range(0, opportunities, chunk):
        count = min(chunk, opportunities - start)
        opps, history = _chunk(rng, start, count, n_users, n_accounts, history_per_opportunity)
        with opp_path.open("ab" if start else "wb") as handle:
            opps.write_csv(handle, quote_style="always", include_header=start == 0)
        with hist_path.open("ab" if start else "wb") as handle:
            history.write_csv(handle, quote_style="always", include_header=start == 0)
        history_total += history.height
    return {"users": n_users, "accounts": n_accounts, "opportunities": opportunities, "history": history_total}


def _chunk(
    rng: np.random.Generator, start: int, count: int, n_users: int, n_accounts: int, per_opportunity: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    steps = np.clip(rng.poisson(per_opportunity - 1, count) + 1, 1, 12)
    created = rng.integers(0, 1_000, count)  # days after EPOCH
    outcome = rng.choice(["open", "won", "lost"], count, p=[0.3, 0.25, 0.45])
    opp_index = np.repeat(np.arange(count), steps)
    step = np.concatenate([np.arange(s) for s in steps])
    last = step == np.repeat(steps - 1, steps)
    stage_index = np.minimum(step, len(STAGES) - 1)
    closed_row = last & (np.repeat(outcome, steps) != "open")
    days = np.repeat(created, steps) + step * rng.integers(3, 25, step.size)
    amount = np.round(rng.lognormal(9.5, 1.0, count), -2)
    amounts = np.repeat(amount, steps) * (1 + 0.1 * (step % 3 == 2))
    close = np.repeat(created, steps) + 60 + 15 * (step // 2)
    stage_names = np.array([s for s, _ in STAGES])[stage_index]
    probabilities = np.array([p for _, p in STAGES])[stage_index]
    row_outcome = np.repeat(outcome, steps)
    stage_names = np.where(
        closed_row & (row_outcome == "won"),
        "Closed Won",
        np.where(closed_row & (row_outcome == "lost"), "Closed Lost", stage_names),
    )
    probabilities = np.where(closed_row, np.where(row_outcome == "won", 100, 0), probabilities)
    category = np.where(
        closed_row,
        np.where(row_outcome == "won", "Closed", "Omitted"),
        np.where(probabilities >= 60, "BestCase", "Pipeline"),
    )
    ids = [f"006{start + i:012d}AAA" for i in range(count)]
    epoch = np.datetime64(EPOCH, "s")
    stamps = (epoch + days.astype("timedelta64[D]") + (step * 3600).astype("timedelta64[s]")).astype(str)
    close_text = (epoch + close.astype("timedelta64[D]")).astype("datetime64[D]").astype(str)
    history = pl.DataFrame(
        {
            "Id": [f"008{start * 12 + i:012d}AAA" for i in range(step.size)],
            "OpportunityId": np.array(ids)[opp_index],
            "CreatedDate": np.char.replace(stamps, "T", " "),
            "StageName": stage_names,
            "Amount": amounts.astype(str),
            "CloseDate": np.char.add(close_text, " 00:00:00"),
            "Probability": probabilities.astype(str),
            "ForecastCategory": category,
            "IsDeleted": "0",
        }
    )
    final = history.filter(pl.Series(last))
    opps = pl.DataFrame(
        {
            "Id": ids,
            "IsDeleted": "0",
            "AccountId": [f"001{a:012d}AAA" for a in rng.integers(0, n_accounts, count)],
            "Name": [f"Deal {start + i}" for i in range(count)],
            "OwnerId": [f"005{u:012d}AAA" for u in rng.integers(0, n_users, count)],
            "CurrencyIsoCode": "USD",
            "IsClosed": np.where(outcome == "open", "0", "1"),
            "IsWon": np.where(outcome == "won", "1", "0"),
            "CreatedDate": (epoch + created.astype("timedelta64[D]")).astype(str).tolist(),
        }
    )
    opps = opps.with_columns(pl.col("CreatedDate").str.replace("T", " ")).with_columns(
        StageName=final.get_column("StageName"),
        Amount=final.get_column("Amount"),
        CloseDate=final.get_column("CloseDate"),
        Probability=final.get_column("Probability"),
        ForecastCategory=final.get_column("ForecastCategory"),
        LastModifiedDate=final.get_column("CreatedDate"),
    )
    return opps, history
