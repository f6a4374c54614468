"""Implied-vol index files (VIX, DVOL...) and their as-of alignment to bars (DESIGN sections 2 and 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.market.io import Table, read_table
from forecaster.market.timestamps import TIMESTAMP_UNIT
from forecaster.market.units import iv_bounds, iv_scale
from forecaster.market.validation import (
    TIMESTAMP,
    Column,
    LoadResult,
    Schema,
    column_rules,
    indexed_by_time,
    start_loading,
    timestamp_order_rules,
)

log = logging.getLogger(__name__)

# Value-column names in order of preference; an OHLC-shaped IV file is read at its close.
VALUE_NAMES = ("iv", "vix", "dvol", "close", "value")


def load_iv_index(path: str | Path, iv_units: str = "auto", *, repair: bool = False) -> LoadResult[pd.Series]:
    """Load an implied-vol index as a decimal, annualized Series.

    The file has a timestamp column (``timestamp``, ``date``, ``datetime`` or ``time``) and one value column:
    the first of ``iv, vix, dvol, close, value`` that exists, else the only other column, else the only other
    numeric column.

    Parameters
    ----------
    path
        CSV, CSV.gz or Parquet file; never modified.
    iv_units
        ``pct`` (VIX 13.76), ``dec`` (0.1376) or ``auto``: percent when the median exceeds 3 (logged).
    repair
        Drop rows whose value is not an IV in (0, 5], sort by time, keep the last row of a repeated timestamp;
        every change is reported in :attr:`LoadResult.repairs`.

    Returns
    -------
    LoadResult
        ``data``: float64 Series named ``iv`` (decimal) indexed by a UTC ``timestamp``, increasing and unique.

    Raises
    ------
    DataValidationError
        No value column, or the first row breaking a rule: timestamps increasing and unique, IV in (0, 5]
        after unit conversion.
    """
    table = read_table(path)
    value = _value_column(table)
    schema = Schema("IV index", (TIMESTAMP, Column("iv", "number", aliases=() if value == "iv" else (value,))))
    loading = start_loading(table, schema)
    if value != "iv":
        loading.note(log, f"value column: '{table.labels[value]}'")
    scale = iv_scale(loading.data["iv"].to_numpy(), iv_units, loading.source, table.labels[value], loading.notes)
    rules = [
        *column_rules(loading, schema, bounds={"iv": iv_bounds(scale)}),
        *timestamp_order_rules(unique=True),
    ]
    loading.check(rules, repair=repair)
    return loading.result(indexed_by_time(loading.data)["iv"] / scale)


def align_iv_to_bars(iv: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """The IV known at each bar: the last value at or before the bar's timestamp, never a later one.

    Parameters
    ----------
    iv
        Series indexed by a tz-aware, increasing ``DatetimeIndex`` (as :func:`load_iv_index` returns).
    index
        Bar timestamps, tz-aware (any order).

    Returns
    -------
    pd.Series
        Named ``iv``, indexed by ``index``. Bars before the first IV observation get NaN: the caller decides
        whether to drop them or start later. Daily files stamped with the date only (VIX close at 00:00 of its
        day) align to same-day bars; shift the IV index first if its value is not known at the bar's time.

    Raises
    ------
    ValueError
        A time-zone-naive index, or an IV index that is not increasing.
    """
    iv_times, bar_times = _utc(iv.index, "iv.index"), _utc(index, "index")
    if not iv_times.is_monotonic_increasing:
        raise ValueError("iv must be indexed by increasing timestamps (load it with load_iv_index)")
    if iv.empty:
        return pd.Series(np.nan, index=index, name="iv")
    # Position of the last IV observation at or before each bar: searchsorted 'right' minus one.
    position = np.searchsorted(iv_times.asi8, bar_times.asi8, side="right") - 1  # (n_bars,)
    values = iv.to_numpy(dtype=np.float64)[np.maximum(position, 0)]
    values = np.where(position >= 0, values, np.nan)
    return pd.Series(values, index=index, name="iv")


def _value_column(table: Table) -> str:
    others = [c for c in table.frame.columns if c not in (TIMESTAMP.name, *TIMESTAMP.aliases)]
    named = [c for c in VALUE_NAMES if c in others]
    if named:
        return named[0]
    numeric = [c for c in others if pd.api.types.is_numeric_dtype(table.frame[c].dtype)]
    for candidates in (others, numeric):
        if len(candidates) == 1:
            return candidates[0]
    raise table.source.error(
        f"an IV index file has one value column, named one of {', '.join(VALUE_NAMES)}, or the only numeric "
        f"column besides the timestamp; found {[table.labels[c] for c in others]}",
        fix="rename the IV column to 'iv' (or remove the other numeric columns)",
    )


def _utc(times: pd.Index, name: str) -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex) or times.tz is None:
        raise ValueError(f"{name} must be a tz-aware DatetimeIndex (UTC); got {type(times).__name__}")
    return times.tz_convert("UTC").as_unit(TIMESTAMP_UNIT)
