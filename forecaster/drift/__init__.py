"""The drift engine: forecast scenarios of (return, IV change) and the book's Greeks, P&L and margin at t+h."""

from forecaster.drift.engine import QUANTILES, DriftResult, drift_distribution
from forecaster.drift.forecast import HorizonForecast
from forecaster.drift.scenarios import METHODS, Scenarios, draw_scenarios, uniforms

__all__ = [
    "METHODS",
    "QUANTILES",
    "DriftResult",
    "HorizonForecast",
    "Scenarios",
    "draw_scenarios",
    "drift_distribution",
    "uniforms",
]
