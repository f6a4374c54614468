"""Targets against slow plain-Python loops, closed forms, and the simulator's unbiased oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.base import MarketData
from features.targets import (
    RegimeThresholds,
    fit_regime_thresholds,
    make_targets,
    regime_targets,
    true_regime_targets,
)
from forecaster.market.simulator import SimConfig, simulate

START = pd.Timestamp("2024-01-01", tz="UTC")


# ---------------------------------------------------------------- slow references


def rv_ahead_loop(close: list[float], h: int) -> list[float]:
    out = []
    for t in range(len(close)):
        if t + h >= len(close):
            out.append(math.nan)
            continue
        total = 0.0
        for i in range(1, h + 1):
            total += math.log(close[t + i] / close[t + i - 1]) ** 2
        out.append(total)
    return out


def asof_loop(bar_times: list[pd.Timestamp], iv_times: list[pd.Timestamp], iv_values: list[float]) -> list[float]:
    out, j, last = [], 0, math.nan
    for t in bar_times:
        while j < len(iv_times) and iv_times[j] <= t:
            last = iv_values[j]
            j += 1
        out.append(last)
    return out


def change_ahead_loop(values: list[float], h: int) -> list[float]:
    return [values[t + h] - values[t] if t + h < len(values) else math.nan for t in range(len(values))]


# ---------------------------------------------------------------- helpers


def random_market(n: int, seed: int, iv: pd.Series | None = None, freq: str = "1h") -> MarketData:
    rng = np.random.default_rng(seed)
    index = pd.date_range(START + pd.Timedelta(freq), periods=n, freq=freq, name="timestamp")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)
    return MarketData(bars, pd.Timedelta(freq), 365.0, iv=iv)


@pytest.fixture(scope="module")
def simulated():
    """Ten days of 1-minute bars (h = 60 leaves 240 non-overlapping horizons)."""
    return simulate(SimConfig(days=10, seed=2, horizons=(60,)), with_trades=False, with_chain=False)


# ---------------------------------------------------------------- rv_h


def test_rv_h_matches_the_slow_loop_and_is_nan_on_the_last_h_rows():
    data = random_market(300, seed=4)
    horizons = (1, 5, 24, 48, 300)
    targets = make_targets(data, horizons)
    assert list(targets.columns) == [f"rv_h{h}" for h in horizons]  # no IV: no div columns
    assert targets.index.equals(data.index)
    close = data.bars["close"].tolist()
    for h in horizons:
        rv = targets[f"rv_h{h}"].to_numpy()
        np.testing.assert_allclose(rv, rv_ahead_loop(close, h), rtol=1e-12, atol=0)
        assert np.isnan(rv[-h:]).all() and np.isfinite(rv[: len(rv) - h]).all()


def test_rv_h_mean_matches_the_simulator_oracle_within_3_block_se(simulated):
    """The oracle is E[rv_h(t) | latent state at t]: rv_h − oracle has mean 0, and blocks of 4 h ≥ h bars are
    nearly uncorrelated (only neighbouring blocks share returns)."""
    h, block = 60, 240
    data = MarketData(simulated.bars, pd.Timedelta("1min"), 365.0)
    rv = make_targets(data, (h,))[f"rv_h{h}"].to_numpy()
    oracle = simulated.truth[f"oracle_rv_h{h}"].to_numpy()
    defined = np.isfinite(rv)
    assert defined.sum() == len(rv) - h
    diff = (rv - oracle)[defined]
    m = diff.size // block
    means = diff[: m * block].reshape(m, block).mean(axis=1)
    se = means.std(ddof=1) / math.sqrt(m)
    assert abs(diff.mean()) < 3 * se, (rv[defined].mean(), oracle[defined].mean(), se)
    assert 3 * se < 0.25 * oracle[defined].mean()  # power: rv over a horizon 25% off (or annualized) would fail


# ---------------------------------------------------------------- div_h


def test_div_h_matches_the_slow_loop_on_an_irregular_iv_index():
    rng = np.random.default_rng(8)
    offsets = np.cumsum(rng.integers(25, 95, size=120))  # minutes, off the hourly grid, from 3 h after START
    iv_times = pd.DatetimeIndex(START + pd.Timedelta("3h") + pd.to_timedelta(offsets, unit="min"))
    iv = pd.Series(0.4 + 0.05 * rng.standard_normal(offsets.size), index=iv_times)
    data = random_market(100, seed=1, iv=iv)
    targets = make_targets(data, (1, 6))
    assert list(targets.columns) == ["rv_h1", "rv_h6", "div_h1", "div_h6"]
    aligned = asof_loop(list(data.index), list(iv.index), iv.tolist())
    for h in (1, 6):
        np.testing.assert_array_equal(targets[f"div_h{h}"].to_numpy(), change_ahead_loop(aligned, h))
    assert np.isnan(targets["div_h6"].to_numpy()[:3]).all()  # no IV before 03:25: unknown, not zero


def test_div_h_from_an_iv_already_aligned():
    data = random_market(50, seed=2)
    iv = 0.3 + 0.01 * np.sin(np.arange(50))
    expected = change_ahead_loop(iv.tolist(), 4)
    np.testing.assert_array_equal(make_targets(data, (4,), iv_aligned=iv)["div_h4"].to_numpy(), expected)
    series = pd.Series(iv, index=data.index)
    np.testing.assert_array_equal(make_targets(data, (4,), iv_aligned=series)["div_h4"].to_numpy(), expected)
    with pytest.raises(ValueError, match=r"indexed like the bars; align it first with"):
        make_targets(data, (4,), iv_aligned=series.shift(1, freq="1h"))
    with pytest.raises(ValueError, match=r"one value per bar, shape \(50,\); got shape \(49,\)"):
        make_targets(data, (4,), iv_aligned=iv[1:])


@pytest.mark.parametrize("bad", [(), (0,), (5, 5), (2.5,), (True,)])
def test_bad_horizons_say_what_is_allowed(bad):
    with pytest.raises(ValueError, match=r"horizons must be distinct whole numbers of bars ≥ 1; got"):
        make_targets(random_market(10, seed=1), bad)


# ---------------------------------------------------------------- regimes


def test_thresholds_and_classes_closed_form():
    rv = np.r_[np.arange(1.0, 101.0), np.nan]  # a NaN target (end of the window) is left out
    fitted = RegimeThresholds.fit(rv)
    assert fitted.quantiles == (0.5, 0.9)
    assert fitted.thresholds == pytest.approx((50.5, 90.1), rel=1e-15)  # linear interpolation between order stats
    classes = fitted.classify([1.0, 50.5, 50.6, 90.1, 90.2, 1e9, np.nan])
    np.testing.assert_array_equal(classes, [0, 0, 1, 1, 2, 2, np.nan])


@pytest.mark.parametrize("bad", [(), (0.9, 0.5), (0.5, 0.5), (0.0, 0.9), (0.5, 1.0)])
def test_bad_quantiles_are_refused(bad):
    with pytest.raises(ValueError, match=r"quantiles must be increasing levels strictly between 0 and 1; got"):
        RegimeThresholds.fit(np.arange(10.0), bad)


def test_thresholds_need_a_finite_training_target():
    with pytest.raises(ValueError, match=r"no finite rv_h value.*Fix: train on a longer window"):
        RegimeThresholds.fit([np.nan, np.nan])


def test_thresholds_use_the_training_window_only():
    """Purged: rv_h of the origins t ≤ train_end − h. Changing any bar after train_end leaves the thresholds
    unchanged; changing bars inside the window moves them (so the check can fail)."""
    data = random_market(500, seed=6)
    horizons, train_end = (1, 12), data.index[299]
    fitted = fit_regime_thresholds(make_targets(data, horizons), horizons, train_end)
    close = data.bars["close"].tolist()
    for h in horizons:
        reference = np.quantile(rv_ahead_loop(close, h)[: 300 - h], (0.5, 0.9))
        np.testing.assert_allclose(fitted[h].thresholds, reference, rtol=1e-12)

    def refit(bars: pd.DataFrame) -> dict[int, RegimeThresholds]:
        market = MarketData(bars, data.freq, data.annualization_days)
        return fit_regime_thresholds(make_targets(market, horizons), horizons, train_end)

    wild = data.bars.copy()
    wild.iloc[300:, wild.columns.get_loc("close")] *= np.exp(np.random.default_rng(1).normal(0, 0.2, 200))
    assert refit(wild) == fitted  # bit-identical thresholds
    moved = data.bars.copy()
    moved.iloc[250:300, moved.columns.get_loc("close")] *= np.exp(np.random.default_rng(2).normal(0, 0.2, 50))
    assert all(refit(moved)[h].thresholds != fitted[h].thresholds for h in horizons)


def test_regime_targets_classify_each_horizon():
    data = random_market(200, seed=3)
    targets = make_targets(data, (1, 8))
    fitted = fit_regime_thresholds(targets, (1, 8), data.index[119])
    classes = regime_targets(targets, fitted)
    assert list(classes.columns) == ["regime_h1", "regime_h8"]
    for h in (1, 8):
        lo, hi = fitted[h].thresholds
        expected = [math.nan if math.isnan(v) else (0 if v <= lo else 1 if v <= hi else 2) for v in targets[f"rv_h{h}"]]
        np.testing.assert_array_equal(classes[f"regime_h{h}"].to_numpy(), expected)


def test_true_regime_ahead_matches_the_loop_on_the_simulator(simulated):
    truth = simulated.truth
    out = true_regime_targets(truth, (60, 240))
    names = list(truth["regime"].astype(str))
    codes = {"calm": 0, "normal": 1, "stressed": 2}
    for h in (60, 240):
        expected = [codes[names[t + h]] if t + h < len(names) else math.nan for t in range(len(names))]
        np.testing.assert_array_equal(out[f"regime_true_h{h}"].to_numpy(), expected)
    assert out.index.equals(truth.index)
    assert set(np.unique(out["regime_true_h60"].dropna())) >= {0.0, 1.0}  # the ten days leave a calm regime
    from_csv = true_regime_targets(truth.assign(regime=truth["regime"].astype(str)), (60,))  # names as strings
    assert from_csv.equals(out[["regime_true_h60"]])


def test_unknown_regime_names_are_refused():
    truth = pd.DataFrame({"regime": ["calm", "panic"]}, index=pd.date_range(START, periods=2, freq="1min"))
    with pytest.raises(ValueError, match=r"one of calm, normal, stressed; got 'panic' at 2024-01-01 00:01:00"):
        true_regime_targets(truth, (1,))
