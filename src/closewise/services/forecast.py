"""The period forecast and its backtests (`closewise forecast`, `closewise backtest`): read the org, default the
target to its quotas (the org's, and each owner's and team's for the breakdowns), ask `ml.forecaster` /
`ml.backtest`, and shape the answer as DESIGN.md's JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from closewise.analytics.currency import to_corporate
from closewise.analytics.targets import target_from_quotas
from closewise.db import frames
from closewise.db.opportunity_labels import opportunity_labels
from closewise.db.playbook import load_playbook
from closewise.db.quotas import load_quotas_within
from closewise.domain.periods import Period, PeriodKind
from closewise.domain.timeutil import as_utc, utcnow
from closewise.errors import InvalidInput
from closewise.ml.backtest import baselines_at, run_backtest
from closewise.ml.forecaster import PeriodForecast, PeriodForecaster
from closewise.ml.model_card import model_card, write_model_card
from closewise.services.org_data import OrgData, load_org


def forecast_report(
    engine: Engine,
    *,
    period: str,
    as_of: datetime | None = None,
    target: float | None = None,
    forecaster: PeriodForecaster | None = None,
) -> dict[str, Any]:
    """The forecast of `period` as known at `as_of` (default: now), against `target` (default: the org's quota
    for the period, counted once at the top of the hierarchy; null when none is stored)."""
    org = load_org(engine)
    span = org.calendar.parse(period)
    at = as_utc(as_of or utcnow())
    target_source: str | None = "given" if target is not None else None
    with engine.connect() as connection:
        quotas = load_quotas_within(connection, start=span.start, last_day=span.last_day)
    if target is None:
        found = target_from_quotas(quotas, org.users, span, org.rates, corporate=org.corporate_currency)
        if found is not None:
            target, target_source = found.amount, "quota"
    owner_targets, team_targets = scope_targets(quotas, span, org.rates, corporate=org.corporate_currency)
    result = with_criteria(engine, forecaster or PeriodForecaster()).forecast(
        org, span, at, target=target, owner_targets=owner_targets, team_targets=team_targets)
    with engine.connect() as connection:
        labels = opportunity_labels(connection, ids=result.inputs.deals["id"].to_list())
    inputs = result.inputs
    return {
        "period": span.label,
        "period_start": span.start,
        "period_end": span.last_day,
        "as_of": at.isoformat(),
        "currency": org.corporate_currency,
        "closed_won": inputs.closed_won,
        "p10": result.quantile(0.1),
        "p50": result.quantile(0.5),
        "p90": result.quantile(0.9),
        "expected": result.expected,
        "target": target,
        "target_source": target_source,
        "probability_of_target": result.probability_of_target,
        "new_business": inputs.new_business.to_dict(),
        "calibration": result.calibration.to_dict(),
        "scorer": inputs.scorer,
        "baselines": baselines_at(org, span, at.replace(tzinfo=None)),
        "by_owner": _by_owner(result, org),
        "by_team": _by_team(result, org),
        "deals": _deals(result, labels),
    }


def backtest_report(
    engine: Engine,
    *,
    period_type: str,
    start: date,
    end: date,
    on_period: Callable[[int, int], None] | None = None,
    forecaster: PeriodForecaster | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Backtests of every `period_type` period starting in [start, end]; the model card is written next to a
    SQLite database (and always returned in the summary)."""
    try:
        kind = PeriodKind(period_type)
    except ValueError as exc:
        raise InvalidInput(f"{period_type!r} is not month or quarter", where="--period-type") from exc
    org = load_org(engine)
    result = run_backtest(org, kind=kind, start=start, end=end, known_at=as_utc(now or utcnow()),
                          forecaster=with_criteria(engine, forecaster or PeriodForecaster()), on_period=on_period)
    card = model_card(org, result, created_at=datetime.now(UTC))
    summary = result.summary()
    summary["calibration"] = result.calibration
    summary["scorer"] = result.scorer
    summary["model_card"] = card
    path = _card_path(engine)
    summary["model_card_path"] = str(write_model_card(card, path)) if path is not None else None
    return {"rows": [row.to_dict() for row in result.rows], "summary": summary}


