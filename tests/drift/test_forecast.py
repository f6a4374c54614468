"""Horizon forecasts (forecaster.drift.forecast): quantile functions through their knots, moments, validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, ndtri

from forecaster.drift import HorizonForecast

RV = {0.05: 0.0004, 0.25: 0.0007, 0.5: 0.0009, 0.75: 0.0012, 0.95: 0.002}
DIV = {0.05: -0.04, 0.25: -0.012, 0.5: 0.0, 0.75: 0.015, 0.95: 0.05}


def make(**kwargs) -> HorizonForecast:
    return HorizonForecast(**{"horizon": 60, "bar_years": 1 / 525_600, "var": 0.0002, **kwargs})


def test_years_is_horizon_times_bar_length() -> None:
    assert make(horizon=1440).years == pytest.approx(1 / 365, rel=1e-15)


def test_quantile_functions_pass_through_the_given_quantiles() -> None:
    f = make(rv_quantiles=RV, div_quantiles=DIV)
    levels = np.array(sorted(RV))
    np.testing.assert_allclose(f.rv_at(levels), [RV[q] for q in levels], rtol=1e-15)
    np.testing.assert_array_equal(f.div_at(levels), [DIV[q] for q in levels])
    # given in any order, the same function
    shuffled = make(rv_quantiles=dict(reversed(RV.items())), div_quantiles=dict(reversed(DIV.items())))
    u = np.linspace(0.001, 0.999, 101)
    np.testing.assert_array_equal(shuffled.rv_at(u), f.rv_at(u))
    np.testing.assert_array_equal(shuffled.div_at(u), f.div_at(u))


def test_quantile_functions_are_linear_in_the_normal_score_between_and_beyond_knots() -> None:
    f = make(rv_quantiles=RV, div_quantiles=DIV)
    z = ndtri(np.array(sorted(RV)))
    rv, div = np.array(list(RV.values())), np.array(list(DIV.values()))
    mid = ndtr((z[:-1] + z[1:]) / 2)
    np.testing.assert_allclose(f.rv_at(mid), np.sqrt(rv[:-1] * rv[1:]), rtol=1e-13)  # log-linear: geometric mean
    np.testing.assert_allclose(f.div_at(mid), (div[:-1] + div[1:]) / 2, rtol=1e-13, atol=1e-16)
    # tails continue the outermost segments: rv log-normal-like, div normal-like
    far = z[-1] + 1.0
    hi = (np.log(rv[-1]) - np.log(rv[-2])) / (z[-1] - z[-2])
    assert f.rv_at(ndtr(np.array([far])))[0] == pytest.approx(rv[-1] * np.exp(hi), rel=1e-10)
    lo = (div[1] - div[0]) / (z[1] - z[0])
    assert f.div_at(ndtr(np.array([z[0] - 2.0])))[0] == pytest.approx(div[0] - 2.0 * lo, rel=1e-10)
    u = np.linspace(1e-9, 1 - 1e-9, 2001)
    assert (np.diff(f.rv_at(u)) > 0).all() and (np.diff(f.div_at(u)) > 0).all() and (f.rv_at(u) > 0).all()


def test_single_or_zero_quantiles_are_constants() -> None:
    u = np.array([0.01, 0.5, 0.99])
    np.testing.assert_allclose(make(rv_quantiles={0.5: 0.0003}).rv_at(u), [0.0003] * 3, rtol=1e-15)
    np.testing.assert_array_equal(make(div_quantiles={0.3: -0.01}).div_at(u), [-0.01] * 3)
    np.testing.assert_array_equal(make(rv_quantiles={0.1: 0.0, 0.9: 0.0}).rv_at(u), np.zeros(3))
    np.testing.assert_array_equal(make(var=0.0, rv_log_stdev=0.7).rv_at(u), np.zeros(3))


def expectation(quantile_function, power: int = 1) -> float:
    """E[X^power] = ∫ Q(Φ(z))^power φ(z) dz by adaptive quadrature over -12 ≤ z ≤ 8."""
    value, _ = integrate.quad(
        lambda z: quantile_function(np.array([ndtr(z)]))[0] ** power * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
        -12.0,
        8.0,  # Φ(8) = 1 - 6e-16: beyond it the level rounds to 1
        limit=200,
        epsabs=0.0,
        epsrel=1e-12,
    )
    return value


@pytest.mark.parametrize("log_stdev", [0.0, 0.3, 1.0])
def test_lognormal_rv_has_mean_var_without_quantiles(log_stdev: float) -> None:
    f = make(var=0.0004, rv_log_stdev=log_stdev)
    assert expectation(f.rv_at) == pytest.approx(0.0004, rel=1e-9)
    # and log-stdev log_stdev: E[rv²] = var² exp(s²)
    assert expectation(f.rv_at, 2) == pytest.approx(0.0004**2 * np.exp(log_stdev**2), rel=1e-9)
    assert f.rv_at(np.array([0.5]))[0] == pytest.approx(0.0004 * np.exp(-(log_stdev**2) / 2), rel=1e-14)


def test_lognormal_mean_by_large_sample() -> None:
    f = make(var=0.0004, rv_log_stdev=0.8)
    draws = f.rv_at(np.random.default_rng(3).random(400_000))
    stderr = draws.std() / np.sqrt(draws.size)
    assert abs(draws.mean() - 0.0004) < 4 * stderr


def test_normal_iv_change_without_quantiles() -> None:
    f = make(div_mean=0.005, div_stdev=0.03)
    assert expectation(f.div_at) == pytest.approx(0.005, rel=1e-9)
    assert expectation(f.div_at, 2) - 0.005**2 == pytest.approx(0.03**2, rel=1e-9)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("horizon", {"horizon": 0}),
        ("bar_years", {"bar_years": 0.0}),
        ("var", {"var": -1e-6}),
        ("var", {"var": np.nan}),
        ("var", {"var": np.inf}),
        ("spot_vol_corr", {"spot_vol_corr": 1.2}),
        ("spot_vol_corr", {"spot_vol_corr": -1.0001}),
        ("spot_vol_corr", {"spot_vol_corr": np.nan}),
        ("div_stdev", {"div_stdev": -0.01}),
        ("rv_log_stdev", {"rv_log_stdev": -0.5}),
        ("rv_quantiles", {"rv_quantiles": {0.25: 0.001, 0.75: 0.0005}}),
        ("rv_quantiles", {"rv_quantiles": {0.25: -0.001, 0.75: 0.0005}}),
        ("rv_quantiles", {"rv_quantiles": {0.25: 0.0, 0.75: 0.0005}}),
        ("rv_quantiles", {"rv_quantiles": {0.0: 0.0001, 0.5: 0.0005}}),
        ("rv_quantiles", {"rv_quantiles": {0.5: 0.0005, 1.0: 0.001}}),
        ("div_quantiles", {"div_quantiles": {0.1: 0.02, 0.9: -0.02}}),
        ("div_quantiles", {"div_quantiles": {-0.1: -0.02, 0.9: 0.02}}),
        ("div_quantiles", {"div_quantiles": {0.1: -0.02, 0.9: np.nan}}),
    ],
)
def test_validation_names_the_field(field: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=rf"^HorizonForecast\.{field} must be .*; got "):
        make(**kwargs)
