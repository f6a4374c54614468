"""Greek-drift forecast evaluation: realized drift against Black-76 directly, scores against scikit-learn's pinball
loss and hand counts, and the direct LightGBM quantile model on a synthetic drift it can learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_pinball_loss

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.drift_eval import (
    direct_quantile_model,
    evaluate_drift_forecasts,
    quantile_scores,
    realized_drift,
    view_quantiles,
)
from forecaster.backtest.engine import BacktestMarket
from forecaster.backtest.forecasts import LEVELS
from forecaster.backtest.policy import ForecastView
from forecaster.margin import MarginConfig
from forecaster.pricing.black import black76_greeks

BAR_YEARS = 1 / 525_600
YEAR = pd.Timedelta(days=365)


def market(n: int = 2000, seed: int = 1) -> BacktestMarket:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    close = 60_000.0 * np.exp(np.cumsum(0.6 * np.sqrt(BAR_YEARS) * rng.standard_normal(n)))
    return BacktestMarket(index, close, 0.6 + 0.05 * np.sin(np.arange(n) / 300), BAR_YEARS)


def test_realized_drift_is_the_fixed_book_repriced_later():
    m = market()
    short_expiry = m.index[500]  # expires inside the horizon of origin 400
    long_expiry = m.index[0] + pd.Timedelta(days=3)
    legs = OptionLegs(
        np.array([60_000.0, 59_000.0]), np.array([True, False]), np.array([-2.0, 1.0]), np.array([0, 0]),
        np.array([500, 4320]), pd.DatetimeIndex([short_expiry, long_expiry]),
    )  # fmt: skip
    h = 240
    frame = realized_drift(m, legs, [100, 400, 1900], h, margin_config=MarginConfig())
    assert list(frame.index) == [100, 400]  # 1900 + 240 is past the market
    t = 100
    g0 = [black76_greeks(m.close[t], k, (e - m.index[t]) / YEAR, m.iv[t], c) for k, e, c in
          zip(legs.strike, legs.expiry, legs.is_call, strict=True)]  # fmt: skip
    g1 = [black76_greeks(m.close[t + h], k, (e - m.index[t + h]) / YEAR, m.iv[t + h], c) for k, e, c in
          zip(legs.strike, legs.expiry, legs.is_call, strict=True)]  # fmt: skip
    now = -2.0 * g0[0]["delta"] + g0[1]["delta"]
    later = -2.0 * g1[0]["delta"] + g1[1]["delta"]
    assert frame.loc[t, "delta_now"] == pytest.approx(now, rel=1e-12)
    assert frame.loc[t, "delta"] == pytest.approx(later - now, rel=1e-10)
    assert frame.loc[t, "vega"] == pytest.approx(
        (-2.0 * (g1[0]["vega"] - g0[0]["vega"]) + g1[1]["vega"] - g0[1]["vega"]) / 100
    )
    # origin 400: the short call expires at bar 500 < 640: only the put is left at t + h
    t = 400
    put_later = black76_greeks(m.close[t + h], 59_000.0, (long_expiry - m.index[t + h]) / YEAR, m.iv[t + h], False)
    assert frame.loc[t, "delta"] + frame.loc[t, "delta_now"] == pytest.approx(float(put_later["delta"]), rel=1e-10)
    assert (frame["margin"] > 0).all()


def test_scores_match_sklearn_pinball_and_counts():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(4000)
    z = np.array([-1.6448536, -0.6744898, 0.0, 0.6744898, 1.6448536])
    q = np.tile(z, (4000, 1)) * 1.0  # the true quantiles of N(0, 1)
    scores = quantile_scores(y, q)
    for i, level in enumerate(LEVELS):
        key = f"{round(level * 100):02d}"
        assert scores[f"pinball_q{key}"] == pytest.approx(mean_pinball_loss(y, q[:, i], alpha=level), rel=1e-12)
        assert scores[f"coverage_q{key}"] == pytest.approx(np.mean(y <= q[:, i]), abs=0)
        assert abs(scores[f"coverage_q{key}"] - level) < 0.03  # calibrated quantiles cover their level
    assert abs(scores["coverage_interval"] - 0.9) < 0.02
    narrow = quantile_scores(y, q * 0.3)
    assert narrow["coverage_interval"] < 0.5 and narrow["pinball_mean"] > scores["pinball_mean"]


def test_view_quantiles_and_evaluation_skip_missing():
    views = {
        10: ForecastView(horizon=5, var=1e-4, delta_drift_quantiles=dict(zip(LEVELS, [-2, -1, 0, 1, 2], strict=True)))
    }
    q = view_quantiles(views, [10, 20], "delta")
    assert q[0].tolist() == [-2, -1, 0, 1, 2] and np.isnan(q[1]).all()
    realized = pd.DataFrame({"delta": [0.5, 9.0]})
    table = evaluate_drift_forecasts(realized, {"model": {"delta": q}})
    row = table.iloc[0]
    assert row["n"] == 1 and row["coverage_interval"] == 1.0 and row["coverage_q50"] == 0.0


def test_direct_model_learns_a_drift_that_depends_on_the_features():
    rng = np.random.default_rng(4)
    n = 6000
    features = pd.DataFrame({"x": rng.standard_normal(n), "noise": rng.standard_normal(n)})
    frame = pd.DataFrame({"delta_now": rng.standard_normal(n), "gamma_now": 0.0, "vega_now": 0.0}, index=np.arange(n))
    frame["delta"] = 2.0 * features["x"] + 0.5 * rng.standard_normal(n)  # drift: 2x plus N(0, 0.25)
    train, test = frame.iloc[:4000], frame.iloc[4000:]
    q = direct_quantile_model(train, test, features, "delta")
    assert q.shape == (2000, 5) and (np.diff(q, axis=1) >= 0).all()
    scores = quantile_scores(test["delta"].to_numpy(), q)
    assert 0.8 < scores["coverage_interval"] < 0.97
    assert np.corrcoef(q[:, 2], 2.0 * features["x"].iloc[4000:])[0, 1] > 0.95
