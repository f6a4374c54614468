"""Joint scenarios (forecaster.drift.scenarios): determinism, martingale, copula correlation, marginals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtri

from forecaster.drift import METHODS, HorizonForecast, draw_scenarios, uniforms

N_BIG = 200_000


def normal_forecast(rho: float, log_stdev: float = 0.0, var: float = 0.001) -> HorizonForecast:
    return HorizonForecast(
        horizon=1440, bar_years=1 / 525_600, var=var, rv_log_stdev=log_stdev, div_stdev=0.03, spot_vol_corr=rho
    )


@pytest.mark.parametrize("method", METHODS)
def test_uniforms_shape_range_and_determinism(method: str) -> None:
    u = uniforms(1000, seed=11, method=method)
    assert u.shape == (1000, 3) and (u > 0).all() and (u < 1).all()
    np.testing.assert_array_equal(u, uniforms(1000, seed=11, method=method))
    assert not np.allclose(u, uniforms(1000, seed=12, method=method))
    # each column is uniform: mean 1/2 within 4 standard errors of plain sampling (1/√(12 n))
    assert np.abs(u.mean(axis=0) - 0.5).max() < 4 / np.sqrt(12 * 1000)


@pytest.mark.parametrize("method", METHODS)
def test_scenarios_are_deterministic_in_the_seed(method: str, forecast: HorizonForecast) -> None:
    a, b = draw_scenarios(forecast, 500, seed=5, method=method), draw_scenarios(forecast, 500, seed=5, method=method)
    c = draw_scenarios(forecast, 500, seed=6, method=method)
    assert len(a) == 500
    for name in ("rv", "log_return", "iv_change"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))


def test_scenarios_are_the_quantile_functions_of_the_uniforms(forecast: HorizonForecast) -> None:
    u = uniforms(4096, seed=3, method="sobol")
    scen = draw_scenarios(forecast, 4096, seed=3, method="sobol")
    np.testing.assert_array_equal(scen.rv, forecast.rv_at(u[:, 0]))
    z = ndtri(u[:, 1])
    np.testing.assert_allclose(scen.log_return, np.sqrt(scen.rv) * z - scen.rv / 2, rtol=1e-14, atol=1e-18)


@pytest.mark.parametrize("n", [2, 1000, 1001])
def test_antithetic_pairs_mirror(n: int, plain_forecast: HorizonForecast) -> None:
    u = uniforms(n, seed=2, method="antithetic")
    half = (n + 1) // 2
    np.testing.assert_allclose(u[half:] + u[: n - half], 1.0, rtol=0, atol=1e-15)
    scen = draw_scenarios(plain_forecast, n, seed=2, method="antithetic")
    z = (scen.log_return + scen.rv / 2) / np.sqrt(scen.rv)  # the normal score behind each return
    np.testing.assert_allclose(z[half:], -z[: n - half], rtol=1e-7, atol=1e-9)
    # a mirrored rv level: the log-normal rv of a pair multiplies to var² exp(-s²)
    np.testing.assert_allclose(scen.rv[half:] * scen.rv[: n - half], 0.001**2 * np.exp(-(0.5**2)), rtol=1e-7)
    # a zero-mean normal IV change mirrors too (w = ρ z + √(1-ρ²) z' flips sign with both scores)
    np.testing.assert_allclose(scen.iv_change[half:], -scen.iv_change[: n - half], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize(("method", "n"), [("sobol", 1), ("random", 0), ("antithetic", -3)])
def test_too_few_scenarios(method: str, n: int) -> None:
    with pytest.raises(ValueError, match=rf"number of scenarios must be ≥ 2; got {n}"):
        uniforms(n, seed=0, method=method)


def test_unknown_method(plain_forecast: HorizonForecast) -> None:
    with pytest.raises(ValueError, match=r"sampling method must be one of sobol, antithetic, random; got 'halton'"):
        draw_scenarios(plain_forecast, 100, method="halton")


@pytest.mark.parametrize(("method", "n"), [("random", N_BIG), ("sobol", 1 << 14), ("antithetic", N_BIG)])
def test_price_is_a_martingale(method: str, n: int) -> None:
    # a stressed, very uncertain variance (var 0.04, log-stdev 0.8) makes the -rv/2 drift matter: without it the
    # mean of exp(r) would be about exp(0.02) - 1 = 2% above 1, some 40 standard errors at 200,000 draws
    f = normal_forecast(-0.5, log_stdev=0.8, var=0.04)
    growth = np.exp(draw_scenarios(f, n, seed=1, method=method).log_return)
    stderr = growth.std() / np.sqrt(n)
    assert abs(growth.mean() - 1.0) < 4 * stderr


@pytest.mark.parametrize("rho", [-0.8, -0.3, 0.0, 0.6])
def test_spot_vol_correlation_with_fixed_variance(rho: float) -> None:
    # rv fixed: (r + rv/2, div) is bivariate normal with correlation ρ; sample corr stdev ≈ (1 - ρ²)/√n
    scen = draw_scenarios(normal_forecast(rho), N_BIG, seed=4, method="random")
    assert np.ptp(scen.rv) == 0.0
    corr = np.corrcoef(scen.log_return, scen.iv_change)[0, 1]
    assert abs(corr - rho) < 4 * (1 - rho * rho) / np.sqrt(N_BIG) + 1e-12


@pytest.mark.parametrize("rho", [-0.7, 0.4])
def test_spot_vol_correlation_with_random_variance(rho: float) -> None:
    # rv = v e^{sX - s²/2}: cov(r, div) = ρ σ_div E√rv with E√rv = √v e^{-s²/8},
    # var(r) = E rv + var(rv)/4 = v + v² (e^{s²} - 1)/4
    v, s = 0.02, 0.8
    scen = draw_scenarios(normal_forecast(rho, log_stdev=s, var=v), N_BIG, seed=9, method="random")
    expected = rho * np.sqrt(v) * np.exp(-s * s / 8) / np.sqrt(v + v * v * (np.exp(s * s) - 1) / 4)
    assert abs(expected) < abs(rho) * 0.95  # the variance mixture visibly weakens the correlation
    corr = np.corrcoef(scen.log_return, scen.iv_change)[0, 1]
    assert np.sign(corr) == np.sign(rho)
    assert abs(corr - expected) < 4 * (1 - expected**2) / np.sqrt(N_BIG)


def test_skewed_iv_change_keeps_the_sign_of_the_correlation(quantile_forecast: HorizonForecast) -> None:
    scen = draw_scenarios(quantile_forecast, N_BIG, seed=8, method="random")
    corr = np.corrcoef(scen.log_return, scen.iv_change)[0, 1]
    assert -0.4 < corr < -0.25  # ρ = -0.4 through a non-normal marginal and a variance mixture: weaker, same sign


def test_scenarios_reproduce_the_forecast_quantiles(quantile_forecast: HorizonForecast) -> None:
    scen = draw_scenarios(quantile_forecast, N_BIG, seed=21, method="random")
    for draws, given in ((scen.rv, quantile_forecast.rv_quantiles), (scen.iv_change, quantile_forecast.div_quantiles)):
        levels = np.array(sorted(given))
        values = np.array([given[q] for q in levels])
        # the share of draws below each given quantile is its level, within 4 binomial standard errors
        below = (draws[:, None] <= values).mean(axis=0)
        np.testing.assert_array_less(np.abs(below - levels), 4 * np.sqrt(levels * (1 - levels) / N_BIG))
        # and the empirical quantiles sit on the given values (1% of the 5%-95% range)
        span = values[-1] - values[0]
        np.testing.assert_array_less(np.abs(np.quantile(draws, levels) - values), 0.01 * span)


def test_plain_forecast_marginals(plain_forecast: HorizonForecast) -> None:
    scen = draw_scenarios(plain_forecast, 1 << 15, seed=2, method="sobol")
    # Sobol' averages: rv has mean var; the IV change is N(0, 0.03²); the return has variance E rv + var(rv)/4
    assert scen.rv.mean() == pytest.approx(0.001, rel=2e-3)
    assert scen.iv_change.mean() == pytest.approx(0.0, abs=1e-4)
    assert scen.iv_change.std() == pytest.approx(0.03, rel=2e-3)
    expected_var = 0.001 + 0.001**2 * (np.exp(0.25) - 1) / 4
    assert scen.log_return.var() == pytest.approx(expected_var, rel=5e-3)
