"""Raw SVI against finite differences, the Black-76 density, Lee's wing limit and known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.pricing import black76_price
from forecaster.pricing.svi import (
    SurfaceError,
    SviParams,
    arbitrage_grid,
    check_svi_params,
    fit_flat,
    fit_svi,
    quote_butterfly_violations,
    refine_grid,
    svi_density_g,
    svi_derivatives,
    svi_min_total_variance,
    svi_total_variance,
)

TAU = 30 / 365
PARAMS = SviParams(a=0.01, b=0.08, rho=-0.4, m=0.05, sigma=0.2)


def ssvi_slice(theta: float, rho: float = -0.4, eta: float = 1.2, gamma: float = 0.4) -> SviParams:
    """Raw SVI of the SSVI slice with ATM total variance θ and power-law φ (Gatheral and Jacquier 2014, section 4:
    with η (1 + |ρ|) ≤ 2 and γ ≤ 1/2 the surface has neither butterfly nor calendar arbitrage)."""
    phi = eta / (theta**gamma * (1 + theta) ** (1 - gamma))
    return SviParams(theta * (1 - rho**2) / 2, theta * phi / 2, rho, -rho / phi, np.sqrt(1 - rho**2) / phi)


def quotes(params: SviParams, tau: float, n: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """n strikes from −2.5 to +1.5 ATM standard deviations, and their exact SVI implied vols."""
    k = np.linspace(-2.5, 1.5, n) * np.sqrt(svi_total_variance(0.0, params))
    return k, np.sqrt(svi_total_variance(k, params) / tau)


def dense_grid(k: np.ndarray) -> np.ndarray:
    """Twenty times finer than the fit's grid, out to |k| = 100."""
    return refine_grid(arbitrage_grid(k), 20)


