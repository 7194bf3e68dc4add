"""The lead funnel: lead → accepted → opportunity → won, by source or campaign, with times and revenue; and the
marketing-facing view of lead quality by source.

A lead's opportunity is the one that names it (`opportunities.lead_id`) or that it names
(`leads.converted_opportunity_id`); a lead counts as

- accepted when sales accepted it (`accepted_at`, status accepted or converted) or it became an opportunity
  (sources such as Olist record only the outcome, so every stage implies the ones before it);
- an opportunity when it has one (or its status says converted);
- won when its opportunity is won, bringing that opportunity's amount (in the corporate currency) as revenue.

`conversion_rate` is won / leads. Times are medians in days from the lead's creation.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from closewise.domain.enums import LeadStatus, OpportunityStatus

NONE_LABEL: Final = "(none)"
GROUPS: Final = ("lead_source", "campaign")
_DAY = 86_400.0


def lead_outcomes(leads: pl.DataFrame, opportunities: pl.DataFrame) -> pl.DataFrame:
    """One row per lead: lead_id, lead_source, campaign, owner_id, status, created_at, recycle_reason,
    recycled_count, opportunity_id, accepted, accepted_at, opportunity, opportunity_at, won, won_at, revenue.

    `opportunities` needs id, lead_id, status, created_at, closed_at and `amount_corporate`."""
    opps = opportunities.select(
        pl.col("id").alias("_opp"), "lead_id", pl.col("status").alias("_opp_status"),
        pl.col("created_at").alias("_opp_created"), pl.col("closed_at").alias("_opp_closed"),
        pl.col("amount_corporate").alias("_opp_amount"))
    by_lead = opps.filter(pl.col("lead_id").is_not_null()).sort("_opp").unique("lead_id", keep="first")
    named = opps.drop("lead_id")
    joined = (leads.join(by_lead, left_on="id", right_on="lead_id", how="left")
              .join(named.rename({c: f"{c}_n" for c in named.columns}), left_on="converted_opportunity_id",
                    right_on="_opp_n", how="left"))
    has_opp_row = pl.col("_opp").is_not_null()

    def pick(name: str) -> pl.Expr:
        return pl.when(has_opp_row).then(pl.col(name)).otherwise(pl.col(f"{name}_n"))

    opportunity_id = pl.when(has_opp_row).then(pl.col("_opp")).otherwise(pl.col("converted_opportunity_id"))
    out = joined.with_columns(
        opportunity_id.alias("opportunity_id"),
        pick("_opp_status").alias("_status"),
        pick("_opp_created").alias("_created"),
        pick("_opp_closed").alias("_closed"),
        pick("_opp_amount").alias("_amount"),
    )
    opportunity = pl.col("opportunity_id").is_not_null() | (pl.col("status") == LeadStatus.CONVERTED.value)
    won = (pl.col("_status") == OpportunityStatus.WON.value).fill_null(False)
    accepted = (pl.col("accepted_at").is_not_null()
                | pl.col("status").is_in([LeadStatus.ACCEPTED.value, LeadStatus.CONVERTED.value]) | opportunity)
    return out.select(
        pl.col("id").alias("lead_id"),
        pl.col("lead_source").fill_null(NONE_LABEL),
        pl.col("campaign").fill_null(NONE_LABEL),
        "owner_id", "status", "created_at", "recycle_reason", pl.col("recycled_count").fill_null(0),
        "opportunity_id",
        accepted.fill_null(False).alias("accepted"),
        "accepted_at",
        opportunity.fill_null(False).alias("opportunity"),
        pl.coalesce("converted_at", "_created").alias("opportunity_at"),
        won.alias("won"),
        pl.when(won).then(pl.col("_closed")).otherwise(None).alias("won_at"),
        pl.when(won).then(pl.col("_amount").fill_null(0.0)).otherwise(0.0).alias("revenue"),
    )


def _days(column: str, flag: str) -> pl.Expr:
    span = (pl.col(column) - pl.col("created_at")).dt.total_seconds() / _DAY
    return span.filter(pl.col(flag) & pl.col(column).is_not_null() & (span >= 0)).median()


def funnel(outcomes: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Per `by` (lead_source, campaign, ...; None: one row for all): leads, accepted, opportunities, won,
    acceptance_rate, opportunity_rate (opportunities / accepted), win_rate (won / opportunities),
    conversion_rate (won / leads), days_to_accept, days_to_opportunity, days_to_win (medians), revenue,
    revenue_per_lead, average_deal. Groups by most leads first."""
    aggregates = [
        pl.len().alias("leads"),
        pl.col("accepted").sum().alias("accepted"),
        pl.col("opportunity").sum().alias("opportunities"),
        pl.col("won").sum().alias("won"),
        _days("accepted_at", "accepted").alias("days_to_accept"),
        _days("opportunity_at", "opportunity").alias("days_to_opportunity"),
        _days("won_at", "won").alias("days_to_win"),
        pl.col("revenue").sum().alias("revenue"),
    ]
    grouped = outcomes.select(aggregates) if by is None else outcomes.group_by(by).agg(aggregates)

    def ratio(top: str, bottom: str) -> pl.Expr:
        return pl.when(pl.col(bottom) > 0).then(pl.col(top) / pl.col(bottom)).otherwise(None)

    out = grouped.with_columns(
        ratio("accepted", "leads").alias("acceptance_rate"),
        ratio("opportunities", "accepted").alias("opportunity_rate"),
        ratio("won", "opportunities").alias("win_rate"),
        ratio("won", "leads").alias("conversion_rate"),
        ratio("revenue", "leads").alias("revenue_per_lead"),
        ratio("revenue", "won").alias("average_deal"),
    )
    return out if by is None else out.sort(["leads", by], descending=[True, False])


