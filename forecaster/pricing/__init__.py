"""Vectorized option pricing: Black-76 and Black-Scholes prices, Greeks and implied vols, full revaluation of a
book, and arbitrage-free implied-vol surfaces (SVI slices from a chain, or flat from an IV index)."""

from forecaster.pricing.black import GREEKS, black76_greeks, black76_price, black_scholes_greeks, black_scholes_price
from forecaster.pricing.implied import IVResult, implied_vol, implied_vol_bs
from forecaster.pricing.revalue import revalue
from forecaster.pricing.surface import (
    ArbitrageReport,
    FlatSurface,
    ImpliedVolSurface,
    VolSurface,
    flat_surface,
    surface_from_chain,
)
from forecaster.pricing.svi import (
    SliceFit,
    SurfaceError,
    SviParams,
    fit_flat,
    fit_svi,
    svi_density_g,
    svi_total_variance,
)

__all__ = [
    "GREEKS",
    "ArbitrageReport",
    "FlatSurface",
    "IVResult",
    "ImpliedVolSurface",
    "SliceFit",
    "SurfaceError",
    "SviParams",
    "VolSurface",
    "black76_greeks",
    "black76_price",
    "black_scholes_greeks",
    "black_scholes_price",
    "fit_flat",
    "fit_svi",
    "flat_surface",
    "implied_vol",
    "implied_vol_bs",
    "revalue",
    "surface_from_chain",
    "svi_density_g",
    "svi_total_variance",
]
