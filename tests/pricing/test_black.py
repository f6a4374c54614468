"""Black-76 and Black-Scholes: known values, put-call parity, finite differences of the price, and limits.

QuantLib and mpmath references are in ``test_reference_quantlib.py``; the torch backend in ``test_torch_path.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest

from forecaster.pricing import GREEKS, black76_greeks, black76_price, black_scholes_greeks, black_scholes_price

FloatArray = npt.NDArray[np.float64]
MODELS = ("black76", "black_scholes")


def domain(n: int, seed: int, z_max: float = 3.0) -> SimpleNamespace:
    """Seeded options: ln(K/F) within ±z_max standard deviations, 1 week to 3 years, vol 10%..150%.

    ``underlying`` is the forward (Black-76) or spot (Black-Scholes). Shape: every field (n,).
    """
    rng = np.random.default_rng(seed)
    underlying = np.exp(rng.uniform(0.0, math.log(1e5), n))
    tau = np.exp(rng.uniform(math.log(1 / 52), math.log(3.0), n))
    sigma = rng.uniform(0.1, 1.5, n)
    strike = underlying * np.exp(rng.uniform(-z_max, z_max, n) * sigma * np.sqrt(tau))
    return SimpleNamespace(
        underlying=underlying,
        strike=strike,
        tau=tau,
        sigma=sigma,
        rate=rng.uniform(-0.02, 0.10, n),
        dividend=rng.uniform(-0.02, 0.10, n),
    )


def pricer(model: str) -> Callable[..., FloatArray]:
    """price(underlying, strike, tau, sigma, is_call, rate, dividend) for either model."""
    if model == "black76":
        return lambda u, k, t, s, c, r, q: black76_price(u, k, t, s, c, rate=r)
    return lambda u, k, t, s, c, r, q: black_scholes_price(u, k, t, s, c, rate=r, dividend=q)


def greeks(model: str, d: SimpleNamespace, is_call: bool | npt.ArrayLike) -> dict[str, FloatArray]:
    args = (d.underlying, d.strike, d.tau, d.sigma, is_call)
    if model == "black76":
        return black76_greeks(*args, rate=d.rate)
    return black_scholes_greeks(*args, rate=d.rate, dividend=d.dividend)


def price(model: str, d: SimpleNamespace, is_call: bool | npt.ArrayLike, **override: FloatArray) -> FloatArray:
    v = {**vars(d), **override}
    return pricer(model)(v["underlying"], v["strike"], v["tau"], v["sigma"], is_call, v["rate"], v["dividend"])


def carried_forward(model: str, d: SimpleNamespace) -> FloatArray:
    """The forward of each option: the underlying itself for Black-76. Shape: (n,)."""
    return d.underlying * np.exp((d.rate - d.dividend) * d.tau) if model == "black_scholes" else d.underlying


# ---- known values -------------------------------------------------------------------------------------------------


def test_known_value() -> None:
    # ATM: C = F (2 N(sigma sqrt(T) / 2) - 1); for sigma sqrt(T) = 0.2, N(0.1) = 0.539827837277...
    assert black76_price(100.0, 100.0, 1.0, 0.2, True) == pytest.approx(100 * (2 * 0.5398278372770290 - 1), rel=1e-12)


def test_textbook_black_scholes_values() -> None:
    # Hull, Options, Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5 -> 4.76, 0.81
    c, p = black_scholes_price(42.0, 40.0, 0.5, 0.2, np.array([True, False]), rate=0.1)
    assert (round(float(c), 2), round(float(p), 2)) == (4.76, 0.81)
    # the same with math.erfc, written out: S e^{-qT} N(d1) - K e^{-rT} N(d2)
    s, k, t, vol, r, q = 42.0, 40.0, 0.5, 0.2, 0.1, 0.03
    d1 = (math.log(s / k) + (r - q + vol**2 / 2) * t) / (vol * math.sqrt(t))
    n = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    closed = s * math.exp(-q * t) * n(d1) - k * math.exp(-r * t) * n(d1 - vol * math.sqrt(t))
    assert black_scholes_price(s, k, t, vol, True, rate=r, dividend=q) == pytest.approx(closed, rel=1e-13)


# ---- put-call parity ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_put_call_parity(model: str) -> None:
    """C − P = e^{−rτ}(F − K), to 1e-10 of max(F, K), and the Greeks' parity: what the forward contract adds."""
    d = domain(10_000, seed=1, z_max=6.0)
    fwd, disc = carried_forward(model, d), np.exp(-d.rate * d.tau)
    scale = np.maximum(fwd, d.strike)
    parity = price(model, d, True) - price(model, d, False)
    np.testing.assert_array_less(np.abs(parity - disc * (fwd - d.strike)), 1e-10 * scale)
    call, put = greeks(model, d, True), greeks(model, d, False)
    if model == "black76":  # the forward contract: delta e^{-r tau}, theta r e^{-r tau}(F - K)
        forward_delta, forward_theta = disc, d.rate * disc * (fwd - d.strike)
    else:  # S e^{-q tau} - K e^{-r tau}: delta e^{-q tau}, theta q S e^{-q tau} - r K e^{-r tau}
        forward_delta = np.exp(-d.dividend * d.tau)
        forward_theta = d.dividend * d.underlying * forward_delta - d.rate * d.strike * disc
    np.testing.assert_array_less(np.abs(call["delta"] - put["delta"] - forward_delta), 1e-12)
    np.testing.assert_array_less(np.abs(call["theta"] - put["theta"] - forward_theta), 1e-12 * scale)
    for name in ("gamma", "vega", "vanna", "volga"):  # the forward contract has none
        np.testing.assert_allclose(call[name], put[name], rtol=1e-12, atol=1e-14, err_msg=name)


