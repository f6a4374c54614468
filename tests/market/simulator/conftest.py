"""Three 60-day simulated markets (fixed seeds) shared by the simulator tests (about 20 s and 2 GB in all)."""

from __future__ import annotations

import pytest

from forecaster.market.simulator import SimConfig, SimulatedMarket, simulate

STYLIZED_DAYS = 60
STYLIZED_SEEDS = (11, 12, 13)


@pytest.fixture(scope="session")
def markets60() -> list[SimulatedMarket]:
    return [simulate(SimConfig(days=STYLIZED_DAYS, seed=s), keep_trades=True) for s in STYLIZED_SEEDS]


@pytest.fixture(scope="session")
def market60(markets60: list[SimulatedMarket]) -> SimulatedMarket:
    return markets60[0]
