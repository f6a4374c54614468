"""Prices and Greeks against independent references: QuantLib (10,000 seeded inputs) and mpmath (a subset).

QuantLib's ``BlackCalculator`` is the reference for every price and Greek of both models; its units are checked
against its own finite differences first (``test_quantlib_units_are_ours``), and its Black-Scholes mapping against
QuantLib's full ``AnalyticEuropeanEngine``. mpmath differentiates the closed-form price at 30 digits with ``mp.diff``,
independently of our analytic formulas, on the first ``N_MPMATH`` inputs: it is the truth that tells which side
loses precision where the two disagree.

Measured on the seeded 10,000 (worst relative error against QuantLib, black76 / black_scholes): vega 2.9e-12 /
4.0e-12; gamma, vanna, volga 2.9e-12 / 4.0e-12; price, delta and theta within 1e-8 except on tiny values far out
of the money (212 / 215 prices, 53 / 53 deltas, 2 / 11 thetas), where the stated absolute floor applies and
mpmath shows the error is QuantLib's for prices (ours: 4.7e-13 relative at worst). Against mpmath (first 1,000):
gamma, vega 7e-14, vanna 2.4e-12, volga 4.0e-12, price 4.7e-13. The QuantLib loop takes about 0.15 s for both
models (2 x 10,000 calculators); the mpmath subset about 2.5 s per model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql  # a dev dependency: pip install -e '.[dev]'

from forecaster.pricing import black76_greeks, black76_price, black_scholes_greeks, black_scholes_price

FloatArray = npt.NDArray[np.float64]

N_QUANTLIB = 10_000
N_MPMATH = 1_000
QUANTITIES = ("price", "delta", "gamma", "vega", "theta", "vanna", "volga")
# the acceptance bar: first order (and the price) to 1e-8, second order to 1e-6, relative
RTOL = {"price": 1e-8, "delta": 1e-8, "vega": 1e-8, "theta": 1e-8, "gamma": 1e-6, "vanna": 1e-6, "volga": 1e-6}
MODELS = ("black76", "black_scholes")


def wide_domain(n: int, seed: int) -> SimpleNamespace:
    """Seeded random options over a wide but sane domain. Shape: every field (n,).

    ``underlying`` is the forward (Black-76) or the spot (Black-Scholes). Expiry 1 day to 3 years and vol 5% to
    300%, both log-uniform; moneyness ln(K/F) in standard deviations: 70% within ±1.5, the rest out to ±6 (far
    out of the money), capped at a strike ratio of e^±3.
    """
    rng = np.random.default_rng(seed)
    underlying = np.exp(rng.uniform(0.0, math.log(1e5), n))
    tau = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    z = np.where(rng.random(n) < 0.7, rng.uniform(-1.5, 1.5, n), rng.uniform(-6.0, 6.0, n))
    strike = underlying * np.exp(np.clip(z * sigma * np.sqrt(tau), -3.0, 3.0))
    return SimpleNamespace(
        underlying=underlying,
        strike=strike,
        tau=tau,
        sigma=sigma,
        is_call=rng.random(n) < 0.5,
        rate=rng.uniform(-0.02, 0.10, n),
        dividend=rng.uniform(-0.02, 0.10, n),
    )


def forward_of(d: SimpleNamespace, model: str) -> FloatArray:
    """The forward each option is written on. Shape: (n,)."""
    return d.underlying * np.exp((d.rate - d.dividend) * d.tau) if model == "black_scholes" else d.underlying


def ours(d: SimpleNamespace, model: str) -> dict[str, FloatArray]:
    """Our price and Greeks. Shape: each (n,)."""
    if model == "black76":
        args, kw = (d.underlying, d.strike, d.tau, d.sigma, d.is_call), {"rate": d.rate}
        return {"price": black76_price(*args, **kw), **black76_greeks(*args, **kw)}
    kw = {"rate": d.rate, "dividend": d.dividend}
    args = (d.underlying, d.strike, d.tau, d.sigma, d.is_call)
    return {"price": black_scholes_price(*args, **kw), **black_scholes_greeks(*args, **kw)}


def quantlib(d: SimpleNamespace, model: str) -> dict[str, FloatArray]:
    """QuantLib's BlackCalculator, one object per option, in our units. Shape: each (n,).

    Black-76 takes the spot-based methods at spot = forward: the forward is then held fixed as time passes,
    as in our theta. QuantLib's ``volga`` is d(vega)/d(stdDev), so d²V/dσ² = volga·√τ.
    """
    forward = forward_of(d, model)
    out = {name: np.empty(d.tau.size) for name in QUANTITIES}
    for i in range(d.tau.size):
        option_type = ql.Option.Call if d.is_call[i] else ql.Option.Put
        t, u = float(d.tau[i]), float(d.underlying[i])
        calc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(option_type, float(d.strike[i])),
            float(forward[i]),
            float(d.sigma[i]) * math.sqrt(t),
            math.exp(-float(d.rate[i]) * t),
        )
        values = (
            calc.value(),
            calc.delta(u),
            calc.gamma(u),
            calc.vega(t),
            calc.theta(u, t),
            calc.vanna(u, t),
            calc.volga(t) * math.sqrt(t),
        )
        for name, value in zip(QUANTITIES, values, strict=True):
            out[name][i] = value
    return out


def floor(d: SimpleNamespace, model: str, name: str) -> FloatArray | float:
    """Absolute tolerance where a value is too small for either side to keep relative precision.

    QuantLib prices an out-of-the-money option as F N(d1) − K N(d2) with N = (1 + erf)/2, which cancels to
    about 1e-15·max(F, K) absolute (ours keeps relative precision: see the mpmath test); a far out-of-the-money
    put delta is N(d1) − 1 on both sides (~1e-14 absolute), and theta sums terms of size F σ/√τ that cancel.
    Measured worst: 1.4e-15 (price), 3.6e-14 (delta), 2.1e-14 (theta) in these units; the floors keep 5x or more.
    """
    scale = np.maximum(forward_of(d, model), d.strike)
    if name == "price":
        return 1e-14 * scale
    if name == "delta":
        return 2e-13
    if name == "theta":
        return 3e-13 * scale * (1.0 + d.sigma / np.sqrt(d.tau))
    return 0.0


def assert_close(actual: FloatArray, expected: FloatArray, rtol: float, atol: FloatArray | float, what: str) -> None:
    """|actual − expected| ≤ rtol·|expected| + atol elementwise (atol may be an array); names the worst point."""
    excess = np.abs(actual - expected) - (rtol * np.abs(expected) + atol)
    worst = int(np.argmax(excess))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(actual - expected) / np.abs(expected)
    assert excess[worst] <= 0.0, (
        f"{what}: {int((excess > 0).sum())} of {excess.size} outside rtol={rtol:g} + floor; worst at index {worst}: "
        f"ours {actual[worst]!r}, reference {expected[worst]!r}, relative error {rel[worst]:.3g}"
    )


@pytest.fixture(scope="module")
def domain() -> SimpleNamespace:
    return wide_domain(N_QUANTLIB, seed=2024)


@pytest.fixture(scope="module")
def references(domain: SimpleNamespace) -> dict[str, dict[str, FloatArray]]:
    start = time.perf_counter()
    refs = {model: quantlib(domain, model) for model in MODELS}
    elapsed = time.perf_counter() - start
    # measured about 0.15 s for 2 x 10,000 calculators; a loop this slow would mean per-object overhead crept in
    assert elapsed < 10.0, f"the QuantLib loop took {elapsed:.1f} s for 2 x {N_QUANTLIB:,} options"
    return refs


def test_quantlib_units_are_ours() -> None:
    """QuantLib's vega is per 1.00 vol, theta -dV/dτ per year, vanna d²V/dS dσ, volga d(vega)/d(stdDev).

    Checked against QuantLib's own finite differences, for both ways time can pass: the forward held fixed
    (Black-76, theta(spot = forward)) and the spot held fixed while the forward carries (Black-Scholes).
    """
    strike, tau, sigma, rate, carry, spot = 110.0, 0.7, 0.4, 0.03, 0.05, 90.0

    def calc(forward: float, vol: float = sigma, t: float = tau) -> ql.BlackCalculator:
        payoff = ql.PlainVanillaPayoff(ql.Option.Call, strike)
        return ql.BlackCalculator(payoff, forward, vol * math.sqrt(t), math.exp(-rate * t))

    def carried(s: float, t: float = tau) -> float:
        return s * math.exp(carry * t)

    h_s, h_v, h_t = 1e-3, 1e-5, 1e-6
    c = calc(carried(spot))
    vega_fd = (calc(carried(spot), sigma + h_v).value() - calc(carried(spot), sigma - h_v).value()) / (2 * h_v)
    theta76_fd = -(calc(100.0, t=tau + h_t).value() - calc(100.0, t=tau - h_t).value()) / (2 * h_t)
    up, down = calc(carried(spot, tau + h_t), t=tau + h_t), calc(carried(spot, tau - h_t), t=tau - h_t)
    theta_bs_fd = -(up.value() - down.value()) / (2 * h_t)
    vanna_fd = (calc(carried(spot + h_s)).vega(tau) - calc(carried(spot - h_s)).vega(tau)) / (2 * h_s)
    volga_fd = (calc(carried(spot), sigma + h_v).vega(tau) - calc(carried(spot), sigma - h_v).vega(tau)) / (2 * h_v)
    assert c.vega(tau) == pytest.approx(vega_fd, rel=1e-8)
    assert calc(100.0).theta(100.0, tau) == pytest.approx(theta76_fd, rel=1e-7)
    assert c.theta(spot, tau) == pytest.approx(theta_bs_fd, rel=1e-7)
    assert c.vanna(spot, tau) == pytest.approx(vanna_fd, rel=1e-7)
    assert c.volga(tau) * math.sqrt(tau) == pytest.approx(volga_fd, rel=1e-7)
    assert c.volga(tau) != pytest.approx(volga_fd, rel=1e-2)  # not d²V/dσ² as it stands


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", QUANTITIES)
def test_matches_quantlib(domain: SimpleNamespace, references: dict, model: str, name: str) -> None:
    mine, ref = ours(domain, model)[name], references[model][name]
    assert np.isfinite(mine).all() and np.isfinite(ref).all()
    assert_close(mine, ref, RTOL[name], floor(domain, model, name), f"{model} {name}")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", QUANTITIES)
def test_floor_is_rarely_needed(domain: SimpleNamespace, references: dict, model: str, name: str) -> None:
    """The absolute floor only rescues a few tiny values: at most 3% of prices, 1% of deltas, 0.2% of thetas."""
    mine, ref = ours(domain, model)[name], references[model][name]
    rescued = np.abs(mine - ref) > RTOL[name] * np.abs(ref)
    assert rescued.mean() <= {"price": 0.03, "delta": 0.01, "theta": 0.002}.get(name, 0.0), f"{rescued.sum()}"
    if name == "price":  # far out of the money: below 1e-4 of the forward
        assert np.all(np.abs(ref[rescued]) < 1e-4 * forward_of(domain, model)[rescued])


def quantlib_engine(d: SimpleNamespace, days: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
    """QuantLib's full Black-Scholes-Merton engine (flat curves, dates, Actual/365 Fixed). Shape: each (n,)."""
    today = ql.Date(2, ql.January, 2025)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()

    def curve(rate: float) -> ql.YieldTermStructureHandle:
        return ql.YieldTermStructureHandle(ql.FlatForward(today, rate, day_count, ql.Continuous))

    out = {name: np.empty(days.size) for name in ("price", "delta", "gamma", "vega", "theta")}
    for i in range(days.size):
        vol = ql.BlackConstantVol(today, ql.NullCalendar(), float(d.sigma[i]), day_count)
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(float(d.underlying[i]))),
            curve(float(d.dividend[i])),
            curve(float(d.rate[i])),
            ql.BlackVolTermStructureHandle(vol),
        )
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if d.is_call[i] else ql.Option.Put, float(d.strike[i]))
        option = ql.EuropeanOption(payoff, ql.EuropeanExercise(today + int(days[i])))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        values = (option.NPV(), option.delta(), option.gamma(), option.vega(), option.theta())
        for name, value in zip(out, values, strict=True):
            out[name][i] = value
    return out


