"""The oracle against independent references: Monte Carlo continuation of the simulator from a known state."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.market.simulator import REGIMES, SimConfig
from forecaster.market.simulator.config import SeasonalityConfig
from forecaster.market.simulator.implied import atm_implied_vol, oracle_iv_change
from forecaster.market.simulator.oracle import (
    chain_powers,
    expected_integrated_variance,
    oracle_rv,
    regime_probabilities,
)
from forecaster.market.simulator.regimes import build_chain, simulate_states
from forecaster.market.simulator.volatility import simulate_returns, vol_params


def _continue(config, chain, params, state, x, season_start, h, n_paths, seed):
    """Realized rv_h and the regime at t+h on ``n_paths`` continuations from (state, x) at the end of bar t."""
    rng = np.random.default_rng(seed)
    per_day = len(params.season)
    season_idx = (season_start + 1 + np.arange(h)) % per_day
    rv = np.empty(n_paths)
    last_regime = np.empty(n_paths, dtype=int)
    for p in range(n_paths):
        states = simulate_states(chain, h, rng, after_state=state)
        regime = chain.regime[states]
        path = simulate_returns(config, params, regime, season_idx, rng, x_start=x)
        rv[p] = np.sum(path.log_return**2)
        last_regime[p] = regime[-1]
    return rv, last_regime


@pytest.mark.parametrize(
    ("label", "regime", "destination", "phase", "x_dev", "season_start"),
    [
        ("calm, late build-up towards stressed, low vol, at 07:00", "calm", "stressed", 7, -0.8, 420),
        ("normal, early phase, high vol, at 15:00", "normal", "calm", 0, 1.0, 900),
        ("stressed, last phase, at 23:30", "stressed", "normal", 7, 0.0, 1410),
    ],
)
def test_oracle_matches_monte_carlo_continuations(label, regime, destination, phase, x_dev, season_start) -> None:
    config = SimConfig()
    chain = build_chain(config)
    params = vol_params(config)
    state = int(
        np.flatnonzero(
            (chain.regime == REGIMES.index(regime))
            & (chain.destination == REGIMES.index(destination))
            & (chain.phase == phase)
        )[0]
    )
    x = params.mean + x_dev
    h = 240
    oracle = oracle_rv(chain, params, np.array([state]), np.array([x]), np.array([season_start]), (60, h))[h][0]
    rv, last = _continue(config, chain, params, state, x, season_start, h, 3000, seed=season_start)
    se = rv.std(ddof=1) / np.sqrt(len(rv))
    assert abs(rv.mean() - oracle) < 4 * se, f"{label}: MC {rv.mean():.4g} ± {se:.2g} vs oracle {oracle:.4g}"
    probs = regime_probabilities(chain, np.array([state]), h)[0]
    freq = np.bincount(last, minlength=len(REGIMES)) / len(last)
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / len(last)) + 1e-9), label


def test_oracle_short_horizon_closed_form() -> None:
    """h = 1: the oracle is the next bar's expected variance, written out by hand."""
    config = SimConfig()
    chain = build_chain(config)
    params = vol_params(config)
    state, x, slot = 5, params.mean + 0.3, 100
    got = oracle_rv(chain, params, np.array([state]), np.array([x]), np.array([slot]), (1,))[1][0]
    nxt = chain.transition[state]  # distribution of the next bar's state
    c = nxt @ params.diffusive_var[chain.regime]
    j = nxt @ params.jump_var[chain.regime]
    assert got == pytest.approx(params.season[slot + 1] * c * np.exp(x) + j, rel=1e-12)


def test_integrated_variance_equals_oracle_without_seasonality() -> None:
    """With flat seasonality, the IV integrator (trapezoid between nodes) matches the exact bar-by-bar sum."""
    config = SimConfig(seasonality=SeasonalityConfig(peak_amplitude=0.0, diurnal_amplitude=0.0))
    chain = build_chain(config)
    params = vol_params(config)
    states = np.array([0, 20, chain.n_states - 1])
    x = params.mean + np.array([-0.5, 0.0, 0.7])
    exact = oracle_rv(chain, params, states, x, np.zeros(3, dtype=int), (60, 1440))
    approx = expected_integrated_variance(chain, params, states, x, np.array([[60.0, 1440.0]] * 3), n_nodes=400)
    np.testing.assert_allclose(approx[:, 0], exact[60], rtol=2e-3)
    np.testing.assert_allclose(approx[:, 1], exact[1440], rtol=2e-3)


def test_chain_powers_match_matrix_power() -> None:
    chain = build_chain(SimConfig())
    v = np.random.default_rng(0).random((chain.n_states, 2))
    steps = np.array([1, 2, 70, 500])
    got = chain_powers(chain, v, steps)
    for k, s in enumerate(steps):
        np.testing.assert_allclose(got[k], np.linalg.matrix_power(chain.transition, s) @ v, rtol=1e-10)


def test_iv_change_oracle_matches_monte_carlo_continuations() -> None:
    """E[iv30(t+h) - iv30(t) | state] against 4,000 continuations of regime, log variance and IV noise."""
    config = SimConfig()
    chain = build_chain(config)
    params = vol_params(config)
    rng = np.random.default_rng(21)
    h, n_paths = 240, 4000
    tenor = np.array([[config.implied_vol.index_tenor_days * 1440.0]])
    iv_cfg = config.implied_vol
    phi_u = 0.5 ** (1 / iv_cfg.noise_half_life_minutes)
    for state, x_dev, u in ((3, 0.9, 0.04), (chain.n_states - 1, -0.6, -0.02)):
        x = params.mean + x_dev
        iv_now = atm_implied_vol(config, chain, params, np.array([state]), np.array([x]), np.array([u]), tenor)[0, 0]
        oracle = oracle_iv_change(
            config, chain, params, np.array([state]), np.array([x]), np.array([u]), np.array([iv_now]), (h,)
        )[h][0]
        end_states = np.array([simulate_states(chain, h, rng, after_state=state)[-1] for _ in range(n_paths)])
        w, v = params.ar_moments(np.array([h]))
        x_end = params.mean + w[0] * (x - params.mean) + np.sqrt(2 * v[0]) * rng.standard_normal(n_paths)
        u_end = phi_u**h * u + iv_cfg.noise_stdev * np.sqrt(1 - phi_u ** (2 * h)) * rng.standard_normal(n_paths)
        iv_end = atm_implied_vol(config, chain, params, end_states, x_end, u_end, np.repeat(tenor, n_paths, 0))[:, 0]
        change = iv_end - iv_now
        se = change.std(ddof=1) / np.sqrt(n_paths)
        assert abs(change.mean() - oracle) < 4 * se, f"MC {change.mean():.5f} ± {se:.5f} vs oracle {oracle:.5f}"
