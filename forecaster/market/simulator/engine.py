"""Orchestration: draw the latent path, returns, bars, trades, implied vols, chain and truth; write them.

Random streams are split by purpose with ``numpy.random.SeedSequence``, and trades get one stream per day, so the
same seed gives the same market whatever the chunking, and whether trades are written or not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecaster.errors import UsageError
from forecaster.market.simulator.chain import chain_snapshots
from forecaster.market.simulator.config import REGIMES, SimConfig
from forecaster.market.simulator.flow import flow_intensity, trades_for_bars
from forecaster.market.simulator.implied import atm_implied_vol, iv_noise_path, oracle_iv_change
from forecaster.market.simulator.oracle import oracle_rv, regime_probabilities
from forecaster.market.simulator.regimes import RegimeChain, build_chain, simulate_states, stays
from forecaster.market.simulator.volatility import (
    MINUTES_PER_YEAR,
    ReturnPath,
    VolParams,
    bar_extremes,
    simulate_returns,
    vol_params,
)
from forecaster.progress import progress
from forecaster.provenance import code_version, fingerprint

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
_STREAMS = ("regimes", "returns", "extremes", "flow", "iv_noise", "chain")


@dataclass
class SimulatedMarket:
    """What one simulation produced. Frames are indexed by tz-aware UTC ``timestamp`` (bar end) where per bar.

    ``trades`` is held in memory only when asked for (a year is ~30M rows); ``files`` lists what was written.
    """

    config: SimConfig
    chain: RegimeChain
    params: VolParams
    bars: pd.DataFrame
    truth: pd.DataFrame
    iv_index: pd.DataFrame
    options_chain: pd.DataFrame | None
    trades: pd.DataFrame | None
    n_trades: int
    files: dict[str, str] = field(default_factory=dict)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


def _day_rng(seed: int, day: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1000, day)))


class _TableSink:
    """Appends frames to one Parquet or CSV file, chunk by chunk (bounded memory for a year of trades)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._writer: pq.ParquetWriter | None = None
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._writer.write_table(table)
        else:
            frame.to_csv(self.path, mode="w" if self._header else "a", header=self._header, index=False)
            self._header = False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


OUTPUT_NAMES = ("bars", "trades", "options_chain", "iv_index", "truth")


def _remove_previous_outputs(out: Path) -> None:
    """Delete what an earlier simulation wrote here, so no stale file (say, trades of another seed) remains.

    Only the simulator's own file names are touched; anything else in the folder is left alone.
    """
    stale = [out / f"{name}.{ext}" for name in OUTPUT_NAMES for ext in FORMATS] + [out / "manifest.json"]
    removed = [p.name for p in stale if p.is_file()]
    for name in removed:
        (out / name).unlink()
    if removed:
        log.info("replaced the previous simulation in %s (%s)", out, ", ".join(removed))


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    out = frame.reset_index()
    if fmt == "parquet":
        out.to_parquet(path, index=False, compression="zstd")
    else:
        for col in out.columns:  # ISO-8601 with offset, as the loaders expect
            if isinstance(out[col].dtype, pd.DatetimeTZDtype):
                out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        out.to_csv(path, index=False)