def test_black_scholes_matches_quantlib_engine() -> None:
    """The engine QuantLib users call (its theta per year, vega per 1.00 vol) agrees with ours on whole days."""
    d = wide_domain(1_000, seed=7)
    days = np.maximum(1, np.round(d.tau * 365)).astype(np.int64)
    d.tau = days / 365.0  # Actual/365 Fixed makes whole days exact year fractions
    mine = ours(d, "black_scholes")
    for name, ref in quantlib_engine(d, days).items():
        atol = floor(d, "black_scholes", name)
        assert_close(mine[name], ref, RTOL[name], atol, name)


def _mp_price(model: str, strike: mp.mpf, rate: mp.mpf, dividend: mp.mpf, is_call: bool) -> Callable[..., mp.mpf]:
    """The textbook closed form as a function of (underlying, tau, sigma), in mpmath (Black-76 ignores dividend)."""

    def price(u: mp.mpf, tau: mp.mpf, sigma: mp.mpf) -> mp.mpf:
        sd = sigma * mp.sqrt(tau)
        carry = (rate - dividend) * tau if model == "black_scholes" else 0
        d1 = (mp.log(u / strike) + carry) / sd + sd / 2
        d2 = d1 - sd
        asset = u * mp.exp(-dividend * tau) if model == "black_scholes" else u * mp.exp(-rate * tau)
        cash = strike * mp.exp(-rate * tau)
        if is_call:
            return asset * mp.ncdf(d1) - cash * mp.ncdf(d2)
        return cash * mp.ncdf(-d2) - asset * mp.ncdf(-d1)

    return price


