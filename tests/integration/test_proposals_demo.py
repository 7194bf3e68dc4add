"""Proposals on the demo org: personalised summaries, documents, the playbook rule, and the ICP's fit (against
the firmographic win pattern the demo plants, docs/demo.md)."""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from closewise.db import proposals as queries
from closewise.db.engine import make_engine
from closewise.db.tables import accounts, proposals
from closewise.demo import vocabulary as vocab
from closewise.demo.firmographics import CORE_INDUSTRIES
from closewise.demo.org import EMPLOYEE_RANGE
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.errors import NotFound
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
    # What is downloaded later is what was written then, not a rebuild.
    stored, filename, media = service.stored_document(engine, scope=writer, deal_id=deal["id"],
                                                      proposal_id=result["id"])
    assert stored == out.read_bytes() == result["content"] and filename == result["filename"] and "word" in media
    again = service.stored_document(engine, scope=writer, deal_id=deal["id"], proposal_id=html["id"])
    assert again[0] == html["content"]


def test_a_proposal_recorded_without_its_document_says_so(engine: Engine) -> None:
    """Proposals recorded before documents were stored (migration 0009) have none: a 404 that says why."""
    deal = service.candidates(engine, scope=ADMIN, today=DEMO_TODAY)[0]
    with engine.begin() as connection:
        old = connection.execute(proposals.insert().values(
            opportunity_id=deal["id"], created_at=datetime(2026, 1, 5, tzinfo=UTC), format="docx",
            executive_summary="An older proposal.", checks=[])).inserted_primary_key
    assert old is not None
    with pytest.raises(NotFound, match="before documents were stored"):
        service.stored_document(engine, scope=ADMIN, deal_id=deal["id"], proposal_id=old[0])
    assert [p["stored"] for p in service.history(engine, scope=ADMIN, deal_id=deal["id"])
            if p["id"] == old[0]] == [False]


CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)


def _auc(positive: list[float], negative: list[float]) -> tuple[float, float]:
    """The AUC of `positive` against `negative` and its z-score against chance (0.5), with the standard error
    of the Mann-Whitney statistic under the null: sqrt((n1 + n2 + 1) / (12 n1 n2))."""
    auc = sum((a > b) + 0.5 * (a == b) for a in positive for b in negative) / (len(positive) * len(negative))
    n1, n2 = len(positive), len(negative)
    return auc, (auc - 0.5) / math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def _planted_icp(rows: pl.DataFrame) -> pl.Series:
    """docs/demo.md: a core industry and a head count in the larger half (log scale) of the segment's range."""
    midpoint = {name: math.sqrt(float(low) * float(high))
                for name, (low, high) in zip(vocab.SEGMENTS, EMPLOYEE_RANGE.tolist(), strict=True)}
    return rows.select(pl.col("industry").is_in(list(CORE_INDUSTRIES))
                       & (pl.col("employees") >= pl.col("segment").replace_strict(midpoint)))["industry"]


def _wins(engine: Engine) -> tuple[pl.DataFrame, pl.DataFrame]:
    with engine.connect() as connection:
        outcomes = queries.all_deal_outcomes(connection)
        frame = queries.accounts_frame(connection, scope=None)
    return outcomes.filter(pl.col("status") == "won"), frame


def test_fit_on_the_plain_demo_ranks_icp_lookalikes_first(engine: Engine) -> None:
    """The demo plants an ICP (core industries, the larger half of each segment's head count) on accounts that win
    more. The plan as of a date, learning from the wins closed before it, must rank never-won accounts that look
    like that profile above never-won accounts that do not, and its profile's top industries are the core ones."""
    plan = service.prospecting_plan(engine, scope=ADMIN, as_of=CUTOFF, limit=100_000)
    targets = pl.DataFrame(plan["targets"]).filter(pl.col("kind") == "prospect")  # no win, even after the cutoff
    targets = targets.with_columns(icp=_planted_icp(targets))
    like = targets.filter(pl.col("icp"))["fit"].to_list()
    unlike = targets.filter(~pl.col("icp"))["fit"].to_list()
    assert len(like) >= 20 and len(unlike) >= 200
    auc, z = _auc(like, unlike)
    assert z > 3, (auc, z)
    top = [row["value"] for row in plan["icp"]["profile"] if row["feature"] == "industry"]
    assert set(top) == set(CORE_INDUSTRIES)


