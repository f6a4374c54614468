"""The implied-vol model and its oracle.

ATM implied vol for tenor T at the end of bar t:

    iv_T(t) = sqrt((1 + vrp[R_t]) * EIV_T(s_t, x_t) / T) * exp(u_t)

with ``EIV_T`` the model's expected integrated variance over the tenor (seasonality averaged), ``vrp`` the
variance risk premium of the current regime and ``u`` a stationary AR(1) log-IV noise, independent of the rest.

Oracle of ``div_h(t) = iv_30d(t + h) - iv_30d(t)`` given the latent state (s_t, x_t, u_t):

    E[iv(t+h)] = sum_s' P^h[s_t, s'] * E[g(s', x_{t+h}) | x_t] * E[exp(u_{t+h}) | u_t]

The regime part is exact (matrix power); ``x_{t+h} | x_t`` is Gaussian, integrated by Gauss-Hermite quadrature
(64 nodes) on a table of ``g`` over a fine grid of x; ``E[exp u_{t+h} | u_t]`` is closed form. The table and the
quadrature make it exact to about 1e-6 relative: its standard error is 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from forecaster.market.simulator.config import SimConfig
from forecaster.market.simulator.oracle import chain_powers, expected_integrated_variance
from forecaster.market.simulator.regimes import RegimeChain
from forecaster.market.simulator.volatility import MINUTES_PER_YEAR, VolParams, ar1_noise

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def iv_noise_path(config: SimConfig, n: int, rng: np.random.Generator) -> FloatArray:
    """Stationary AR(1) log-IV noise ``u``, one value per bar. Shape (n,)."""
    iv = config.implied_vol
    return ar1_noise(n, iv.noise_stdev, iv.noise_half_life_minutes, config.bar_minutes, rng)


def atm_implied_vol(
    config: SimConfig,
    chain: RegimeChain,
    params: VolParams,
    states: IntArray,
    x: FloatArray,
    noise: FloatArray,
    tenor_minutes: FloatArray,
) -> FloatArray:
    """ATM implied vol (annualized decimal) for each origin and tenor. states, x, noise: (N,); tenor (N, T)."""
    tenors_bars = tenor_minutes / config.bar_minutes
    eiv = expected_integrated_variance(chain, params, states, x, tenors_bars)  # (N, T)
    vrp = np.asarray(config.implied_vol.variance_risk_premium)[chain.regime[states]]  # (N,)
    annual = eiv / (tenor_minutes / MINUTES_PER_YEAR)
    return np.sqrt(annual * (1.0 + vrp)[:, None]) * np.exp(noise)[:, None]


def oracle_iv_change(
    config: SimConfig,
    chain: RegimeChain,
    params: VolParams,
    states: IntArray,
    x: FloatArray,
    noise: FloatArray,
    iv_now: FloatArray,
    horizons: tuple[int, ...],
    grid_points: int = 2001,
    quadrature_nodes: int = 64,
) -> dict[int, FloatArray]:
    """Oracle ``E[div_h(t) | latent state]`` of the index tenor, for every bar and horizon. Each shape (N,).

    ``iv_now`` is the index at each origin (decimal), that is ``atm_implied_vol`` at (states, x, noise).
    """
    iv_cfg = config.implied_vol
    tenor = iv_cfg.index_tenor_days * 1440.0
    sd_x = max(config.logvar.stationary_stdev, 1e-12)
    grid = params.mean + np.linspace(-9.0, 9.0, grid_points) * sd_x  # (G,) values of x
    m = chain.n_states
    table_states = np.repeat(np.arange(m), grid_points)  # (M*G,)
    table_x = np.tile(grid, m)
    g = atm_implied_vol(
        config, chain, params, table_states, table_x, np.zeros(m * grid_points), np.full((m * grid_points, 1), tenor)
    )[:, 0].reshape(m, grid_points)  # (M, G): noise-free model IV
    nodes, weights = np.polynomial.hermite_e.hermegauss(quadrature_nodes)  # N(0,1) quadrature
    weights = weights / weights.sum()
    phi_u = 0.5 ** (config.bar_minutes / iv_cfg.noise_half_life_minutes)
    a = grid - params.mean  # (G,) deviations of x from its mean, where the tables are read
    out: dict[int, FloatArray] = {}
    for h in horizons:
        w, v = params.ar_moments(np.array([h]))
        mean_shift = w[0]  # x_{t+h} - mean = w (x_t - mean) + N(0, 2 v)
        sd_h = np.sqrt(2.0 * v[0])
        # H(s', a) = E[g(s', mean + a + sd_h Z)], tabulated over a on the grid
        shifted = params.mean + a[:, None] + sd_h * nodes[None, :]  # (G, Q)
        h_tab = np.stack([np.interp(shifted, grid, g[s]) @ weights for s in range(m)])  # (M, G)
        q_tab = chain_powers(chain, h_tab, np.array([h]))[0]  # (M, G): sum_s' P^h[s, s'] H(s', a)
        a_t = mean_shift * (x - params.mean)  # (N,)
        expected_model = _rowwise_interp(q_tab, states, a_t, a)
        noise_factor = np.exp(phi_u**h * noise + 0.5 * iv_cfg.noise_stdev**2 * (1.0 - phi_u ** (2 * h)))
        out[h] = expected_model * noise_factor - iv_now
    return out


def _rowwise_interp(table: FloatArray, rows: IntArray, at: FloatArray, grid: FloatArray) -> FloatArray:
    """``np.interp(at[i], grid, table[rows[i]])`` for every i, vectorized. table (M, G) -> shape (N,)."""
    pos = np.clip(np.searchsorted(grid, at, side="right") - 1, 0, len(grid) - 2)
    frac = (at - grid[pos]) / (grid[pos + 1] - grid[pos])
    left = table[rows, pos]
    return left + frac * (table[rows, pos + 1] - left)
