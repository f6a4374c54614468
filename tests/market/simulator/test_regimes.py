"""The expanded regime chain against closed forms: mean stay durations, long-run shares, stress ramp."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.market.simulator import REGIMES, SimConfig
from forecaster.market.simulator.regimes import build_chain, simulate_states, stays


def test_transition_matrix_is_stochastic() -> None:
    chain = build_chain(SimConfig())
    assert np.all(chain.transition >= 0)
    np.testing.assert_allclose(chain.transition.sum(axis=1), 1.0, atol=1e-12)


def test_mean_stay_duration_from_the_fundamental_matrix() -> None:
    """Expected bars until a stay in regime r ends, from phase 0: (I - Q)^-1 1, with Q the within-stay block."""
    config = SimConfig()
    chain = build_chain(config)
    for r, hours in enumerate(config.regimes.mean_duration_hours):
        for d in np.unique(chain.destination[chain.regime == r]):
            block = np.flatnonzero((chain.regime == r) & (chain.destination == d))
            q = chain.transition[np.ix_(block, block)]
            steps = np.linalg.solve(np.eye(len(block)) - q, np.ones(len(block)))
            start = block[chain.phase[block] == 0][0]
            assert steps[list(block).index(start)] == pytest.approx(hours * 60, rel=1e-9)


def test_long_run_shares_match_the_jump_chain_formula() -> None:
    """Share of regime r = nu_r D_r / sum(nu D), nu the stationary law of the regime-to-regime jump chain."""
    config = SimConfig()
    jump = np.asarray(config.regimes.transitions)
    w, v = np.linalg.eig(jump.T)
    nu = np.real(v[:, np.argmin(np.abs(w - 1))])
    nu = nu / nu.sum()
    expected = nu * np.asarray(config.regimes.mean_duration_hours)
    np.testing.assert_allclose(build_chain(config).regime_shares(), expected / expected.sum(), rtol=1e-9)


def test_stress_ramps_only_before_switches_into_the_lead_regime() -> None:
    chain = build_chain(SimConfig())
    lead = REGIMES.index("stressed")
    heading = (chain.destination == lead) & (chain.regime != lead)
    assert np.all(chain.stress[~heading] == 0)
    assert chain.stress[heading].max() == 1.0 and chain.stress[heading & (chain.phase == 0)].max() == 0.0


def test_path_durations_have_the_configured_mean_and_dispersion() -> None:
    config = SimConfig(days=2000)
    chain = build_chain(config)
    path = chain.regime[simulate_states(chain, config.n_bars, np.random.default_rng(3))]
    which, lengths = stays(path)
    for r, hours in enumerate(config.regimes.mean_duration_hours):
        bars = lengths[which == r][1:-1].astype(float)  # drop censored first/last stays
        assert bars.mean() / 60 == pytest.approx(hours, rel=0.1)
        # sum of `phases` geometric phases: coefficient of variation ~ 1/sqrt(phases)
        assert bars.std() / bars.mean() == pytest.approx(1 / np.sqrt(config.regimes.phases), rel=0.2)
