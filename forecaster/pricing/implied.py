"""Implied volatility: Black-76 (and Black-Scholes) prices inverted for sigma, vectorized over numpy arrays.

What is solved
--------------
A price is compared with its bounds as ``black76_price`` discounts (``e^{−rτ}`` times the undiscounted value, so
every price it returns lies inside them), then reduced to the normalized out-of-the-money call: ``x = −|ln(F/K)|``
(≤ 0, from ``log1p`` near the money), ``β = (price − intrinsic) / (e^{−rτ} √(FK))`` (put-call parity turns an
in-the-money price into the out-of-the-money one) and its distance to the upper bound
``γ = (upper − price) / (e^{−rτ} √(FK))``. Discounted intrinsic: ``e^{−rτ} max(F − K, 0)`` for a call,
``e^{−rτ} max(K − F, 0)`` for a put; upper bound: ``e^{−rτ} F`` for a call, ``e^{−rτ} K`` for a put. With
``h = x/s`` and ``t = s/2``, the normalized price of total vol ``s = σ√τ`` is

    b(x, s) = e^{x/2} N(h + t) − e^{−x/2} N(h − t) = φ(h) e^{−t²/2} [Y(h + t) − Y(h − t)],   Y = N/φ

with upper bound ``e^{x/2}`` and ``e^{x/2} − b = e^{x/2} N(−h − t) + e^{−x/2} N(h − t)`` (two positive terms, no
cancellation). The solver finds ``s`` with ``b(x, s) = β`` and returns ``σ = s / √τ``.

How
---
- Objective: ``ln(b/β)`` when ``β ≤ γ`` (relative precision for small and tiny prices; ``b/β`` is divided
  before the log so that a price of 1e-300 keeps its digits), else ``ln(γ / (e^{x/2} − b))`` (a price near the
  upper bound keeps the precision of its distance to it).
- ``Y(h + t) − Y(h − t) = √(π/2) [erfcx(−d1/√2) − erfcx(−d2/√2)]``; where ``t`` is small against ``max(2.5, |h|)``
  that difference would cancel, and it is summed instead as ``2 Σ_{k<9} Y^{(2k+1)}(h) t^{2k+1} / (2k+1)!``
  (``Y' = 1 + hY``, ``Y^{(n+1)} = h Y^{(n)} + n Y^{(n−1)}``; ``1 + hY`` by a continued fraction for h < −3). Near
  the money, total vols down to 1e-300 stay exact.
- A certified bracket ``[lo, hi]``: ``b(x, s) ≤ b(0, s) = erf(s/√8)`` gives ``lo`` (via ``erfinv(β)``, or
  ``erfcinv`` of the precise distance to the bound), ``e^{x/2} − b ≥ e^{x/2} N(−s/2)`` another ``lo``, and for
  ``s ≥ 2√|x|``, ``e^{x/2} − b ≤ e^{x/2} N(−s/4) + e^{−x/2} N(−s/2)`` gives ``hi``.
- A start from asymptotics: the inverse of ``(2π|x|/(3√3)) N(−|x|/(√3 s))³`` (the small-``s`` limit of ``b``,
  Jäckel's "lower map" in "Let's be rational") or ``√8 erfinv(β)`` (exact at the money) in the lower half,
  ``−2 N⁻¹(γ / (2 e^{x/2}))`` (exact at the money) near the upper bound.
- Halley steps; a step that leaves the bracket is replaced by bisection (geometric while ``hi > 2 lo``). All
  elements iterate together and converged ones (relative step below :data:`TOLERANCE`, that last step taken)
  drop out; at most :data:`MAX_ITERATIONS`, more than bisection alone needs from the bracket. Measured: 1 to 7
  iterations, 2 or 3 for most (``tests/pricing/test_implied.py``).

Results and flags
-----------------
:func:`implied_vol` returns an :class:`IVResult` with ``vol`` (annualized decimal) and ``flag`` (int8), both of the
broadcast shape of the inputs (0-d arrays for scalars):

- ``0`` :data:`IV_OK`: discounted intrinsic < price < upper bound; ``vol`` finite and > 0.
- ``1`` :data:`IV_AT_INTRINSIC`: price equals the discounted intrinsic value (e.g. an out-of-the-money price of 0,
  or a time value below an ulp of the intrinsic value); ``vol`` 0.0, which reprices it exactly.
- ``2`` :data:`IV_BELOW_INTRINSIC`: price below the discounted intrinsic value; ``vol`` NaN.
- ``3`` :data:`IV_ABOVE_UPPER`: price at or above the upper bound; ``vol`` NaN.
- ``4`` :data:`IV_NON_FINITE`: price, forward (spot), strike, tau, rate (or dividend) NaN or infinite; ``vol`` NaN.
- ``5`` :data:`IV_NON_POSITIVE`: forward (spot), strike or tau ≤ 0; ``vol`` NaN.

With ``errors="raise"``, any flag ≥ 2 raises :class:`ImpliedVolError` (a ``ValueError``) naming how many elements
have no vol, by reason, and the first one: its index, inputs, price and the bound it breaks.

Precision
---------
The solver returns the vol whose normalized price equals ``β`` to a few ulps. The vol then carries the rounding of
the price amplified by ``κ = price / (σ vega)``: about 1 where the vol matters (out of the money, near the money),
large deep in the money (the time value is a few ulps of the price) or within a few ulps of the upper bound.
Measured: vol within 4 ulps × (1 + κ) of the truth for mpmath-exact prices; repriced with ``black76_price``, within
~1e-12 of the input price (its own rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import erfcinv, erfcx, erfinv, log_ndtr, ndtri

from forecaster.errors import ForecasterError

FloatArray = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = Any  # numpy array-like
Errors = Literal["flag", "raise"]

IV_OK, IV_AT_INTRINSIC, IV_BELOW_INTRINSIC, IV_ABOVE_UPPER, IV_NON_FINITE, IV_NON_POSITIVE = range(6)
FLAG_MEANINGS = {
    IV_OK: "ok",
    IV_AT_INTRINSIC: "price at intrinsic value (vol 0)",
    IV_BELOW_INTRINSIC: "price below the discounted intrinsic value",
    IV_ABOVE_UPPER: "price at or above the upper bound",
    IV_NON_FINITE: "non-finite input",
    IV_NON_POSITIVE: "non-positive forward, strike or tau",
}
ERRORS = ("flag", "raise")
MAX_ITERATIONS = 80
TOLERANCE = 64.0 * np.finfo(float).eps  # a relative step in s below it ends the iteration (after taking it)

_SQRT_8 = math.sqrt(8.0)
_SQRT_3 = math.sqrt(3.0)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SERIES_T_OVER_H = 0.1  # series where t <= 0.1 max(2.5, |h|): 9 terms reach 1e-18, erfcx loses <= 5 ulps beyond
_SERIES_TERMS = 9
_SERIES_MAX_ABS_X = 2.0  # beyond it the series' recurrence loses (|x|/2)^{2k} ulps; the erfcx form is exact enough
_CF_ABOVE = 3.0  # 1 + hY(h) by continued fraction below h = -3 (direct: loses up to ~12 ulps at h = -3)
_CF_DEPTH = 60  # converged to 1e-18 for h <= -3
_BRACKET_MARGIN = 1e-12
_ERFCX_MAX_D1 = 25.0  # beyond it erfcx(-d1/sqrt2) nears overflow; b = upper - gap there


class ImpliedVolError(ForecasterError, ValueError):
    """A price outside the no-arbitrage bounds, or an invalid input, met with ``errors="raise"``."""


@dataclass(frozen=True)
class IVResult:
    """Implied vols and a flag per element (codes in the module docstring).

    Attributes
    ----------
    vol
        Annualized decimal vol; 0.0 where ``flag`` is 1, NaN where ``flag`` ≥ 2. Shape: broadcast of the inputs.
    flag
        int8 code per element, same shape.
    """

    vol: FloatArray
    flag: Int8Array

    @property
    def ok(self) -> BoolArray:
        """Elements with a vol (flag 0 or 1). Shape: as ``vol``."""
        return self.flag <= IV_AT_INTRINSIC


def implied_vol(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
    errors: Errors = "flag",
) -> IVResult:
    """Black-76 implied vol of prices discounted at ``rate`` (the inverse of ``black76_price``).

    Parameters
    ----------
    price
        Option prices in the units of ``forward`` and ``strike`` (quote currency).
    forward, strike
        > 0.
    tau
        Years to expiry, > 0.
    is_call
        True for calls, False for puts.
    rate
        Continuously compounded discount rate per year.
    errors
        ``"flag"``: out-of-bound or invalid elements get NaN and a flag; ``"raise"``: raise on any of them.

    Returns
    -------
    IVResult
        ``vol`` and ``flag``, shape: the broadcast shape of all inputs (0-d when all are scalars).

    Raises
    ------
    ImpliedVolError
        With ``errors="raise"``, when any element has a flag ≥ 2 (message: count, first index, value, bound).
    """
    _check_errors(errors)
    p, f, k, t, r, call = _broadcast(price, forward, strike, tau, rate, is_call)
    vol, flag = _invert(p, f, k, t, r, call)
    if errors == "raise":
        _raise_if_flagged("implied_vol", flag, p, {"forward": f, "strike": k, "tau": t, "rate": r}, f, k, t, r, call)
    return IVResult(vol, flag)


def implied_vol_bs(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    is_call: ArrayLike,
    *,
    rate: ArrayLike = 0.0,
    dividend: ArrayLike = 0.0,
    errors: Errors = "flag",
) -> IVResult:
    """Black-Scholes(-Merton) implied vol (the inverse of ``black_scholes_price``).

    Solved as Black-76 on the forward ``spot e^{(rate − dividend) τ}``; bounds: the intrinsic value
    ``max(±(S e^{−qτ} − K e^{−rτ}), 0)`` and the upper bound ``S e^{−qτ}`` (call) or ``K e^{−rτ}`` (put).
    Parameters, result and errors as :func:`implied_vol`, with ``spot`` > 0 in place of the forward and
    ``dividend`` the continuous dividend (or foreign) rate. Shape: broadcast of all inputs.
    """
    _check_errors(errors)
    p, s, k, t, r, q, call = _broadcast(price, spot, strike, tau, rate, dividend, is_call)
    with np.errstate(over="ignore", invalid="ignore"):
        f = s * np.exp((r - q) * t)
    vol, flag = _invert(p, f, k, t, r, call)
    flag = np.where(np.isfinite(q), flag, np.int8(IV_NON_FINITE)).astype(np.int8)
    vol = np.where(flag <= IV_AT_INTRINSIC, vol, np.nan)
    if errors == "raise":
        shown = {"spot": s, "strike": k, "tau": t, "rate": r, "dividend": q}
        _raise_if_flagged("implied_vol_bs", flag, p, shown, f, k, t, r, call)
    return IVResult(vol, flag)


# ---- inputs, flags, errors ------------------------------------------------------------------------------------------


def _check_errors(errors: str) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {', '.join(map(repr, ERRORS))}; got {errors!r}")


def _broadcast(*values: ArrayLike) -> tuple[np.ndarray, ...]:
    """Float64 arrays of the broadcast shape; the last value (``is_call``) as bool."""
    *floats, flags = values
    arrays = [np.asarray(v, dtype=float) for v in floats] + [np.asarray(flags).astype(bool)]
    try:
        return tuple(np.array(a) for a in np.broadcast_arrays(*arrays))
    except ValueError as exc:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"implied vol inputs must broadcast to one shape; got shapes {shapes}") from exc


def _bounds(
    f: FloatArray, k: FloatArray, t: FloatArray, r: FloatArray, call: BoolArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Discount factor, discounted intrinsic value and discounted upper bound. Shape: broadcast of the inputs.

    Discounted as ``black76_price`` discounts (``e^{−rτ}`` times the undiscounted value), so a price it returns is
    never below the intrinsic value computed here.
    """
    disc = np.exp(-r * t)
    intrinsic = np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    return disc, disc * intrinsic, disc * np.where(call, f, k)