def simulate(
    config: SimConfig,
    *,
    out_dir: str | Path | None = None,
    fmt: str = "parquet",
    with_trades: bool = True,
    with_chain: bool = True,
    keep_trades: bool = False,
) -> SimulatedMarket:
    """Simulate the market of ``config``; write it under ``out_dir`` when given.

    Parameters
    ----------
    with_trades
        Generate individual trades (bar volume is their sum either way: without trades it is drawn the same way
        but the trades are discarded).
    keep_trades
        Also return the trades as a frame (memory: about 45 bytes a trade).
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _remove_previous_outputs(out)
    rng = _streams(config.seed)
    chain = build_chain(config)
    params = vol_params(config)
    n = config.n_bars
    m = config.bar_minutes
    start = config.start_ts
    ends = start + pd.to_timedelta(np.arange(1, n + 1) * m, unit="min")  # bar end times
    index = pd.DatetimeIndex(ends, name="timestamp")
    minute_of_day = ((ends - ends.normalize()) / pd.Timedelta(minutes=1)).to_numpy().astype(np.int64)
    season_idx = ((minute_of_day - m) % 1440) // m  # bar (end - m, end] -> its slot in the day

    log.info("simulating %d bars of %d min (%.1f days), seed %d", n, m, config.days, config.seed)
    states = simulate_states(chain, n, rng["regimes"])
    regime = chain.regime[states]
    path = simulate_returns(config, params, regime, season_idx, rng["returns"])
    log_hi, log_lo = bar_extremes(path.log_return, path.diffusive_var, rng["extremes"])
    close = config.spot0 * np.exp(np.cumsum(path.log_return))
    open_ = np.concatenate([[config.spot0], close[:-1]])
    stress = chain.stress[states]
    rate, buy_prob = flow_intensity(config, params, regime, stress, path.x_prev, season_idx, path.z, rng["flow"])

    sink = _TableSink(out / f"trades.{fmt}", fmt) if (out is not None and with_trades) else None
    volume, n_trades, kept = _draw_trades(
        config, index, open_, path, log_hi, log_lo, rate, buy_prob, sink, keep=keep_trades and with_trades
    )

    bars = pd.DataFrame(
        {
            "open": open_,
            "high": open_ * np.exp(log_hi),
            "low": open_ * np.exp(log_lo),
            "close": close,
            "volume": volume,
        },
        index=index,
    )

    # implied vols: a 30-day constant-maturity ATM index (DVOL-like, in percent) on every bar
    noise = iv_noise_path(config, n, rng["iv_noise"])
    tenor = np.full((n, 1), config.implied_vol.index_tenor_days * 1440.0)
    iv_model = atm_implied_vol(config, chain, params, states, path.x, np.zeros(n), tenor)[:, 0]
    iv30 = iv_model * np.exp(noise)  # the noise is multiplicative on every tenor
    iv_index = pd.DataFrame({"dvol": 100.0 * iv30}, index=index)

    options = None
    if with_chain:
        every = config.chain.snapshot_every_minutes // m
        snaps = np.arange(every - 1, n, every)
        options = chain_snapshots(
            config,
            chain,
            params,
            index[snaps],
            close[snaps],
            states[snaps],
            path.x[snaps],
            noise[snaps],
            rng["chain"],
        )

    truth = _truth(config, chain, params, index, states, path, season_idx, iv_model, noise)
    market = SimulatedMarket(
        config, chain, params, bars, truth, iv_index, options, pd.concat(kept, ignore_index=True) if kept else None,
        n_trades,
    )  # fmt: skip
    if out is not None:
        _write_outputs(market, out, fmt, with_trades)
    return market


def _draw_trades(
    config: SimConfig,
    index: pd.DatetimeIndex,
    open_: np.ndarray,
    path: ReturnPath,
    log_hi: np.ndarray,
    log_lo: np.ndarray,
    rate: np.ndarray,
    buy_prob: np.ndarray,
    sink: _TableSink | None,
    *,
    keep: bool,
) -> tuple[np.ndarray, int, list[pd.DataFrame]]:
    """Trades day by day, each day from its own random stream; returns (volume per bar, count, kept frames)."""
    n = len(index)
    bars_per_day = 1440 // config.bar_minutes
    volume = np.empty(n)
    end_us = index.as_unit("us").asi8
    kept: list[pd.DataFrame] = []
    n_trades = 0
    days = range((n + bars_per_day - 1) // bars_per_day)
    for day in progress(days, desc="trades", total=len(days), unit="day"):
        lo, hi = day * bars_per_day, min((day + 1) * bars_per_day, n)
        frame, volume[lo:hi] = trades_for_bars(
            config, end_us[lo:hi], open_[lo:hi], path.log_return[lo:hi], path.diffusive_var[lo:hi],
            log_hi[lo:hi], log_lo[lo:hi], rate[lo:hi], buy_prob[lo:hi], n_trades + 1, _day_rng(config.seed, day),
        )  # fmt: skip
        n_trades += len(frame)
        if sink is not None:
            sink.write(frame)
        if keep:
            kept.append(frame)
    if sink is not None:
        sink.close()
    return volume, n_trades, kept


def _truth(
    config: SimConfig,
    chain: RegimeChain,
    params: VolParams,
    index: pd.DatetimeIndex,
    states: np.ndarray,
    path: ReturnPath,
    season_idx: np.ndarray,
    iv_model: np.ndarray,
    noise: np.ndarray,
) -> pd.DataFrame:
    """Latent state per bar and the oracle forecasts of every horizon (exact; standard error 0)."""
    regime = chain.regime[states]
    truth = pd.DataFrame(
        {
            "regime": pd.Categorical.from_codes(regime, list(REGIMES)),
            "phase": chain.phase[states],
            "destination": pd.Categorical.from_codes(chain.destination[states], list(REGIMES)),
            "stress": chain.stress[states],
            "inst_var": path.diffusive_var + params.jump_var[regime],
            "log_var_dev": path.x - params.mean,
            "log_return": path.log_return,
            "iv30_model": iv_model,
            "iv_noise": noise,
        },
        index=index,
    )
    div = oracle_iv_change(
        config, chain, params, states, path.x, noise, iv_model * np.exp(noise), tuple(config.horizons)
    )
    oracle = oracle_rv(chain, params, states, path.x, season_idx, tuple(config.horizons))
    for h in config.horizons:
        truth[f"oracle_rv_h{h}"] = oracle[h]
        truth[f"oracle_rv_h{h}_se"] = 0.0
        truth[f"oracle_div_h{h}"] = div[h]
        probs = regime_probabilities(chain, states, h)
        for r, name in enumerate(REGIMES):
            truth[f"oracle_p_{name}_h{h}"] = probs[:, r]
    return truth


def _write_outputs(market: SimulatedMarket, out: Path, fmt: str, with_trades: bool) -> None:
    files = {"bars": out / f"bars.{fmt}", "truth": out / f"truth.{fmt}", "iv_index": out / f"iv_index.{fmt}"}
    _write_frame(market.bars, files["bars"], fmt)
    _write_frame(market.truth, files["truth"], fmt)
    _write_frame(market.iv_index, files["iv_index"], fmt)
    if market.options_chain is not None:
        files["options_chain"] = out / f"options_chain.{fmt}"
        if fmt == "parquet":
            market.options_chain.to_parquet(files["options_chain"], index=False, compression="zstd")
        else:
            market.options_chain.to_csv(files["options_chain"], index=False)
    if with_trades:
        files["trades"] = out / f"trades.{fmt}"
    market.files = {k: str(v) for k, v in files.items()}
    manifest = {
        "generator": "drift-forecaster simulator",
        "code": code_version(),
        "config_fingerprint": fingerprint(market.config.to_dict()),
        "config": market.config.to_dict(),
        "rows": {
            "bars": len(market.bars),
            "trades": market.n_trades,
            "options_chain": 0 if market.options_chain is None else len(market.options_chain),
        },
        "files": {k: Path(v).name for k, v in market.files.items()},
        "conventions": {
            "bar_timestamp": "end of the bar (bar covers (t - freq, t]); UTC",
            "trades_and_chain_timestamps": "epoch microseconds (Tardis)",
            "iv_units": {"iv_index.dvol": "percent", "options_chain.*_iv": "percent"},
            "premium_units": "coin (premium in quote currency / underlying_price), Deribit-like",
            "oracle": "exact conditional expectation given the latent state; *_se columns are 0",
        },
        "configured_regime_shares": dict(zip(REGIMES, market.chain.regime_shares().round(6).tolist(), strict=True)),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def summarize(market: SimulatedMarket) -> dict[str, Any]:
    """Regime shares and durations, annualized vol per regime, trades per day, chain size, IV vs realized."""
    c = market.config
    regime = market.truth["regime"].cat.codes.to_numpy()
    r = market.truth["log_return"].to_numpy()
    bars_per_year = MINUTES_PER_YEAR / c.bar_minutes

    which, lengths = stays(regime)
    out: dict[str, Any] = {
        "days": c.days,
        "bars": len(regime),
        "seed": c.seed,
        "regimes": {},
        "trades_per_day": market.n_trades / c.days,
        "realized_vol": float(np.sqrt(np.mean(r**2) * bars_per_year)),
        # long run: configured regime shares times configured regime variances
        "long_run_vol": float(np.sqrt(market.chain.regime_shares() @ np.square(c.regimes.ann_vol))),
        "mean_iv30": float(market.iv_index["dvol"].mean() / 100.0),
    }
    shares = market.chain.regime_shares()
    for k, name in enumerate(REGIMES):
        mask = regime == k
        out["regimes"][name] = {
            "share": float(mask.mean()),
            "configured_share": float(shares[k]),
            "ann_vol": float(np.sqrt(np.mean(r[mask] ** 2) * bars_per_year)) if mask.any() else None,
            "configured_ann_vol": c.regimes.ann_vol[k],
            "stays": int(np.sum(which == k)),
            "mean_duration_hours": float(lengths[which == k].mean() * c.bar_minutes / 60)
            if np.any(which == k)
            else None,
            "configured_duration_hours": c.regimes.mean_duration_hours[k],
        }
    if market.options_chain is not None:
        oc = market.options_chain
        out["chain"] = {
            "rows": len(oc),
            "snapshots": int(oc["timestamp"].nunique()),
            "instruments": int(oc["symbol"].nunique()),
            "expiries_per_snapshot": float(oc.groupby("timestamp")["expiration"].nunique().mean()),
        }
    return out
