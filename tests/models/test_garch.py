"""GARCH baselines against ``arch`` itself: the variance filter against arch's recursion, the closed-form h-step
sum against arch's analytic forecasts, and the fit against the parameters of a path arch simulated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from arch.univariate import GARCH, StudentsT, ZeroMean

from models.base import ModelData, ModelError
from models.garch import Garch, garch_aggregate, garch_filter


def _returns_data(r: np.ndarray, horizons: tuple[int, ...] = (1,)) -> ModelData:
    """1-minute bars with returns r (first one NaN) and rv_h targets (cumulative sums are exact enough here)."""
    n = r.size
    index = pd.date_range("2026-01-05 00:37", periods=n, freq="1min", tz="UTC", name="timestamp")
    c = np.r_[0.0, np.nancumsum(r * r)]
    targets = {}
    for h in horizons:
        rv = np.full(n, np.nan)
        rv[: n - h] = c[h + 1 : n + 1] - c[1 : n - h + 1]
        targets[f"rv_h{h}"] = rv
    features = pd.DataFrame({"rv_1": r * r}, index=index)
    return ModelData(features, r, 1 / 525_600, horizons, pd.DataFrame(targets, index=index))


@pytest.mark.parametrize("gamma", [0.0, 0.06])
def test_filter_matches_arch_recursion(gamma):
    rng = np.random.default_rng(1)
    resid = 0.01 * rng.standard_t(5, size=2_000)
    omega, alpha, beta, backcast = 2e-6, 0.05, 0.9, 1.3e-4
    sigma2 = np.zeros(resid.size)
    bounds = np.column_stack([np.zeros(resid.size), np.full(resid.size, np.inf)])  # arch's clipping off
    GARCH(p=1, o=1, q=1).compute_variance(np.array([omega, alpha, gamma, beta]), resid, sigma2, backcast, bounds)
    s = garch_filter(resid, omega, alpha, gamma, beta, backcast)  # s_t = σ²_{t+1|t}
    np.testing.assert_allclose(s[:-1], sigma2[1:], rtol=1e-12)
    last = omega + (alpha + gamma * (resid[-1] < 0)) * resid[-1] ** 2 + beta * sigma2[-1]
    np.testing.assert_allclose(s[-1], last, rtol=1e-12)


def _arch_variance_path(model: Garch, r: np.ndarray, horizon: int) -> np.ndarray:
    """arch's analytic forecasts σ²_{t+1..t+h | t} at the last return of r, with the fitted model's parameters fixed,
    in return units. Shape (h,)."""
    p, c = model.params_, model.scale_
    scaled = {"mu": p["mu"] / c, "omega": p["omega"] / c**2, "alpha[1]": p["alpha"], "gamma[1]": p["gamma"]}
    scaled |= {"beta[1]": p["beta"], "nu": p.get("nu", np.nan)}
    names = ["mu"] * (model.mean == "constant") + ["omega", "alpha[1]"] + ["gamma[1]"] * (model.kind == "gjr")
    names += ["beta[1]"] + ["nu"] * (model.dist == "t")  # arch's order: mean, volatility, distribution
    am = arch_model(
        r / c, mean={"zero": "Zero", "constant": "Constant"}[model.mean], vol="GARCH", p=1,
        o=int(model.kind == "gjr"), q=1, dist=model.dist, rescale=False,
    )  # fmt: skip
    fixed = am.fix([scaled[k] for k in names])
    return fixed.forecast(horizon=horizon, method="analytic", reindex=False).variance.to_numpy()[-1] * c**2


@pytest.mark.parametrize(("kind", "mean"), [("garch", "zero"), ("gjr", "zero"), ("gjr", "constant")])
def test_h_step_sum_equals_arch_analytic_forecast(small_data, small_split, kind, mean):
    train, test = small_split
    model = Garch(kind=kind, mean=mean).fit(small_data, train)
    origins = test[[0, len(test) // 2, -1]]
    # the two filters start differently (arch: its 75-return backcast; ours: the training variance); the gap
    # decays as β^t, negligible at these origins
    assert model.params_["beta"] ** (origins[0] - 1) < 1e-12
    out = model.predict(small_data, origins)
    mu2, phi = model.params_["mu"] ** 2, model.persistence_
    for h in small_data.horizons:
        paths = np.array([_arch_variance_path(model, small_data.log_return[1 : t + 1], h) for t in origins])  # (3, h)
        np.testing.assert_allclose(out.loc[out["horizon"] == h, "var"], paths.sum(axis=1) + h * mu2, rtol=1e-8)
        # the closed form alone, fed arch's own one-step forecasts
        aggregate = garch_aggregate(paths[:, 0], model.params_["omega"], phi, h)
        np.testing.assert_allclose(aggregate, paths.sum(axis=1), rtol=1e-10)


def test_aggregate_is_the_sum_of_the_iterated_forecasts():
    s = np.array([1e-6, 3e-6, 0.2e-6])
    omega, phi, h = 2e-8, 0.97, 50
    expected = []
    for s1 in s:
        total, step = 0.0, s1
        for _ in range(h):
            total += step
            step = omega + phi * step
        expected.append(total)
    np.testing.assert_allclose(garch_aggregate(s, omega, phi, h), expected, rtol=1e-13)
    np.testing.assert_allclose(garch_aggregate(s, omega, 1.0, h), s * h + omega * h * (h - 1) / 2, rtol=1e-13)


def test_fit_recovers_the_parameters_of_a_simulated_gjr_path():
    truth = {"omega": 0.02, "alpha": 0.05, "gamma": 0.08, "beta": 0.88, "nu": 6.0}
    sim = ZeroMean(volatility=GARCH(p=1, o=1, q=1), distribution=StudentsT(seed=3))
    y = sim.simulate([truth[k] for k in ("omega", "alpha", "gamma", "beta", "nu")], nobs=30_000)["data"].to_numpy()
    scale = 1e-3  # 1-minute-like returns: the model must rescale for arch and map ω back
    r = np.r_[np.nan, scale * y]
    data = _returns_data(r)
    model = Garch(kind="gjr").fit(data, np.arange(1, r.size - 1))
    expected = truth | {"omega": truth["omega"] * scale**2}
    for key, value in expected.items():
        se = model.std_err_[key]
        assert se < 0.25 * abs(value), key  # precise enough to tell a wrong estimate from the truth
        assert abs(model.params_[key] - value) < 4 * se, (key, model.params_[key], value, se)


def test_garch_refuses_bad_parameters_and_broken_series(small_data, small_split):
    train, _ = small_split
    for params, match in (({"kind": "egarch"}, "kind must be one of garch, gjr; got 'egarch'"),
                          ({"dist": "skewt"}, "dist must be one of t, normal; got 'skewt'"),
                          ({"mean": "ar"}, "mean must be one of zero, constant; got 'ar'")):  # fmt: skip
        with pytest.raises(ModelError, match=match):
            Garch(**params).fit(small_data, train)
    r = small_data.log_return.copy()
    r[train[10]] = np.nan
    broken = ModelData(small_data.features, r, small_data.bar_years, small_data.horizons, small_data.targets)
    with pytest.raises(ModelError, match=f"the log return of bar {train[10]} is not finite"):
        Garch().fit(broken, train)
