"""Trades to bars: per-bar buy, sell and unknown-side volume, trade counts and notional (DESIGN section 3).

A bar labelled t covers (t − freq, t], so a trade at time s belongs to the bar ending at the first bar end ≥ s,
provided s > that end − freq. Trades no bar covers are **dropped**: those at or before the first bar's opening,
after the last bar's end, or inside a gap left by a missing bar. Dropping them, rather than pushing them into the
next bar, makes a bar's totals depend on that bar's own interval only: serving (:meth:`MarketData.tail_from` keeps
trades after the first bar's opening) then reproduces batch bit for bit.

Unknown-side trades (Tardis ``side == "unknown"``) count in volume, trade count and notional, and in neither the buy
nor the sell columns, so they move no imbalance or VPIN. Signing them by the tick rule was rejected: it needs the
previous trade's price, which may lie before the data's start, so a bar would depend on where the data begins.

Sums run over the trades in their given order (``np.bincount``), so the same trades give bit-identical bars.
Bars without a trade get zeros: the trades are taken to cover the whole span of the bars.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SIDES = ("buy", "sell", "unknown")  # side code = position here
AGGREGATE_COLUMNS = (
    "buy_volume",
    "sell_volume",
    "unknown_volume",
    "n_trades",
    "notional",
    "buy_count",
    "sell_count",
)
_NS_PER_US = 1_000


def aggregate_trades(trades: pd.DataFrame, bar_index: pd.DatetimeIndex, freq: pd.Timedelta) -> pd.DataFrame:
    """Per-bar order-flow totals of ``trades`` on bars ending at ``bar_index``.

    Parameters
    ----------
    trades
        Tardis trades, ``m`` rows: indexed by a tz-aware ``DatetimeIndex`` (the loaders' form) or with a
        ``timestamp`` column (tz-aware datetimes, or integers read as epoch microseconds as Tardis writes them);
        ``side`` (buy / sell / unknown, any case), ``price`` and ``amount`` (base units). Any order.
    bar_index
        Bar end times (UTC), strictly increasing, ``n`` rows, on whole microseconds.
    freq
        Bar length: bar t covers (t − freq, t].

    Returns
    -------
    DataFrame
        Indexed by ``bar_index``, columns :data:`AGGREGATE_COLUMNS`: ``buy_volume``, ``sell_volume``,
        ``unknown_volume`` (Σ amount by side), ``n_trades`` (all sides), ``notional`` (Σ price × amount),
        ``buy_count``, ``sell_count``. Counts are int64. Trades outside every bar are dropped (module docstring).
    """
    _check_columns(trades)
    ends_us = _epoch_us(bar_index, "bar_index", exact=True)  # (n,)
    bar = bar_of_trades(trade_times_us(trades), ends_us, _freq_us(freq))  # (m,)
    side = side_codes(trades["side"])  # (m,)
    price = trades["price"].to_numpy(dtype=float)
    amount = trades["amount"].to_numpy(dtype=float)
    totals = bar_totals(bar, side, price, amount, len(bar_index))
    return pd.DataFrame(totals, index=bar_index)[list(AGGREGATE_COLUMNS)]


def bar_of_trades(times_us: IntArray, ends_us: IntArray, freq_us: int) -> IntArray:
    """The bar of every trade: the first bar end ≥ its time, or −1 when that bar does not cover it.

    Parameters
    ----------
    times_us
        Shape (m,): trade times, epoch µs, any order.
    ends_us
        Shape (n,): bar end times, epoch µs, strictly increasing.
    freq_us
        Bar length in µs; bar k covers (ends_us[k] − freq_us, ends_us[k]].

    Returns
    -------
    ndarray
        Shape (m,), int64: bar positions in 0..n−1, −1 for a trade no bar covers.
    """
    bar = np.searchsorted(ends_us, times_us, side="left").astype(np.int64)  # (m,) first end ≥ s
    if ends_us.size == 0:
        return np.full(times_us.shape, -1, dtype=np.int64)
    inside = bar < ends_us.size
    opening = ends_us[np.minimum(bar, ends_us.size - 1)] - freq_us  # (m,)
    bar[~(inside & (times_us > opening))] = -1
    return bar


def bar_totals(
    bar: IntArray, side: npt.NDArray[np.int8], price: FloatArray, amount: FloatArray, n_bars: int
) -> dict[str, np.ndarray]:
    """Σ amount by side, counts by side and Σ price × amount per bar, in the trades' order.

    Parameters
    ----------
    bar
        Shape (m,): bar of each trade (:func:`bar_of_trades`); −1 drops the trade.
    side
        Shape (m,): side code of each trade, the position in :data:`SIDES`.
    price, amount
        Shape (m,).
    n_bars
        Number of bars ``n``.

    Returns
    -------
    dict
        Column name (:data:`AGGREGATE_COLUMNS`) -> array of shape (n,).
    """
    kept = bar >= 0
    if not kept.all():
        bar, side, price, amount = bar[kept], side[kept], price[kept], amount[kept]
    cell = bar * len(SIDES) + side  # (m,) one bin per (bar, side): a single pass for all three sides
    volume = np.bincount(cell, weights=amount, minlength=n_bars * len(SIDES)).reshape(n_bars, len(SIDES))
    counts = np.bincount(cell, minlength=n_bars * len(SIDES)).reshape(n_bars, len(SIDES)).astype(np.int64)
    notional = np.bincount(bar, weights=price * amount, minlength=n_bars)  # (n,)
    return {
        "buy_volume": volume[:, 0],
        "sell_volume": volume[:, 1],
        "unknown_volume": volume[:, 2],
        "n_trades": counts.sum(axis=1),
        "notional": notional,
        "buy_count": counts[:, 0],
        "sell_count": counts[:, 1],
    }


def trade_times_us(trades: pd.DataFrame) -> IntArray:
    """Trade times as epoch µs, shape (m,); times finer than a µs round up (a trade at end + 1 ns is after it)."""
    if isinstance(trades.index, pd.DatetimeIndex):
        return _epoch_us(trades.index, "trades index", exact=False)
    if "timestamp" not in trades.columns:
        raise UsageError(
            "trades need their times: a tz-aware DatetimeIndex or a 'timestamp' column; got neither "
            "(load the file with forecaster.market.load_trades)"
        )
    column = trades["timestamp"]
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)  # Tardis epoch µs
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return _epoch_us(pd.DatetimeIndex(column), "trades column 'timestamp'", exact=False)
    raise UsageError(
        f"trades column 'timestamp' must hold tz-aware datetimes or integer epoch µs; got dtype {column.dtype} "
        "(load the file with forecaster.market.load_trades)"
    )


def side_codes(side: pd.Series) -> npt.NDArray[np.int8]:
    """Side of every trade as its position in :data:`SIDES` (0 buy, 1 sell, 2 unknown). Shape (m,), int8."""
    cat = side if isinstance(side.dtype, pd.CategoricalDtype) else side.astype("category")
    names = [str(c).lower() for c in cat.cat.categories]
    # one entry per category, then −1 for the missing-value code −1 (which indexes the last entry)
    lookup = np.array([SIDES.index(n) if n in SIDES else -1 for n in names] + [-1], dtype=np.int8)
    codes = lookup[cat.cat.codes.to_numpy()]
    if (codes < 0).any():
        first = int(np.argmax(codes < 0))
        raise UsageError(
            f"trades column 'side', row {first} (0-based): value {side.iloc[first]!r} is not one of "
            f"{', '.join(SIDES)} (validate the file with forecaster.market.load_trades, or --repair it)"
        )
    return codes


def _epoch_us(index: pd.DatetimeIndex, what: str, *, exact: bool) -> IntArray:
    """Epoch µs of a tz-aware index, shape (n,): exactly (``exact``: else an error) or rounded up."""
    if index.tz is None:
        raise UsageError(f"{what} must be tz-aware (UTC); got naive times: localize them, e.g. tz_localize('UTC')")
    if index.unit in ("s", "ms", "us"):
        return index.as_unit("us").asi8
    ns = index.as_unit("ns").asi8
    if exact and (ns % _NS_PER_US).any():
        raise UsageError(f"{what} must fall on whole microseconds; round the bar times, e.g. .round('us')")
    return -(-ns // _NS_PER_US)  # ceiling: s ≤ end ⇔ ceil(s) ≤ end when end is a whole µs


def _freq_us(freq: pd.Timedelta) -> int:
    ns = pd.Timedelta(freq).value
    if ns <= 0 or ns % _NS_PER_US:
        raise UsageError(f"the bar length must be a positive whole number of microseconds; got {freq!r}")
    return ns // _NS_PER_US


def _check_columns(trades: pd.DataFrame) -> None:
    missing = [c for c in ("side", "price", "amount") if c not in trades.columns]
    if missing:
        raise UsageError(
            f"trades need the columns side, price, amount (Tardis trades); missing: {', '.join(missing)} "
            "(load the file with forecaster.market.load_trades)"
        )
