"""Shared by the margin tests: a book builder and an independent Black-76 (QuantLib) for the hand references."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import QuantLib as ql

from forecaster.portfolio import Book

SPOT = 60_000.0


def make_book(positions: list[dict]) -> Book:
    """A book from position dicts: ``kind`` (option/perp/...), ``w``, and for options ``call``, ``k``, ``days``, ``iv``.

    Every position defaults to underlying BTC at spot 60,000.
    """
    n = len(positions)
    get = lambda key, default: np.array([p.get(key, default) for p in positions])  # noqa: E731
    kind = get("kind", "option").astype(str)
    option = kind == "option"
    return Book(
        as_of=pd.Timestamp("2026-01-01T00:00:00Z"),
        ids=tuple(f"p{i}" for i in range(n)),
        instrument=kind,
        underlying=get("underlying", "BTC").astype(str),
        weight=get("w", 0.0).astype(float),
        is_call=get("call", True).astype(bool),
        strike=np.where(option, get("k", np.nan).astype(float), np.nan),
        tau=np.where(option, get("days", np.nan).astype(float) / 365, np.nan),
        iv=np.where(option, get("iv", np.nan).astype(float), np.nan),
        spot=get("spot", SPOT).astype(float),
    )


def black76(forward: float, strike: float, tau: float, sigma: float, call: bool) -> float:
    """QuantLib's Black formula (undiscounted); intrinsic value at tau = 0."""
    if tau <= 0:
        return max(forward - strike, 0.0) if call else max(strike - forward, 0.0)
    kind = ql.Option.Call if call else ql.Option.Put
    return ql.blackFormula(kind, strike, forward, sigma * math.sqrt(tau))


@pytest.fixture
def book_of() -> Callable[[list[dict]], Book]:
    return make_book


@pytest.fixture
def black() -> Callable[[float, float, float, float, bool], float]:
    return black76
