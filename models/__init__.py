"""Forecasters of realized variance, implied-vol change and regimes (DESIGN sections 1 and 5)."""
