"""A simulated year of 1-minute bars with its ~30M trades, IV index and hourly option chain through the default
spec's full pipeline: every column is defined after its documented warm-up (about a minute and 3 GB)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.market import market_data
from features.pipeline import build_features, feature_spec_from_spec
from forecaster.config import load_spec
from forecaster.market import load_options_chain
from forecaster.market.simulator import SimConfig, simulate


def test_a_simulated_year_has_no_nan_after_the_warmup(tmp_path) -> None:
    spec = load_spec("sim_intraday")
    sim = simulate(SimConfig(days=365, seed=3), keep_trades=True)
    iv = sim.iv_index["dvol"] / 100.0
    sim.options_chain.to_parquet(tmp_path / "chain.parquet", index=False)  # read back as users read a chain
    chain = load_options_chain(tmp_path / "chain.parquet").data
    data = market_data(sim.bars, freq="1min", trades=sim.trades, iv=iv, chain=chain)
    del sim
    table = build_features(data, feature_spec_from_spec(spec.values, where=spec.path))
    assert table.skipped == {} and len(table.frame) == 365 * 1440
    assert len(table.names) > 100 and "chain_rr25_30d_chg_43200" in table.names
    for column, rows in table.warmup.items():
        values = table.frame[column].to_numpy()
        assert rows < len(values) // 2, f"{column}: warm-up {rows} bars"
        assert not np.isnan(values[rows:]).any(), f"{column}: NaN after its warm-up of {rows} bars"
        assert np.isnan(values[rows - 1]) if rows else True, f"{column}: warm-up longer than needed"
    assert isinstance(table.frame.index, pd.DatetimeIndex) and table.frame.index.tz is not None
