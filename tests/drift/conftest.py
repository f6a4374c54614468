"""Shared fixtures of the drift tests: one-day forecasts (with and without quantiles) and books."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.drift import HorizonForecast
from forecaster.portfolio import Book

AS_OF = pd.Timestamp("2025-01-15T00:00:00Z")
MINUTE = 1 / 525_600  # one 1-minute bar of a 24/7 market, in years
DAY = 1440  # bars


def forecast_with_quantiles() -> HorizonForecast:
    """One day ahead, 60%-vol-like (var 0.001 ≈ 0.6² / 365), skewed IV change, spot-vol correlation -0.4."""
    return HorizonForecast(
        horizon=DAY,
        bar_years=MINUTE,
        var=0.001,
        rv_quantiles={0.05: 0.0004, 0.25: 0.0007, 0.5: 0.0009, 0.75: 0.0012, 0.95: 0.002},
        div_quantiles={0.05: -0.04, 0.25: -0.012, 0.5: 0.0, 0.75: 0.015, 0.95: 0.05},
        spot_vol_corr=-0.4,
    )


def forecast_without_quantiles() -> HorizonForecast:
    """One day ahead: log-normal rv (mean 0.001, log-stdev 0.5), normal IV change (stdev 3 points), ρ = -0.4."""
    return HorizonForecast(
        horizon=DAY, bar_years=MINUTE, var=0.001, rv_log_stdev=0.5, div_stdev=0.03, spot_vol_corr=-0.4
    )


def random_options(n: int, seed: int) -> Book:
    """``n`` random European options on BTC and ETH: long and short, calls and puts, 2 to 120 days."""
    rng = np.random.default_rng(seed)
    underlying = np.where(rng.random(n) < 0.6, "BTC", "ETH")
    spot = np.where(underlying == "BTC", 60_000.0, 3_000.0)
    days = rng.uniform(2.0, 120.0, n)
    return Book(
        as_of=AS_OF,
        ids=tuple(f"opt{i}" for i in range(n)),
        instrument=np.full(n, "option"),
        underlying=underlying,
        weight=rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 5.0, n) * np.where(underlying == "BTC", 1.0, 20.0),
        is_call=rng.random(n) < 0.5,
        strike=spot * np.exp(rng.uniform(-0.3, 0.3, n)),
        tau=days / 365.0,
        iv=rng.uniform(0.4, 0.9, n),
        spot=spot,
        expiry=tuple(AS_OF + pd.Timedelta(days=d) for d in days),
    )


def mixed_book() -> Book:
    """Options on two underlyings, two of them expiring within a day (one in the money), a perp, spot, a future."""
    ids = ("c-6h", "p-20h", "c-3d", "p-10d", "c-40d", "eth-p-5d", "eth-c-60d", "perp", "eth-spot", "future")
    instrument = np.array(["option"] * 7 + ["perp", "spot", "future"])
    underlying = np.array(["BTC"] * 5 + ["ETH"] * 2 + ["BTC", "ETH", "BTC"])
    days = np.array([0.25, 20 / 24, 3.0, 10.0, 40.0, 5.0, 60.0, np.nan, np.nan, 100.0])
    linear = instrument != "option"
    return Book(
        as_of=AS_OF,
        ids=ids,
        instrument=instrument,
        underlying=underlying,
        weight=np.array([-4.0, 3.0, 2.0, -5.0, 1.5, 30.0, -25.0, 2.0, -40.0, -1.0]),
        is_call=np.array([True, False, True, False, True, False, True, False, False, False]),
        strike=np.where(linear, np.nan, [58_000, 57_000, 62_000, 55_000, 70_000, 2_900, 3_400, 0, 0, 0]),
        tau=days / 365.0,
        iv=np.where(linear, np.nan, [0.7, 0.65, 0.6, 0.62, 0.55, 0.8, 0.72, 0, 0, 0]),
        spot=np.where(underlying == "BTC", 60_000.0, 3_000.0),
    )


@pytest.fixture
def quantile_forecast() -> HorizonForecast:
    return forecast_with_quantiles()


@pytest.fixture
def plain_forecast() -> HorizonForecast:
    return forecast_without_quantiles()


@pytest.fixture(params=["with_quantiles", "without_quantiles"])
def forecast(request: pytest.FixtureRequest) -> HorizonForecast:
    return forecast_with_quantiles() if request.param == "with_quantiles" else forecast_without_quantiles()


@pytest.fixture(scope="session")
def fifty_options() -> Book:
    return random_options(50, seed=7)


@pytest.fixture
def book() -> Book:
    return mixed_book()


@pytest.fixture(scope="session")
def forecasts() -> dict[str, HorizonForecast]:
    return {"with_quantiles": forecast_with_quantiles(), "without_quantiles": forecast_without_quantiles()}
