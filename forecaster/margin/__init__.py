"""Margin requirements of a book: Deribit-style risk-matrix portfolio margin and CME SPAN-style scenarios.

Both models revalue the book (options with Black-76, linear positions one-for-one) under a grid of price and
implied-vol shocks, per underlying, and turn the worst weighted loss into initial and maintenance margin.
:func:`initial_margin_under_states` does the same from many forecast states at once for the drift engine.
"""

from forecaster.margin.config import (
    MODELS,
    MarginConfig,
    RiskMatrixConfig,
    SpanConfig,
    check_margin_config,
    margin_config_from_mapping,
    margin_config_from_spec,
)
from forecaster.margin.risk_matrix import (
    risk_matrix_grid,
    risk_matrix_margin,
    risk_matrix_rules,
    risk_matrix_shocked_vols,
    risk_matrix_vol_shocks,
)
from forecaster.margin.scenarios import MarginResult, MarginRules, ScenarioGrid, weighted_losses
from forecaster.margin.span import span_grid, span_margin, span_rules, span_shocked_vols, span_vol_shocks
from forecaster.margin.states import (
    initial_margin_under_states,
    maintenance_from_initial,
    margin_rules,
    portfolio_margin,
)

__all__ = [
    "MODELS",
    "MarginConfig",
    "MarginResult",
    "MarginRules",
    "RiskMatrixConfig",
    "ScenarioGrid",
    "SpanConfig",
    "check_margin_config",
    "initial_margin_under_states",
    "maintenance_from_initial",
    "margin_config_from_mapping",
    "margin_config_from_spec",
    "margin_rules",
    "portfolio_margin",
    "risk_matrix_grid",
    "risk_matrix_margin",
    "risk_matrix_rules",
    "risk_matrix_shocked_vols",
    "risk_matrix_vol_shocks",
    "span_grid",
    "span_margin",
    "span_rules",
    "span_shocked_vols",
    "span_vol_shocks",
    "weighted_losses",
]
