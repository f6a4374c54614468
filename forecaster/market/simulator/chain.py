"""Implied vols and option-chain snapshots in Tardis ``options_chain`` columns.

ATM implied variance for a tenor is the model's expected integrated variance over it (``oracle``), times
``1 + variance_risk_premium[regime]``, times ``exp(2 u)`` with ``u`` a slow AR(1) log-IV noise shared by every
tenor. The smile in standardized moneyness ``z = log(K/F) / (atm sqrt(T))`` is ``atm * (1 + skew[regime] z +
curvature z^2)`` (floored at 0.4 atm): negative skew that steepens in stress.

Units, Deribit-like: premiums (``mark_price``, ``bid_price``, ``ask_price``, ``last_price``) in coin (premium in
quote currency / underlying price); IVs in percent; ``underlying_price`` in quote currency; Greeks of the Black-76
price in quote currency: delta (dV/dF), gamma (per unit of F), vega per vol point, theta per calendar day, rho per 1%.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.market.simulator.config import REGIMES, SimConfig
from forecaster.market.simulator.implied import atm_implied_vol
from forecaster.market.simulator.regimes import RegimeChain
from forecaster.market.simulator.volatility import MINUTES_PER_YEAR, VolParams
from forecaster.pricing.black import black76_greeks, black76_price

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CHAIN_COLUMNS = (
    "exchange", "symbol", "timestamp", "local_timestamp", "type", "strike_price", "expiration", "open_interest",
    "last_price", "bid_price", "bid_amount", "bid_iv", "ask_price", "ask_amount", "ask_iv", "mark_price", "mark_iv",
    "underlying_index", "underlying_price", "delta", "gamma", "vega", "theta", "rho",
)  # fmt: skip


def expiries_after(ts: pd.Timestamp, config: SimConfig) -> list[pd.Timestamp]:
    """Listed expiries strictly after ``ts``: dailies, Friday weeklies, last-Friday monthlies and quarterlies."""
    c = config.chain
    span = 31 * (c.monthly_expiries + 1) + 92 * (c.quarterly_expiries + 1) + 7 * (c.weekly_expiries + 1)
    days = pd.date_range(ts.normalize(), periods=span, freq="D") + pd.Timedelta(hours=c.expiry_hour_utc)
    days = days[days > ts]
    friday = days.day_of_week == 4
    last_friday = friday & ((days + pd.Timedelta(days=7)).month != days.month)
    quarterly = last_friday & (days.month % 3 == 0)
    picked = np.zeros(len(days), dtype=bool)
    for mask, count in (
        (np.ones(len(days), dtype=bool), c.daily_expiries),
        (friday, c.weekly_expiries),
        (last_friday, c.monthly_expiries),
        (quarterly, c.quarterly_expiries),
    ):
        picked[np.flatnonzero(mask)[:count]] = True
    return list(days[picked])


def _nice_step(raw: FloatArray) -> FloatArray:
    """Round a strike spacing down to 1, 2, 2.5 or 5 times a power of ten. Shape of ``raw``."""
    power = 10.0 ** np.floor(np.log10(raw))
    mantissa = raw / power
    nice = np.select([mantissa >= 5, mantissa >= 2.5, mantissa >= 2], [5.0, 2.5, 2.0], 1.0)
    return nice * power


def _expiry_code(expiry: pd.Timestamp) -> str:
    """Deribit's expiry code: day without leading zero, month, two-digit year (``5JAN27``)."""
    return f"{expiry.day}{expiry.strftime('%b%y').upper()}"


def _symbol(base: str, expiry: pd.Timestamp, strike: float, kind: str) -> str:
    strike_text = f"{strike:.0f}" if float(strike).is_integer() else f"{strike:g}"
    return f"{base}-{_expiry_code(expiry)}-{strike_text}-{kind}"


