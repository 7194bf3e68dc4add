"""The deal win model: P(an open deal is eventually won | what is known about it at the as-of date).

LightGBM on the deal features of `ml.features` (stage, age, time in stage against its norm, pushes, amount
changes, activity recency and mix, contacts, exit criteria, CRM probability and category, owner's smoothed
win rate and slippage, segment, amount), calibrated on the latest held-out deals (Platt scaling by default),
with the smoothed stage/owner rates of `ml.rates` when fewer than 40 deals were won or 40 lost: see
`ml.boosting` for the recipe and its references. Contributions are TreeSHAP log-odds, turned into sentences
by `ml.explain`.
"""

from __future__ import annotations

from closewise.ml.boosting import CalibratedBoosting, Fallback
from closewise.ml.rates import StageRateModel


class WinModel(CalibratedBoosting):
    """P(won) per example. Hyper-parameters and fitted attributes: see `CalibratedBoosting`."""

    def _make_fallback(self) -> Fallback:
        return StageRateModel(prior_strength=self.prior_strength)
