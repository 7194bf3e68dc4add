"""Top performers on real data with owners: the Olist closed deals (../shared/data/olist_marketing_funnel), each with
the sales rep (`sr_id`) who won it and its won date, imported through `closewise import csv`, then
`closewise team gap --json`. The expected top performers are counted apart from Closewise, straight from the CSV
with Polars, by the rule the report states (no quotas: bookings, ties to more won deals). Skipped when the shared
data folder is absent."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from closewise.cli import app as cli_app
from closewise.cli import team_commands
from tests.cli_runner import run_cli

if not any(group.name == "team" for group in cli_app.app.registered_groups):
    team_commands.register(cli_app.app)

DEALS_MAPPING = """
entity: opportunities
source: olist
columns:
  external_id: mql_id
  name: seller_id
  owner: sr_id
  created_at: won_date
  closed_at: won_date
  close_date: won_date
  amount: declared_monthly_revenue
constants:
  status: won
  currency: USD
  stage: negotiation
"""


def test_olist_top_performers_are_the_top_bookers(shared_data: Path, database_url: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    deals_csv = shared_data / "olist_marketing_funnel" / "olist_closed_deals_dataset.csv"
    if not deals_csv.is_file():
        pytest.skip("the Olist closed deals file is absent")
    (tmp_path / "deals.yml").write_text(DEALS_MAPPING, encoding="utf-8")
    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    imported = run_cli(capsys, monkeypatch, "--db", database_url, "import", "csv", str(deals_csv), "--mapping",
                       str(tmp_path / "deals.yml"), "--json")
    assert imported.code == 0, imported.stderr

    result = run_cli(capsys, monkeypatch, "--db", database_url, "team", "gap", "--as-of", "2018-12-31",
                     "--window-days", "1098", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["ranked_by"] == "bookings"

    # The independent count: bookings and won deals per sales rep, from the file.
    deals = pl.read_csv(deals_csv, infer_schema_length=0).filter(pl.col("sr_id").is_not_null())
    per_rep = (deals.with_columns(pl.col("declared_monthly_revenue").cast(pl.Float64).fill_null(0.0))
               .group_by("sr_id").agg(pl.col("declared_monthly_revenue").sum().alias("bookings"),
                                      pl.len().alias("won"))
               .sort(["bookings", "won"], descending=True))
    n_top = math.ceil(per_rep.height / 4)
    names = {p["name"]: p for p in report["top_performers"]}
    assert len(names) == n_top
    ranked = {r["name"]: r for r in report["reps"]}
    assert len(ranked) == per_rep.height
    for row in per_rep.iter_rows(named=True):
        assert ranked[row["sr_id"]]["bookings"] == pytest.approx(row["bookings"])
        assert ranked[row["sr_id"]]["won_deals"] == row["won"]
    boundary = per_rep.row(n_top - 1, named=True)
    clearly_top = per_rep.filter((pl.col("bookings") > boundary["bookings"])
                                 | ((pl.col("bookings") == boundary["bookings"]) & (pl.col("won") > boundary["won"])))
    assert set(clearly_top["sr_id"].to_list()) <= set(names)
    clearly_rest = per_rep.filter((pl.col("bookings") < boundary["bookings"])
                                  | ((pl.col("bookings") == boundary["bookings"]) & (pl.col("won") < boundary["won"])))
    assert not set(clearly_rest["sr_id"].to_list()) & set(names)
