"""The HMM regime baseline: its forward filter against a plain-Python forward algorithm and against hmmlearn's
last-step posterior, causality of the filtered probabilities, the horizon propagation against a bar-by-bar loop,
and separation of the states of a synthetic two-regime series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.stats import multivariate_normal

from models.base import ModelData, ModelError
from models.regime import HmmRegime, forward_filter, gaussian_log_density, grid_rows

MEANS = np.array([[-1.0, 0.0], [0.5, 0.3], [2.0, 1.0]])
COVARS = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.6]], [[1.0, 0.5], [0.5, 0.9]]])
TRANS = np.array([[0.9, 0.08, 0.02], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])
START = np.array([0.5, 0.3, 0.2])


def _observations(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 1.2, size=(n, 2))


def _forward_loop(x: np.ndarray) -> list[list[float]]:
    """The forward algorithm in probability space, one step and one state at a time (NaN row: no observation)."""
    s = len(START)
    prior = list(START)
    out = []
    for g in range(len(x)):
        if np.isfinite(x[g]).all():
            like = [multivariate_normal(MEANS[i], COVARS[i]).pdf(x[g]) for i in range(s)]
        else:
            like = [1.0] * s
        joint = [prior[i] * like[i] for i in range(s)]
        total = math.fsum(joint)
        post = [v / total for v in joint]
        out.append(post)
        prior = [math.fsum(post[i] * TRANS[i][j] for i in range(s)) for j in range(s)]
    return out


def test_emission_density_matches_scipy():
    x = _observations(50, 1)
    expected = np.column_stack([multivariate_normal(MEANS[s], COVARS[s]).logpdf(x) for s in range(3)])
    np.testing.assert_allclose(gaussian_log_density(x, MEANS, COVARS), expected, rtol=1e-12)


def test_forward_filter_matches_a_plain_loop_with_missing_observations():
    x = _observations(80, 2)
    x[[0, 1, 40]] = np.nan  # a warm-up and a gap: prediction steps only
    got = forward_filter(gaussian_log_density(x, MEANS, COVARS), START, TRANS)
    np.testing.assert_allclose(got, _forward_loop(x), rtol=1e-10)


def test_forward_filter_equals_hmmlearn_posterior_of_the_last_step():
    # at the last observation of a sequence, smoothed = filtered (nothing comes after it): hmmlearn's
    # forward-backward on every prefix gives the filtered path
    x = _observations(60, 3)
    hmm = GaussianHMM(n_components=3, covariance_type="full")
    hmm.n_features = 2
    hmm.startprob_, hmm.transmat_, hmm.means_, hmm.covars_ = START, TRANS, MEANS, COVARS
    got = forward_filter(gaussian_log_density(x, MEANS, COVARS), START, TRANS)
    for g in (0, 1, 17, 59):
        np.testing.assert_allclose(got[g], hmm.predict_proba(x[: g + 1])[-1], rtol=1e-9)
    assert not np.allclose(got[17], hmm.predict_proba(x)[17], rtol=1e-3)  # smoothing would differ


def test_horizon_weights_match_a_bar_by_bar_loop():
    model = HmmRegime(n_states=3, obs_step=4)
    model.transmat_ = TRANS
    for h in (1, 4, 9, 60):
        expected = np.zeros((3, 3))
        for k in range(1, h + 1):  # bar t + k lies in grid step ⌈k / 4⌉
            expected += np.linalg.matrix_power(TRANS, math.ceil(k / 4))
        np.testing.assert_allclose(model._horizon_weights(h), expected, rtol=1e-12)


def test_filtered_probabilities_are_causal(small_data, small_split):
    train, test = small_split
    model = HmmRegime().fit(small_data, train)
    t = int(test[len(test) // 2])
    before = model.filtered_states(small_data, test)
    features = small_data.features.copy()
    columns = [f"rv_{w}" for w in model.windows_]
    features.loc[features.index[t + 1 :], columns] *= 10.0
    changed = ModelData(features, small_data.log_return, small_data.bar_years, small_data.horizons,
                        small_data.targets, small_data.iv)  # fmt: skip
    after = model.filtered_states(changed, test)
    np.testing.assert_array_equal(after[test <= t], before[test <= t])
    assert not np.allclose(after[test > t + 120], before[test > t + 120])  # the change is seen once it is past


def test_states_are_sorted_calm_first_and_need_enough_observations(small_data, small_split):
    train, _ = small_split
    model = HmmRegime(n_states=3).fit(small_data, train)
    assert np.all(np.diff(model.means_[:, 0]) > 0)
    assert np.all(np.diff(model.state_var_) > 0)
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0)
    for h in small_data.horizons:
        m = model.class_given_state_[h]
        np.testing.assert_allclose(m.sum(axis=1), 1.0)
        assert m[0, 0] > m[-1, 0] and m[-1, 2] > m[0, 2]  # the calm state predicts calm, the wild one stress
    with pytest.raises(ModelError, match="3 states need at least 30"):
        HmmRegime(n_states=3).fit(small_data, train[:100])  # 1,500 bars: 25 hourly observations
    with pytest.raises(ModelError, match="n_states must be an integer ≥ 2; got 1"):
        HmmRegime(n_states=1).fit(small_data, train)


def _two_regime_data(seed: int) -> tuple[ModelData, np.ndarray]:
    """30 days of 1-minute returns switching between per-bar vol 1e-3 and 3e-3 every 2-4 days; rv_60 and rv_1440
    features by cumulative sums, rv_h60 targets. Returns (data, high-regime indicator per bar)."""
    rng = np.random.default_rng(seed)
    n = 30 * 1440
    high = np.zeros(n, dtype=bool)
    t, state = 0, False
    while t < n:
        length = int(rng.integers(2 * 1440, 4 * 1440))
        high[t : t + length] = state
        t, state = t + length, not state
    r = np.where(high, 3e-3, 1e-3) * rng.standard_normal(n)
    r[0] = np.nan
    c = np.r_[0.0, np.nancumsum(r * r)]
    features = {}
    for w in (60, 1440):
        col = np.full(n, np.nan)
        col[w:] = c[w + 1 :] - c[1 : n - w + 1]
        features[f"rv_{w}"] = col
    rv = np.full(n, np.nan)
    rv[: n - 60] = c[61:] - c[1 : n - 59]
    index = pd.date_range("2026-01-05", periods=n, freq="1min", tz="UTC", name="timestamp")
    data = ModelData(pd.DataFrame(features, index=index), r, 1 / 525_600, (60,),
                     pd.DataFrame({"rv_h60": rv}, index=index))  # fmt: skip
    return data, high


def test_two_regime_series_separates_into_two_states():
    data, high = _two_regime_data(4)
    n = len(data)
    rows = np.arange(1500, n - 60, 15)
    model = HmmRegime(n_states=2).fit(data, rows)
    # the per-bar variances of the states: 1e-6 and 9e-6 (one pseudo-observation of shrinkage: < 1%)
    np.testing.assert_allclose(model.state_var_, [1e-6, 9e-6], rtol=0.05)
    p_high = model.filtered_states(data, rows)[:, 1]
    # away from switches (the long window needs a day to turn over) the filter is sure of the regime
    switch = np.r_[0, np.flatnonzero(np.diff(high)) + 1]
    since = rows - switch[np.searchsorted(switch, rows, side="right") - 1]
    settled = since > 1440
    assert settled.sum() > 1000
    right = np.where(high[rows], p_high > 0.9, p_high < 0.1)
    assert right[settled].mean() > 0.97
    # and the forecast follows: about 9 times more variance in the high regime
    var = model.predict(data, rows)["var"].to_numpy()
    ratio = np.median(var[settled & high[rows]]) / np.median(var[settled & ~high[rows]])
    assert 7 < ratio < 10


def test_grid_is_calendar_anchored():
    index = pd.date_range("2026-01-05 00:37", periods=300, freq="1min", tz="UTC")
    grid = grid_rows(index, 60)
    assert list(index[grid].minute) == [0] * len(grid) and list(grid) == [23, 83, 143, 203, 263]
    later = grid_rows(index[50:], 60)
    np.testing.assert_array_equal(index[50:][later], index[grid[grid >= 50]])
