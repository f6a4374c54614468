"""Shared fixtures of the portfolio tests: vol sources, a mixed portfolio on two underlyings, its book."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from forecaster.market.portfolio_file import Limits, Portfolio, Position
from forecaster.portfolio import Book, book_from_portfolio

AS_OF = pd.Timestamp("2025-01-15T00:00:00Z")
SPOTS = {"BTC": 60_000.0, "ETH": 3_000.0}


@dataclass(frozen=True)
class FlatVol:
    """One implied vol for every strike and expiry (an IV-index level)."""

    level: float

    def iv_strike(self, strike: np.ndarray, tau: np.ndarray, forward: np.ndarray) -> np.ndarray:
        return np.full(np.broadcast(strike, tau, forward).shape, self.level)


@dataclass(frozen=True)
class SmileVol:
    """A skewed smile whose level rises toward short expiries: iv = atm + skew k + curve k² + term / √(365 τ)."""

    atm: float
    skew: float = -0.1
    curve: float = 0.2
    term: float = 0.05

    def iv_strike(self, strike: np.ndarray, tau: np.ndarray, forward: np.ndarray) -> np.ndarray:
        k = np.log(np.asarray(strike) / np.asarray(forward))
        return self.atm + self.skew * k + self.curve * k * k + self.term / np.sqrt(365.0 * np.asarray(tau))


def option(
    pid: str, underlying: str, kind: str, strike: float, days: float, quantity: float, mult: float = 1.0
) -> Position:
    """An option position expiring ``days`` after :data:`AS_OF`."""
    return Position(pid, "option", underlying, quantity, mult, kind, strike, AS_OF + pd.Timedelta(days=days))


def mixed_positions() -> tuple[Position, ...]:
    """Options on BTC and ETH over every expiry bucket, plus a perp, spot and a future."""
    return (
        option("btc-c-1d", "BTC", "call", 61_000, 0.5, -3),
        option("btc-p-1d", "BTC", "put", 59_000, 1.0, 2),  # exactly 1 day: in 0-1d
        option("btc-c-7d", "BTC", "call", 65_000, 7.0, 5, 0.1),  # exactly 7 days: in 1-7d
        option("btc-p-20d", "BTC", "put", 50_000, 20.0, -4),
        option("btc-c-90d", "BTC", "call", 80_000, 90.0, 1.5),  # exactly 90 days: in 30-90d
        option("btc-p-200d", "BTC", "put", 60_000, 200.0, -1),
        option("eth-c-3d", "ETH", "call", 3_100, 3.0, 10),
        option("eth-p-30d", "ETH", "put", 2_800, 30.0, -20),  # exactly 30 days: in 7-30d
        option("eth-c-45d", "ETH", "call", 3_500, 45.0, 7, 0.5),
        Position("btc-perp", "perp", "BTC", 2.5),
        Position("eth-spot", "spot", "ETH", -12.0),
        Position("btc-fut", "future", "BTC", -1.0, 1.0, None, None, AS_OF + pd.Timedelta(days=160)),
    )


@pytest.fixture
def flat_vol() -> type[FlatVol]:
    """The flat vol source class: ``flat_vol(0.5)``."""
    return FlatVol


@pytest.fixture
def make_option():
    """:func:`option`: an option position expiring a number of days after :data:`AS_OF`."""
    return option


@pytest.fixture
def positions() -> tuple[Position, ...]:
    return mixed_positions()


@pytest.fixture
def as_of() -> pd.Timestamp:
    return AS_OF


@pytest.fixture
def spots() -> dict[str, float]:
    return dict(SPOTS)


@pytest.fixture
def vols() -> dict[str, SmileVol]:
    return {"BTC": SmileVol(0.55), "ETH": SmileVol(0.7, skew=-0.2)}


@pytest.fixture
def portfolio() -> Portfolio:
    return Portfolio(mixed_positions(), collateral=150_000.0, limits=Limits(max_abs_delta=50.0))


@pytest.fixture
def mixed_book(portfolio: Portfolio, spots: dict[str, float], vols: dict[str, SmileVol]) -> Book:
    return book_from_portfolio(portfolio, as_of=AS_OF, spot=spots, vols=vols)
