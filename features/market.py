"""Building a :class:`MarketData` from loaded frames: the bar length, and bars labelled by their end.

The pipeline's causality rule is "a row at time t uses data with timestamp ≤ t", which holds only when a bar's
timestamp is its end. Simulated bars are labelled so; ccxt/exchange OHLCV files label a bar by its open. With
``bar_label="open"`` every bar timestamp moves forward by one bar (the bar opened at 12:00 with 1-minute bars
becomes the row 12:01), before anything else sees it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.base import MarketData
from forecaster.errors import UsageError

BAR_LABELS = ("end", "open")


def infer_freq(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The bar length: the most common spacing of the timestamps (gaps such as weekends do not change it)."""
    if len(index) < 2:
        raise UsageError("at least 2 bars are needed to tell the bar length; give the frequency (--freq)")
    steps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(steps, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def market_data(
    bars: pd.DataFrame,
    *,
    freq: str | pd.Timedelta | None = None,
    annualization_days: float = 365.0,
    bar_label: str = "end",
    trades: pd.DataFrame | None = None,
    iv: pd.Series | None = None,
    chain: pd.DataFrame | None = None,
) -> MarketData:
    """Assemble the pipeline's input from loaded frames (``forecaster.market`` loaders' ``.data``).

    Parameters
    ----------
    freq
        Bar length (``1min``, ``1D``); default: inferred from the bars' most common spacing.
    bar_label
        ``end`` (the default: the simulator, daily files) or ``open`` (ccxt OHLCV): open-labelled bars are moved to
        their end.
    """
    if bar_label not in BAR_LABELS:
        raise UsageError(f"bar_label must be one of {', '.join(BAR_LABELS)}; got {bar_label!r}")
    length = infer_freq(bars.index) if freq is None else pd.Timedelta(freq)
    if length <= pd.Timedelta(0):
        raise UsageError(f"the bar length must be positive; got {freq!r}")
    if bar_label == "open":
        bars = bars.set_axis(bars.index + length)
    return MarketData(bars, length, float(annualization_days), trades, iv, chain)
