"""Every feature group is strictly causal and serving reproduces batch exactly.

Causality: features recomputed on the market truncated after t equal the full run's rows ≤ t bit for bit, at
50 random cut points, with every group on. A toy feature that peeks one bar ahead fails the same check.
Streaming: the last row computed by ``last_row`` (the serving path, a recent window) equals the batch row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from features.base import Context, MarketData
from features.market import market_data
from features.pipeline import GROUP_MODULES, FeatureSpec, build_features, last_row, recent_start
from forecaster.market import load_iv_index, load_options_chain, load_trades
from forecaster.market.simulator import SimConfig, simulate

WINDOWS = (5, 60, 1440)
SPEC = FeatureSpec(groups=tuple(GROUP_MODULES), windows=WINDOWS, params={"iv_percentile_days": 1})
CUTS = 50


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> MarketData:
    """Three simulated days of 1-minute bars with trades, the IV index and the hourly option chain, read back
    through the loaders."""
    out = tmp_path_factory.mktemp("sim")
    sim = simulate(SimConfig(days=3, seed=5), out_dir=out)
    trades = load_trades(sim.files["trades"]).data
    iv = load_iv_index(sim.files["iv_index"]).data
    chain = load_options_chain(sim.files["options_chain"]).data
    return market_data(sim.bars, freq="1min", trades=trades, iv=iv, chain=chain)


@pytest.fixture(scope="module")
def full(market: MarketData) -> pd.DataFrame:
    return build_features(market, SPEC).frame


def causality_breaks(
    compute: Callable[[MarketData], pd.DataFrame], market: MarketData, full: pd.DataFrame, cuts: pd.DatetimeIndex
) -> list[str]:
    """The columns (with the first cut) whose rows ≤ t change when the data after t is removed."""
    broken: dict[str, pd.Timestamp] = {}
    for t in cuts:
        truncated = compute(market.until(t))
        expected = full.loc[:t]
        for column in expected.columns:
            a, b = truncated[column].to_numpy(), expected[column].to_numpy()
            same = np.array_equal(a, b, equal_nan=True)
            if not same and column not in broken:
                broken[column] = t
    return [f"{c} at {t}" for c, t in broken.items()]


def _cuts(index: pd.DatetimeIndex, n: int, seed: int) -> pd.DatetimeIndex:
    rng = np.random.default_rng(seed)
    return index[np.sort(rng.choice(np.arange(10, len(index) - 1), size=n, replace=False))]


def test_every_group_ran(market: MarketData, full: pd.DataFrame) -> None:
    table = build_features(market, SPEC)
    assert list(table.groups) == list(GROUP_MODULES) and table.skipped == {}
    assert len(full.columns) == len(set(full.columns)) > 30
    assert any(c.startswith("chain_") for c in full.columns) and "iv" in full.columns


def test_truncating_the_future_changes_no_past_row(market: MarketData, full: pd.DataFrame) -> None:
    cuts = _cuts(market.index, CUTS, seed=1)
    broken = causality_breaks(lambda m: build_features(m, SPEC).frame, market, full, cuts)
    assert broken == [], f"features that look ahead: {broken}"


def test_a_feature_that_peeks_one_bar_ahead_is_caught(market: MarketData, full: pd.DataFrame) -> None:
    def with_leak(m: MarketData) -> pd.DataFrame:
        frame = build_features(m, SPEC).frame
        return frame.assign(next_return=pd.Series(Context(m).log_return, index=m.index).shift(-1))

    leaky_full = with_leak(market)
    broken = causality_breaks(with_leak, market, leaky_full, _cuts(market.index, 5, seed=2))
    assert [b.split(" at ")[0] for b in broken] == ["next_return"]


def test_serving_row_equals_the_batch_row(market: MarketData, full: pd.DataFrame) -> None:
    table = build_features(market, SPEC)
    warm = max(table.warmup.values())
    ends = _cuts(market.index[warm + 1 :], 20, seed=3)
    for t in ends:
        history = market.until(t)
        start = recent_start(history, SPEC, table.warmup)
        assert history.index.get_loc(start) <= len(history.index) - 1 - warm  # the window covers the warm-up
        served = last_row(history.tail_from(start), SPEC)
        batch = full.loc[t]
        assert np.array_equal(served.to_numpy(), batch.to_numpy(), equal_nan=True), f"differs at {t}"
        assert list(served.index) == list(full.columns)


def test_no_nan_after_the_warmup(market: MarketData) -> None:
    table = build_features(market, SPEC)
    for column, rows in table.warmup.items():
        values = table.frame[column].to_numpy()
        assert not np.isnan(values[rows:]).any(), f"{column}: NaN after its warm-up of {rows} rows"
        if rows:
            assert np.isnan(values[rows - 1]), f"{column}: warm-up of {rows} rows is longer than needed"
