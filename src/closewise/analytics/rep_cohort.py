"""Per-rep facts about the deals a rep opened in the trailing window (created in the `window_days` before
`as_of`), read from the change log as known at `as_of`: stage conversion and close-date slippage.

- Stage conversion is `analytics.stages.stage_conversion` on each rep's cohort: per playbook stage, the deals
  that entered it (`entered`), those that then reached a later stage or were won (`advanced`), and those
  still open and not past it (`pending`, undecided); the stage's rate is advanced ÷ (entered − pending).
  A rep's (or a team's) `stage_conversion` pools the stages: advanced ÷ decided over every stage entry, so
  each step a deal could have taken counts once — the share of the funnel's steps their deals took.
- Slippage is `analytics.slippage.deal_slippage` on the same cohort: `slip_rate` = deals whose expected close
  date was pushed later at least once while open ÷ the cohort's deals (the "slipped deals" share; pushes made
  at or after the closing are bookkeeping, not slippage).

The owner is the deal's owner at `as_of`, as in every scorecard figure. Both read one reconstruction of the
log (`analytics.history.outcomes_and_visits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from closewise.analytics import history as h
from closewise.analytics import schema as s
from closewise.analytics.slippage import deal_slippage
from closewise.analytics.stages import stage_conversion

USER_ID: Final = "user_id"
STAGE_COLUMNS: Final = (USER_ID, s.STAGE, h.ORDER, "entered", "advanced", "pending")
STAGE_SCHEMA: Final = {USER_ID: pl.Int64(), s.STAGE: pl.String(), h.ORDER: pl.Int64(), "entered": pl.Int64(),
                       "advanced": pl.Int64(), "pending": pl.Int64()}


@dataclass(frozen=True)
class CohortFacts:
    stages: pl.DataFrame  # STAGE_COLUMNS: one row per rep with cohort deals and playbook stage
    deals: pl.DataFrame  # `user_id`, `id`, `pushed` (bool): one row per cohort deal


def cohort_facts(
    opportunities: pl.DataFrame,
    changes: pl.DataFrame,
    stages: pl.DataFrame,
    *,
    as_of: datetime,
    window_days: int,
) -> CohortFacts:
    """The stage conversion and slippage facts of every owner's cohort (see the module header). `opportunities`
    and `changes` as `analytics.schema` fixes them; `stages`: the playbook's `key` and `order`."""
    deals, visits = h.outcomes_and_visits(opportunities, changes, stages, as_of=as_of)
    cohort = h.created_between(deals, as_of, window_days).filter(pl.col(s.OWNER_ID).is_not_null())
    slipped = deal_slippage(opportunities, changes, as_of=as_of, window_days=window_days, deals=cohort)
    per_deal = slipped.select(pl.col(s.OWNER_ID).cast(pl.Int64).alias(USER_ID), s.ID,
                              (pl.col("pushes") > 0).alias("pushed"))
    owners = cohort.select(s.ID, pl.col(s.OWNER_ID).cast(pl.Int64).alias(USER_ID))
    mine = visits.join(owners, on=s.ID, how="inner", maintain_order="left")
    parts = [
        stage_conversion(opportunities, changes, stages, as_of=as_of, visits=part.drop(USER_ID))
        .select(pl.lit(owner, dtype=pl.Int64).alias(USER_ID), s.STAGE, h.ORDER, "entered", "advanced", "pending")
        for (owner,), part in mine.partition_by(USER_ID, as_dict=True, maintain_order=True).items()
    ]
    per_stage = pl.concat(parts) if parts else pl.DataFrame(schema=STAGE_SCHEMA)
    counts = pl.col("entered", "advanced", "pending", h.ORDER).cast(pl.Int64)
    return CohortFacts(stages=per_stage.with_columns(counts).select(STAGE_COLUMNS), deals=per_deal)
