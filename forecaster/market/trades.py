"""Trades in the Tardis ``trades`` format (DESIGN section 3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecaster.market.validation import (
    POSITIVE,
    TIMESTAMP,
    Column,
    LoadResult,
    Schema,
    column_rules,
    indexed_by_time,
    start_loading,
    timestamp_order_rules,
)

SIDES = {"buy": "buy", "sell": "sell", "unknown": "unknown"}

TRADES = Schema(
    "trades",
    (
        Column("exchange", "category"),
        Column("symbol", "category"),
        TIMESTAMP,
        Column("local_timestamp", "timestamp"),
        Column("id", "text", empty_ok=True),
        Column("side", "category", choices=SIDES),
        Column("price", "number", bounds=POSITIVE),
        Column("amount", "number", bounds=POSITIVE),
    ),
)
TRADE_COLUMNS = tuple(c.name for c in TRADES.columns if c.name != "timestamp")


def load_trades(path: str | Path, *, repair: bool = False) -> LoadResult[pd.DataFrame]:
    """Load trades (Tardis ``trades``: exchange, symbol, timestamp, local_timestamp, id, side, price, amount).

    Checks are vectorized, so files of millions of rows load in seconds; ``exchange``, ``symbol`` and ``side``
    are categoricals to keep memory small. Trades may share a timestamp but must be sorted by it.

    Parameters
    ----------
    path
        CSV, CSV.gz or Parquet file; never modified. Epoch timestamps (Tardis: µs) or ISO strings.
    repair
        Drop rows with a bad side, price or amount and sort by timestamp (stable); every change is reported
        in :attr:`LoadResult.repairs`.

    Returns
    -------
    LoadResult
        ``data``: indexed by the UTC exchange ``timestamp``; ``local_timestamp`` (UTC, time of receipt),
        ``id`` (as read), ``side`` (categorical buy/sell/unknown), ``price`` and ``amount`` (float64).

    Raises
    ------
    DataValidationError
        The first row breaking a rule: side in buy/sell/unknown (case-insensitive), price and amount finite
        and > 0, timestamps non-decreasing.
    """
    loading = start_loading(path, TRADES)
    loading.check([*column_rules(loading, TRADES), *timestamp_order_rules(unique=False)], repair=repair)
    return loading.result(indexed_by_time(loading.data)[list(TRADE_COLUMNS)])
