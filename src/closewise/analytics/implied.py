"""Status changes implied by an opportunity's record when its log has none.

DESIGN rule: an opportunity imported without any history is taken as created (open, in its first known
stage) at its created date and, if closed, closed at its close date. A closed opportunity whose change log
has no `status` change therefore gets one implied change: `status` from open to its current status at its
`closed_at` (its `created_at` when that is empty). Every reader of the log (`analytics.snapshots`,
`analytics.history`) adds these rows first, so they all agree on when such a deal closed.
"""

from __future__ import annotations

import polars as pl

from closewise.analytics import schema as s
from closewise.domain.enums import ChangeField, OpportunityStatus


def with_implied_status_changes(opportunities: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """`changes` followed by the implied `status` change of every closed opportunity of `opportunities`
    that has no logged `status` change (none are added when there are no such opportunities)."""
    status = ChangeField.STATUS.value
    logged = changes.filter(pl.col(s.FIELD) == status)[s.OPPORTUNITY_ID].unique()
    implied = opportunities.filter(
        pl.col(s.STATUS).is_not_null(),
        pl.col(s.STATUS) != OpportunityStatus.OPEN.value,
        ~pl.col(s.ID).is_in(logged.implode()),
    ).select(
        pl.col(s.ID).cast(s.CHANGE_SCHEMA[s.OPPORTUNITY_ID]).alias(s.OPPORTUNITY_ID),
        pl.lit(status, dtype=pl.String).alias(s.FIELD),
        pl.lit(OpportunityStatus.OPEN.value, dtype=pl.String).alias(s.OLD_VALUE),
        pl.col(s.STATUS).cast(pl.String).alias(s.NEW_VALUE),
        pl.coalesce(s.CLOSED_AT, s.CREATED_AT).cast(s.CHANGE_SCHEMA[s.CHANGED_AT]).alias(s.CHANGED_AT),
    )
    if implied.is_empty():
        return changes
    return pl.concat([changes.select(list(s.CHANGE_SCHEMA)), implied], how="vertical")
