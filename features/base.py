"""What every feature group shares: the market inputs, the resolved spec, and the group interface.

A **group** (realized, implied, volume, flow, calendar) turns the inputs into columns indexed like the bars.
Rules every group follows, so the pipeline stays strictly causal and serving reproduces batch exactly:

- a row at time t uses inputs with timestamp ≤ t only (bars are labelled by their end);
- windows are counted in bars and summed with :func:`features.windows.window_sum` (anchored, exact), or are
  row-local (shifts, per-bar formulas); no exponential smoothing or running state with infinite memory;
- ``warmup`` gives, per column, how many leading rows are NaN by construction (documented in the README).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.windows import anchor_for, anchor_ids

FloatArray = npt.NDArray[np.float64]
INPUTS = ("bars", "trades", "iv", "chain")


@dataclass
class MarketData:
    """The validated inputs of one market at one base frequency.

    ``bars``: OHLCV indexed by the bar's end time (UTC), strictly increasing. ``trades``: optional, Tardis
    columns (``timestamp``, ``side``, ``price``, ``amount``) indexed or sorted by time. ``iv``: optional IV
    index (decimal), aligned or not. ``chain``: optional option-chain snapshots.
    """

    bars: pd.DataFrame
    freq: pd.Timedelta
    annualization_days: float = 365.0
    trades: pd.DataFrame | None = None
    iv: pd.Series | None = None
    chain: pd.DataFrame | None = None

    def has(self, name: str) -> bool:
        """Whether the input ``name`` is present; ``"a|b"``: whether any of them is."""
        return any(one == "bars" or getattr(self, one) is not None for one in name.split("|"))

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.bars.index

    @property
    def bar_years(self) -> float:
        """One bar in years at the market's annualization (DESIGN section 2)."""
        return self.freq / pd.Timedelta(days=1) / self.annualization_days

    def tail_from(self, start: pd.Timestamp) -> MarketData:
        """The same market from the bar ending at ``start`` on: trades from that bar's opening (exclusive); the
        IV index and chain are kept whole, since an as-of value may come from before ``start``."""
        trades = None if self.trades is None else _after(self.trades, start - self.freq)
        return MarketData(self.bars.loc[start:], self.freq, self.annualization_days, trades, self.iv, self.chain)

    def until(self, end: pd.Timestamp) -> MarketData:
        """The same market truncated after ``end`` (every input)."""
        cut = {
            "trades": None if self.trades is None else _until(self.trades, end),
            "iv": None if self.iv is None else self.iv.loc[:end],
            "chain": None if self.chain is None else self.chain.loc[:end],
        }
        return MarketData(self.bars.loc[:end], self.freq, self.annualization_days, **cut)


@dataclass
class Context:
    """Per-run helpers shared by the groups: log returns and the anchor blocks of each window (cached)."""

    data: MarketData
    _blocks: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    def blocks(self, window: int) -> npt.NDArray[np.int64]:
        anchor = anchor_for(window, self.data.freq)
        if anchor not in self._blocks:
            self._blocks[anchor] = anchor_ids(self.data.index, anchor)
        return self._blocks[anchor]

    @cached_property
    def log_return(self) -> FloatArray:
        """ln(close_t / close_{t-1}); NaN on the first bar. Shape (n,)."""
        close = self.data.bars["close"].to_numpy(dtype=float)
        out = np.full(close.size, np.nan)
        out[1:] = np.log(close[1:] / close[:-1])
        return out


class FeatureGroup(Protocol):
    """One group of features. ``needs``: inputs from :data:`INPUTS` it cannot work without; an entry such as
    ``"iv|chain"`` is met by any one of them."""

    name: str
    needs: tuple[str, ...]

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        """The group's column names, in order, each with its warm-up (leading NaN rows by construction).

        Empty when no column applies (e.g. hour of day on daily bars)."""
        ...

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        """The columns of :meth:`columns`, indexed like the bars."""
        ...


def _after(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Trades strictly after ``start``, timed as the aggregation times them (epoch µs, rounded up)."""
    from features.flowagg import trade_times_us

    return frame[trade_times_us(frame) > _epoch_us(start)]


def _until(frame: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Trades at or before ``end`` (epoch µs, as the aggregation times them)."""
    from features.flowagg import trade_times_us

    return frame[trade_times_us(frame) <= _epoch_us(end)]


def _epoch_us(stamp: pd.Timestamp) -> int:
    return pd.Timestamp(stamp).value // 1_000  # .value is always in ns
