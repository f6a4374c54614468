"""Implied vol (forecaster.pricing.implied): round trips, an mpmath and a QuantLib reference, extremes, flags, shapes.

The information criterion: a price is rounded to about one ulp, and that rounding moves the vol by
``kappa * ulp`` with ``kappa = price / (sigma * vega)`` (vega = dprice/dsigma). Where ``kappa <= KAPPA_INFORMATIVE``
the price pins the vol to better than 1e-11 and the recovered vol must equal the true one to 1e-10 (relative);
beyond it (deep in the money, where the time value is a few ulps of the price) only the repriced value is tested.

Measured on the seeded 10,000 (Black-76 / Black-Scholes): max relative vol error on the informative prices
1.8e-12 / 1.9e-12 (kappa up to 1e4 times an ulp: the price's rounding, not the solver); max repriced relative
error 1.3e-12 / 7.9e-13 (black76_price's own rounding far out of the money); 2 to 6 iterations, 3 for most
(1 to 6 on the normalized problems); about 11 ms per 10,000 on one core. Against mpmath prices (exact to 1 ulp):
vol within 2.4 ulps x (1 + kappa), 4 ulps allowed; 4 ulps at most where kappa < 10. Against QuantLib's
``blackFormulaImpliedStdDev`` (accuracy 1e-12): within 1.7e-10, which is QuantLib's own error (ours: 2.8e-13).
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql  # a dev dependency: pip install -e '.[dev]'

from forecaster.pricing import IVResult, black76_greeks, black76_price, black_scholes_price, implied_vol, implied_vol_bs
from forecaster.pricing.implied import (
    IV_ABOVE_UPPER,
    IV_AT_INTRINSIC,
    IV_BELOW_INTRINSIC,
    IV_NON_FINITE,
    IV_NON_POSITIVE,
    IV_OK,
    ImpliedVolError,
    _start,
    _y_difference,
    normalized_total_vol,
)

FloatArray = npt.NDArray[np.float64]
EPS = float(np.finfo(float).eps)
N_ROUND_TRIP = 10_000
KAPPA_INFORMATIVE = 1e4
RTOL = 1e-10


def domain(n: int, seed: int, z_max: float = 8.0) -> SimpleNamespace:
    """Seeded options: 1 day to 5 years, vol 5%..300% (both log-uniform), ln(K/F) within ±z_max standard
    deviations (±8: deep in to deep out of the money) capped at ±5, calls and puts, rates -2%..10%. Shape: (n,)."""
    rng = np.random.default_rng(seed)
    underlying = np.exp(rng.uniform(0.0, math.log(1e5), n))
    tau = np.exp(rng.uniform(math.log(1 / 365), math.log(5.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    z = rng.uniform(-z_max, z_max, n)
    return SimpleNamespace(
        underlying=underlying,
        strike=underlying * np.exp(np.clip(z * sigma * np.sqrt(tau), -5.0, 5.0)),
        tau=tau,
        sigma=sigma,
        is_call=rng.random(n) < 0.5,
        rate=rng.uniform(-0.02, 0.10, n),
        dividend=rng.uniform(-0.02, 0.10, n),
    )


def kappa(d: SimpleNamespace, forward: FloatArray, price: FloatArray) -> FloatArray:
    """price / (sigma * dprice/dsigma): how much a relative price error grows into a vol error. Shape: (n,)."""
    vega = black76_greeks(forward, d.strike, d.tau, d.sigma, d.is_call, rate=d.rate)["vega"]
    return price / (d.sigma * vega)


def mp_price(forward: float, strike: float, tau: float, sigma: float, is_call: bool, rate: float = 0.0) -> mp.mpf:
    """Black-76 price at the working mpmath precision (the caller sets enough digits)."""
    f, k, t, s = (mp.mpf(float(v)) for v in (forward, strike, tau, sigma))
    if s == 0:
        intrinsic = max(f - k, 0) if is_call else max(k - f, 0)
        return mp.exp(-mp.mpf(float(rate)) * t) * intrinsic
    sd = s * mp.sqrt(t)
    d1 = mp.log(f / k) / sd + sd / 2
    d2 = d1 - sd
    undiscounted = f * mp.ncdf(d1) - k * mp.ncdf(d2) if is_call else k * mp.ncdf(-d2) - f * mp.ncdf(-d1)
    return mp.exp(-mp.mpf(float(rate)) * t) * undiscounted


# ---- round trips -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["black76", "black_scholes"])
def test_round_trip_10000(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = domain(N_ROUND_TRIP, seed=20 if model == "black76" else 21)
    args = (d.underlying, d.strike, d.tau)
    if model == "black76":
        forward = d.underlying
        price = black76_price(*args, d.sigma, d.is_call, rate=d.rate)
        start = time.perf_counter()
        result = implied_vol(price, *args, d.is_call, rate=d.rate)
        elapsed = time.perf_counter() - start
        repriced = black76_price(*args, result.vol, d.is_call, rate=d.rate)
    else:
        forward = d.underlying * np.exp((d.rate - d.dividend) * d.tau)
        price = black_scholes_price(*args, d.sigma, d.is_call, rate=d.rate, dividend=d.dividend)
        start = time.perf_counter()
        result = implied_vol_bs(price, *args, d.is_call, rate=d.rate, dividend=d.dividend)
        elapsed = time.perf_counter() - start
        repriced = black_scholes_price(*args, result.vol, d.is_call, rate=d.rate, dividend=d.dividend)
    # every price black76_price returns lies inside the bounds, or on the intrinsic value when the time value
    # is below an ulp of it (vol 0 then reprices it exactly)
    assert set(np.unique(result.flag)) <= {IV_OK, IV_AT_INTRINSIC}
    assert np.isfinite(result.vol).all() and (result.vol[result.flag == IV_OK] > 0).all()
    price_error = np.abs(repriced / price - 1.0)
    assert price_error.max() <= RTOL
    informative = (kappa(d, forward, price) <= KAPPA_INFORMATIVE) & (result.flag == IV_OK)
    vol_error = np.abs(result.vol / d.sigma - 1.0)
    assert informative.mean() > 0.6  # the criterion leaves most of the sample in
    assert vol_error[informative].max() <= RTOL
    with capsys.disabled():
        print(
            f"\n[implied vol {model}] {N_ROUND_TRIP:,} inversions in {elapsed * 1e3:.1f} ms; max vol error "
            f"{vol_error[informative].max():.2g} on {informative.sum():,} informative prices; max repriced error "
            f"{price_error.max():.2g}; {np.count_nonzero(result.flag == IV_AT_INTRINSIC)} at intrinsic"
        )


def test_iterations_and_certified_bracket(capsys: pytest.CaptureFixture[str]) -> None:
    # normalized problems across the whole domain: x down to -50, prices from 1e-300 of the bound to 1 ulp below
    rng = np.random.default_rng(7)
    n = 50_000
    x = -np.where(rng.random(n) < 0.2, 0.0, 10.0 ** rng.uniform(-14.0, 1.7, n))
    bound = np.exp(0.5 * x)
    fraction = 10.0 ** rng.uniform(-300.0, 0.0, n)
    low = rng.random(n) < 0.5
    beta = np.where(low, fraction * bound, bound * (1.0 - np.maximum(fraction, EPS)))
    gap = np.where(low, bound - beta, bound * np.maximum(fraction, EPS))
    keep = (beta > 0) & (gap > 0)
    x, beta, gap = x[keep], beta[keep], gap[keep]
    s, iterations = normalized_total_vol(x, beta, gap)
    _, lo, hi = _start(x, beta, gap, gap < beta)
    assert np.isfinite(s).all() and (s > 0).all()
    assert ((lo <= s) & (s <= hi)).all()
    assert iterations.max() <= 8
    with capsys.disabled():
        counts = {int(k): int(v) for k, v in enumerate(np.bincount(iterations)) if v}
        print(f"\n[implied vol] iterations over {len(s):,} normalized problems: {counts}")


def test_against_mpmath_prices() -> None:
    # prices exact to one rounding: the vol error is then the solver's plus that rounding times kappa
    d = domain(300, seed=22)
    with mp.workdps(40):
        price = np.array(
            [
                float(mp_price(*v, rate=r))
                for *v, r in zip(d.underlying, d.strike, d.tau, d.sigma, d.is_call, d.rate, strict=True)
            ]
        )
    result = implied_vol(price, d.underlying, d.strike, d.tau, d.is_call, rate=d.rate)
    ok = result.flag == IV_OK
    assert ok.mean() > 0.9 and (result.flag[~ok] == IV_AT_INTRINSIC).all()
    error = np.abs(result.vol[ok] / d.sigma[ok] - 1.0)
    allowed = 4 * EPS * (1.0 + kappa(d, d.underlying, price)[ok])
    assert (error <= allowed).all(), f"worst: {np.max(error / allowed):.3g} x the allowance"


def test_agrees_with_quantlib() -> None:
    d = domain(2_000, seed=23, z_max=3.0)  # QuantLib refuses prices whose time value rounds away
    price = black76_price(d.underlying, d.strike, d.tau, d.sigma, d.is_call, rate=d.rate)
    ours = implied_vol(price, d.underlying, d.strike, d.tau, d.is_call, rate=d.rate, errors="raise").vol
    reference = np.array(
        [
            ql.blackFormulaImpliedStdDev(
                ql.Option.Call if c else ql.Option.Put, k, f, p, math.exp(-r * t), 0.0, ql.nullDouble(), 1e-12, 1000
            )
            / math.sqrt(t)
            for f, k, t, c, r, p in zip(d.underlying, d.strike, d.tau, d.is_call, d.rate, price, strict=True)
        ]
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-8)


# ---- extremes --------------------------------------------------------------------------------------------------------


def test_extreme_prices_get_a_finite_vol_that_reprices_them() -> None:
    forward, rows = 100.0, []
    for strike in (100.0, 100.0 * (1 + 1e-12), 90.0, 110.0, 50.0, 200.0):
        for is_call in (True, False):
            intrinsic, upper = (
                (max(forward - strike, 0.0), forward) if is_call else (max(strike - forward, 0.0), strike)
            )
            for tau in (1e-8, 1 / 365, 1.0, 5.0):
                rows.append((intrinsic + 1e-300 * forward, strike, tau, is_call))  # 1e-300 F above intrinsic
                rows.append((float(np.nextafter(upper, 0.0)), strike, tau, is_call))  # one ulp below the bound
            for tau, sigma in ((1e-8, 10.0), (1 / 365, 10.0), (1e-8, 0.05), (1.0, 3.0)):
                with mp.workdps(40):
                    rows.append((float(mp_price(forward, strike, tau, sigma, is_call)), strike, tau, is_call))
    price, strike, tau, is_call = (np.array(column) for column in zip(*rows, strict=True))
    result = implied_vol(price, forward, strike, tau, is_call)
    assert not np.isnan(result.vol).any()
    assert set(np.unique(result.flag)) == {IV_OK, IV_AT_INTRINSIC}
    # at intrinsic: only where 1e-300 F (or the price) is below an ulp of the intrinsic value
    intrinsic = np.where(is_call, np.maximum(forward - strike, 0.0), np.maximum(strike - forward, 0.0))
    np.testing.assert_array_equal(result.flag == IV_AT_INTRINSIC, price == intrinsic)
    ok = np.flatnonzero(result.flag == IV_OK)
    with mp.workdps(400):  # prices of 1e-298 from vols of 1e-300 need every digit
        repriced = [mp_price(forward, strike[i], tau[i], result.vol[i], is_call[i]) for i in ok]
        error = [float(abs(r / mp.mpf(float(price[i])) - 1)) for r, i in zip(repriced, ok, strict=True)]
    assert max(error) <= RTOL


def test_tiny_at_the_money_price_has_the_closed_form_vol() -> None:
    # at the money b = erf(s / sqrt 8), so s = sqrt(2 pi) * price / F to first order for a tiny price
    result = implied_vol(1e-300 * 100.0, 100.0, 100.0, 1.0, True)
    assert result.flag == IV_OK
    assert float(result.vol) == pytest.approx(math.sqrt(2 * math.pi) * 1e-300, rel=1e-14)


def test_y_difference_against_mpmath() -> None:
    # the normalized price's core, on both sides of the series / erfcx switch, where the price is representable
    rng = np.random.default_rng(8)
    h = -np.concatenate([10.0 ** rng.uniform(-4.0, 1.6, 400), np.zeros(20)])
    t = 10.0 ** rng.uniform(-14.0, 0.8, h.size)
    keep = (h + t < 20.0) & (0.5 * h * h < 700.0)
    h, t = h[keep], t[keep]
    got = _y_difference(h, t)
    with mp.workdps(50):

        def y(v: mp.mpf) -> mp.mpf:
            return mp.ncdf(v) / mp.npdf(v)

        reference = np.array(
            [float(y(mp.mpf(a) + mp.mpf(b)) - y(mp.mpf(a) - mp.mpf(b))) for a, b in zip(h, t, strict=True)]
        )
    np.testing.assert_allclose(got, reference, rtol=1e-13)


# ---- bounds, flags and errors ----------------------------------------------------------------------------------------


def test_flags_and_nan_outside_the_bounds() -> None:
    f, k, t, r = 100.0, 90.0, 0.5, 0.05
    disc = math.exp(-r * t)
    cases = [  # (price, forward, strike, tau, is_call, expected flag)
        (black76_price(f, k, t, 0.3, True, rate=r), f, k, t, True, IV_OK),
        ((f - k) * disc, f, k, t, True, IV_AT_INTRINSIC),
        (0.0, f, k, t, False, IV_AT_INTRINSIC),  # an out-of-the-money put quoted at 0
        ((f - k) * disc * (1 - 1e-9), f, k, t, True, IV_BELOW_INTRINSIC),
        (-0.01, f, k, t, False, IV_BELOW_INTRINSIC),
        (f * disc, f, k, t, True, IV_ABOVE_UPPER),
        (k * disc * 1.01, f, k, t, False, IV_ABOVE_UPPER),
        (np.nan, f, k, t, True, IV_NON_FINITE),
        (5.0, np.inf, k, t, True, IV_NON_FINITE),
        (5.0, f, k, 0.0, True, IV_NON_POSITIVE),
        (5.0, 0.0, k, t, True, IV_NON_POSITIVE),
        (5.0, f, -90.0, t, False, IV_NON_POSITIVE),
    ]
    price, forward, strike, tau, is_call, expected = (np.array(c) for c in zip(*cases, strict=True))
    result = implied_vol(price, forward, strike, tau, is_call, rate=r)
    np.testing.assert_array_equal(result.flag, expected)
    assert result.flag.dtype == np.int8
    assert float(result.vol[0]) == pytest.approx(0.3, rel=1e-12)
    np.testing.assert_array_equal(result.vol[1:3], 0.0)
    assert np.isnan(result.vol[3:]).all()
    np.testing.assert_array_equal(result.ok, expected <= IV_AT_INTRINSIC)
    assert implied_vol(5.0, 100.0, 100.0, 1.0, True, rate=np.nan).flag == IV_NON_FINITE


def test_raise_names_count_index_price_and_bound() -> None:
    price = np.array([[5.0, 4.0], [120.0, 130.0]])
    with pytest.raises(ImpliedVolError) as info:
        implied_vol(price, 100.0, 100.0, 1.0, True, errors="raise")
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "2 of 4 elements" in text and "index (1, 0)" in text and "price 120" in text
    assert "at or above the upper bound 100" in text and "errors='flag'" in text
    with pytest.raises(ImpliedVolError, match=r"index \(0,\).*below the discounted intrinsic value 20"):
        implied_vol_bs([1.0, 25.0], 120.0, 100.0, 1.0, True, errors="raise")
    with pytest.raises(ImpliedVolError, match="1 non-positive forward, strike or tau"):
        implied_vol([5.0, 5.0], 100.0, [100.0, 0.0], 1.0, True, errors="raise")
    with pytest.raises(ValueError, match="errors must be one of 'flag', 'raise'; got 'ignore'"):
        implied_vol(5.0, 100.0, 100.0, 1.0, True, errors="ignore")  # type: ignore[arg-type]
    assert implied_vol(5.0, 100.0, 100.0, 1.0, True, errors="raise").flag == IV_OK


def test_black_scholes_bounds_use_the_discounted_spot_and_strike() -> None:
    s, k, t, r, q = 100.0, 80.0, 2.0, 0.03, 0.06
    upper, intrinsic = s * math.exp(-q * t), s * math.exp(-q * t) - k * math.exp(-r * t)
    price = [upper, upper * (1 - 1e-9), intrinsic * (1 - 1e-9), intrinsic * (1 + 1e-9), k * math.exp(-r * t)]
    result = implied_vol_bs(price, s, k, t, [True, True, True, True, False], rate=r, dividend=q)
    expected = [IV_ABOVE_UPPER, IV_OK, IV_BELOW_INTRINSIC, IV_OK, IV_ABOVE_UPPER]
    np.testing.assert_array_equal(result.flag, expected)
    assert implied_vol_bs(5.0, 100.0, 100.0, 1.0, True, dividend=np.inf).flag == IV_NON_FINITE


# ---- shapes ----------------------------------------------------------------------------------------------------------


def test_scalars_give_zero_dimensional_arrays() -> None:
    price = float(black76_price(100.0, 105.0, 0.25, 0.4, False))
    result = implied_vol(price, 100.0, 105.0, 0.25, False)
    assert isinstance(result, IVResult) and result.vol.shape == () and result.flag.shape == ()
    assert float(result.vol) == pytest.approx(0.4, rel=1e-13)


def test_inputs_broadcast() -> None:
    strikes = np.array([80.0, 100.0, 125.0])[:, None]  # (3, 1)
    sigma = np.array([0.1, 0.5, 1.0, 2.0])  # (4,)
    is_call = np.array([True, False, True, False])  # (4,)
    price = black76_price(100.0, strikes, 0.5, sigma, is_call, rate=0.02)  # (3, 4)
    result = implied_vol(price, 100.0, strikes, 0.5, is_call, rate=0.02)
    assert result.vol.shape == result.flag.shape == (3, 4)
    np.testing.assert_allclose(result.vol, np.broadcast_to(sigma, (3, 4)), rtol=1e-12)
    bs = implied_vol_bs(
        black_scholes_price(100.0, strikes, 0.5, sigma, is_call, dividend=0.01),
        100.0,
        strikes,
        0.5,
        is_call,
        dividend=0.01,
    )
    np.testing.assert_allclose(bs.vol, np.broadcast_to(sigma, (3, 4)), rtol=1e-12)
    with pytest.raises(ValueError, match=r"must broadcast to one shape; got shapes \(2,\), \(\), \(3,\)"):
        implied_vol(np.ones(2), 100.0, np.ones(3), 1.0, True)
