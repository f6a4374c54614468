"""OHLCV bars: yfinance/arch-style daily files and ccxt OHLCV (DESIGN section 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.market.validation import (
    NON_NEGATIVE,
    POSITIVE,
    TIMESTAMP,
    Column,
    Loading,
    LoadResult,
    Rule,
    Schema,
    column_rules,
    indexed_by_time,
    start_loading,
    timestamp_order_rules,
)

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")

BARS = Schema(
    "bars",
    (
        TIMESTAMP,
        *(Column(name, "number", bounds=POSITIVE) for name in PRICE_COLUMNS),
        Column("volume", "number", bounds=NON_NEGATIVE),
        Column(
            "adj_close",
            "number",
            required=False,
            aliases=("adj close", "adjclose", "adjusted close", "adjusted_close"),
            bounds=POSITIVE,
        ),
    ),
)

_FIX_OHLC = "correct the bar, or run with --repair to drop it"
OHLC_RULES = (
    Rule(
        "high must be ≥ max(open, close)",
        "high",
        lambda data, raw: data["high"].to_numpy() < np.maximum(data["open"], data["close"]).to_numpy(),
        fix=_FIX_OHLC,
    ),
    Rule(
        "low must be ≤ min(open, close)",
        "low",
        lambda data, raw: data["low"].to_numpy() > np.minimum(data["open"], data["close"]).to_numpy(),
        fix=_FIX_OHLC,
    ),
)


def load_bars(path: str | Path, *, repair: bool = False) -> LoadResult[pd.DataFrame]:
    """Load OHLCV bars and check them against the bars contract.

    Columns (case-insensitive): ``timestamp`` (or ``date``, ``datetime``, ``time``), ``open``, ``high``,
    ``low``, ``close``, ``volume``; optional ``adj close`` (``adj_close``, ``adjclose``), which scales open,
    high, low and close by ``adj close / close`` (dividends and splits) and is then dropped. Other columns are
    ignored.

    Rules: timestamps increasing and unique; prices finite and > 0; high ≥ max(open, close) ≥ min(open, close)
    ≥ low; volume finite and ≥ 0.

    Parameters
    ----------
    path
        CSV, CSV.gz or Parquet file; never modified.
    repair
        Drop rows that break a value rule, sort by time, keep the last row of a repeated timestamp; every
        change is reported in :attr:`LoadResult.repairs`.

    Returns
    -------
    LoadResult
        ``data``: float64 columns ``open, high, low, close, volume`` indexed by a UTC ``timestamp``
        (``datetime64[us, UTC]``).

    Raises
    ------
    DataValidationError
        The first row breaking a rule (or one ``repair`` cannot fix), with file, row, column and value.
    """
    loading = start_loading(path, BARS)
    rules = [*column_rules(loading, BARS), *OHLC_RULES, *timestamp_order_rules(unique=True)]
    loading.check(rules, repair=repair)
    if "adj_close" in loading.data.columns:
        loading.data = _adjust_for_adj_close(loading)
    return loading.result(indexed_by_time(loading.data)[list(BAR_COLUMNS)])


def _adjust_for_adj_close(loading: Loading) -> pd.DataFrame:
    data = loading.data
    factor = data["adj_close"] / data["close"]  # (n,)
    loading.note(
        log,
        f"open/high/low/close scaled by '{loading.label('adj_close')}' / close "
        f"(factor {factor.min():.6g} to {factor.max():.6g})",
    )
    return data.assign(**{name: data[name] * factor for name in PRICE_COLUMNS})
