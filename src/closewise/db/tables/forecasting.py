"""Forecasting: the numbers people submit, and the deal models' scores with their history."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import JSON, Date, Float, ForeignKey, Index, String, Text

from closewise.db.tables.schema import Id, Money, Timestamp, fk, metadata, pk

forecast_submissions = sa.Table(
    "forecast_submissions",
    metadata,
    pk(),
    fk("user_id", "users.id", nullable=False, ondelete="CASCADE"),
    sa.Column("period", String(16), nullable=False),
    sa.Column("submitted_at", Timestamp, nullable=False),
    sa.Column("commit", Money, nullable=False),
    sa.Column("best_case", Money, nullable=False),
    sa.Column("pipeline", Money),
    # A manager's adjustment of a report's number is a row with kind=adjustment about `subject_id`.
    sa.Column("kind", String(16), nullable=False, default="submission"),
    fk("subject_id", "users.id", ondelete="CASCADE"),
    sa.Column("notes", Text),
    Index("ix_forecast_submissions_user_period", "user_id", "period"),
)

# The deal models' latest answer for each open deal (`services.scoring`): what the deal list, the deal page
# and the API show without refitting a model per request. `as_of` is the moment the models were trained for.
deal_scores = sa.Table(
    "deal_scores",
    metadata,
    sa.Column("opportunity_id", Id, ForeignKey("opportunities.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("as_of", Timestamp, nullable=False),
    sa.Column("period_start", Date, nullable=False),
    sa.Column("period_end", Date, nullable=False),
    sa.Column("p_win", Float, nullable=False),
    sa.Column("p_close_in_period", Float, nullable=False),
    sa.Column("expected_amount", Money),
    sa.Column("model", String(64), nullable=False),
    sa.Column("reasons", JSON),
)

# Every scoring run's answer, kept: a deal's win probability over time, each point from models fitted only on
# what was known at that point's `as_of`.
deal_score_history = sa.Table(
    "deal_score_history",
    metadata,
    pk(),
    fk("opportunity_id", "opportunities.id", nullable=False, ondelete="CASCADE"),
    sa.Column("as_of", Timestamp, nullable=False),
    sa.Column("p_win", Float, nullable=False),
    sa.Column("p_close_in_period", Float, nullable=False),
    Index("ix_deal_score_history_opportunity_id", "opportunity_id", "as_of"),
)
