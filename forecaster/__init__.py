"""drift-forecaster: forecast the drift of an options book's Greeks and margin, and act before the market moves."""

__version__ = "0.1.0"