def test_fit_learned_before_a_date_ranks_later_first_wins_above_never_won(engine: Engine) -> None:
    """Prediction, not description: accounts first won after the cutoff (unseen by the ICP) score above accounts
    never won, better than chance by over three standard errors."""
    won, frame = _wins(engine)
    before = set(won.filter(pl.col("closed_at") < CUTOFF)["account_id"].to_list())
    after = set(won.filter(pl.col("closed_at") >= CUTOFF)["account_id"].to_list()) - before
    never = set(frame["id"].to_list()) - set(won["account_id"].to_list())
    assert len(after) >= 30 and len(never) >= 100
    fit = prospecting.fit_scores(frame, prospecting.learn_icp(frame, sorted(before)))
    auc, z = _auc(fit.filter(pl.col("id").is_in(sorted(after)))["fit"].to_list(),
                  fit.filter(pl.col("id").is_in(sorted(never)))["fit"].to_list())
    assert z > 3, (auc, z)


def test_the_plan_as_of_a_date_learns_only_from_wins_known_then(engine: Engine) -> None:
    """No future leak: the plan as of the cutoff counts the accounts won before it, and its fits are exactly those
    of an ICP learned from those wins, not from all of them (which would give other fits)."""
    won, frame = _wins(engine)
    before = sorted(set(won.filter(pl.col("closed_at") < CUTOFF)["account_id"].to_list()))
    every = sorted(set(won["account_id"].to_list()))
    assert len(before) < len(every)
    plan = service.prospecting_plan(engine, scope=ADMIN, as_of=CUTOFF, limit=100_000)
    assert plan["icp"]["won_accounts"] == len(before)
    shown = {t["id"]: t["fit"] for t in plan["targets"]}
    rows = frame.filter(pl.col("id").is_in(list(shown)))
    then = dict(prospecting.fit_scores(rows, prospecting.learn_icp(frame, before)).select("id", "fit").iter_rows())
    now = dict(prospecting.fit_scores(rows, prospecting.learn_icp(frame, every)).select("id", "fit").iter_rows())
    assert shown == then
    assert shown != now


def test_the_plan_as_of_a_date_leaves_out_accounts_created_after_it(engine: Engine) -> None:
    """An account created after the date is neither in the ICP's base nor a target then; it is one a day later."""
    created = CUTOFF + timedelta(hours=1)
    with engine.begin() as connection:
        new_id = connection.execute(accounts.insert().values(
            source="test", external_id="future-account", name="Future Account", industry="Software",
            employees=900, country="United States", segment="mid_market", created_at=created)).inserted_primary_key
    assert new_id is not None
    try:
        then = service.prospecting_plan(engine, scope=ADMIN, as_of=CUTOFF, limit=100_000)
        later = service.prospecting_plan(engine, scope=ADMIN, as_of=CUTOFF + timedelta(days=1), limit=100_000)
        assert later["icp"]["accounts"] == then["icp"]["accounts"] + 1
        assert new_id[0] not in {t["id"] for t in then["targets"]}
        assert new_id[0] in {t["id"] for t in later["targets"]}
    finally:
        with engine.begin() as connection:
            connection.execute(accounts.delete().where(accounts.c.id == new_id[0]))


def test_prospecting_plan_on_the_demo(engine: Engine) -> None:
    plan = service.prospecting_plan(engine, scope=ADMIN, as_of=datetime(2026, 11, 22, tzinfo=UTC), limit=20)
    fits = [t["fit"] for t in plan["targets"]]
    assert fits == sorted(fits, reverse=True) and all(t["reasons"] for t in plan["targets"])
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one()
    assert plan["icp"]["accounts"] == total
    assert plan["reps"] and plan["cadences"][0]["weekly_goals"]["call"] > 0
