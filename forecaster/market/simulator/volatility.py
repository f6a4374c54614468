"""Returns within regimes: mean-reverting log variance with leverage, Student-t shocks, jumps, seasonality.

Bar ``t`` (1-based in the formulas, 0-based in arrays) has log return

    r_t = sqrt(c[R_t] * s(tau_t) * exp(x_{t-1})) * z_t + J_t

with ``c`` the diffusive variance per bar of regime ``R_t``, ``s`` the intraday seasonality (mean 1 over a day),
``x`` an AR(1) log-variance deviation whose shock has correlation ``leverage`` with the return shock ``z_t``
(so it moves the variance of later bars only), and ``J_t`` a compound-Poisson jump sum. Total variance by regime
(diffusion + jumps) equals the configured annualized vol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from forecaster.errors import ConfigError
from forecaster.market.simulator.config import REGIMES, SimConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MINUTES_PER_YEAR = 365.0 * 1440.0  # crypto trades 24/7


@dataclass(frozen=True)
class VolParams:
    """Per-bar parameters derived from the settings. Shapes: per-regime arrays (R,), ``season`` (bars per day,)."""

    diffusive_var: FloatArray  # c_r
    jump_rate: FloatArray  # expected jumps per bar
    jump_mean: FloatArray
    jump_stdev: FloatArray
    jump_var: FloatArray  # E[J_t^2] per bar
    season: FloatArray
    phi: float  # AR(1) coefficient of x
    shock_stdev: float  # sd of the AR(1) shock
    mean: float  # stationary mean of x, chosen so E[exp(x)] = 1

    def ar_moments(self, lags: IntArray) -> tuple[FloatArray, FloatArray]:
        """For ``E[exp(x_{t+k}) | x_t] = exp(mean + w_k (x_t - mean) + v_k)``: return (w_k, v_k). Shape (K,)."""
        w = self.phi ** lags.astype(float)
        v = self.shock_stdev**2 * (1.0 - w**2) / (2.0 * (1.0 - self.phi**2)) if self.phi < 1 else 0.0 * w
        return w, v


def ar1_noise(n: int, stdev: float, half_life_minutes: float, bar_minutes: int, rng: np.random.Generator) -> FloatArray:
    """Stationary AR(1) noise, one value per bar, with the given sd and half-life (started in its stationary law).

    Shape (n,).
    """
    phi = 0.5 ** (bar_minutes / half_life_minutes)
    shocks = stdev * np.sqrt(1.0 - phi**2) * rng.standard_normal(n)
    start = stdev * rng.standard_normal()
    out, _ = lfilter([1.0], [1.0, -phi], shocks, zi=[phi * start])
    return out


def seasonality(config: SimConfig) -> FloatArray:
    """Variance multiplier for each bar of the day (bar ends at ``(i + 1) * bar_minutes``), mean 1. Shape (B,)."""
    s = config.seasonality
    m = config.bar_minutes
    hours = (np.arange(1440 // m) + 0.5) * m / 60.0  # bar mid-points
    d = (hours - s.peak_hour_utc + 12.0) % 24.0 - 12.0  # circular distance to the peak
    bump = s.peak_amplitude * np.exp(-0.5 * (d / s.peak_width_hours) ** 2)
    wave = s.diurnal_amplitude * np.cos(2 * np.pi * (hours - s.diurnal_peak_hour_utc) / 24.0)
    raw = 1.0 + bump + wave
    if raw.min() <= 0:
        raise ConfigError("simulator", "seasonality", "diurnal_amplitude too large: the multiplier goes <= 0")
    return raw / raw.mean()


def vol_params(config: SimConfig) -> VolParams:
    """Derive per-bar parameters so that each regime's total variance matches its annualized vol."""
    m = config.bar_minutes
    total = np.asarray(config.regimes.ann_vol) ** 2 * m / MINUTES_PER_YEAR
    rate = np.asarray(config.jumps.per_day) * m / 1440.0
    mu, sd = np.asarray(config.jumps.mean), np.asarray(config.jumps.stdev)
    jump_var = rate * (mu**2 + sd**2) + rate**2 * mu**2  # E[(sum of N~Poisson(rate) normals)^2]
    diffusive = total - jump_var
    if np.any(diffusive <= 0):
        bad = int(np.argmin(diffusive))
        raise ConfigError(
            "simulator",
            "jumps",
            f"jumps alone exceed the total variance of regime {REGIMES[bad]!r}; lower per_day/mean/stdev "
            f"or raise regimes.ann_vol",
        )
    lv = config.logvar
    phi = 0.5 ** (m / lv.half_life_minutes)
    shock = lv.stationary_stdev * np.sqrt(1.0 - phi**2)
    return VolParams(
        diffusive_var=diffusive,
        jump_rate=rate,
        jump_mean=mu,
        jump_stdev=sd,
        jump_var=jump_var,
        season=seasonality(config),
        phi=phi,
        shock_stdev=shock,
        mean=-0.5 * lv.stationary_stdev**2,
    )