def lead_quality(outcomes: pl.DataFrame, sla_rows: pl.DataFrame | None = None) -> pl.DataFrame:
    """The marketing view, per lead source: the funnel's rates and revenue per lead, what sales said about the
    leads it turned down (rejected share, recycled share, the most common reason), the come-backs, and — when
    `sla_rows` (from `sla.speed_to_lead`) is given — how fast sales answered (SLA met rate, median working
    minutes). `quality_index` is the source's conversion over the overall conversion (1 = average)."""
    rejected_statuses = [LeadStatus.REJECTED.value, LeadStatus.RECYCLED.value]
    base = funnel(outcomes, "lead_source")
    reasons = (outcomes.filter(pl.col("recycle_reason").is_not_null())
               .group_by("lead_source", "recycle_reason").agg(pl.len().alias("_n"))
               .sort(["lead_source", "_n", "recycle_reason"], descending=[False, True, False])
               .group_by("lead_source", maintain_order=True).first()
               .select("lead_source", pl.col("recycle_reason").alias("top_reason")))
    turned = outcomes.group_by("lead_source").agg(
        pl.col("status").is_in(rejected_statuses).mean().alias("rejected_share"),
        (pl.col("status") == LeadStatus.RECYCLED.value).mean().alias("recycled_share"),
        (pl.col("recycled_count") > 0).sum().alias("came_back"),
    )
    overall = outcomes.select(pl.col("won").mean()).item() if outcomes.height else None
    out = base.join(turned, on="lead_source", how="left").join(reasons, on="lead_source", how="left")
    out = out.with_columns(
        (pl.col("conversion_rate") / overall if overall else pl.lit(None, dtype=pl.Float64)).alias("quality_index"))
    if sla_rows is not None:
        speed = sla_rows.with_columns(pl.col("lead_source").fill_null(NONE_LABEL)).group_by("lead_source").agg(
            ((pl.col("state") == "met").sum() / pl.col("state").is_in(["met", "late", "overdue"]).sum())
            .alias("sla_met_rate"),
            pl.col("business_minutes").filter(pl.col("touched_at").is_not_null()).median()
            .alias("median_business_minutes"))
        out = out.join(speed, on="lead_source", how="left")
    return out.sort(["quality_index", "lead_source"], descending=[True, False], nulls_last=True)