def _mp_derivatives(p: Callable[..., mp.mpf], u: mp.mpf, t: mp.mpf, s: mp.mpf) -> tuple[mp.mpf, ...]:
    """Price, delta, gamma, vega, theta, vanna, volga of ``p(underlying, tau, sigma)`` by ``mp.diff``."""
    return (
        p(u, t, s),
        mp.diff(lambda x: p(x, t, s), u),
        mp.diff(lambda x: p(x, t, s), u, 2),
        mp.diff(lambda x: p(u, t, x), s),
        -mp.diff(lambda x: p(u, x, s), t),
        mp.diff(lambda x, y: p(x, t, y), (u, s), (1, 1)),
        mp.diff(lambda x: p(u, t, x), s, 2),
    )


def mpmath_reference(d: SimpleNamespace, model: str) -> dict[str, FloatArray]:
    """Price and Greeks by ``mp.diff`` of the closed form at 30 digits. Shape: each (n,)."""
    out = {name: np.empty(d.tau.size) for name in QUANTITIES}
    with mp.workdps(30):
        for i in range(d.tau.size):
            u, t, s = (mp.mpf(float(v)) for v in (d.underlying[i], d.tau[i], d.sigma[i]))
            k, r, q = (mp.mpf(float(v)) for v in (d.strike[i], d.rate[i], d.dividend[i]))
            p = _mp_price(model, k, r, q, bool(d.is_call[i]))
            for name, value in zip(QUANTITIES, _mp_derivatives(p, u, t, s), strict=True):
                out[name][i] = float(value)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_matches_mpmath_derivatives(domain: SimpleNamespace, model: str) -> None:
    """Every price and Greek against 30-digit numerical derivatives of the closed form (first N_MPMATH inputs).

    Tolerances are far inside the acceptance bar (1e-8 / 1e-6): prices keep relative precision even far out of
    the money; the floors are ours, stated: N(d1) − 1 for a far put delta (1e-15 absolute) and the cancelling
    terms of Black-Scholes theta.
    """
    d = SimpleNamespace(**{k: v[:N_MPMATH] for k, v in vars(domain).items()})
    truth, mine = mpmath_reference(d, model), ours(d, model)
    scale = np.maximum(forward_of(d, model), d.strike)
    atol = {"delta": 1e-15, "theta": 1e-15 * scale * (1.0 + d.sigma / np.sqrt(d.tau))}
    for name in QUANTITIES:
        rtol = 1e-12 if name == "price" else 1e-10
        assert_close(mine[name], truth[name], rtol, atol.get(name, 0.0), f"{model} {name}")


