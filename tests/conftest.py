"""Fixtures shared across test packages: a small simulated market as ModelData (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest

SMALL_HORIZONS = (60, 240)


@pytest.fixture(scope="session")
def small_data():
    """21 simulated days of 1-minute bars (trades, IV index, chain, truth); windows 60, 240, 1440 bars,
    horizons 60 and 240. Longest warm-up: 2,879 bars (2 days)."""
    from features.pipeline import FeatureSpec
    from forecaster.market.simulator import SimConfig
    from training.data import model_data, simulated_market

    spec = FeatureSpec(
        groups=("realized", "implied", "volume", "flow", "calendar"),
        windows=(60, 240, 1440),
        params={"iv_percentile_days": 1, "chain_tenors_days": [7, 30]},
    )
    market, truth = simulated_market(SimConfig(days=21, seed=5))
    return model_data(market, spec, SMALL_HORIZONS, truth=truth)


@pytest.fixture(scope="session")
def small_split(small_data):
    """(train, test) origins every 15 bars after the longest warm-up: the first 70% for training, purged by the
    longest horizon (every training target ends before the test starts); the rest, with a known target, to test."""
    data = small_data
    warm = max(data.info["warmup"].values())
    h = max(data.horizons)
    n = len(data)
    cut = warm + int(0.7 * (n - warm))
    return np.arange(warm, cut - h, 15), np.arange(cut, n - h, 15)
