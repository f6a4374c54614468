"""Trading costs of the hedge instrument: a proportional fee plus square-root market impact.

For an order of ``q`` units at spot ``S`` when the daily volatility is ``σ_d`` (decimal):

    cost(q) = fee_rate · |q| · S  +  impact_coef · σ_d · S · |q| · sqrt(|q| / adv_units)

The second term is the square-root law of market impact (Almgren et al. 2005; Tóth et al. 2011): the price moves
against the order by ``impact_coef · σ_d · sqrt(|q| / ADV)`` (a fraction of the price), paid on the whole order.
``adv_units`` is the instrument's average daily volume in units of the underlying. Costs are in quote currency
and always ≥ 0; both terms are in the spec (``backtest.costs``).

The *cost rate* of Whalley-Wilmott (λ, a fraction of notional per unit traded) is the marginal cost of a one-unit
order: ``fee_rate + impact_coef · σ_d · sqrt(1 / adv_units)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forecaster.errors import ConfigError


@dataclass(frozen=True)
class CostModel:
    """Proportional fee plus square-root impact (module docstring). Units: rates are fractions of notional."""

    fee_rate: float = 0.0005  # 5 bp of notional: a perpetual's taker fee
    impact_coef: float = 0.1  # Y of the square-root law
    adv_units: float = 20_000.0  # average daily volume of the hedge instrument, units of the underlying

    def __post_init__(self) -> None:
        for name, low in (("fee_rate", 0.0), ("impact_coef", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= low and value < 1):
                raise ConfigError("<spec>", f"backtest.costs.{name}", f"must be a number in [0, 1); got {value!r}")
        if not (isinstance(self.adv_units, int | float) and math.isfinite(self.adv_units) and self.adv_units > 0):
            raise ConfigError("<spec>", "backtest.costs.adv_units", f"must be a number > 0; got {self.adv_units!r}")

    def cost(self, units: float, spot: float, sigma_daily: float) -> float:
        """Cost of trading ``units`` (either sign) at ``spot`` when the daily vol is ``sigma_daily``."""
        q = abs(float(units))
        if q == 0.0:
            return 0.0
        impact = self.impact_coef * sigma_daily * math.sqrt(q / self.adv_units)
        return (self.fee_rate + impact) * q * spot

    def rate(self, sigma_daily: float) -> float:
        """λ: the marginal cost of one unit as a fraction of notional (Whalley-Wilmott's proportional cost)."""
        return self.fee_rate + self.impact_coef * sigma_daily * math.sqrt(1.0 / self.adv_units)