# ---- finite differences of the price ------------------------------------------------------------------------------


def d_first(f: Callable[[FloatArray], FloatArray], x: FloatArray, h: FloatArray) -> FloatArray:
    """Fourth-order central first derivative: error O(h⁴)."""
    return (f(x - 2 * h) - 8 * f(x - h) + 8 * f(x + h) - f(x + 2 * h)) / (12 * h)


def d_second(f: Callable[[FloatArray], FloatArray], x: FloatArray, h: FloatArray) -> FloatArray:
    """Fourth-order central second derivative: error O(h⁴)."""
    return (-f(x - 2 * h) + 16 * f(x - h) - 30 * f(x) + 16 * f(x + h) - f(x + 2 * h)) / (12 * h * h)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences_of_the_price(model: str, is_call: bool) -> None:
    """Every Greek against a fourth-order finite difference of the price alone (vanna: the mixed stencil).

    Steps are 0.3% of the natural scale (F·σ√τ, σ, τ). Errors are measured against each Greek's natural size
    (delta 1, gamma 1/(F σ√τ), vega F√τ, theta F σ/√τ, vanna 1/σ, volga F√τ/σ), because vanna and volga cross
    zero inside the domain. Measured worst: 2e-10 (first order), 1.2e-8 (second order); allowed 1e-9 and 1e-7.
    """
    d = domain(2_000, seed=2)
    g = greeks(model, d, is_call)
    u, s, t = d.underlying, d.sigma, d.tau
    h_u, h_s, h_t = 0.003 * u * s * np.sqrt(t), 0.003 * s, 0.003 * t

    def p(**override: FloatArray) -> FloatArray:
        return price(model, d, is_call, **override)

    vega_size = u * np.sqrt(t)
    fd = {  # name: (finite difference, natural size)
        "delta": (d_first(lambda x: p(underlying=x), u, h_u), 1.0),
        "gamma": (d_second(lambda x: p(underlying=x), u, h_u), 1.0 / (u * s * np.sqrt(t))),
        "vega": (d_first(lambda x: p(sigma=x), s, h_s), vega_size),
        "theta": (-d_first(lambda x: p(tau=x), t, h_t), vega_size * s / t),
        "vanna": (d_first(lambda x: d_first(lambda y: p(underlying=x, sigma=y), s, h_s), u, h_u), 1.0 / s),
        "volga": (d_second(lambda x: p(sigma=x), s, h_s), vega_size / s),
    }
    for name, (numeric, size) in fd.items():
        allowed = (1e-9 if name in ("delta", "vega", "theta") else 1e-7) * size
        excess = np.abs(g[name] - numeric) - allowed
        worst = int(np.argmax(excess))
        assert excess[worst] <= 0, f"{model} {name}: analytic {g[name][worst]!r}, numeric {numeric[worst]!r}"


