"""The backtester and policy layer (DESIGN section 10): hedge and margin policies stepped through a market."""
