"""Persistence, EWMA and HAR against independent references: plain-Python loops, scikit-learn regressions, and
synthetic series generated from a known model whose parameters the fit must recover.

Tolerances of the recovery tests are 4 standard errors of the estimator (computed from the classical OLS formula
on the same sample; the HAR errors are i.i.d. by construction, so the formula holds): a correct fit fails them
with probability < 1e-4 per coefficient, and each test also checks the standard error is small enough for a wrong
fit to be caught.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.preprocessing import StandardScaler

from models.base import ModelData, ModelError
from models.baselines import Ewma, Har, Persistence, ewma_variance, qlike

# ---------------------------------------------------------------- synthetic ModelData


def _data(
    log_return: np.ndarray,
    horizons: tuple[int, ...],
    *,
    features: dict[str, np.ndarray] | None = None,
    targets: dict[str, np.ndarray] | None = None,
    iv: np.ndarray | None = None,
    bar_years: float = 1 / 525_600,
) -> ModelData:
    """ModelData on 1-minute bars ending at 00:37, 00:38, … (windows cross hour anchors); targets rv_h by loop
    unless given."""
    n = log_return.size
    index = pd.date_range("2026-01-05 00:37", periods=n, freq="1min", tz="UTC", name="timestamp")
    if targets is None:
        r2 = (log_return**2).tolist()
        targets = {f"rv_h{h}": np.array([math.fsum(r2[t + 1 : t + h + 1]) if t + h < n else np.nan for t in range(n)])
                   for h in horizons}  # fmt: skip
    frame = pd.DataFrame(features or {"rv_1": log_return**2}, index=index)
    return ModelData(
        features=frame,
        log_return=log_return,
        bar_years=bar_years,
        horizons=horizons,
        targets=pd.DataFrame(targets, index=index),
        iv=iv,
    )


def _returns(n: int, seed: int) -> np.ndarray:
    """Returns with a slowly varying volatility (so the models have something to track); NaN on the first bar."""
    rng = np.random.default_rng(seed)
    vol = 1e-3 * np.exp(0.5 * np.sin(np.arange(n) / 40.0))
    r = vol * rng.standard_t(5, size=n)
    r[0] = np.nan
    return r


def _var(frame: pd.DataFrame, h: int) -> np.ndarray:
    return frame.loc[frame["horizon"] == h, "var"].to_numpy()


# ---------------------------------------------------------------- persistence


def test_persistence_is_the_sum_of_the_last_h_squared_returns():
    r = _returns(400, 1)
    data = _data(r, (5, 90))
    rows = np.arange(90, 300)
    model = Persistence().fit(data, rows)
    out = model.predict(data, rows)
    for h in (5, 90):
        expected = [math.fsum(x * x for x in r[t - h + 1 : t + 1]) for t in rows]
        np.testing.assert_allclose(_var(out, h), expected, rtol=1e-12)


def test_persistence_refuses_an_origin_whose_window_holds_the_first_bar():
    data = _data(_returns(200, 2), (30,))
    model = Persistence().fit(data, np.arange(40, 150))
    with pytest.raises(ModelError, match="non-finite variance forecast at h=30, origin 10"):
        model.predict(data, np.arange(10, 20))


# ---------------------------------------------------------------- EWMA


def _ewma_loop(r: np.ndarray, lam: float) -> list[float]:
    """σ²_t as the RiskMetrics-weighted average of the squared returns seen, weights λ^{t−i}, one t at a time."""
    out = []
    for t in range(r.size):
        past = [(lam ** (t - i), r[i] ** 2) for i in range(t + 1) if np.isfinite(r[i])]
        weight = math.fsum(w for w, _ in past)
        out.append(math.fsum(w * x for w, x in past) / weight if past else math.nan)
    return out


@pytest.mark.parametrize("lam", [0.94, 0.6])
def test_ewma_is_the_weighted_average_of_past_squared_returns(lam):
    r = _returns(300, 3)
    r[150] = np.nan  # a missing return: no weight, the decay goes on
    np.testing.assert_allclose(ewma_variance(r * r, lam), _ewma_loop(r, lam), rtol=1e-11, equal_nan=True)
    data = _data(r, (1, 20))
    rows = np.arange(30, 250)
    out = Ewma(lam=lam).fit(data, rows).predict(data, rows)
    for h in (1, 20):
        np.testing.assert_allclose(_var(out, h), h * np.array(_ewma_loop(r, lam))[rows], rtol=1e-11)


def test_ewma_follows_the_riskmetrics_recursion_once_the_start_is_forgotten():
    lam = 0.94
    r = _returns(2_000, 4)
    s = ewma_variance(r * r, lam)
    late = np.arange(600, r.size)  # λ^600 ≈ 7e-17: the normalization 1 − λ^k is 1 to double precision
    recursion = lam * s[late - 1] + (1 - lam) * r[late] ** 2
    np.testing.assert_allclose(s[late], recursion, rtol=1e-13)


def _garch_path(n: int, alpha: float, beta: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A GARCH(1,1) path with long-run variance 1e-6 per bar: (returns, NaN on the first bar; the true variance
    of the next bar σ²_{t+1} known at t)."""
    rng = np.random.default_rng(seed)
    omega = 1.0 - alpha - beta
    z = rng.standard_normal(n)
    r, nxt = np.empty(n), np.empty(n)
    s2 = 1.0
    for t in range(n):
        r[t] = math.sqrt(s2) * z[t]
        s2 = omega + alpha * r[t] ** 2 + beta * s2
        nxt[t] = s2
    r[0] = np.nan
    return 1e-3 * r, 1e-6 * nxt


