"""Market data: loaders and validation of the data contracts (DESIGN section 3), and the simulator.

Every loader returns a :class:`LoadResult` (``.data``, ``.repairs``, ``.notes``, ``.path``) and raises
:class:`forecaster.errors.DataValidationError` naming file, row, column, value, rule and fix.
"""

from forecaster.market.bars import load_bars
from forecaster.market.iv_index import align_iv_to_bars, load_iv_index
from forecaster.market.options_chain import load_options_chain
from forecaster.market.portfolio_file import Limits, Portfolio, Position, load_portfolio
from forecaster.market.trades import load_trades
from forecaster.market.validation import LoadResult, RepairAction

__all__ = [
    "Limits",
    "LoadResult",
    "Portfolio",
    "Position",
    "RepairAction",
    "align_iv_to_bars",
    "load_bars",
    "load_iv_index",
    "load_options_chain",
    "load_portfolio",
    "load_trades",
]
