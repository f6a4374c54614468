"""Order flow: per-bar trade intensity and sign imbalance, and the individual trades (Tardis ``trades`` columns).

Intensity (trades per bar) is a Cox process:

    lambda_t = base[R_t] * season_t^0.5 * (exp(x_{t-1}) / E exp(x)) ** elasticity * exp(gain * L_t + eta_t)

and the buy share is ``0.5 + 0.5 * clip(-shift * L_t + zeta_t + b * z_t)``, with ``L_t`` the latent stress
build-up before a switch into the lead regime, ``eta``, ``zeta`` AR(1) noises and ``z_t`` the bar's return shock.
The build-up therefore warns of some switches through intensity and selling pressure, among noise that often
looks the same: real but noisy lead information.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.market.simulator.config import SimConfig
from forecaster.market.simulator.volatility import VolParams, ar1_noise

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TRADE_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")


def flow_intensity(
    config: SimConfig,
    params: VolParams,
    regime: IntArray,
    stress: FloatArray,
    x_prev: FloatArray,
    season_idx: IntArray,
    z: FloatArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Expected trades per bar and buy probability per bar. Shapes (N,), (N,)."""
    f = config.flow
    n = regime.shape[0]
    m = config.bar_minutes
    season = np.sqrt(params.season)
    season = season / season.mean()
    sd_x = config.logvar.stationary_stdev
    vol_factor = np.exp(
        f.vol_intensity_elasticity * (x_prev - params.mean) - 0.5 * (f.vol_intensity_elasticity * sd_x) ** 2
    )
    eta = ar1_noise(n, f.intensity_noise_stdev, f.intensity_noise_half_life_minutes, m, rng)
    noise = np.exp(eta - 0.5 * f.intensity_noise_stdev**2)
    rate = np.asarray(f.trades_per_minute)[regime] * m * season[season_idx] * vol_factor * noise
    rate = rate * np.exp(f.stress_intensity_gain * stress)
    zeta = ar1_noise(n, f.imbalance_noise_stdev, f.imbalance_noise_half_life_minutes, m, rng)
    imbalance = np.clip(-f.stress_sell_imbalance * stress + zeta + f.return_imbalance * z, -0.9, 0.9)
    return rate, 0.5 + 0.5 * imbalance


def trades_for_bars(
    config: SimConfig,
    bar_end_us: IntArray,
    open_: FloatArray,
    log_return: FloatArray,
    diffusive_var: FloatArray,
    log_high: FloatArray,
    log_low: FloatArray,
    rate: FloatArray,
    buy_prob: FloatArray,
    first_id: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, FloatArray]:
    """Individual trades of a block of bars, and each bar's volume (sum of trade amounts).

    Trade times are uniform inside the bar ``(end - bar, end]``; prices follow a Brownian bridge from open to
    close, kept inside [low, high]. Returns (trades frame in Tardis columns, volume per bar of shape (n,)).
    """
    f = config.flow
    n = bar_end_us.shape[0]
    bar_us = config.bar_minutes * 60_000_000
    counts = rng.poisson(rate)  # (n,)
    total = int(counts.sum())
    bar = np.repeat(np.arange(n), counts)  # (total,)
    # offsets inside the bar, sorted within each bar: sort (bar, offset) pairs
    offset = rng.integers(1, bar_us + 1, total)
    order = np.lexsort((offset, bar))
    offset = offset[order]
    ts = bar_end_us[bar] - bar_us + offset
    u = offset / bar_us
    logp = np.log(open_[bar]) + u * log_return[bar]
    logp = logp + np.sqrt(diffusive_var[bar] * u * (1.0 - u)) * rng.standard_normal(total)
    logp = np.clip(logp, np.log(open_[bar]) + log_low[bar], np.log(open_[bar]) + log_high[bar])
    amount = f.size_median * np.exp(f.size_log_stdev * rng.standard_normal(total))
    amount = np.maximum(np.round(amount, 4), 0.0001)
    side = (rng.random(total) >= buy_prob[bar]).astype(np.int8)  # codes: 0 buy, 1 sell
    latency = np.maximum(1, rng.exponential(f.latency_ms * 1000.0, total)).astype(np.int64)
    frame = pd.DataFrame(
        {
            "exchange": pd.Categorical.from_codes(np.zeros(total, dtype=np.int8), [config.exchange]),
            "symbol": pd.Categorical.from_codes(np.zeros(total, dtype=np.int8), [f"{config.base}-PERPETUAL"]),
            "timestamp": ts,
            "local_timestamp": ts + latency,
            "id": np.arange(first_id, first_id + total, dtype=np.int64),
            "side": pd.Categorical.from_codes(side, ["buy", "sell"]),
            "price": np.exp(logp),
            "amount": amount,
        }
    )
    volume = np.bincount(bar, weights=amount, minlength=n)
    return frame, volume
