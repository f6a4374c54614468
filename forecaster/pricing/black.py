"""Black-76 (options on a forward or perpetual, zero rate): prices and Greeks as pure numpy functions.

All inputs broadcast together; every output has the broadcast shape. Units: ``forward`` and ``strike`` in quote
currency, ``tau`` in years, ``sigma`` annualized decimal; Greeks per unit of the underlying:
delta = dV/dF, gamma = d2V/dF2, vega = dV/dsigma per 1.00 of vol (divide by 100 for a vol point),
theta = dV/dt per year (calendar time decaying), vanna = d2V/dF dsigma, volga = d2V/dsigma2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _d1_d2(forward: ArrayLike, strike: ArrayLike, tau: ArrayLike, sigma: ArrayLike) -> tuple[FloatArray, ...]:
    f, k, t, s = (np.asarray(a, dtype=float) for a in (forward, strike, tau, sigma))
    sd = s * np.sqrt(t)
    d1 = (np.log(f / k) + 0.5 * sd**2) / sd
    return f, k, t, s, sd, d1, d1 - sd


def black76_price(
    forward: ArrayLike, strike: ArrayLike, tau: ArrayLike, sigma: ArrayLike, is_call: ArrayLike
) -> FloatArray:
    """Undiscounted Black-76 price. Shape: broadcast of the inputs. ``tau`` and ``sigma`` must be > 0."""
    f, k, _, _, _, d1, d2 = _d1_d2(forward, strike, tau, sigma)
    call = f * ndtr(d1) - k * ndtr(d2)
    put = k * ndtr(-d2) - f * ndtr(-d1)
    return np.where(np.asarray(is_call, dtype=bool), call, put)


def black76_greeks(
    forward: ArrayLike, strike: ArrayLike, tau: ArrayLike, sigma: ArrayLike, is_call: ArrayLike
) -> dict[str, FloatArray]:
    """Delta, gamma, vega, theta, vanna and volga (see module docstring for units). Each of broadcast shape."""
    f, _, t, s, sd, d1, d2 = _d1_d2(forward, strike, tau, sigma)
    call = np.asarray(is_call, dtype=bool)
    pdf = np.exp(-0.5 * d1**2) / _SQRT_2PI
    delta = np.where(call, ndtr(d1), ndtr(d1) - 1.0)
    gamma = pdf / (f * sd)
    vega = f * pdf * np.sqrt(t)
    theta = -f * pdf * s / (2.0 * np.sqrt(t))
    vanna = -pdf * d2 / s
    volga = vega * d1 * d2 / s
    shape = np.broadcast_shapes(delta.shape, gamma.shape)
    return {
        name: np.broadcast_to(value, shape).astype(float)
        for name, value in {
            "delta": delta,
            "gamma": gamma,
            "vega": vega,
            "theta": theta,
            "vanna": vanna,
            "volga": volga,
        }.items()
    }
