"""The lead funnel on the real Olist marketing funnel (../shared/data/olist_marketing_funnel: 8,000 MQLs and the
842 deals sales closed, linked by `mql_id`), imported through `closewise import csv` with two mappings, then read
back with `closewise leads funnel --json`.

The expected numbers are counted apart from Closewise, straight from the CSV files with Polars: a lead is won
when a closed deal names its mql_id; an MQL without an origin counts under `(none)`. Skipped when the shared data
folder is absent."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from closewise.cli import app as cli_app
from closewise.cli import leads_commands
from tests.cli_runner import run_cli

if not any(group.name == "leads" for group in cli_app.app.registered_groups):
    leads_commands.register(cli_app.app)

LEADS_MAPPING = """
entity: leads
source: olist
columns:
  external_id: mql_id
  created_at: first_contact_date
  lead_source: origin
  campaign: landing_page_id
"""
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
  lead: mql_id
  amount: declared_monthly_revenue
constants:
  status: won
  currency: USD
  stage: negotiation
"""


def test_olist_funnel_conversion_equals_an_independent_count(
    shared_data: Path, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = shared_data / "olist_marketing_funnel"
    mqls_csv = folder / "olist_marketing_qualified_leads_dataset.csv"
    deals_csv = folder / "olist_closed_deals_dataset.csv"
    if not mqls_csv.is_file() or not deals_csv.is_file():
        pytest.skip("the Olist marketing funnel files are absent")
    (tmp_path / "leads.yml").write_text(LEADS_MAPPING, encoding="utf-8")
    (tmp_path / "deals.yml").write_text(DEALS_MAPPING, encoding="utf-8")

    assert run_cli(capsys, monkeypatch, "--db", database_url, "init").code == 0
    for csv, mapping, entity in ((mqls_csv, "leads.yml", "leads"), (deals_csv, "deals.yml", "opportunities")):
        result = run_cli(capsys, monkeypatch, "--db", database_url, "import", "csv", str(csv), "--mapping",
                         str(tmp_path / mapping), "--json")
        assert result.code == 0, result.stderr
        assert result.json()[entity]["rejected"] == 0

    result = run_cli(capsys, monkeypatch, "--db", database_url, "leads", "funnel", "--json")
    assert result.code == 0, result.stderr
    funnel = result.json()

    # The independent count, from the files themselves.
    mqls = pl.read_csv(mqls_csv, infer_schema_length=0)
    deals = pl.read_csv(deals_csv, infer_schema_length=0)
    won_ids = deals.filter(pl.col("mql_id").is_in(mqls["mql_id"].implode()))["mql_id"].unique()
    counted = (mqls.with_columns(pl.col("origin").fill_null("(none)"),
                                 pl.col("mql_id").is_in(won_ids.implode()).alias("won"))
               .group_by("origin").agg(pl.len().alias("leads"), pl.col("won").sum().alias("won")))
    expected = {row["origin"]: (row["leads"], row["won"]) for row in counted.iter_rows(named=True)}

    assert funnel["leads"] == mqls.height == 8000
    assert funnel["won"] == won_ids.len() == 842
    assert funnel["conversion_rate"] == pytest.approx(won_ids.len() / mqls.height)
    assert {row["source"] for row in funnel["by_source"]} == set(expected)
    for row in funnel["by_source"]:
        leads, won = expected[row["source"]]
        assert (row["leads"], row["won"]) == (leads, won), row["source"]
        assert row["conversion_rate"] == pytest.approx(won / leads)
    assert sum(row["leads"] for row in funnel["by_source"]) == funnel["leads"]

    # Time to win: the median of won date − first contact date, in days.
    spans = (deals.join(mqls, on="mql_id").select(
        (pl.col("won_date").str.to_datetime("%Y-%m-%d %H:%M:%S")
         - pl.col("first_contact_date").str.to_datetime("%Y-%m-%d")).dt.total_seconds() / 86_400.0))
    assert funnel["days_to_win"] == pytest.approx(spans.to_series().filter(spans.to_series() >= 0).median())

    # Campaigns (landing pages) partition the same leads.
    assert sum(row["leads"] for row in funnel["by_campaign"]) == 8000
    assert sum(row["won"] for row in funnel["by_campaign"]) == 842
