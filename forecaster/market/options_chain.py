"""Option-chain snapshots in the Tardis ``options_chain`` format (DESIGN section 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.market.units import iv_bounds, iv_scale
from forecaster.market.validation import (
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    TIMESTAMP,
    Bounds,
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

OPTION_TYPES = {"call": "call", "c": "call", "put": "put", "p": "put"}
IV_COLUMNS = ("bid_iv", "ask_iv", "mark_iv")
# Deribit writes 0 for a missing quote; a price or IV of 0 on the bid or ask side means "no quote".
NO_QUOTE_IF_ZERO = ("bid_price", "bid_iv", "ask_price", "ask_iv")


def _optional(name: str, bounds: Bounds | None = NON_NEGATIVE) -> Column:
    return Column(name, "number", required=False, bounds=bounds, empty_ok=True)


OPTIONS_CHAIN = Schema(
    "option chain",
    (
        Column("exchange", "category"),
        Column("symbol", "category"),
        TIMESTAMP,
        Column("local_timestamp", "timestamp"),
        Column("type", "category", choices=OPTION_TYPES),
        Column("strike_price", "number", bounds=POSITIVE),
        Column("expiration", "timestamp"),
        _optional("open_interest"),
        _optional("last_price"),
        _optional("bid_price"),
        _optional("bid_amount"),
        _optional("bid_iv", bounds=None),  # bounds in the file's IV units, set by the loader
        _optional("ask_price"),
        _optional("ask_amount"),
        _optional("ask_iv", bounds=None),
        Column("mark_price", "number", bounds=NON_NEGATIVE),
        Column("mark_iv", "number"),
        Column("underlying_index", "category", required=False, empty_ok=True),
        Column("underlying_price", "number", bounds=POSITIVE),
        *(_optional(greek, bounds=FINITE) for greek in ("delta", "gamma", "vega", "theta", "rho")),
    ),
)
CHAIN_COLUMNS = tuple(c.name for c in OPTIONS_CHAIN.columns if c.name != "timestamp")

EXPIRY_RULE = Rule(
    "an option must not have expired at snapshot time (expiration must be after timestamp)",
    "expiration",
    lambda data, raw: pd.DatetimeIndex(data["expiration"]).asi8 <= pd.DatetimeIndex(data["timestamp"]).asi8,
    fix="remove the expired options, or run with --repair to drop them",
)


def load_options_chain(path: str | Path, iv_units: str = "pct", *, repair: bool = False) -> LoadResult[pd.DataFrame]:
    """Load option-chain snapshots (Tardis ``options_chain`` columns; many rows share a snapshot timestamp).

    Implied vols (``bid_iv``, ``ask_iv``, ``mark_iv``) are converted to decimal. Prices (``mark_price``,
    ``bid_price``, ``ask_price``, ``last_price``) stay in the file's units: Deribit quotes premiums in the
    underlying coin (BTC), not in USD; multiply by ``underlying_price`` for quote currency. A bid or ask price
    or IV of 0, or an empty cell, means "no quote" and becomes NaN. Optional columns absent from the file
    (open interest, quotes, Greeks, ``underlying_index``) are added empty.

    Parameters
    ----------
    path
        CSV, CSV.gz or Parquet file; never modified. ``timestamp``, ``local_timestamp`` and ``expiration`` as
        epoch numbers (Tardis: µs) or ISO strings.
    iv_units
        ``pct`` (Tardis, the default), ``dec`` or ``auto`` (percent when the median ``mark_iv`` exceeds 3).
    repair
        Drop rows that break a value rule or have expired, sort by timestamp (stable); every change is
        reported in :attr:`LoadResult.repairs`.

    Returns
    -------
    LoadResult
        ``data``: indexed by the UTC snapshot ``timestamp``; ``type`` categorical call/put, ``expiration``
        UTC, IVs decimal, other numbers float64.

    Raises
    ------
    DataValidationError
        The first row breaking a rule: type call/put (or c/p), strike finite > 0, mark IV in (0, 5] and
        bid/ask IV in (0, 5] or empty (after conversion), mark price ≥ 0, underlying price > 0, expiration
        after the snapshot, timestamps non-decreasing.
    """
    loading = start_loading(path, OPTIONS_CHAIN)
    _no_quote_zeros(loading)
    label = loading.label("mark_iv")
    scale = iv_scale(loading.data["mark_iv"].to_numpy(), iv_units, loading.source, label, loading.notes)
    bounds = {name: iv_bounds(scale) for name in IV_COLUMNS}
    rules = column_rules(loading, OPTIONS_CHAIN, bounds=bounds)
    loading.check([*rules, EXPIRY_RULE, *timestamp_order_rules(unique=False)], repair=repair)
    data = loading.data.assign(**{name: loading.data[name] / scale for name in IV_COLUMNS if name in loading.data})
    return loading.result(indexed_by_time(_with_absent_columns(data, loading))[list(CHAIN_COLUMNS)])


def _no_quote_zeros(loading: Loading) -> None:
    present = [name for name in NO_QUOTE_IF_ZERO if name in loading.data.columns]
    zeros = {name: loading.data[name].to_numpy() == 0 for name in present}
    counts = {name: int(mask.sum()) for name, mask in zeros.items() if mask.any()}
    if counts:
        loading.data = loading.data.assign(**{n: loading.data[n].mask(zeros[n]) for n in counts})
        listed = ", ".join(f"{loading.label(n)} {c}" for n, c in counts.items())
        loading.note(log, f"zero bid/ask quotes read as 'no quote' (empty): {listed}")


def _with_absent_columns(data: pd.DataFrame, loading: Loading) -> pd.DataFrame:
    absent = [name for name in CHAIN_COLUMNS if name not in data.columns]
    if not absent:
        return data
    loading.note(log, f"optional columns absent from the file, left empty: {', '.join(absent)}")
    return data.assign(**{name: np.nan for name in absent})
