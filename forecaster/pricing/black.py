"""Black-76 and Black-Scholes prices and Greeks as pure vectorized functions (numpy, or torch tensors).

Shapes: every input broadcasts against the others; every output has the broadcast shape. Pass torch tensors
(any of the inputs) and the same formulas run in torch on the tensors' device and dtype (CPU or CUDA); numpy
inputs give float64 numpy arrays.

Units: prices, ``forward``, ``spot`` and ``strike`` in quote currency; ``tau`` in years (> 0); ``sigma``
annualized decimal (> 0); ``rate`` and ``dividend`` continuously compounded per year. At ``tau`` = 0 or
``sigma`` = 0 the price is the (discounted) intrinsic value and delta the step function (½ at the money);
gamma, vega, vanna and volga are 0 there, and theta is what carry leaves: r V (less (r − q) S delta for
Black-Scholes, whose spot is held as time passes).

Greeks are per unit of the underlying:

- ``delta`` = dV/dF (Black-76) or dV/dS (Black-Scholes), ``gamma`` = the second derivative;
- ``vega`` = dV/dσ per 1.00 of vol (divide by 100 for a vol point);
- ``theta`` = dV/dt per year of calendar time (time passing, ``tau`` shrinking; negative for a long option);
- ``vanna`` = d²V/dF dσ (or dS dσ), ``volga`` = d²V/dσ².

Prices are computed from the out-of-the-money option in a scaled form (``erfcx``), so a far-out-of-the-money
price keeps its relative precision where ``F N(d1) − K N(d2)`` would cancel to noise; in-the-money prices add
the intrinsic value (put-call parity).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from forecaster.pricing.backend import as_arrays

FloatArray = npt.NDArray[np.float64]
ArrayLike = Any  # numpy array-like or torch tensor

GREEKS = ("delta", "gamma", "vega", "theta", "vanna", "volga")
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def black76_price(
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
) -> FloatArray:
    """Black-76 price of a European option on a forward, discounted at ``rate`` (0: undiscounted).

    Shape: the broadcast shape of the inputs.
    """
    xp, (f, k, t, s, r), (call,) = as_arrays((forward, strike, tau, sigma, rate), (is_call,))
    return xp.exp(-r * t) * _undiscounted_price(xp, f, k, t, s, call)


def black76_greeks(
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
) -> dict[str, FloatArray]:
    """Black-76 delta, gamma, vega, theta, vanna, volga with respect to the forward (module docstring units).

    The forward is held fixed as time passes, so theta = r V − e^{−rτ} F φ(d1) σ / (2√τ).
    Shape: each value has the broadcast shape of the inputs.
    """
    xp, (f, k, t, s, r), (call,) = as_arrays((forward, strike, tau, sigma, rate), (is_call,))
    disc = xp.exp(-r * t)
    g = _forward_greeks(xp, f, k, t, s, call)
    price = disc * _undiscounted_price(xp, f, k, t, s, call)
    return _broadcast(
        xp,
        {
            "delta": disc * g.delta,
            "gamma": disc * g.gamma,
            "vega": disc * g.vega,
            "theta": r * price + disc * g.decay,
            "vanna": disc * g.vanna,
            "volga": disc * g.volga,
        },
    )


def black_scholes_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
    dividend: ArrayLike = 0.0,
) -> FloatArray:
    """Black-Scholes(-Merton) price with a continuous dividend (or foreign) rate. Shape: broadcast of inputs."""
    xp, (sp, k, t, s, r, q), (call,) = as_arrays((spot, strike, tau, sigma, rate, dividend), (is_call,))
    return xp.exp(-r * t) * _undiscounted_price(xp, sp * xp.exp((r - q) * t), k, t, s, call)


def black_scholes_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
    dividend: ArrayLike = 0.0,
) -> dict[str, FloatArray]:
    """Black-Scholes delta, gamma, vega, theta, vanna, volga with respect to the spot (module docstring units).

    theta = r V − q S e^{−qτ} N(±d1)·(±1) − S e^{−qτ} φ(d1) σ / (2√τ): the usual closed form.
    Shape: each value has the broadcast shape of the inputs.
    """
    xp, (sp, k, t, s, r, q), (call,) = as_arrays((spot, strike, tau, sigma, rate, dividend), (is_call,))
    growth = xp.exp((r - q) * t)  # dF/dS
    f = sp * growth
    disc = xp.exp(-r * t)
    g = _forward_greeks(xp, f, k, t, s, call)
    price = disc * _undiscounted_price(xp, f, k, t, s, call)
    delta_s = disc * growth * g.delta  # e^{-q tau} N(d1) for a call
    return _broadcast(
        xp,
        {
            "delta": delta_s,
            "gamma": disc * growth**2 * g.gamma,
            "vega": disc * g.vega,
            # V(S, t) = e^{-r tau} B(S e^{(r-q) tau}, tau): d/dt at fixed S, tau = T - t
            "theta": r * price - (r - q) * f * disc * g.delta + disc * g.decay,
            "vanna": disc * growth * g.vanna,
            "volga": disc * g.volga,
        },
    )


def _undiscounted_price(xp: SimpleNamespace, f: Any, k: Any, t: Any, s: Any, call: Any) -> Any:
    """sqrt(F K) · b(−|x|, σ√τ) + intrinsic, where b is the normalized out-of-the-money call price."""
    intrinsic = xp.where(call, xp.maximum(f - k, 0.0 * f), xp.maximum(k - f, 0.0 * k))
    x = -xp.abs(xp.log(f / k))  # <= 0: the out-of-the-money side
    sd = s * xp.sqrt(t)
    live = sd > 0
    # beyond sigma sqrt(tau) = 50 the price equals its upper bound to machine precision; the clip keeps erfcx finite
    sd_safe = xp.minimum(xp.where(live, sd, 1.0 + 0.0 * sd), 50.0 + 0.0 * sd)
    d1 = x / sd_safe + 0.5 * sd_safe
    d2 = d1 - sd_safe
    # N(d) = erfcx(-d/√2) e^{-d²/2} / 2, and e^{x/2 - d1²/2} = e^{-x/2 - d2²/2} = e^{-x²/(2sd²) - sd²/8}
    erfcx = _erfcx(xp)
    scale = 0.5 * xp.exp(-0.5 * (x / sd_safe) ** 2 - 0.125 * sd_safe**2)
    otm = xp.sqrt(f * k) * scale * (erfcx(-d1 * _INV_SQRT_2) - erfcx(-d2 * _INV_SQRT_2))
    return intrinsic + xp.where(live, otm, 0.0 * otm)


def _forward_greeks(xp: SimpleNamespace, f: Any, k: Any, t: Any, s: Any, call: Any) -> SimpleNamespace:
    """Undiscounted Greeks with respect to the forward; ``decay`` = dV/dt at fixed F (per year)."""
    sqrt_t = xp.sqrt(t)
    sd = s * sqrt_t
    live = sd > 0
    one = 1.0 + 0.0 * sd
    sd_safe, s_safe, sqrt_t_safe = xp.where(live, sd, one), xp.where(s > 0, s, one), xp.where(t > 0, sqrt_t, one)
    d1 = xp.log(f / k) / sd_safe + 0.5 * sd_safe
    d2 = d1 - sd_safe
    pdf = xp.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    n1 = xp.ndtr(d1)
    step = xp.where(f > k, one, xp.where(f < k, 0.0 * one, 0.5 * one))  # the delta of an expired call
    call_delta = xp.where(live, n1, step)
    zero = 0.0 * one
    vega = xp.where(live, f * pdf * sqrt_t, zero)
    return SimpleNamespace(
        # a put's delta as -N(-d1), not N(d1) - 1: far out of the money the difference would cancel to noise
        delta=xp.where(call, call_delta, xp.where(live, -xp.ndtr(-d1), step - 1.0)),
        gamma=xp.where(live, pdf / (f * sd_safe), zero),
        vega=vega,
        decay=xp.where(live, -f * pdf * s / (2.0 * sqrt_t_safe), zero),
        vanna=xp.where(live, -pdf * d2 / s_safe, zero),
        volga=xp.where(live, vega * d1 * d2 / s_safe, zero),
    )


def _erfcx(xp: SimpleNamespace) -> Any:
    if xp.name == "torch":
        import torch

        return torch.special.erfcx
    from scipy.special import erfcx

    return erfcx


def _broadcast(xp: SimpleNamespace, values: dict[str, Any]) -> dict[str, Any]:
    if xp.name == "torch":
        import torch

        return dict(zip(values, torch.broadcast_tensors(*values.values()), strict=True))
    return {
        name: np.array(v, dtype=float) for name, v in zip(values, np.broadcast_arrays(*values.values()), strict=True)
    }
