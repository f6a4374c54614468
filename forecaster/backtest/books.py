"""Books of a backtest: the options it trades and when, as arrays over the backtest's bars.

A book is a set of option *legs*. Leg k is traded at the close of bar ``start_bar[k]`` at the mid price (its
premium is cash; the option is then marked to market every bar), and settles in cash at its intrinsic value at
the close of bar ``expiry_bar[k]`` (the first bar ending at or after its expiry time); after that it is gone. A
leg whose expiry lies beyond the last bar is still open at the end, marked to market. ``weight`` is signed, in
units of the underlying (short < 0).

Three sources (spec ``backtest.book``):

- :func:`short_straddle_book` (the default): every day at ``hour_utc`` it sells ``size_units`` at-the-money
  straddles (a call and a put at the strike nearest the spot on the ``strike_step`` grid) expiring
  ``tenor_days`` later, and holds them to expiry: a short-gamma, short-vega book that rolls daily.
- :func:`market_maker_book`: a randomized dealer inventory: client trades arrive at random bars (Poisson,
  ``trades_per_day``), each a call or put at a random moneyness and tenor, the dealer taking the other side
  (short with probability ``p_short``: clients buy options more than they sell them), of a log-normal size.
- :func:`portfolio_book`: the options of a portfolio file, all traded at the first bar; its linear positions
  (perpetuals, spot, futures) are returned separately as the hedge's starting position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.errors import ConfigError, UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BOOK_KINDS = ("short_straddle", "market_maker", "file")


@dataclass(frozen=True)
class OptionLegs:
    """The legs of a book, arrays of shape (K,) (module docstring)."""

    strike: FloatArray
    is_call: BoolArray
    weight: FloatArray
    start_bar: IntArray
    expiry_bar: IntArray
    expiry: pd.DatetimeIndex  # the contractual expiry time of each leg
    label: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        k = self.strike.size
        for name in ("is_call", "weight", "start_bar", "expiry_bar"):
            if getattr(self, name).shape != (k,):
                raise ValueError(f"OptionLegs.{name} has shape {getattr(self, name).shape}; expected ({k},)")
        if len(self.expiry) != k:
            raise ValueError(f"OptionLegs.expiry has {len(self.expiry)} entries; expected {k}")
        if k and (np.any(~(self.strike > 0)) or np.any(self.expiry_bar <= self.start_bar)):
            raise ValueError("OptionLegs: every strike must be > 0 and every leg must expire after its start bar")

    def __len__(self) -> int:
        return int(self.strike.size)

    def frame(self) -> pd.DataFrame:
        """One row per leg, for reports."""
        return pd.DataFrame(
            {
                "label": list(self.label) if self.label else [""] * len(self),
                "strike": self.strike,
                "type": np.where(self.is_call, "call", "put"),
                "weight": self.weight,
                "start_bar": self.start_bar,
                "expiry_bar": self.expiry_bar,
                "expiry": self.expiry,
            }
        )


def empty_legs() -> OptionLegs:
    """No options (a book of linear positions only); expiries are UTC like every other book's."""
    return OptionLegs(
        np.zeros(0), np.zeros(0, bool), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
        pd.DatetimeIndex([], tz="UTC"),
    )  # fmt: skip


def _expiry_bars(index: pd.DatetimeIndex, expiry: pd.DatetimeIndex) -> IntArray:
    """The first bar ending at or after each expiry; len(index) when beyond the last bar (still open at the end)."""
    return np.asarray(index.searchsorted(expiry, side="left"), dtype=np.int64)


def _round_strike(spot: FloatArray, step: float | None) -> FloatArray:
    if not step:
        return spot.copy()
    return np.maximum(np.round(spot / step) * step, step)


def short_straddle_book(
    index: pd.DatetimeIndex,
    close: FloatArray,
    *,
    tenor_days: float = 7.0,
    size_units: float = 1.0,
    hour_utc: int = 8,
    strike_step: float | None = None,
) -> OptionLegs:
    """Sell ``size_units`` ATM straddles every day at ``hour_utc`` (the bar ending on the hour), expiring
    ``tenor_days`` later at the same time; hold them to expiry."""
    _positive("backtest.book.tenor_days", tenor_days)
    _positive("backtest.book.size_units", size_units)
    if not (isinstance(hour_utc, int) and 0 <= hour_utc <= 23):
        raise ConfigError("<spec>", "backtest.book.hour_utc", f"must be an hour 0..23; got {hour_utc!r}")
    on_hour = (index.hour == hour_utc) & (index.minute == 0) & (index.second == 0)
    sale = np.flatnonzero(on_hour)
    sale = sale[sale < len(index) - 1]  # a sale on the last bar would never be marked
    if sale.size == 0:
        raise UsageError(
            f"the short-straddle book sells at {hour_utc:02d}:00 UTC every day but no bar ends then in "
            f"{index[0]} .. {index[-1]}; backtest a longer market or set backtest.book.hour_utc"
        )
    strike = _round_strike(np.asarray(close, dtype=float)[sale], strike_step)
    expiry = index[sale] + pd.Timedelta(days=tenor_days)
    n = sale.size
    legs = OptionLegs(
        strike=np.repeat(strike, 2),
        is_call=np.tile([True, False], n),
        weight=np.full(2 * n, -float(size_units)),
        start_bar=np.repeat(sale, 2).astype(np.int64),
        expiry_bar=np.repeat(_expiry_bars(index, expiry), 2),
        expiry=pd.DatetimeIndex(np.repeat(expiry.to_numpy(), 2), tz="UTC"),
        label=tuple(
            f"{ts:%Y-%m-%d} {kind} {k:.0f}" for ts, k in zip(index[sale], strike, strict=True) for kind in "CP"
        ),
    )
    return legs


