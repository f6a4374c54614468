"""The simulator's files pass the data contracts: what `forecaster simulate` writes, `forecaster validate` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecaster.cli import main
from forecaster.market import align_iv_to_bars, load_bars, load_iv_index, load_options_chain, load_trades
from forecaster.market.simulator import SimConfig, simulate


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_simulated_files_validate(tmp_path, capsys, fmt: str) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--days", "1", "--seed", "8", "--out", str(out), "--format", fmt]) == 0
    capsys.readouterr()
    report = tmp_path / "report.json"
    args = ["validate", "--json", str(report)]
    for flag, name in (("--bars", "bars"), ("--trades", "trades"), ("--options", "options_chain")):
        args += [flag, str(out / f"{name}.{fmt}")]
    args += ["--iv-index", str(out / f"iv_index.{fmt}")]
    assert main(args) == 0, capsys.readouterr().err
    files = json.loads(report.read_text())["files"]
    assert [f["rows"] for f in files][:1] == [1440]
    assert all(f["repairs"] == [] for f in files)


def test_loaders_read_back_what_the_simulator_made(tmp_path) -> None:
    market = simulate(SimConfig(days=1, seed=6), out_dir=tmp_path, keep_trades=True)
    bars = load_bars(tmp_path / "bars.parquet").data
    np.testing.assert_allclose(bars["close"].to_numpy(), market.bars["close"].to_numpy())
    assert (bars.index == market.bars.index).all()
    iv = load_iv_index(tmp_path / "iv_index.parquet").data  # percent detected: median > 3
    np.testing.assert_allclose(iv.to_numpy(), market.iv_index["dvol"].to_numpy() / 100)
    np.testing.assert_allclose(align_iv_to_bars(iv, bars.index).to_numpy(), iv.to_numpy())
    chain = load_options_chain(tmp_path / "options_chain.parquet").data
    assert market.options_chain is not None and len(chain) == len(market.options_chain)
    np.testing.assert_allclose(chain["mark_iv"].to_numpy(), market.options_chain["mark_iv"].to_numpy() / 100)
    trades = load_trades(tmp_path / "trades.parquet").data
    assert len(trades) == market.n_trades