def test_derivatives_match_finite_differences() -> None:
    k = np.linspace(-1.5, 1.5, 301)
    h = 1e-5
    w, dw, d2w = svi_derivatives(k, PARAMS)
    np.testing.assert_allclose(w, svi_total_variance(k, PARAMS), rtol=1e-15)
    up, down = svi_total_variance(k + h, PARAMS), svi_total_variance(k - h, PARAMS)
    np.testing.assert_allclose(dw, (up - down) / (2 * h), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(d2w, (up - 2 * w + down) / h**2, rtol=1e-4, atol=1e-6)


def test_density_g_is_the_black76_density_in_disguise() -> None:
    """∂²C/∂K² of undiscounted calls priced with the smile = g(k) φ(d2) / (K sqrt(w)) (Gatheral-Jacquier)."""
    strike = np.exp(np.linspace(-0.6, 0.5, 23))
    h = 1e-4

    def call(x: np.ndarray) -> np.ndarray:
        w = svi_total_variance(np.log(x), PARAMS)
        return black76_price(1.0, x, TAU, np.sqrt(w / TAU), True)

    numeric = (call(strike + h) - 2 * call(strike) + call(strike - h)) / h**2
    k = np.log(strike)
    w = svi_total_variance(k, PARAMS)
    d2 = -k / np.sqrt(w) - np.sqrt(w) / 2
    closed = svi_density_g(k, PARAMS) * np.exp(-0.5 * d2**2) / np.sqrt(2 * np.pi * w) / strike
    np.testing.assert_allclose(numeric, closed, rtol=2e-4, atol=1e-6)


def test_g_tends_to_lees_limit_in_the_wings() -> None:
    """g → 1/4 − β²/16 for a wing of slope β = b (1 ± ρ): negative exactly when β > 2."""
    for beta_right in (1.2, 2.0, 2.6):
        params = SviParams(0.02, beta_right / 1.5, 0.5, 0.0, 0.1)  # right slope b (1 + ρ) = beta_right
        assert svi_density_g(1e7, params) == pytest.approx(0.25 - beta_right**2 / 16, abs=1e-6)


def test_minimum_total_variance() -> None:
    k = np.linspace(-3, 3, 600_001)
    assert svi_min_total_variance(PARAMS) == pytest.approx(svi_total_variance(k, PARAMS).min(), abs=1e-10)


@pytest.mark.parametrize(
    ("params", "rule"),
    [
        (PARAMS._replace(b=-0.1), "b must be >= 0"),
        (PARAMS._replace(rho=1.0), "|rho| must be < 1"),
        (PARAMS._replace(sigma=0.0), "sigma must be > 0"),
        (PARAMS._replace(a=-0.5), r"a \+ b sigma sqrt\(1 - rho²\) must be >= 0"),
        (PARAMS._replace(b=1.5), "Lee"),
    ],
)
def test_parameter_constraints(params: SviParams, rule: str) -> None:
    with pytest.raises(SurfaceError, match=rule):
        check_svi_params(params)
    check_svi_params(PARAMS)


@pytest.mark.parametrize("theta", [0.002, 0.03, 0.2])
def test_fit_recovers_known_parameters(theta: float) -> None:
    true = ssvi_slice(theta)
    tau = theta / 0.36
    k, iv = quotes(true, tau)
    assert quote_butterfly_violations(k, iv, tau) == 0
    fit = fit_svi(k, iv, tau, label="synthetic")
    assert fit.max_abs_iv_error <= 1e-4
    assert not fit.repaired
    np.testing.assert_allclose(fit.params, true, atol=1e-4 * max(1.0, float(np.max(np.abs(true)))))
    fine = np.linspace(k[0], k[-1], 101)
    np.testing.assert_allclose(svi_total_variance(fine, fit.params), svi_total_variance(fine, true), rtol=1e-5)


def test_injected_butterfly_arbitrage_is_repaired() -> None:
    """One ATM quote 10 vol points too high: the plain least-squares smile has g < 0, the fit does not."""
    true = ssvi_slice(0.36 * TAU)
    k, iv = quotes(true, TAU)
    bad = int(np.argmin(np.abs(k)))
    iv[bad] += 0.10
    assert quote_butterfly_violations(k, iv, TAU) >= 1
    plain = fit_svi(k, iv, TAU, butterfly_free=False)
    assert np.min(svi_density_g(dense_grid(k), plain.params)) < -0.1  # the data pull SVI into arbitrage
    fit = fit_svi(k, iv, TAU)
    assert fit.repaired
    assert np.min(svi_density_g(dense_grid(k), fit.params)) >= 0
    assert fit.min_g >= 0
    errors = np.sqrt(svi_total_variance(k, fit.params) / TAU) - iv
    assert fit.max_abs_iv_error == pytest.approx(np.max(np.abs(errors)))
    assert np.abs(errors[bad]) > 0.05  # the bad quote is not followed...
    assert np.median(np.abs(np.delete(errors, bad))) < 0.03  # ...the rest roughly is


def test_calendar_ceiling_is_respected() -> None:
    """Quotes above the ceiling (the next expiry's smile) give a smile at or below it everywhere on the grid."""
    true = ssvi_slice(0.36 * TAU)
    k, iv = quotes(true, TAU)
    ceiling = true._replace(a=float(true.a) - 0.3 * float(svi_total_variance(0.0, true)))
    fit = fit_svi(k, iv, TAU, ceiling=ceiling)
    grid = dense_grid(k)
    assert np.all(svi_total_variance(grid, fit.params) <= svi_total_variance(grid, ceiling))
    assert fit.repaired
    assert np.min(svi_density_g(grid, fit.params)) >= 0


def test_too_few_strikes_is_refused_with_the_expiry_and_count() -> None:
    k, iv = quotes(PARAMS, TAU, n=4)
    with pytest.raises(SurfaceError, match=r"expiry X: 4 distinct strike\(s\).*at least 5.*fit_flat"):
        fit_svi(k, iv, TAU, label="expiry X")
    # repeated strikes (a call and a put) do not count twice
    with pytest.raises(SurfaceError, match="4 distinct"):
        fit_svi(np.r_[k, k], np.r_[iv, iv], TAU, label="expiry X")


def test_flat_fallback_is_the_iv_at_the_forward() -> None:
    k = np.array([-0.1, 0.05, 0.2])
    iv = np.array([0.7, 0.6, 0.65])
    fit = fit_flat(k, iv, TAU)
    expected = 0.7 + (0.6 - 0.7) * (0.1 / 0.15)  # linear in k between the quotes around k = 0
    assert np.sqrt(svi_total_variance(np.array([-2.0, 0.0, 3.0]), fit.params) / TAU) == pytest.approx(expected)
    assert fit.method == "flat"
    assert fit.min_g == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": 0.0}, "tau must be a finite number of years > 0"),
        ({"iv": np.full(6, -0.2)}, r"iv\[0\] = -0.2"),
        ({"weights": np.zeros(6)}, "weights must be finite and > 0"),
        ({"k": np.zeros(5)}, "1-D arrays of one length"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    args = {"k": np.linspace(-0.2, 0.2, 6), "iv": np.full(6, 0.5), "tau": TAU} | kwargs
    with pytest.raises(SurfaceError, match=message):
        fit_svi(args.pop("k"), args.pop("iv"), args.pop("tau"), **args)