def chain_snapshots(
    config: SimConfig,
    chain: RegimeChain,
    params: VolParams,
    snap_ts: pd.DatetimeIndex,
    spot: FloatArray,
    states: IntArray,
    x: FloatArray,
    noise: FloatArray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """All snapshots' rows, sorted by timestamp. Inputs are per snapshot, shape (S,)."""
    c = config.chain
    iv_cfg = config.implied_vol
    # one row per (snapshot, expiry)
    pair_snap, pair_exp = [], []
    cache: dict[tuple[pd.Timestamp, bool], list[pd.Timestamp]] = {}
    for i, ts in enumerate(snap_ts):
        key = (ts.normalize(), ts.hour * 60 + ts.minute >= c.expiry_hour_utc * 60)
        if key not in cache:
            cache[key] = expiries_after(ts, config)
        listed = [e for e in cache[key] if e > ts]
        pair_snap.extend([i] * len(listed))
        pair_exp.extend(listed)
    ps = np.asarray(pair_snap, dtype=np.int64)  # (P,)
    expiry = pd.DatetimeIndex(pair_exp)
    tenor_min = ((expiry - snap_ts[ps]) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)  # (P,)
    atm = atm_implied_vol(config, chain, params, states[ps], x[ps], noise[ps], tenor_min[:, None])[:, 0]  # (P,)
    tau = tenor_min / MINUTES_PER_YEAR
    fwd = spot[ps]
    step = _nice_step(fwd * atm * np.sqrt(tau) * 0.4)
    offsets = np.arange(-c.strikes_per_side, c.strikes_per_side + 1)  # (K,)
    strikes = np.round(fwd / step)[:, None] * step[:, None] + offsets[None, :] * step[:, None]  # (P, K)
    # rows: (pair, strike, type), calls then puts
    n_pairs, n_k = strikes.shape
    pair = np.repeat(np.arange(n_pairs), 2 * n_k)  # (Q,)
    strike = np.concatenate([strikes, strikes], axis=1).ravel()
    is_call = np.tile(np.r_[np.ones(n_k, bool), np.zeros(n_k, bool)], n_pairs)
    keep = strike > 0
    pair, strike, is_call = pair[keep], strike[keep], is_call[keep]
    regime = chain.regime[states[ps[pair]]]
    f, t, a = fwd[pair], tau[pair], atm[pair]
    z = np.log(strike / f) / (a * np.sqrt(t))
    iv = a * np.maximum(0.4, 1.0 + np.asarray(iv_cfg.skew)[regime] * z + iv_cfg.curvature * z**2)
    iv = np.clip(iv * np.exp(0.005 * rng.standard_normal(iv.shape)), 0.01, 4.9)
    half = (
        0.5 * c.spread_iv_points / 100.0 * (1.0 + 0.5 * np.abs(z)) * (1.0 + 0.5 * (regime == REGIMES.index("stressed")))
    )
    mark = black76_price(f, strike, t, iv, is_call)
    bid_iv, ask_iv = np.maximum(iv - half, 0.005), iv + half
    tick = c.price_tick
    bid = np.floor(black76_price(f, strike, t, bid_iv, is_call) / f / tick) * tick
    ask = np.ceil(black76_price(f, strike, t, ask_iv, is_call) / f / tick) * tick
    no_bid = bid < tick
    ask = np.maximum(ask, tick)
    greeks = black76_greeks(f, strike, t, iv, is_call)
    q = len(strike)
    last = np.round(mark / f * np.exp(0.05 * rng.standard_normal(q)) / tick) * tick
    last = np.where((rng.random(q) < 0.3) | (last < tick), np.nan, last)
    snap_us = snap_ts.as_unit("us").asi8[ps[pair]]
    exp_us = expiry.as_unit("us").asi8[pair]
    # names are built once per listed instrument, not once per row
    inst = pd.MultiIndex.from_arrays([exp_us, strike, is_call])
    codes, uniques = pd.factorize(inst)
    symbols = pd.Categorical.from_codes(
        codes,
        [_symbol(config.base, pd.Timestamp(e, unit="us", tz="UTC"), k, "C" if cf else "P") for e, k, cf in uniques],
    )
    exp_codes, exp_uniques = pd.factorize(exp_us)
    index_names = pd.Categorical.from_codes(
        exp_codes,
        [f"SYN.{config.base}-{_expiry_code(pd.Timestamp(e, unit='us', tz='UTC'))}" for e in exp_uniques],
    )
    frame = pd.DataFrame(
        {
            "exchange": pd.Categorical.from_codes(np.zeros(q, dtype=np.int8), [config.exchange]),
            "symbol": symbols,
            "timestamp": snap_us,
            "local_timestamp": snap_us + np.maximum(1, rng.exponential(2000.0, q)).astype(np.int64),
            "type": pd.Categorical(np.where(is_call, "call", "put"), categories=["call", "put"]),
            "strike_price": strike,
            "expiration": exp_us,
            "open_interest": np.round(np.exp(rng.normal(5.0, 1.0, q) - 0.5 * z**2), 1),
            "last_price": last,
            "bid_price": np.where(no_bid, np.nan, bid),
            "bid_amount": np.where(no_bid, np.nan, np.round(rng.lognormal(2.0, 0.8, q), 1)),
            "bid_iv": np.where(no_bid, np.nan, 100.0 * bid_iv),
            "ask_price": ask,
            "ask_amount": np.round(rng.lognormal(2.0, 0.8, q), 1),
            "ask_iv": 100.0 * ask_iv,
            "mark_price": mark / f,
            "mark_iv": 100.0 * iv,
            "underlying_index": index_names,
            "underlying_price": f,
            "delta": greeks["delta"],
            "gamma": greeks["gamma"],
            "vega": greeks["vega"] / 100.0,
            "theta": greeks["theta"] / 365.0,
            "rho": -t * mark / 100.0,
        }
    )
    return frame.sort_values(["timestamp", "expiration", "type", "strike_price"], kind="stable", ignore_index=True)
