"""Rolling window sums that are exact in the sense the pipeline needs: the same floating-point result whether the
series starts years ago (batch) or a little before the window (serving).

A plain running sum (``cumsum`` differences, pandas ``rolling``) depends on where the series starts: its
rounding errors carry the whole history. Here every sum restarts at calendar **anchors** (UTC hours, days,
ISO weeks), which both batch and serving see at the same rows:

    S(t) = P(t) + ((T(b0) − P(t − W)) + Σ_{blocks strictly between} T(b))

where P is the running sum since the start of the row's anchor block, T(b) a block's total and b0 the block
holding the row just before the window. Every term depends only on data from the start of b0, so a recent
window that starts at an anchor gives bit-identical values (:func:`history_start`). Rows without a full window
(the first ``window − 1``) are NaN, as are windows holding a NaN input.

Shapes: every array is (n,), one value per bar, in time order.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ANCHORS = ("min", "5min", "15min", "h", "D", "W")
_NS = {"min": 60 * 10**9, "5min": 300 * 10**9, "15min": 900 * 10**9, "h": 3_600 * 10**9, "D": 86_400 * 10**9}
_MONDAY_OFFSET_NS = 3 * 86_400 * 10**9  # 1970-01-01 was a Thursday: shift so weeks start on Mondays


def anchor_ids(index: pd.DatetimeIndex, anchor: str) -> IntArray:
    """The anchor block of every row: hours, days or ISO weeks since the epoch (UTC). Shape (n,)."""
    ns = index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8
    if anchor in _NS:
        return ns // _NS[anchor]
    if anchor == "W":
        return (ns + _MONDAY_OFFSET_NS) // (7 * _NS["D"])
    raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}; got {anchor!r}")


def anchor_for(window: int, bar: pd.Timedelta) -> str:
    """The anchor for a window of ``window`` bars of length ``bar``: the longest calendar block not longer than the
    window, so a window spans few whole blocks and a running sum never grows much larger than the window's own
    (its rounding stays at the window's scale). Daily or longer bars anchor on ISO weeks."""
    span = bar * window
    if bar >= pd.Timedelta(days=1):
        return "W"
    for anchor, length in (("W", pd.Timedelta(weeks=1)), ("D", pd.Timedelta(days=1))):
        if span >= length:
            return anchor
    for anchor in ("h", "15min", "5min"):
        if span >= pd.Timedelta(_NS[anchor], unit="ns"):
            return anchor
    return "min"


def window_sum(values: npt.ArrayLike, window: int, blocks: IntArray) -> FloatArray:
    """Sum of the last ``window`` values at every row, restarting the running sums at block changes.

    Parameters
    ----------
    values
        Shape (n,). NaN marks a missing input: a window that holds one is NaN.
    window
        Rows per window, ≥ 1. Rows before the first full window are NaN.
    blocks
        Shape (n,), non-decreasing anchor ids (:func:`anchor_ids`).
    """
    return window_sums(np.asarray(values, dtype=float)[None, :], window, blocks)[0]


def window_sums(values: npt.ArrayLike, window: int, blocks: IntArray) -> FloatArray:
    """:func:`window_sum` of every row of ``values`` (k, n) at once: the same arithmetic per series, so each row is
    bit-identical to ``window_sum`` of it alone, with the per-call work (blocks, indices) done once. Shape (k, n).
    """
    x = np.array(values, dtype=float, ndmin=2)  # a copy: the caller's array is never written
    k, n = x.shape
    if window < 1:
        raise ValueError(f"window must be ≥ 1 bar; got {window}")
    if window == 1:
        return x
    out = np.full((k, n), np.nan)
    if n < window:
        return out
    missing = np.isnan(x)
    x[missing] = 0.0  # clean
    change = blocks[1:] != blocks[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))  # first row of each block
    ordinal = np.zeros(n, dtype=np.int64)  # block number of each row, from 0
    np.cumsum(change, out=ordinal[1:])
    running = _restarted_cumsum(x, starts)  # P, (k, n)
    ends = np.append(starts[1:] - 1, n - 1)
    # a virtual row before the data (running sum 0, block -1) lets the first full window use the same formula
    zero = np.zeros((k, 1))
    running_v = np.concatenate((zero, running), axis=1)
    totals_v = np.concatenate((zero, running[:, ends]), axis=1)  # T per block, after the virtual one
    ordinal_v = np.concatenate(([-1], ordinal))
    rows = np.arange(window - 1, n)
    prev = rows - window + 1  # the row just before each window, in the shifted (virtual-first) numbering
    b_row, b_prev = ordinal[rows], ordinal_v[prev]
    between = b_row - b_prev - 1  # whole blocks strictly inside the window
    middle = np.zeros((k, rows.size))
    for j in range(1, int(between.max(initial=0)) + 1):
        take = between >= j
        middle[:, take] += totals_v[:, b_prev[take] + 1 + j]
    same = b_row == b_prev
    p_row, p_prev = running[:, rows], running_v[:, prev]
    spanning = p_row + ((totals_v[:, b_prev + 1] - p_prev) + middle)
    filled = np.where(same, p_row - p_prev, spanning)
    counts = np.zeros((k, n + 1), dtype=np.int64)  # integer sums are exact whatever the start
    np.cumsum(missing, axis=1, out=counts[:, 1:])
    filled[counts[:, rows + 1] - counts[:, prev] > 0] = np.nan
    out[:, window - 1 :] = filled
    return out


def window_mean(values: npt.ArrayLike, window: int, blocks: IntArray) -> FloatArray:
    """Mean of the last ``window`` values (window sum / window). Shape (n,)."""
    return window_sum(values, window, blocks) / window


def history_start(index: pd.DatetimeIndex, rows_needed: int, anchor: str) -> pd.Timestamp:
    """Where a recent window must start so that its last row reproduces the batch value exactly.

    ``rows_needed`` rows back from the last row, then back to the start of that row's anchor block.
    """
    if rows_needed >= len(index):
        return index[0]
    ids = anchor_ids(index, anchor)
    first = len(index) - 1 - rows_needed
    return index[int(np.searchsorted(ids, ids[first], side="left"))]


def _restarted_cumsum(x: FloatArray, starts: IntArray) -> FloatArray:
    """Running sums along the last axis that restart at every index in ``starts`` (sequential within each block).
    Shape: as ``x``, (k, n)."""
    # subtracting each block's offset from one global cumsum would carry the prefix's rounding: accumulate per block
    k, n = x.shape
    lengths = np.diff(np.append(starts, n))
    width = int(lengths.max(initial=0))
    if starts.size * width <= 2 * n + 64:  # near-regular blocks: one cumsum over a zero-padded (k, blocks, width)
        block = np.repeat(np.arange(starts.size), lengths)
        column = np.arange(n) - starts[block]
        grid = np.zeros((k, starts.size, width))
        grid[:, block, column] = x
        np.cumsum(grid, axis=2, out=grid)  # the same left-to-right additions as per block; the padding comes after
        return grid[:, block, column]
    out = np.empty_like(x)
    bounds = np.append(starts, n)
    for lo, hi in pairwise(bounds.tolist()):
        np.cumsum(x[:, lo:hi], axis=1, out=out[:, lo:hi])
    return out
