"""Vectorized option pricing: Black-76 prices and Greeks as pure functions over arrays."""

from forecaster.pricing.black import black76_greeks, black76_price

__all__ = ["black76_greeks", "black76_price"]
