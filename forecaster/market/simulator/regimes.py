"""Latent regime chain: a Markov chain on expanded states (regime, destination, build-up phase).

A stay in regime ``r`` passes through ``k`` phases, each left with probability ``a_r = k / D_r`` per bar, so the
stay lasts ``D_r`` bars on average (a sum of ``k`` geometric phases). Its destination ``d`` is drawn when the stay
starts. The build-up ``(phase / (k - 1))`` of a stay headed for the lead regime is the latent stress that shows in
order flow before the switch. Being a finite Markov chain, conditional expectations of anything that depends on the
regime are exact: ``E[f(R_{t+i}) | state_t] = (P^i f)[state_t]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forecaster.market.simulator.config import REGIMES, SimConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RegimeChain:
    """The expanded chain. States are enumerated as rows of ``regime``, ``destination``, ``phase``.

    Shapes: ``transition`` (M, M); ``regime``, ``destination``, ``phase``, ``stress`` (M,).
    """

    transition: FloatArray
    regime: IntArray
    destination: IntArray
    phase: IntArray
    stress: FloatArray
    advance: FloatArray  # (R,) per-bar probability of leaving the current phase, by regime
    phases: int

    @property
    def n_states(self) -> int:
        return int(self.transition.shape[0])

    def stationary(self) -> FloatArray:
        """Stationary distribution over expanded states. Shape (M,)."""
        m = self.n_states
        a = np.vstack([self.transition.T - np.eye(m), np.ones(m)])
        b = np.zeros(m + 1)
        b[-1] = 1.0
        pi, *_ = np.linalg.lstsq(a, b, rcond=None)
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    def regime_shares(self) -> FloatArray:
        """Long-run share of time in each regime, implied by the configuration. Shape (R,)."""
        return np.bincount(self.regime, weights=self.stationary(), minlength=len(REGIMES))

    def regime_indicator(self) -> FloatArray:
        """One-hot of each state's regime. Shape (M, R)."""
        return np.eye(len(REGIMES))[self.regime]


def build_chain(config: SimConfig) -> RegimeChain:
    """Build the expanded transition matrix from the regime settings."""
    rc = config.regimes
    k = rc.phases
    lead = REGIMES.index(config.flow.lead_regime)
    durations_bars = np.asarray(rc.mean_duration_hours) * 60.0 / config.bar_minutes
    advance = k / durations_bars  # (R,)
    trans = np.asarray(rc.transitions, dtype=float)  # (R, R)
    states = [(r, d, j) for r in range(len(REGIMES)) for d in range(len(REGIMES)) if trans[r, d] > 0 for j in range(k)]
    index = {s: i for i, s in enumerate(states)}
    m = len(states)
    p = np.zeros((m, m))
    for (r, d, j), i in index.items():
        p[i, i] = 1.0 - advance[r]
        if j < k - 1:
            p[i, index[(r, d, j + 1)]] += advance[r]
        else:  # the stay ends: enter d at phase 0, with a fresh destination
            for d2 in range(len(REGIMES)):
                if trans[d, d2] > 0:
                    p[i, index[(d, d2, 0)]] += advance[r] * trans[d, d2]
    regime = np.array([s[0] for s in states])
    destination = np.array([s[1] for s in states])
    phase = np.array([s[2] for s in states])
    ramp = phase / (k - 1) if k > 1 else np.ones(m)
    stress = np.where((destination == lead) & (regime != lead), ramp, 0.0)
    return RegimeChain(p, regime, destination, phase, stress.astype(float), advance, k)


def simulate_states(
    chain: RegimeChain, n_bars: int, rng: np.random.Generator, after_state: int | None = None
) -> IntArray:
    """Sample a path of expanded states, one per bar.

    The first bar's state is drawn from the stationary distribution, or, given ``after_state``, from the
    transition row of that state (the path then continues a known state). Phases are geometric, so the path is
    drawn phase by phase (a few thousand steps a year), not bar by bar. Shape: (n_bars,).
    """
    out = np.empty(n_bars, dtype=np.int64)
    first = chain.stationary() if after_state is None else chain.transition[after_state]
    state = int(rng.choice(chain.n_states, p=first))
    t = 0
    while t < n_bars:
        a = chain.advance[chain.regime[state]]
        stay = int(rng.geometric(a))  # bars spent in this state, >= 1
        out[t : t + stay] = state
        t += stay
        row = chain.transition[state].copy()
        row[state] = 0.0
        state = int(rng.choice(chain.n_states, p=row / row.sum()))
    return out


def stays(regime_path: IntArray) -> tuple[IntArray, IntArray]:
    """Run-length encode a regime path: (regime of each stay, its length in bars). Shapes (S,), (S,)."""
    change = np.flatnonzero(np.diff(regime_path)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(regime_path)]]))
    return regime_path[starts], lengths
