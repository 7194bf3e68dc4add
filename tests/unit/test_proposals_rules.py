"""The executive summary, its checks and the ICP, on facts built here."""

from __future__ import annotations

import datetime
from datetime import date

import polars as pl

from closewise.proposals import prospecting
from closewise.proposals.checks import passed, run_checks
from closewise.proposals.summary import Answer, Contact, DealFacts, ExecutiveSummary, polish, write_summary


def _facts(**overrides: object) -> DealFacts:
    base: dict[str, object] = dict(
        deal_id=1, deal_name="Acme - Platform", account="Acme Foods GmbH", owner="Rita Rep", stage="proposal",
        stage_name="Proposal", status="open", amount=45000.0, currency="EUR", close_date=date(2026, 12, 15),
        created_on=date(2026, 9, 1), today=date(2026, 11, 22), industry="Retail", employees=850, country="Germany",
        segment="mid_market", competitor="Gong", next_step="Review pricing",
        contacts=(Contact("Eva Klein", "Chief Financial Officer", "economic_buyer", True),
                  Contact("Omar Khan", "Head of Operations", "champion", True)),
        answers=(Answer("meddicc", "identify_pain", "yes", "Stockouts cost 3% of revenue"),
                 Answer("meddicc", "metrics", "partial", "Cut stockouts by half"),
                 Answer("meddicc", "decision_process", "no", None)),
        activities={"meeting": 3, "call": 2},
    )
    base.update(overrides)
    return DealFacts(**base)  # type: ignore[arg-type]


def test_summary_names_customer_and_passes_checks() -> None:
    facts = _facts()
    summary = write_summary(facts)
    assert "Acme Foods GmbH" in summary.text
    assert "Stockouts cost 3% of revenue" in summary.text and "Eva Klein" in summary.text
    checks = run_checks(summary.text, facts)
    assert passed(checks), [c for c in checks if not c.passed]


def test_two_customers_differ_in_substance() -> None:
    one = write_summary(_facts())
    other_facts = _facts(account="Nova Health plc", industry="Healthcare", employees=12000, country="United Kingdom",
                         amount=210000.0, currency="GBP", competitor=None,
                         answers=(Answer("bant", "need", "yes", "Clinic rota planning takes a week"),
                                  Answer("bant", "budget", "yes", "Budget approved for 2027")),
                         contacts=(Contact("Ivy Lee", "VP Engineering", "decision_maker", True),))
    other = write_summary(other_facts)
    assert "Nova Health plc" in other.text and "Acme Foods GmbH" not in other.text
    differing = sum(a != b for a, b in zip(one.paragraphs, other.paragraphs, strict=True))
    assert differing == len(one.paragraphs)
    assert "Clinic rota planning" in other.text and "Gong" not in other.text


def test_checks_catch_a_generic_summary() -> None:
    facts = _facts()
    generic = ("Our platform helps companies like yours forecast better and coach their teams. "
               "We look forward to working together on the next steps.")
    checks = {c.key: c for c in run_checks(generic, facts)}
    assert not passed(list(checks.values()))
    for key in ("names_customer", "cites_pains", "cites_outcomes", "customer_specific"):
        assert not checks[key].passed, key


def test_checks_catch_placeholders_and_wrong_numbers() -> None:
    facts = _facts()
    text = write_summary(facts).text
    bad = text + " Dear [Customer name], {{ discount }} TODO. Total 50,000 EUR, signed by 1 January 2027."
    checks = {c.key: c for c in run_checks(bad, facts)}
    assert not checks["no_placeholders"].passed
    assert not checks["numbers_consistent"].passed
    detail = checks["numbers_consistent"].detail
    assert "50,000 EUR" in detail and "1 January 2027" in detail


def test_missing_pain_is_reported_as_a_record_gap() -> None:
    facts = _facts(answers=())
    checks = {c.key: c for c in run_checks(write_summary(facts).text, facts)}
    assert not checks["cites_pains"].passed and "capture it" in checks["cites_pains"].detail


def test_polisher_is_kept_only_when_checks_still_pass() -> None:
    facts = _facts()
    plain = write_summary(facts)

    class Good:
        name = "good-model"

        def __call__(self, summary: ExecutiveSummary, facts: DealFacts) -> tuple[str, ...]:
            return tuple(p.replace("we have worked", "our team has worked") for p in summary.paragraphs)

    class Bad:
        name = "bad-model"

        def __call__(self, summary: ExecutiveSummary, facts: DealFacts) -> tuple[str, ...]:
            return ("A great fit for [Customer].",)

    def good(candidate: ExecutiveSummary) -> bool:
        return passed(run_checks(candidate.text, facts))

    assert polish(plain, facts, None, good) is plain
    assert polish(plain, facts, Good(), good).polished_by == "good-model"
    assert polish(plain, facts, Bad(), good) is plain


def test_fit_ranks_held_out_lookalikes_above_others() -> None:
    rows = []
    for i in range(400):
        healthcare = i % 2 == 0
        rows.append({"id": i, "name": f"A{i}", "industry": "Healthcare" if healthcare else "Retail",
                     "employees": 500 if healthcare else 50, "country": "Germany", "segment": "mid_market",
                     "owner_id": 1, "owner_name": "R"})
    accounts = pl.DataFrame(rows)
    won = [i for i in range(0, 200, 2)] + [1, 3]  # mostly healthcare
    icp = prospecting.learn_icp(accounts, won)
    fit = prospecting.fit_scores(accounts, icp)
    held_out = fit.filter(pl.col("id").is_in(list(range(200, 400, 2))))["fit"].mean()
    others = fit.filter(pl.col("id").is_in(list(range(201, 400, 2))))["fit"].mean()
    assert held_out > others  # type: ignore[operator]
    assert any("Healthcare" in r for r in fit.filter(pl.col("id") == 0)["reasons"][0])


def test_statuses_as_of_shows_each_deal_as_it_stood_then() -> None:
    """Four deals around a cut at 1 June: created after it (left out), won before it (won), won after it (open
    then), lost before it (lost). An account is a customer or busy only by what was known at the cut."""
    utc = datetime.UTC
    at = datetime.datetime(2026, 6, 1, tzinfo=utc)
    before, after = datetime.datetime(2026, 5, 1, tzinfo=utc), datetime.datetime(2026, 7, 1, tzinfo=utc)
    deals = pl.DataFrame({
        "id": [1, 2, 3, 4], "account_id": [10, 20, 30, 40], "status": ["open", "won", "won", "lost"],
        "created_at": [after, before, before, before], "closed_at": [None, before, after, before],
    }, schema_overrides={"created_at": pl.Datetime("us", "UTC"), "closed_at": pl.Datetime("us", "UTC")})
    then = prospecting.statuses_as_of(deals, at)
    assert dict(then.select("id", "status").iter_rows()) == {2: "won", 3: "open", 4: "lost"}
    accounts = pl.DataFrame({"id": [10, 20, 30, 40], "industry": ["Software"] * 4, "employees": [100] * 4,
                             "country": ["US"] * 4, "segment": ["SMB"] * 4})
    icp = prospecting.learn_icp(accounts, [20])
    kinds = dict(prospecting.targets(accounts, then, icp).select("id", "kind").iter_rows())
    # 30 had an open deal on 1 June (won only in July): not a target then; 10's deal did not exist yet.
    assert kinds == {10: "prospect", 20: "customer", 40: "prospect"}