def test_fitted_lambda_recovers_the_best_ewma_of_the_true_variance_and_beats_the_default():
    # GARCH(1,1), β = 0.8, α = 0.19: its one-step variance is an EWMA of memory β plus a constant ω/(1 − β), which
    # acts as longer memory, so no EWMA is exact. The known target is the pseudo-true λ*, the EWMA closest in QLIKE
    # to the TRUE next-bar variance (≈ 0.85-0.86 over seeds); the fit sees only squared returns. Over seeds 5-9
    # |λ̂ − λ*| ≤ 0.004; the tolerance is 0.01, far below the distance to RiskMetrics' 0.94.
    r, true_next = _garch_path(20_000, alpha=0.19, beta=0.8, seed=5)
    data = _data(r, (1,), targets={"rv_h1": np.r_[r[1:] ** 2, np.nan]})
    rows = np.arange(100, r.size - 1)
    grid = np.arange(0.5, 0.9999, 0.0005)
    pseudo_true = grid[np.argmin([qlike(true_next[rows], ewma_variance(r * r, lam)[rows]) for lam in grid])]
    fitted = Ewma(lam="fit").fit(data, rows)
    assert abs(fitted.lam_[1] - pseudo_true) < 0.01
    rv = data.target(1)[rows]
    scan = [qlike(rv, ewma_variance(r * r, lam)[rows]) for lam in grid]
    assert fitted.train_qlike_[1] <= min(scan) + 1e-9  # the optimizer found the minimum a fine grid finds
    default = Ewma().fit(data, rows)
    assert fitted.train_qlike_[1] < default.train_qlike_[1] - 0.01


def test_ewma_fits_lambda_per_horizon_and_rejects_a_bad_lambda():
    r = _returns(3_000, 6)
    data = _data(r, (1, 240))
    rows = np.arange(300, 2_700, 5)
    fitted = Ewma(lam="fit").fit(data, rows)
    assert set(fitted.lam_) == {1, 240}
    assert all(0.5 <= v <= 0.9999 for v in fitted.lam_.values())
    assert fitted.lam_[1] != fitted.lam_[240]
    for bad in (1.0, 0.0, "auto", None, True):
        with pytest.raises(ModelError, match="lam must be a number in \\(0, 1\\) or 'fit'"):
            Ewma(lam=bad).fit(data, rows)


# ---------------------------------------------------------------- HAR


HAR_WINDOWS = (1, 5, 22)