def _flags(price: FloatArray, f: FloatArray, k: FloatArray, t: FloatArray, r: FloatArray, call: BoolArray) -> Int8Array:
    """The flag of every element (module docstring). Shape: as the inputs."""
    _, intrinsic, upper = _bounds(f, k, t, r, call)
    finite = np.isfinite(price) & np.isfinite(f) & np.isfinite(k) & np.isfinite(t) & np.isfinite(r)
    positive = (f > 0) & (k > 0) & (t > 0)
    flag = np.select(
        [~finite, ~positive, price < intrinsic, price >= upper, price == intrinsic],
        [IV_NON_FINITE, IV_NON_POSITIVE, IV_BELOW_INTRINSIC, IV_ABOVE_UPPER, IV_AT_INTRINSIC],
        IV_OK,
    )
    return flag.astype(np.int8)


def _invert(
    price: FloatArray, f: FloatArray, k: FloatArray, t: FloatArray, r: FloatArray, call: BoolArray
) -> tuple[FloatArray, Int8Array]:
    """Vol and flag of every element. Shape: as the inputs."""
    with np.errstate(all="ignore"):
        flag = _flags(price, f, k, t, r, call)
        vol = np.where(flag == IV_AT_INTRINSIC, 0.0, np.nan)
        solve = flag == IV_OK
        if solve.any():
            fs, ks = f[solve], k[solve]  # (m,)
            disc, intrinsic, upper = _bounds(fs, ks, t[solve], r[solve], call[solve])
            scale = disc * np.sqrt(fs) * np.sqrt(ks)  # sqrt(F K) discounted; no overflow of F K
            ps = price[solve]
            s, _ = normalized_total_vol(-np.abs(_log_ratio(fs, ks)), (ps - intrinsic) / scale, (upper - ps) / scale)
            vol[solve] = s / np.sqrt(t[solve])
    return vol, flag


