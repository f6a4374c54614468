"""Oracle forecasts: exact conditional expectations given the full latent state (closed form, no Monte Carlo).

Given the state at the end of bar t (expanded regime state ``s_t`` and log-variance ``x_t``), bar ``t+i`` has

    E[r_{t+i}^2] = s(tau_{t+i}) * (P^i c)[s_t] * E[exp(x_{t+i-1}) | x_t] + (P^i j)[s_t]

because the regime chain, the log variance and the shocks are independent, and the shock of bar t+i is
independent of everything before it. ``E[exp(x_{t+k}) | x_t] = exp(mean + phi^k (x_t - mean) + v_k)``.
So ``oracle_h(t) = sum_{i=1..h} E[r_{t+i}^2]`` is exact up to floating point: its standard error is 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from forecaster.market.simulator.regimes import RegimeChain
from forecaster.market.simulator.volatility import VolParams
from forecaster.progress import progress

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def chain_powers(chain: RegimeChain, values: FloatArray, steps: IntArray) -> FloatArray:
    """``(P^i values)`` for each ``i`` in ``steps`` (increasing). values (M, K) -> shape (len(steps), M, K)."""
    out = np.empty((len(steps), *values.shape))
    current = values.copy()
    done = 0
    for n, step in enumerate(steps):
        gap = int(step) - done
        if gap > 64:
            current = np.linalg.matrix_power(chain.transition, gap) @ current
        else:
            for _ in range(gap):
                current = chain.transition @ current
        done = int(step)
        out[n] = current
    return out


def _state_variances(chain: RegimeChain, params: VolParams) -> FloatArray:
    """Per expanded state: diffusive variance per bar ``c`` and jump variance per bar ``j``. Shape (M, 2)."""
    return np.stack([params.diffusive_var[chain.regime], params.jump_var[chain.regime]], axis=1)


def oracle_rv(
    chain: RegimeChain,
    params: VolParams,
    states: IntArray,
    x: FloatArray,
    season_idx: IntArray,
    horizons: tuple[int, ...],
    chunk: int = 2048,
) -> dict[int, FloatArray]:
    """Oracle ``E[rv_h(t) | latent state at t]`` for every bar t and horizon h. Each array shape (N,).

    ``season_idx`` is each bar's index into the daily seasonality; bars after the last simulated one continue the
    same daily cycle, so the oracle is defined at every origin (targets near the end are the caller's concern).
    """
    h_max = max(horizons)
    steps = np.arange(1, h_max + 1)
    per_bar = len(params.season)
    base = _state_variances(chain, params)  # (M, 2)
    powered = chain_powers(chain, base, steps)  # (H, M, 2)
    diff_coef = powered[:, :, 0]  # (H, M): (P^i c)
    jump_cum = np.cumsum(powered[:, :, 1], axis=0)  # (H, M): sum_{k<=i} (P^k j)
    w, v = params.ar_moments(steps - 1)  # (H,), (H,)
    cols = np.asarray(horizons) - 1
    out = {h: np.empty(len(states)) for h in horizons}
    starts = range(0, len(states), chunk)
    for lo in progress(starts, desc="oracle", total=len(starts), unit="chunk"):
        hi = min(lo + chunk, len(states))
        s = states[lo:hi]
        dev = x[lo:hi] - params.mean  # (n,)
        season = params.season[(season_idx[lo:hi, None] + steps[None, :]) % per_bar]  # (n, H)
        ex = np.exp(params.mean + dev[:, None] * w[None, :] + v[None, :])  # (n, H)
        terms = season * diff_coef[:, s].T * ex  # (n, H)
        cum = np.cumsum(terms, axis=1)[:, cols] + jump_cum[cols][:, s].T  # (n, len(horizons))
        for k, h in enumerate(horizons):
            out[h][lo:hi] = cum[:, k]
    return out


def regime_probabilities(chain: RegimeChain, states: IntArray, horizon: int) -> FloatArray:
    """``P(R_{t+h} = r | s_t)`` for every bar: the oracle of the latent regime h bars ahead. Shape (N, R)."""
    powered = chain_powers(chain, chain.regime_indicator(), np.array([horizon]))[0]  # (M, R)
    return powered[states]


def expected_integrated_variance(
    chain: RegimeChain,
    params: VolParams,
    states: IntArray,
    x: FloatArray,
    tenors_bars: FloatArray,
    n_nodes: int = 160,
    chunk: int = 8192,
) -> FloatArray:
    """``E[sum_{i<=n} r_{t+i}^2 | state]`` with seasonality averaged out (mean 1), for each origin and tenor.

    Used for implied vols, whose tenors reach months: the per-bar rate is evaluated exactly on a log-spaced grid of
    steps and taken as linear in between (exact where nodes are consecutive bars).
    Shapes: states, x (N,); tenors_bars (N, T) -> (N, T).
    """
    n_max = max(float(np.max(tenors_bars)), 2.0)
    nodes = np.unique(np.round(np.geomspace(1, n_max, n_nodes)).astype(np.int64))  # (K,)
    base = _state_variances(chain, params)  # (M, 2)
    powered = chain_powers(chain, base, nodes)  # (K, M, 2)
    w, v = params.ar_moments(nodes - 1)  # (K,)
    widths = np.diff(nodes).astype(float)  # (K-1,)
    # linear interpolation of the cumulative sum between nodes, weights shared by all rows
    pos = np.clip(np.searchsorted(nodes, tenors_bars, side="right") - 1, 0, len(nodes) - 2)  # (N, T)
    frac = np.clip((tenors_bars - nodes[pos]) / (nodes[pos + 1] - nodes[pos]), 0.0, 1.0)  # (N, T)
    out = np.empty(tenors_bars.shape)
    for lo in range(0, len(states), chunk):
        hi = min(lo + chunk, len(states))
        s = states[lo:hi]
        ex = np.exp(params.mean + (x[lo:hi, None] - params.mean) * w[None, :] + v[None, :])  # (n, K)
        rate = powered[:, s, 0].T * ex + powered[:, s, 1].T  # (n, K): E[r^2] of the bar `node` steps ahead
        # sum of bars a+1..b of a rate linear between nodes a and b: width (r_a + r_b) / 2 + (r_b - r_a) / 2
        step_sums = 0.5 * (rate[:, 1:] + rate[:, :-1]) * widths + 0.5 * (rate[:, 1:] - rate[:, :-1])
        cum = np.concatenate([rate[:, :1], rate[:, :1] + np.cumsum(step_sums, axis=1)], axis=1)  # (n, K)
        left = np.take_along_axis(cum, pos[lo:hi], axis=1)
        right = np.take_along_axis(cum, pos[lo:hi] + 1, axis=1)
        out[lo:hi] = left + frac[lo:hi] * (right - left)
    return out