def market_maker_book(
    index: pd.DatetimeIndex,
    close: FloatArray,
    *,
    seed: int = 0,
    trades_per_day: float = 6.0,
    tenors_days: tuple[float, ...] = (1.0, 7.0, 30.0),
    moneyness_stdev: float = 0.05,
    p_short: float = 0.6,
    size_median_units: float = 1.0,
    size_log_stdev: float = 0.8,
    strike_step: float | None = None,
) -> OptionLegs:
    """A randomized dealer inventory (module docstring), reproducible from ``seed``."""
    _positive("backtest.book.trades_per_day", trades_per_day)
    _positive("backtest.book.size_median_units", size_median_units)
    if not 0.0 <= p_short <= 1.0:
        raise ConfigError("<spec>", "backtest.book.p_short", f"must be a probability in [0, 1]; got {p_short!r}")
    rng = np.random.default_rng(seed)
    bar = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=1)
    days = len(index) * (bar / pd.Timedelta(days=1))
    n = int(rng.poisson(trades_per_day * days))
    start = np.sort(rng.integers(0, max(len(index) - 1, 1), size=n)).astype(np.int64)
    tenor = np.asarray(tenors_days, dtype=float)[rng.integers(0, len(tenors_days), size=n)]
    spot = np.asarray(close, dtype=float)[start]
    strike = _round_strike(spot * np.exp(rng.normal(0.0, moneyness_stdev, size=n) * np.sqrt(tenor / 7.0)), strike_step)
    is_call = strike >= spot  # out-of-the-money options: calls above the spot, puts below
    sign = np.where(rng.random(n) < p_short, -1.0, 1.0)
    size = size_median_units * np.exp(rng.normal(0.0, size_log_stdev, size=n))
    expiry = index[start] + pd.to_timedelta(tenor, unit="D")
    return OptionLegs(
        strike=strike,
        is_call=is_call,
        weight=sign * size,
        start_bar=start,
        expiry_bar=np.maximum(_expiry_bars(index, expiry), start + 1),
        expiry=expiry,
        label=tuple(f"mm{i}" for i in range(n)),
    )


def portfolio_book(portfolio: Any, index: pd.DatetimeIndex, underlying: str | None = None) -> tuple[OptionLegs, float]:
    """The options of a loaded portfolio (:func:`forecaster.market.load_portfolio`), traded at the first bar, and
    the summed weight of its linear positions (the hedge's starting position, units). One underlying only."""
    positions = list(portfolio.positions)
    names = sorted({p.underlying for p in positions})
    if underlying is None and len(names) > 1:
        raise UsageError(
            f"the portfolio holds {len(names)} underlyings ({', '.join(names)}); the backtest hedges one: keep one"
        )
    keep = [p for p in positions if underlying is None or p.underlying == underlying]
    options = [p for p in keep if p.instrument == "option"]
    linear = float(sum(p.quantity * p.multiplier for p in keep if p.instrument != "option"))
    if not options:
        return empty_legs(), linear
    expiry = pd.DatetimeIndex([p.expiry for p in options])
    late = [p.id for p, e in zip(options, expiry, strict=True) if e <= index[0]]
    if late:
        raise UsageError(f"portfolio options {late[:5]} expire at or before the backtest's first bar {index[0]}")
    return (
        OptionLegs(
            strike=np.array([p.strike for p in options], dtype=float),
            is_call=np.array([p.option_type == "call" for p in options]),
            weight=np.array([p.quantity * p.multiplier for p in options], dtype=float),
            start_bar=np.zeros(len(options), dtype=np.int64),
            expiry_bar=np.maximum(_expiry_bars(index, expiry), 1),
            expiry=expiry,
            label=tuple(p.id for p in options),
        ),
        linear,
    )


def make_book(settings: Mapping[str, Any], index: pd.DatetimeIndex, close: FloatArray, *, seed: int) -> OptionLegs:
    """The book of the spec's ``backtest.book`` section (``kind`` plus that generator's parameters)."""
    params = dict(settings)
    kind = params.pop("kind", "short_straddle")
    if kind == "short_straddle":
        return short_straddle_book(index, close, **_known(params, short_straddle_book, kind))
    if kind == "market_maker":
        return market_maker_book(index, close, seed=seed, **_known(params, market_maker_book, kind))
    raise ConfigError(
        "<spec>", "backtest.book.kind", f"unknown book {kind!r}; known: short_straddle, market_maker (or --portfolio)"
    )


def _known(params: dict[str, Any], func: Any, kind: str) -> dict[str, Any]:
    import inspect

    allowed = [p for p in inspect.signature(func).parameters if p not in ("index", "close", "seed")]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ConfigError(
            "<spec>", f"backtest.book.{unknown[0]}", f"not a parameter of the {kind} book; it takes {allowed}"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def _positive(key: str, value: Any) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value) and value > 0):
        raise ConfigError("<spec>", key, f"must be a number > 0; got {value!r}")