@dataclass(frozen=True)
class ReturnPath:
    """Simulated bar returns and the latent volatility state. All shapes (N,)."""

    log_return: FloatArray
    diffusive_var: FloatArray  # variance of the diffusive part of bar t, known at the end of bar t-1
    x: FloatArray  # log variance at the end of bar t
    x_prev: FloatArray  # log variance at the end of bar t-1 (sets the variance of bar t)
    z: FloatArray  # unit-variance return shock
    jump: FloatArray


def simulate_returns(
    config: SimConfig,
    params: VolParams,
    regime: IntArray,
    season_idx: IntArray,
    rng: np.random.Generator,
    x_start: float | None = None,
) -> ReturnPath:
    """Draw returns for a regime path. ``season_idx`` is each bar's index into ``params.season``.

    ``x_start`` is the log variance before the first bar; by default it is drawn from its stationary law.
    """
    n = regime.shape[0]
    lv = config.logvar
    e1 = rng.standard_normal(n)
    e2 = rng.standard_normal(n)
    chi = rng.chisquare(lv.student_t_dof, n)
    z = e1 * np.sqrt((lv.student_t_dof - 2.0) / chi)  # Student-t, unit variance
    eps = lv.leverage * e1 + np.sqrt(1.0 - lv.leverage**2) * e2
    x0 = params.mean + lv.stationary_stdev * rng.standard_normal() if x_start is None else x_start
    # x_t - mean = phi (x_{t-1} - mean) + shock eps_t, started at x_{-1} = x0.
    dev, _ = lfilter([1.0], [1.0, -params.phi], params.shock_stdev * eps, zi=[params.phi * (x0 - params.mean)])
    x = params.mean + dev
    x_prev = np.concatenate([[x0], x[:-1]])
    var = params.diffusive_var[regime] * params.season[season_idx] * np.exp(x_prev)
    counts = rng.poisson(params.jump_rate[regime])
    jump = counts * params.jump_mean[regime] + np.sqrt(counts) * params.jump_stdev[regime] * rng.standard_normal(n)
    return ReturnPath(np.sqrt(var) * z + jump, var, x, x_prev, z, jump)


BRIDGE_PIECES = 4  # the bar's bridge is drawn at 3 inner points: joint (high, low), range estimators unbiased


def bar_extremes(
    log_return: FloatArray, diffusive_var: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Log high and low relative to the open: extremes of a Brownian bridge from 0 to ``log_return``.

    The bridge is first drawn at ``BRIDGE_PIECES − 1`` inner times (exact conditional normals); on each piece the
    maximum ``a + (d + sqrt(d^2 - 2 v log U)) / 2`` (d the piece's move, v its variance) and the minimum follow
    their exact laws. High and low are the extremes over the pieces, so they are dependent as in a real path:
    drawing them independently over the whole bar overstates the Parkinson and Garman-Klass variance by 3-4%.
    Always high >= max(0, r) and low <= min(0, r). Shapes (N,).
    """
    n, k = log_return.shape[0], BRIDGE_PIECES
    piece_var = diffusive_var / k
    hi = np.full(n, -np.inf)
    lo = np.full(n, np.inf)
    start = np.zeros(n)
    for j in range(1, k + 1):
        if j < k:  # B(j/k) given B((j-1)/k) and B(1) = r
            left = (k - j + 1) / k  # time remaining before this piece
            mean = start + (log_return - start) / (k - j + 1)
            var = diffusive_var * (1 / k) * (left - 1 / k) / left
            end = mean + np.sqrt(var) * rng.standard_normal(n)
        else:
            end = log_return
        d = end - start
        u1, u2 = rng.random(n), rng.random(n)
        hi = np.maximum(hi, start + 0.5 * (d + np.sqrt(d * d - 2.0 * piece_var * np.log1p(-u1))))
        lo = np.minimum(lo, start + 0.5 * (d - np.sqrt(d * d - 2.0 * piece_var * np.log1p(-u2))))
        start = end
    return hi, lo