def mpmath_prices(d: SimpleNamespace, model: str, dps: int) -> FloatArray:
    """The closed-form price at ``dps`` digits. Shape: (n,)."""
    out = np.empty(d.tau.size)
    with mp.workdps(dps):
        for i in range(d.tau.size):
            u, k, t, s, r, q = (
                mp.mpf(float(vars(d)[f][i])) for f in ("underlying", "strike", "tau", "sigma", "rate", "dividend")
            )
            out[i] = float(_mp_price(model, k, r, q, bool(d.is_call[i]))(u, t, s))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_far_out_of_the_money_prices_keep_relative_precision(model: str) -> None:
    """Where QuantLib cancels (the floor above), ours still matches 40-digit mpmath to 1e-12 relative."""
    d = wide_domain(200, seed=11)
    z = np.linspace(5.0, 12.0, 200)
    sd = d.sigma * np.sqrt(d.tau)
    d.strike = forward_of(d, model) * np.exp(np.where(d.is_call, z, -z) * sd)  # always out of the money
    truth = mpmath_prices(d, model, dps=40)
    # the sample reaches prices far below what F N(d1) - K N(d2) resolves (about 1e-16 F)
    assert np.min(truth / forward_of(d, model)) < 1e-20
    np.testing.assert_allclose(ours(d, model)["price"], truth, rtol=1e-12, atol=0.0)


