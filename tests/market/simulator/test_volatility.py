"""Returns within a regime: calibration of total variance, seasonality, bridge extremes."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.errors import ConfigError
from forecaster.market.simulator import REGIMES, SimConfig
from forecaster.market.simulator.config import JumpConfig
from forecaster.market.simulator.volatility import (
    MINUTES_PER_YEAR,
    ar1_noise,
    bar_extremes,
    seasonality,
    simulate_returns,
    vol_params,
)


@pytest.mark.parametrize("regime", range(len(REGIMES)))
def test_total_variance_matches_configured_vol(regime: int) -> None:
    """Held in one regime for 400 days, realized annualized vol is the configured one (diffusion + jumps)."""
    config = SimConfig()
    params = vol_params(config)
    n = 400 * 1440
    season_idx = np.arange(n) % 1440
    path = simulate_returns(config, params, np.full(n, regime), season_idx, np.random.default_rng(regime))
    vol = np.sqrt(np.mean(path.log_return**2) * MINUTES_PER_YEAR)
    # sampling error of a 400-day variance with vol of vol 0.8 (half-life 2 h) is ~2.5% in vol
    assert vol == pytest.approx(config.regimes.ann_vol[regime], rel=0.08)
    assert params.jump_var[regime] < params.diffusive_var[regime] + params.jump_var[regime]


def test_seasonality_mean_one_and_peak_at_expiry_hour() -> None:
    s = seasonality(SimConfig())
    assert s.shape == (1440,)
    assert s.mean() == pytest.approx(1.0)
    assert 7.5 <= (np.argmax(s) + 0.5) / 60 <= 8.5


def test_bridge_extremes_contain_open_and_close() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1e-3, 100_000)
    hi, lo = bar_extremes(r, np.full_like(r, 1e-6), rng)
    assert np.all(hi >= np.maximum(0, r)) and np.all(lo <= np.minimum(0, r))


def test_bridge_maximum_law_matches_fine_brownian_bridge() -> None:
    """The closed-form maximum against the maximum of a finely discretized bridge (mean within 3%)."""
    rng = np.random.default_rng(1)
    n, steps, v = 4000, 2000, 1.0
    dw = rng.normal(0, np.sqrt(v / steps), (n, steps))
    path = np.cumsum(dw, axis=1)
    r = path[:, -1]
    bridge_max = np.maximum(path.max(axis=1), 0.0)
    hi, _ = bar_extremes(r, np.full(n, v), np.random.default_rng(2))
    # discretization biases the walk's maximum down by about 0.58 sqrt(v / steps)
    assert hi.mean() == pytest.approx(bridge_max.mean() + 0.5826 * np.sqrt(v / steps), rel=0.03)


def test_jumps_larger_than_the_regime_variance_are_rejected() -> None:
    config = SimConfig(jumps=JumpConfig(per_day=(50.0, 1.5, 6.0), mean=(-0.01, -0.003, -0.006)))
    with pytest.raises(ConfigError, match="jumps alone exceed the total variance of regime 'calm'"):
        vol_params(config)


def test_ar1_noise_has_the_stated_sd_and_half_life() -> None:
    u = ar1_noise(2_000_000, 0.3, 60.0, 1, np.random.default_rng(4))
    assert u.std() == pytest.approx(0.3, rel=0.03)
    assert np.corrcoef(u[:-60], u[60:])[0, 1] == pytest.approx(0.5, abs=0.02)


def test_bar_range_estimators_are_unbiased_for_the_bar_variance() -> None:
    """High and low come from one path: Parkinson, Garman-Klass and Rogers-Satchell average to the variance
    (independent extremes over the whole bar would overstate the first two by 3-4%)."""
    rng = np.random.default_rng(5)
    n, v = 1_000_000, 1e-6
    r = rng.normal(0, np.sqrt(v), n)
    hi, lo = bar_extremes(r, np.full(n, v), rng)
    parkinson = (hi - lo) ** 2 / (4 * np.log(2))
    garman_klass = 0.5 * (hi - lo) ** 2 - (2 * np.log(2) - 1) * r**2
    rogers_satchell = hi * (hi - r) + lo * (lo - r)
    for estimate in (parkinson, garman_klass, rogers_satchell):
        se = estimate.std() / np.sqrt(n)
        assert abs(estimate.mean() - v) < max(3 * se, 0.005 * v)  # the 4-piece bridge leaves < 0.1% bias
