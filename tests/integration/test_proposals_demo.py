"""Proposals on the demo org: personalised summaries, documents, the playbook rule, and the ICP's fit."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import proposals as queries
from closewise.db.engine import make_engine
from closewise.db.tables import accounts
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.proposals import prospecting
from closewise.services import proposals as service
from tests.demo_org import DEMO_TODAY, demo_database

ADMIN = Scope(user_id=0, role=Role.ADMIN, owner_ids=None)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with demo_database(tmp_path_factory.mktemp("proposals")) as (url, _):
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def test_two_demo_deals_get_different_personal_summaries(engine: Engine) -> None:
    rows = service.candidates(engine, scope=ADMIN, today=DEMO_TODAY)
    assert rows
    first = rows[0]
    second = next(r for r in rows if r["account"] != first["account"])
    one = service.preview(engine, scope=ADMIN, deal_id=first["id"], today=DEMO_TODAY)
    two = service.preview(engine, scope=ADMIN, deal_id=second["id"], today=DEMO_TODAY)
    assert first["account"] in one["executive_summary"] and second["account"] in two["executive_summary"]
    assert first["account"] not in two["executive_summary"]
    # In substance, not only the name: with each customer's name blanked, the texts still differ paragraph by
    # paragraph in most of their paragraphs (people, firmographics, answers, dates, amounts).
    blank_one = [p.replace(first["account"], "X") for p in one["paragraphs"]]
    blank_two = [p.replace(second["account"], "X") for p in two["paragraphs"]]
    assert sum(a != b for a, b in zip(blank_one, blank_two, strict=True)) >= 3
    with engine.connect() as connection:
        people = queries.deal_contacts(connection, deal_id=first["id"],
                                       account_id=queries.get_deal(connection, scope=ADMIN,
                                                                   deal_id=first["id"])["account_id"])
    engaged = [p["name"] for p in people if p["engaged"]]
    assert all(name in one["executive_summary"] for name in engaged[:2])


def test_generate_documents_and_the_playbook_rule(engine: Engine, tmp_path: Path) -> None:
    rows = service.candidates(engine, scope=ADMIN, today=DEMO_TODAY)
    deal = rows[0]
    with engine.connect() as connection:
        assert service.proposal_passes(connection, deal["id"]) is False
    out = tmp_path / "p.docx"
    writer = Scope(user_id=1, role=Role.ADMIN, owner_ids=None)
    result = service.generate(engine, scope=writer, deal_id=deal["id"], fmt="docx", out=out, today=DEMO_TODAY)
    assert out.exists() and result["path"] == str(out.resolve())
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as archive:
        body = archive.read("word/document.xml").decode("utf-8")
    assert deal["account"].replace("&", "&amp;") in body
    html = service.generate(engine, scope=writer, deal_id=deal["id"], fmt="html", today=DEMO_TODAY)
    assert deal["account"] in html["content"].decode("utf-8") and "{{" not in html["content"].decode("utf-8")
    with engine.connect() as connection:
        assert service.proposal_passes(connection, deal["id"]) is html["passed"]


def test_fit_ranks_held_out_wins_above_never_won_accounts(engine: Engine) -> None:
    """The demo plants no firmographic effect on winning, so one is planted here: won accounts are moved into
    Healthcare with probability 0.6. An ICP learned from wins before a cutoff must then score accounts first won
    after it (held out) above accounts never won."""
    with engine.connect() as connection:
        outcomes = queries.all_deal_outcomes(connection)
        frame = queries.accounts_frame(connection, scope=None)
    won = outcomes.filter(pl.col("status") == "won")
    rng = np.random.default_rng(11)
    planted = [int(a) for a in won["account_id"].unique().sort().to_list() if rng.random() < 0.6]
    frame = frame.with_columns(pl.when(pl.col("id").is_in(planted)).then(pl.lit("Healthcare"))
                               .otherwise(pl.col("industry")).alias("industry"))
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    before = set(won.filter(pl.col("closed_at") < cutoff)["account_id"].to_list())
    after = set(won.filter(pl.col("closed_at") >= cutoff)["account_id"].to_list()) - before
    never = set(frame["id"].to_list()) - set(won["account_id"].to_list())
    assert len(after) >= 30 and len(never) >= 100
    icp = prospecting.learn_icp(frame, sorted(before))
    fit = prospecting.fit_scores(frame, icp)
    held = fit.filter(pl.col("id").is_in(sorted(after)))["fit"].to_list()
    rest = fit.filter(pl.col("id").is_in(sorted(never)))["fit"].to_list()
    auc = sum((a > b) + 0.5 * (a == b) for a in held for b in rest) / (len(held) * len(rest))
    assert auc > 0.6, auc


def test_prospecting_plan_on_the_demo(engine: Engine) -> None:
    plan = service.prospecting_plan(engine, scope=ADMIN, as_of=datetime(2026, 11, 22, tzinfo=UTC), limit=20)
    fits = [t["fit"] for t in plan["targets"]]
    assert fits == sorted(fits, reverse=True) and all(t["reasons"] for t in plan["targets"])
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one()
    assert plan["icp"]["accounts"] == total
    assert plan["reps"] and plan["cadences"][0]["weekly_goals"]["call"] > 0