def _log_har_series(
    n: int, coef: tuple[float, ...], sigma: float, seed: int, z: np.ndarray | None = None
) -> np.ndarray:
    """Daily-like variances v from the log-HAR ``log v_{t+1} = c + Σ b_W log(mean of v_{t−W+1..t}) [+ c_z z_t]
    + σ ε``. Shape (n,)."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n)
    v = np.full(n, 1e-4)
    log_v = np.log(v)
    for t in range(max(HAR_WINDOWS) - 1, n - 1):
        x = [math.log(v[t - w + 1 : t + 1].mean()) for w in HAR_WINDOWS]
        mean = coef[0] + sum(b * xi for b, xi in zip(coef[1:4], x, strict=True))
        if z is not None:
            mean += coef[4] * z[t]
        log_v[t + 1] = mean + sigma * eps[t + 1]
        v[t + 1] = math.exp(log_v[t + 1])
    return v


def _har_data(v: np.ndarray, iv: np.ndarray | None = None, bar_years: float = 1 / 365) -> ModelData:
    """Bars whose 'squared return' is v: features rv_W = Σ of the last W values, target rv_h1(t) = v_{t+1}."""
    c = np.r_[0.0, np.cumsum(v)]
    n = v.size
    features = {}
    for w in HAR_WINDOWS:
        col = np.full(n, np.nan)
        col[w - 1 :] = c[w:] - c[:-w]
        features[f"rv_{w}"] = col
    return _data(np.sqrt(v), (1,), features=features, targets={"rv_h1": np.r_[v[1:], np.nan]}, iv=iv,
                 bar_years=bar_years)  # fmt: skip


def _ols_se(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of y on [1, x]: (coefficients, classical standard errors, residuals)."""
    design = np.column_stack([np.ones(len(x)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    s2 = resid @ resid / (len(y) - design.shape[1])
    return coef, np.sqrt(np.diag(s2 * np.linalg.inv(design.T @ design))), resid


def test_log_har_recovers_the_coefficients_of_a_log_har_process():
    truth = (-0.9, 0.4, 0.3, 0.2)
    sigma = 0.5
    v = _log_har_series(20_000, truth, sigma, seed=7)
    data = _har_data(v)
    rows = np.arange(100, v.size - 1)
    model = Har().fit(data, rows)
    assert model.windows_ == list(HAR_WINDOWS)
    x = np.column_stack([np.log(data.column(f"rv_{w}")[rows] / w) for w in HAR_WINDOWS])
    _, se, _ = _ols_se(x, np.log(data.target(1)[rows]))
    estimate = np.r_[model.intercept_[1], model.coef_[1]]
    assert np.all(se[1:] < 0.05)  # precise enough to tell a wrong slope from the truth
    np.testing.assert_array_less(np.abs(estimate - np.array(truth)), 4 * se)
    # Duan's smearing factor estimates E[exp(σ ε)] = exp(σ²/2) for these Gaussian errors; its standard error is
    # sqrt((e^{σ²} − 1) e^{σ²} / n) ≈ 0.004
    assert abs(model.smear_[1] - math.exp(sigma**2 / 2)) < 0.02
    # the forecast is the conditional mean: on the sample its average matches the realized average
    forecast = _var(model.predict(data, rows), 1)
    assert abs(forecast.mean() / data.target(1)[rows].mean() - 1) < 0.03


def _small_design(data: ModelData, rows: np.ndarray, h: int) -> np.ndarray:
    return np.column_stack([data.column(f"rv_{w}")[rows] * h / w for w in (60, 240, 1440)])


def test_levels_har_equals_sklearn_linear_regression(small_data, small_split):
    train, test = small_split
    model = Har(log=False).fit(small_data, train)
    out = model.predict(small_data, test)
    for h in small_data.horizons:
        x, y = _small_design(small_data, train, h), small_data.target(h)[train]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        reference = LinearRegression().fit(x[ok], y[ok])
        np.testing.assert_allclose(model.coef_[h], reference.coef_, rtol=1e-7)
        np.testing.assert_allclose(model.intercept_[h], reference.intercept_, rtol=1e-7, atol=1e-12)
        floor = y[ok][y[ok] > 0].min()
        assert model.floor_[h] == floor
        expected = np.maximum(reference.predict(_small_design(small_data, test, h)), floor)
        np.testing.assert_allclose(_var(out, h), expected, rtol=1e-7)


def test_ridge_har_equals_sklearn_ridge_on_standardized_regressors(small_data, small_split):
    train, _ = small_split
    model = Har(ridge=50.0).fit(small_data, train)
    for h in small_data.horizons:
        x, y = np.log(_small_design(small_data, train, h)), np.log(small_data.target(h)[train])
        scaler = StandardScaler().fit(x)
        reference = Ridge(alpha=50.0).fit(scaler.transform(x), y)
        np.testing.assert_allclose(model.coef_[h], reference.coef_ / scaler.scale_, rtol=1e-8)
        ols = Har().fit(small_data, train)
        assert np.linalg.norm(reference.coef_) < np.linalg.norm(ols.coef_[h] * scaler.scale_)  # it does shrink


def test_har_x_uses_the_implied_variance_when_it_predicts():
    n = 20_000
    rng = np.random.default_rng(8)
    z = rng.standard_normal(n)  # news the IV knows: log(iv² · h · bar_years) = z
    truth = (-0.9, 0.4, 0.3, 0.2, 0.3)
    v = _log_har_series(n, truth, 0.5, seed=9, z=z)
    bar_years = 1 / 365
    iv = np.sqrt(np.exp(z) / bar_years)
    rows = np.arange(100, n - 1)
    informed = Har(exog_iv=True).fit(_har_data(v, iv, bar_years), rows)
    assert informed.columns_ == ["rv_1", "rv_5", "rv_22", "iv"]
    data = _har_data(v, iv, bar_years)
    x = np.column_stack([np.log(data.column(f"rv_{w}")[rows] / w) for w in HAR_WINDOWS] + [z[rows]])
    _, se, _ = _ols_se(x, np.log(data.target(1)[rows]))
    assert se[-1] < 0.01
    assert abs(informed.coef_[1][-1] - 0.3) < 4 * se[-1]
    # the same fit on an IV that knows nothing: its coefficient is 0 within the noise
    uninformed_iv = np.sqrt(np.exp(rng.standard_normal(n)) / bar_years)
    uninformed = Har(exog_iv=True).fit(_har_data(v, uninformed_iv, bar_years), rows)
    assert abs(uninformed.coef_[1][-1]) < 4 * se[-1]


def test_har_x_needs_an_iv_and_har_needs_its_windows(small_data, small_split):
    train, _ = small_split
    no_iv = _har_data(_log_har_series(300, (-0.9, 0.4, 0.3, 0.2), 0.5, seed=10))
    with pytest.raises(ModelError, match="exog_iv=True\\) needs an implied-vol series"):
        Har(exog_iv=True).fit(no_iv, np.arange(30, 290))
    with pytest.raises(ModelError, match="windows \\[5\\] have no rv_W feature column"):
        Har(windows=[60, 5]).fit(small_data, train)
    model = Har(windows=[1440, 60]).fit(small_data, train)
    assert model.windows_ == [60, 1440] and model.coef_[60].shape == (2,)
    with pytest.raises(ModelError, match="regressor rv_1440 is not finite at origin 100"):
        model.predict(small_data, np.arange(100, 200))


def test_log_har_floors_a_zero_regressor_at_its_smallest_training_level(small_data, small_split) -> None:
    """An unchanged close gives rv_W = 0 (no log): the forecast uses the smallest positive training level instead."""
    import dataclasses

    train, test = small_split
    model = Har().fit(small_data, train)
    features = small_data.features.copy()
    row = int(test[5])
    features.iloc[row, features.columns.get_loc("rv_60")] = 0.0
    zeroed = dataclasses.replace(small_data, features=features)
    floored = features.copy()
    h = small_data.horizons[0]
    j = model.columns_.index("rv_60")
    floored.iloc[row, floored.columns.get_loc("rv_60")] = model.x_floor_[h][j] * 60 / h  # the floor, in rv_60 units
    expected = model.predict(dataclasses.replace(small_data, features=floored), test[5:6])
    got = model.predict(zeroed, test[5:6])
    assert np.isfinite(got["var"]).all()
    np.testing.assert_allclose(got["var"].to_numpy(), expected["var"].to_numpy(), rtol=1e-12)
    positive = small_data.column("rv_60")[train] * h / 60
    assert model.x_floor_[h][j] == positive[positive > 0].min()


def test_log_har_with_range_measures_equals_sklearn_on_the_hand_built_design(small_data, small_split):
    """measures=[rv, gk]: one log regressor per (measure, window), measures outer, the same OLS as scikit-learn."""
    train, test = small_split
    model = Har(measures=["rv", "gk"], windows=[60, 240, 1440]).fit(small_data, train)
    assert model.columns_ == ["rv_60", "rv_240", "rv_1440", "gk_60", "gk_240", "gk_1440"]
    out = model.predict(small_data, test)
    for h in small_data.horizons:

        def design(rows, h=h):
            return np.log(
                np.column_stack(
                    [small_data.column(f"{m}_{w}")[rows] * h / w for m in ("rv", "gk") for w in (60, 240, 1440)]
                )
            )

        x, y = design(train), np.log(small_data.target(h)[train])
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        reference = LinearRegression().fit(x[ok], y[ok])
        np.testing.assert_allclose(model.coef_[h], reference.coef_, rtol=1e-7)
        smear = np.mean(np.exp(y[ok] - reference.predict(x[ok])))
        np.testing.assert_allclose(_var(out, h), np.exp(reference.predict(design(test))) * smear, rtol=1e-7)


def test_har_measures_are_checked(small_data, small_split):
    train, _ = small_split
    with pytest.raises(ModelError, match="measures must be a list of distinct names from"):
        Har(measures=["rv", "yz_typo"]).fit(small_data, train)
    with pytest.raises(ModelError, match="measures must be a list"):
        Har(measures="gk").fit(small_data, train)
    no_gk = small_data.features.drop(columns=[c for c in small_data.features if c.startswith("gk_")])
    import dataclasses

    with pytest.raises(ModelError, match=r"measure columns \['gk_60', 'gk_240', 'gk_1440'\] are not in the feature"):
        Har(measures=["rv", "gk"]).fit(dataclasses.replace(small_data, features=no_gk), train)