def with_criteria(engine: Engine, forecaster: PeriodForecaster) -> PeriodForecaster:
    """`forecaster` given the org's exit-criteria checks (with each criterion's stage) and the playbook's
    criteria, which the deal models read as "share of the stage's exit criteria met" (`ml.features`)."""
    with engine.connect() as connection:
        playbook = load_playbook(connection)
        checks = frames.load_criteria_checks(connection)
    catalogue = pl.DataFrame([(stage.key, criterion.key) for stage in playbook.stages
                              for criterion in stage.exit_criteria],
                             schema={"stage": pl.String(), "criterion_key": pl.String()}, orient="row")
    forecaster.criteria_checks = checks.join(catalogue, on="criterion_key", how="inner")
    forecaster.exit_criteria = catalogue
    return forecaster


def _card_path(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.stem + ".model_card.json")


def _names(org: OrgData) -> tuple[dict[int, str], dict[int, str]]:
    users = dict(zip(org.users["id"].to_list(), org.users["name"].to_list(), strict=True))
    teams = dict(zip(org.teams["id"].to_list(), org.teams["name"].to_list(), strict=True))
    return users, teams


def scope_targets(quotas: pl.DataFrame, period: Period, rates: pl.DataFrame, *,
                  corporate: str) -> tuple[dict[int, float], dict[int, float]]:
    """Each user's and each team's target for `period` from their quotas, in the corporate currency (at the
    quota period's start): the rows of exactly the period, else, per user or team, its longest rows inside the
    period added up (a quarter's months, never a month with the quarter holding it)."""
    if quotas.height == 0:
        return {}, {}
    valued = to_corporate(quotas, rates, corporate=corporate, on="period_start", into="value").with_columns(
        (pl.col("period_end") - pl.col("period_start")).alias("span"))

    def per(key: str, rows: pl.DataFrame) -> dict[int, float]:
        longest = rows.filter(pl.col("span") == pl.col("span").max().over(key))
        totals = longest.group_by(key).agg(pl.col("value").sum())
        return {int(k): float(v) for k, v in totals.iter_rows()}

    users = per("user_id", valued.filter(pl.col("user_id").is_not_null()))
    teams = per("team_id", valued.filter(pl.col("user_id").is_null(), pl.col("team_id").is_not_null()))
    return users, teams


def _range(row: dict[str, Any]) -> dict[str, Any]:
    return {"p10": row["p10"], "p50": row["p50"], "p90": row["p90"], "target": row["target"],
            "probability_of_target": row["probability_of_target"]}


def _by_owner(result: PeriodForecast, org: OrgData) -> list[dict[str, Any]]:
    users, teams = _names(org)
    return [
        {"owner_id": row["owner_id"], "name": users.get(row["owner_id"]), "team_id": row["team_id"],
         "team": teams.get(row["team_id"]), "closed_won": row["closed_won"], "open_deals": row["open_deals"],
         "pipeline": row["pipeline"], "expected": row["expected"], **_range(row)}
        for row in result.by_owner.iter_rows(named=True)
    ]


def _by_team(result: PeriodForecast, org: OrgData) -> list[dict[str, Any]]:
    _, teams = _names(org)
    return [{"team_id": row["team_id"], "team": teams.get(row["team_id"]), "closed_won": row["closed_won"],
             "open_deals": row["open_deals"], "pipeline": row["pipeline"], "expected": row["expected"],
             **_range(row)}
            for row in result.by_team.iter_rows(named=True)]


def _deals(result: PeriodForecast, labels: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    deals = result.deals
    if deals.height == 0:
        return []
    rows: list[dict[str, Any]] = []
    for row in deals.sort("expected", "id", descending=[True, False]).iter_rows(named=True):
        external_id, name = labels.get(row["id"], (None, None))
        rows.append({
            "id": row["id"], "external_id": external_id, "name": name, "owner_id": row.get("owner_id"),
            "team_id": row.get("team_id"), "stage": row.get("stage"), "amount": row.get("amount"),
            "close_date": row.get("close_date"), "forecast_category": row.get("forecast_category"),
            "p_win": row["p_win"], "p_close_in_period": row["p_close_in_period"],
            "p_close_calibrated": row["p_close_calibrated"], "expected": row["expected"],
            "expected_amount": row["expected_amount"], "amount_if_won": row["amount_if_won"],
            "reasons": list(row.get("reasons") or []),
        })
    return rows