def _log_ratio(f: FloatArray, k: FloatArray) -> FloatArray:
    """ln(F/K) to full relative precision: near the money F − K is exact and log1p keeps its digits. Shape: (m,)."""
    ratio = f / k
    near = np.abs(f - k) <= 0.5 * k
    far = np.where((ratio > 0) & np.isfinite(ratio), np.log(ratio), np.log(f) - np.log(k))
    return np.where(near, np.log1p((f - k) / k), far)


def _raise_if_flagged(
    caller: str,
    flag: Int8Array,
    price: FloatArray,
    shown: dict[str, FloatArray],
    f: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    call: BoolArray,
) -> None:
    bad = flag > IV_AT_INTRINSIC
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), flag.shape)
    code, kind = int(flag[first]), "call" if call[first] else "put"
    inputs = ", ".join(f"{name} {float(v[first]):.17g}" for name, v in shown.items())
    with np.errstate(all="ignore"):
        _, intrinsic, upper = (float(v) for v in _bounds(f[first], k[first], t[first], r[first], call[first]))
    why = {
        IV_BELOW_INTRINSIC: f"is below the discounted intrinsic value {intrinsic:.17g}",
        IV_ABOVE_UPPER: f"is at or above the upper bound {upper:.17g} (the discounted "
        + ("forward, for a call)" if kind == "call" else "strike, for a put)"),
        IV_NON_FINITE: "comes with an input (or is itself) NaN or infinite",
        IV_NON_POSITIVE: "comes with a forward, strike or tau that is not > 0",
    }[code]
    counts = ", ".join(f"{np.count_nonzero(flag == c)} {FLAG_MEANINGS[c]}" for c in range(2, 6) if (flag == c).any())
    raise ImpliedVolError(
        f"{caller}: {np.count_nonzero(bad)} of {flag.size} elements have no implied vol ({counts}); the first, at "
        f"index {tuple(int(i) for i in first)}, a {kind} with {inputs}: price {float(price[first]):.17g} {why}. "
        "Allowed: discounted intrinsic < price < upper bound, finite inputs, forward, strike and tau > 0. Fix: check "
        "the price units (quote currency, not coin) and the inputs, or pass errors='flag' to get NaN and a flag per "
        "element."
    )


