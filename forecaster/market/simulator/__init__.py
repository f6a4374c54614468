"""The built-in market simulator (DESIGN section 4): regime-switching stochastic volatility with jumps, order flow
that leads regime switches, an option chain in Tardis columns, and the exact oracle forecasts."""

from forecaster.market.simulator.config import REGIMES, SimConfig, sim_config_from_mapping, sim_config_from_spec
from forecaster.market.simulator.engine import SimulatedMarket, simulate, summarize

__all__ = [
    "REGIMES",
    "SimConfig",
    "SimulatedMarket",
    "sim_config_from_mapping",
    "sim_config_from_spec",
    "simulate",
    "summarize",
]
