"""The model card of a backtest: what the forecast was built from, over which dates, and how it scored.

After Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): a short, dated record kept beside the
model's output, so a number shown to a sales leader can be traced to the data, method and track record
behind it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from closewise.analytics import schema as s
from closewise.ml.backtest import BacktestResult
from closewise.ml.forecaster import ForecastFrames

METHOD = (
    "Deal probabilities of winning inside the period (deal scorer), new business from past periods by week of "
    "period, and a Monte Carlo of the period total with a shared period effect on the deals' log-odds "
    "(random-effects / one-factor Gaussian copula) calibrated on the org's own earlier backtests."
)


def model_card(frames: ForecastFrames, result: BacktestResult, *, created_at: datetime | None = None) -> dict[str, Any]:
    """A JSON-ready card: data used, date range, method, calibration, metrics and creation time."""
    timeline = frames.timeline
    first, last = timeline[s.CREATED_AT].min(), timeline[s.VALID_FROM].max()
    rows = result.rows
    return {
        "model": "closewise period forecast",
        "scorer": result.scorer,
        "method": METHOD,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "data": {
            "opportunities": int(timeline[s.ID].n_unique()) if timeline.height else 0,
            "states": timeline.height,
            "won": int(timeline.filter(pl.col(s.VALID_TO).is_null(), pl.col(s.STATUS) == "won").height),
            "first_created_at": first.isoformat() if isinstance(first, datetime) else None,
            "last_change_at": last.isoformat() if isinstance(last, datetime) else None,
            "currency": frames.corporate_currency,
        },
        "backtest": {
            "period_type": result.kind.value,
            "first_period": rows[0].period.label if rows else None,
            "last_period": rows[-1].period.label if rows else None,
            "periods": len(rows),
        },
        "calibration": result.calibration,
        "metrics": {k: v for k, v in result.summary().items() if k != "deal_calibration"},
    }


def write_model_card(card: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