# ---- the normalized problem -----------------------------------------------------------------------------------------


def normalized_total_vol(x: FloatArray, beta: FloatArray, gap: FloatArray) -> tuple[FloatArray, IntArray]:
    """Total vol ``s`` with ``b(x, s) = beta``, for ``x ≤ 0``, ``beta > 0``, ``gap = e^{x/2} − beta > 0``.

    ``gap`` is passed rather than computed so that prices near the upper bound keep their precision.
    Returns ``(s, iterations)``. Shape: (m,) for inputs of shape (m,).
    """
    x, beta, gap = (np.asarray(v, dtype=float).ravel() for v in (x, beta, gap))
    upper = gap < beta  # the upper half: match the distance to the bound
    s, lo, hi = _start(x, beta, gap, upper)
    iterations = np.zeros(x.shape, dtype=np.int64)
    active = np.arange(x.size)
    with np.errstate(all="ignore"):
        for _ in range(MAX_ITERATIONS):
            sa, la, ha = s[active], lo[active], hi[active]
            f, d1f, d2f = _objective(x[active], sa, upper[active], beta[active], gap[active])
            la = np.where(f < 0, sa, la)  # the objective increases with s
            ha = np.where(f > 0, sa, ha)
            step = np.where(f == 0, 0.0, _halley_step(f, d1f, d2f))
            converged = np.abs(step) <= TOLERANCE * sa  # this last step is still taken: it only refines
            new = sa + step
            stray = ~converged & ~((new > la) & (new < ha))  # also catches NaN
            new = np.where(stray, _bisect(la, ha), new)
            s[active], lo[active], hi[active] = new, la, ha
            iterations[active] += 1
            active = active[~(converged | (ha - la <= TOLERANCE * la))]
            if active.size == 0:
                break
    return s, iterations