def _mp_closed_form(forward: float, strike: float, tau: float, sigma: float, rate: float, is_call: bool):
    """Black-76 price and forward delta in 40-digit arithmetic: the closed form itself, no cancellation."""
    f, k, t, s, r = (mp.mpf(float(v)) for v in (forward, strike, tau, sigma, rate))
    sd = s * mp.sqrt(t)
    d1 = mp.log(f / k) / sd + sd / 2
    d2 = d1 - sd
    disc = mp.exp(-r * t)
    if is_call:
        return disc * (f * mp.ncdf(d1) - k * mp.ncdf(d2)), disc * mp.ncdf(d1)
    return disc * (k * mp.ncdf(-d2) - f * mp.ncdf(-d1)), -disc * mp.ncdf(-d1)


def test_every_price_and_delta_to_1e8_relative_against_40_digit_closed_form(domain: SimpleNamespace) -> None:
    """All 10,000 inputs, no absolute floor: the closed form evaluated exactly is the reference."""
    got = ours(domain, "black76")
    with mp.workdps(40):
        ref = [
            _mp_closed_form(*args)
            for args in zip(
                domain.underlying, domain.strike, domain.tau, domain.sigma, domain.rate, domain.is_call, strict=True
            )
        ]
    price = np.array([float(p) for p, _ in ref])
    delta = np.array([float(d) for _, d in ref])
    assert domain.tau.size == N_QUANTLIB
    assert np.max(np.abs(got["price"] / price - 1.0)) <= 1e-8
    assert np.max(np.abs(got["delta"] / delta - 1.0)) <= 1e-8
