"""HTTP service for forecasts, drift and adjustments (DESIGN section 9)."""