def _start(x: FloatArray, beta: FloatArray, gap: FloatArray, upper: BoolArray) -> tuple[FloatArray, ...]:
    """Initial guess and certified bracket ``(s, lo, hi)`` (module docstring). Shape: (m,) each."""
    ub = np.exp(0.5 * x)
    ax = -x
    with np.errstate(all="ignore"):
        # b <= erf(s/√8), i.e. 1 − b >= erfc(s/√8): from beta below, from the precise gap above
        at_the_money = np.where(upper, _SQRT_8 * erfcinv(gap - np.expm1(0.5 * x)), _SQRT_8 * erfinv(beta))
        lo = np.maximum(at_the_money, np.where(gap < 0.5 * ub, -2.0 * ndtri(gap / ub), 0.0))
        hi = np.maximum.reduce([2.0 * np.sqrt(ax), -4.0 * ndtri(0.5 * gap / ub), -2.0 * ndtri(0.5 * gap * ub)])
        hi = np.where(np.isfinite(hi) & (hi > lo), hi, np.maximum(2.0 * lo, 100.0))
        c = np.cbrt(3.0 * _SQRT_3 * beta / (2.0 * math.pi * ax))
        lower_map = np.where(c < 0.5, -ax / (_SQRT_3 * ndtri(c)), lo)
        near_upper = -2.0 * ndtri(0.5 * gap / ub)
        guess = np.where(upper, near_upper, np.maximum(lower_map, lo))  # at the money, lo is the root
    # widened by a hair: a bound can be the root itself (x = 0), and Halley steps must land strictly inside
    lo, hi = lo * (1.0 - _BRACKET_MARGIN), hi * (1.0 + _BRACKET_MARGIN)
    guess = np.where(np.isfinite(guess) & (guess > lo) & (guess < hi), guess, _bisect(lo, hi))
    return guess, lo, hi


def _objective(
    x: FloatArray, s: FloatArray, upper: BoolArray, beta: FloatArray, gap: FloatArray
) -> tuple[FloatArray, ...]:
    """Objective increasing in ``s``, zero at the root, and its first two derivatives. Shape: (m,) each.

    Lower half: ln(b/β); upper half: ln(γ / (e^{x/2} − b)).
    """
    log_v = -_LOG_SQRT_2PI - 0.5 * (x / s) ** 2 - 0.125 * s * s  # ln(db/ds)
    curve = (x / s) ** 2 / s - 0.25 * s  # (d²b/ds²) / (db/ds); s³ would underflow for tiny s
    log_b_over_v, log_b_over_beta = _log_price(x, s, log_v, beta)
    log_gap = _log_gap(x, s)
    rate = np.exp(np.where(upper, log_v - log_gap, -log_b_over_v))  # d/ds of ln b, or of −ln(gap)
    f = np.where(upper, np.log(gap) - log_gap, log_b_over_beta)
    d2f = np.where(upper, rate * curve + rate * rate, rate * curve - rate * rate)
    return f, rate, d2f


def _halley_step(f: FloatArray, d1f: FloatArray, d2f: FloatArray) -> FloatArray:
    newton = -f / d1f
    # Halley's correction, held within a factor of two of Newton's step
    return newton / np.clip(1.0 + 0.5 * newton * d2f / d1f, 0.5, 2.0)


