"""The simulated market as data: determinism, internal consistency, Tardis columns, files on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forecaster.market.simulator import SimConfig, SimulatedMarket, simulate
from forecaster.market.simulator.chain import CHAIN_COLUMNS
from forecaster.market.simulator.flow import TRADE_COLUMNS
from forecaster.pricing import black76_price


@pytest.fixture(scope="module")
def small() -> SimulatedMarket:
    return simulate(SimConfig(days=3, seed=5), keep_trades=True)


def test_same_seed_same_market_and_trades_do_not_change_bars() -> None:
    a = simulate(SimConfig(days=2, seed=9), keep_trades=True)
    b = simulate(SimConfig(days=2, seed=9), with_trades=False)
    c = simulate(SimConfig(days=2, seed=10))
    pd.testing.assert_frame_equal(a.bars, b.bars)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    pd.testing.assert_frame_equal(a.options_chain, b.options_chain)
    assert not np.allclose(a.bars["close"], c.bars["close"])


def test_bars_obey_the_data_contract(small: SimulatedMarket) -> None:
    bars = small.bars
    assert bars.index.is_monotonic_increasing and bars.index.is_unique and str(bars.index.tz) == "UTC"
    assert (bars.index[1:] - bars.index[:-1] == pd.Timedelta(minutes=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars[["open", "close"]].min(axis=1) >= bars["low"]).all()
    assert (bars["low"] > 0).all() and (bars["volume"] >= 0).all()
    np.testing.assert_allclose(np.log(bars["close"] / bars["open"]), small.truth["log_return"], atol=1e-12)


def test_trades_sit_inside_their_bar(small: SimulatedMarket) -> None:
    trades = small.trades
    assert trades is not None and list(trades.columns) == list(TRADE_COLUMNS)
    assert trades["timestamp"].is_monotonic_increasing
    assert (trades["local_timestamp"] > trades["timestamp"]).all()
    bar_end = pd.to_datetime(trades["timestamp"], unit="us", utc=True).dt.ceil("1min")
    bars = small.bars.loc[bar_end]
    assert (trades["price"].to_numpy() <= bars["high"].to_numpy() * (1 + 1e-12)).all()
    assert (trades["price"].to_numpy() >= bars["low"].to_numpy() * (1 - 1e-12)).all()
    volume = trades.groupby(bar_end.to_numpy())["amount"].sum().reindex(small.bars.index, fill_value=0.0)
    np.testing.assert_allclose(volume.to_numpy(), small.bars["volume"].to_numpy(), rtol=1e-9)
    assert set(trades["side"].unique()) == {"buy", "sell"}


def test_chain_is_tardis_shaped_and_priced_consistently(small: SimulatedMarket) -> None:
    chain = small.options_chain
    assert chain is not None and list(chain.columns) == list(CHAIN_COLUMNS)
    assert (chain["expiration"] > chain["timestamp"]).all()
    assert chain["mark_iv"].between(1.0, 490.0).all()
    quoted = chain["bid_price"].notna()
    assert (chain.loc[quoted, "bid_price"] <= chain.loc[quoted, "ask_price"]).all()
    assert (chain.loc[quoted, "bid_iv"] < chain.loc[quoted, "mark_iv"]).all()
    assert (chain["mark_iv"] < chain["ask_iv"]).all()
    tau = (chain["expiration"] - chain["timestamp"]) / (365 * 86_400e6)
    usd = black76_price(
        chain["underlying_price"], chain["strike_price"], tau, chain["mark_iv"] / 100, chain["type"] == "call"
    )
    np.testing.assert_allclose(chain["mark_price"] * chain["underlying_price"], usd, rtol=1e-9)
    sym = chain["symbol"].astype(str)
    assert sym.str.match(r"^BTC-\d{1,2}[A-Z]{3}\d{2}-\d+(\.\d+)?-[CP]$").all()
    snap = chain["timestamp"].unique()
    assert np.all(np.diff(snap) == 3_600_000_000)
    # expiries at 08:00 UTC, and the smile has negative skew: 25% OTM puts above 25% OTM calls
    expiry = pd.to_datetime(chain["expiration"], unit="us", utc=True)
    assert (expiry.dt.hour == 8).all()


def test_iv_index_and_truth(small: SimulatedMarket) -> None:
    iv = small.iv_index["dvol"]
    assert iv.between(10, 300).all()
    truth = small.truth
    for h in small.config.horizons:
        assert (truth[f"oracle_rv_h{h}"] > 0).all() and (truth[f"oracle_rv_h{h}_se"] == 0).all()
        probs = truth[[f"oracle_p_{r}_h{h}" for r in ("calm", "normal", "stressed")]].sum(axis=1)
        np.testing.assert_allclose(probs, 1.0, atol=1e-9)
    assert (truth["oracle_rv_h60"] < truth["oracle_rv_h240"]).all()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_files_written(tmp_path, fmt: str) -> None:
    market = simulate(SimConfig(days=1, seed=2), out_dir=tmp_path, fmt=fmt)
    expected = {"bars", "truth", "iv_index", "options_chain", "trades"}
    assert set(market.files) == expected
    for name in expected:
        assert (tmp_path / f"{name}.{fmt}").stat().st_size > 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["rows"]["trades"] == market.n_trades and manifest["config"]["seed"] == 2
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    bars = read(tmp_path / f"bars.{fmt}")
    assert len(bars) == 1440 and list(bars.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    trades = read(tmp_path / f"trades.{fmt}")
    assert len(trades) == market.n_trades and int(trades["timestamp"].iloc[0]) > 1_700_000_000_000_000


def test_rerun_into_the_same_folder_leaves_no_stale_files(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    simulate(SimConfig(days=0.5, seed=1), out_dir=tmp_path)
    assert (tmp_path / "trades.parquet").exists()
    simulate(SimConfig(days=0.5, seed=2), out_dir=tmp_path, fmt="csv", with_trades=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bars.csv", "iv_index.csv", "manifest.json", "notes.txt", "options_chain.csv", "truth.csv"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 2 and manifest["code"]["version"]
    assert len(manifest["config_fingerprint"]) == 16