# ---- limits ------------------------------------------------------------------------------------------------------


def discounted(model: str, d: SimpleNamespace) -> tuple[FloatArray, FloatArray]:
    """(asset, cash) legs: e^{−rτ}F and e^{−rτ}K, i.e. S e^{−qτ} and K e^{−rτ} for Black-Scholes. Shape: (n,)."""
    disc = np.exp(-d.rate * d.tau)
    return disc * carried_forward(model, d), disc * d.strike


def limit_case(strike_ratio: npt.ArrayLike, tau: float, sigma: float) -> SimpleNamespace:
    """Options at F (or S) = 100 with rate 5% and dividend 2%. Shape: every field (n,) for n strike ratios."""
    k = 100.0 * np.asarray(strike_ratio, dtype=float)
    full = np.full_like(k, 1.0)
    return SimpleNamespace(
        underlying=100.0 * full, strike=k, tau=tau * full, sigma=sigma * full, rate=0.05 * full, dividend=0.02 * full
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tau, sigma", [(0.1, 0.5), (3.0, 0.05), (1.0, 3.0)])
def test_deep_in_and_out_of_the_money(model: str, tau: float, sigma: float) -> None:
    """With |d1|, |d2| ≥ 12: price = discounted intrinsic, delta = its slope, the other Greeks vanish."""
    sd = sigma * math.sqrt(tau)
    far = 12 * sd + sd**2 / 2  # ln(F/K) that puts d2 at +12 (strike below) or d1 at -12 (strike above)
    d = limit_case(np.exp([-far, far]), tau, sigma)
    d.strike = d.strike * carried_forward(model, d) / 100.0  # measured from the forward, whatever the carry
    asset, cash = discounted(model, d)
    slope = asset / d.underlying  # d(asset leg)/d(underlying): e^{-r tau} or e^{-q tau}
    for is_call, intrinsic, delta in (
        (True, np.maximum(asset - cash, 0.0), np.array([1.0, 0.0]) * slope),
        (False, np.maximum(cash - asset, 0.0), np.array([0.0, -1.0]) * slope),
    ):
        np.testing.assert_allclose(price(model, d, is_call), intrinsic, rtol=1e-14, atol=1e-25 * 100)
        g = greeks(model, d, is_call)
        np.testing.assert_allclose(g["delta"], delta, rtol=1e-14, atol=1e-25)
        for name in ("gamma", "vega", "vanna", "volga"):  # phi(12) ~ 6e-33
            assert np.all(np.abs(g[name]) < 1e-25 * 100 * (1 + 1 / sd**2)), name


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("is_call", [True, False])
def test_expiry_gives_intrinsic_value_and_step_delta(model: str, is_call: bool) -> None:
    """τ = 0 exactly: intrinsic, delta 1/0 (½ at the money), no gamma, vega, vanna, volga; τ = 1e-12 likewise."""
    ratio = np.array([0.5, 0.99, 1.0, 1.01, 2.0])
    step = np.array([1.0, 1.0, 0.5, 0.0, 0.0]) if is_call else np.array([0.0, 0.0, -0.5, -1.0, -1.0])
    at_expiry = limit_case(ratio, 0.0, 0.5)
    payoff = np.maximum(100 - at_expiry.strike, 0) if is_call else np.maximum(at_expiry.strike - 100, 0)
    np.testing.assert_allclose(price(model, at_expiry, is_call), payoff, rtol=1e-15, atol=0)
    g = greeks(model, at_expiry, is_call)
    np.testing.assert_array_equal(g["delta"], step)
    for name in ("gamma", "vega", "vanna", "volga"):
        np.testing.assert_array_equal(g[name], 0.0, err_msg=name)
    # theta keeps only the carry of what is left: r V, less (r - q) S delta when the spot is held (Black-Scholes)
    carry = 0.0 if model == "black76" else (0.05 - 0.02) * 100 * step
    np.testing.assert_allclose(g["theta"], 0.05 * payoff - carry, rtol=1e-14, atol=1e-14)
    nearly = limit_case(ratio, 1e-12, 0.5)  # sd = 5e-7: 1% of moneyness is 20,000 sd
    off = ratio != 1.0
    asset, cash = discounted(model, nearly)
    left = np.maximum(asset - cash, 0) if is_call else np.maximum(cash - asset, 0)  # payoff on the forward
    np.testing.assert_allclose(price(model, nearly, is_call)[off], left[off], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(greeks(model, nearly, is_call)["delta"][off], step[off], rtol=1e-12, atol=1e-300)
    # at the money the time value is F sd / sqrt(2 pi): 2e-5, and delta N(sd/2) ~ 1/2
    atm = price(model, nearly, is_call)[~off] - left[~off]
    np.testing.assert_allclose(atm, 100 * 0.5 * math.sqrt(1e-12) / math.sqrt(2 * math.pi), rtol=1e-6)
    np.testing.assert_allclose(greeks(model, nearly, is_call)["delta"][~off], step[~off], atol=1e-6)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sigma", [0.0, 1e-12])
def test_zero_vol_gives_discounted_intrinsic_on_the_forward(model: str, sigma: float) -> None:
    """σ → 0: the option is worth its discounted payoff on the forward, and delta is that payoff's slope."""
    d = limit_case([0.5, 0.9, 1.1, 2.0], 1.0, sigma)
    asset, cash = discounted(model, d)
    slope = asset / d.underlying
    itm_call = asset > cash
    np.testing.assert_allclose(price(model, d, True), np.maximum(asset - cash, 0), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(price(model, d, False), np.maximum(cash - asset, 0), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(greeks(model, d, True)["delta"], np.where(itm_call, slope, 0.0), rtol=1e-14)
    np.testing.assert_allclose(greeks(model, d, False)["delta"], np.where(itm_call, 0.0, -slope), rtol=1e-14)
    for name in ("gamma", "vega", "vanna", "volga"):  # d1 = ±1e11 at sigma = 1e-12: the density is exactly 0
        np.testing.assert_array_equal(greeks(model, d, True)[name], 0.0, err_msg=name)


@pytest.mark.parametrize("model", MODELS)
def test_very_high_vol_approaches_the_upper_bound(model: str) -> None:
    """σ → ∞: a call tends to the discounted forward, a put to the discounted strike, from below and rising."""
    sigmas = np.array([0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 1e3, 1e6])
    d = limit_case(np.full(sigmas.size, 1.2), 1.0, 1.0)
    d.sigma = sigmas
    asset, cash = discounted(model, d)
    for is_call, bound in ((True, asset), (False, cash)):
        v = price(model, d, is_call)
        # rising, and below the bound, up to rounding (the scaled erfcx form loses ~1e-14 at sigma sqrt(tau) = 30)
        assert np.all(np.diff(v) >= -1e-13 * bound[0]) and np.all(v <= bound * (1 + 1e-13)), (is_call, v)
        np.testing.assert_allclose(v[sigmas >= 30], bound[sigmas >= 30], rtol=1e-13)
        g = greeks(model, d, is_call)
        limit_delta = asset[-1] / d.underlying[-1] if is_call else 0.0
        np.testing.assert_allclose(g["delta"][-1], limit_delta, atol=1e-13)


@pytest.mark.filterwarnings("error")  # no overflow / invalid-value warnings either
@pytest.mark.parametrize("model", MODELS)
def test_edge_inputs_are_finite(model: str) -> None:
    """Every combination of extreme strike, expiry and vol gives finite prices and Greeks, without warnings."""
    ratio = [1e-6, 1e-2, 0.5, 1.0, 2.0, 1e2, 1e6]
    taus = [0.0, 1e-12, 1 / 365, 1.0, 3.0]
    sigmas = [0.0, 1e-12, 0.5, 3.0, 30.0, 1e3, 1e6]
    k, t, s, call = (a.ravel() for a in np.meshgrid(ratio, taus, sigmas, [True, False], indexing="ij"))
    d = limit_case(k, 1.0, 1.0)
    d.tau, d.sigma = t, s
    values = {"price": price(model, d, call), **greeks(model, d, call)}
    assert set(values) == {"price", *GREEKS}
    for name, v in values.items():
        assert v.shape == k.shape and np.isfinite(v).all(), f"{model} {name}: {np.c_[k, t, s][~np.isfinite(v)][:5]}"