def _bisect(lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Midpoint: geometric while the bracket spans more than a factor of two. Shape: as ``lo``."""
    return np.where(hi > 2.0 * lo, np.sqrt(lo) * np.sqrt(hi), 0.5 * (lo + hi))  # lo * hi may underflow


# ---- the normalized price -------------------------------------------------------------------------------------------


def _log_price(x: FloatArray, s: FloatArray, log_v: FloatArray, beta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(ln(b / v), ln(b / β))`` with ``v = db/ds`` and ``b / v = Y(h + t) − Y(h − t)``. Shape: (m,) each.

    ``b / β`` is divided before its log is taken: for a tiny price near the money, ``ln b`` and ``ln β`` are both
    near −690 and their difference would keep only ~1e-13 of it. Near the bound, ``b = e^{x/2} − gap``.
    """
    h, t = x / s, 0.5 * s
    near_bound = h + t > _ERFCX_MAX_D1
    dy = _y_difference(np.where(near_bound, 0.0, h), np.where(near_bound, 1.0, t))
    ratio = dy / beta
    log_ratio = np.where(np.isfinite(ratio) & (ratio > 0), np.log(ratio), np.log(dy) - np.log(beta))
    log_b = 0.5 * x + np.log1p(-np.exp(_log_gap(x, s) - 0.5 * x))  # used near the bound only
    return np.where(near_bound, log_b - log_v, np.log(dy)), np.where(
        near_bound, log_b - np.log(beta), log_v + log_ratio
    )


def _log_gap(x: FloatArray, s: FloatArray) -> FloatArray:
    """ln(e^{x/2} − b(x, s)) = ln(e^{x/2} N(−h − t) + e^{−x/2} N(h − t)). Shape: (m,)."""
    h, t = x / s, 0.5 * s
    return np.logaddexp(0.5 * x + log_ndtr(-h - t), -0.5 * x + log_ndtr(h - t))


def _y_difference(h: FloatArray, t: FloatArray) -> FloatArray:
    """Y(h + t) − Y(h − t) for h ≤ 0, t > 0, Y = N/φ; by series where erfcx would cancel. Shape: (m,)."""
    series = (t <= _SERIES_T_OVER_H * np.maximum(2.5, -h)) & (-2.0 * h * t <= _SERIES_MAX_ABS_X)
    direct = _SQRT_HALF_PI * (erfcx(-(h + t) * _INV_SQRT_2) - erfcx(-(h - t) * _INV_SQRT_2))
    if not series.any():
        return direct
    return np.where(series, _y_difference_series(h, np.where(series, t, 0.0)), direct)


def _y_difference_series(h: FloatArray, t: FloatArray) -> FloatArray:
    """2 Σ_{k=0..8} Y^{(2k+1)}(h) t^{2k+1} / (2k+1)!, from Y' = 1 + hY and Y^{(n+1)} = hY^{(n)} + nY^{(n−1)}."""
    y_prev, y = _SQRT_HALF_PI * erfcx(-h * _INV_SQRT_2), _one_plus_h_y(h)  # Y, Y'
    w = t * t
    total, power, factorial = y, 1.0, 1.0
    for n in range(1, 2 * _SERIES_TERMS - 1):  # (y_prev, y) = (Y^(n-1), Y^(n)) -> (Y^(n), Y^(n+1))
        y_prev, y = y, h * y + n * y_prev
        if n % 2 == 0:  # Y^(n+1) with n + 1 odd
            power, factorial = power * w, factorial * n * (n + 1)
            total = total + y * power / factorial
    return 2.0 * t * total


def _one_plus_h_y(h: FloatArray) -> FloatArray:
    """Y'(h) = 1 + hY(h) for h ≤ 0 (it cancels to ~1/h² as h -> −∞: a continued fraction there). Shape: (m,)."""
    z = np.maximum(-h, _CF_ABOVE)
    tail = np.zeros_like(z)
    for m in range(_CF_DEPTH, 0, -1):  # Mills ratio N(-z)/φ(z) = 1/(z + 1/(z + 2/(z + ...)))
        tail = m / (z + tail)
    fraction = tail / (z + tail)  # 1 - z / (z + tail) = 1 - z·Mills(z)
    direct = 1.0 + h * _SQRT_HALF_PI * erfcx(-h * _INV_SQRT_2)
    return np.where(-h > _CF_ABOVE, fraction, direct)
