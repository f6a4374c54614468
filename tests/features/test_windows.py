"""Anchored window sums: equal to plain sums, NaN-aware, and bit-identical whatever the series' start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.windows import anchor_for, anchor_ids, history_start, window_sum, window_sums

N = 6_000
INDEX = pd.date_range("2026-01-01 00:01", periods=N, freq="1min", tz="UTC")
X = np.random.default_rng(0).standard_normal(N) ** 2 * 1e-6


def _slow(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    for i in range(window - 1, x.size):
        out[i] = sum(x[i - window + 1 : i + 1])
    return out


@pytest.mark.parametrize("window", [1, 2, 7, 60, 61, 1440, 2000])
def test_equals_the_plain_sum(window: int) -> None:
    blocks = anchor_ids(INDEX, anchor_for(window, pd.Timedelta("1min")))
    got = window_sum(X, window, blocks)
    ref = _slow(X, window)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_a_nan_input_blanks_exactly_the_windows_that_hold_it() -> None:
    x = X.copy()
    x[[0, 100]] = np.nan
    got = window_sum(x, 10, anchor_ids(INDEX, "h"))
    nan_rows = set(np.flatnonzero(np.isnan(got)))
    assert nan_rows == set(range(10)) | set(range(100, 110))


@pytest.mark.parametrize(
    ("window", "anchor"), [(2, "min"), (5, "5min"), (20, "15min"), (60, "h"), (1440, "D"), (2000, "D"), (3000, "W")]
)
def test_a_series_cut_at_an_anchor_gives_bit_identical_sums(window: int, anchor: str) -> None:
    blocks = anchor_ids(INDEX, anchor)
    full = window_sum(X, window, blocks)
    rng = np.random.default_rng(1)
    for end in rng.choice(np.arange(window + 200, N), size=25, replace=False):
        index = INDEX[: end + 1]
        start = index.get_loc(history_start(index, window, anchor))
        part = window_sum(X[start : end + 1], window, blocks[start : end + 1])
        assert part[-1] == full[end], (window, end)  # exact, not approximately
        assert start <= end - window  # the recent window holds the whole window and more


def test_a_plain_running_sum_would_not_be_start_independent() -> None:
    """Why the anchors exist: cumsum differences carry the rounding of the whole history."""
    cumsum = np.cumsum(X)
    late = np.cumsum(X[3_000:])
    full = cumsum[5_000] - cumsum[5_000 - 60]
    part = late[2_000] - late[2_000 - 60]
    assert full != part and full == pytest.approx(part, rel=1e-9)


def test_anchor_ids_and_choice() -> None:
    times = pd.DatetimeIndex(["2026-01-04 23:59", "2026-01-05 00:00", "2026-01-05 00:01"], tz="UTC")  # Sun, Mon, Mon
    weeks = anchor_ids(times, "W")
    assert weeks[0] + 1 == weeks[1] == weeks[2]  # weeks start on Monday 00:00 UTC
    assert list(anchor_ids(times, "D")) == [
        times[0].value // 86_400_000_000_000,
        *[times[1].value // 86_400_000_000_000] * 2,
    ]
    minute = pd.Timedelta("1min")
    assert [anchor_for(w, minute) for w in (2, 5, 20, 60, 1440, 10080, 43200)] == [
        "min", "5min", "15min", "h", "D", "W", "W"
    ]  # fmt: skip
    assert anchor_for(22, pd.Timedelta("1D")) == "W"
    with pytest.raises(ValueError, match="anchor must be one of"):
        anchor_ids(times, "month")
    with pytest.raises(ValueError, match="window must be ≥ 1"):
        window_sum(X, 0, anchor_ids(INDEX, "h"))


def _loop_window_sum(x: np.ndarray, window: int, blocks: np.ndarray) -> np.ndarray:
    """The formula of the module docstring, one row at a time (per-block cumsums in a Python loop)."""
    n = x.size
    out = np.full(n, np.nan)
    starts = [0, *(i for i in range(1, n) if blocks[i] != blocks[i - 1])]
    ends = [*(s - 1 for s in starts[1:]), n - 1]
    block_of = np.searchsorted(starts, np.arange(n), side="right") - 1
    running = np.empty(n)
    for lo, hi in zip(starts, ends, strict=True):
        running[lo : hi + 1] = np.cumsum(np.nan_to_num(x[lo : hi + 1]))
    totals = running[ends]
    for row in range(window - 1, n):
        first = row - window + 1
        if np.isnan(x[first : row + 1]).any():
            continue
        b_row = block_of[row]
        if first == 0 or block_of[first - 1] != b_row:
            b_prev = block_of[first - 1] if first > 0 else -1
            p_prev = running[first - 1] if first > 0 else 0.0
            t_prev = totals[b_prev] if b_prev >= 0 else 0.0
            middle = np.zeros(1)
            for b in range(b_prev + 1, b_row):
                middle[0] += totals[b]
            out[row] = running[row] + ((t_prev - p_prev) + middle[0])
        else:
            out[row] = running[row] - running[first - 1]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_stacked_sums_are_bit_identical_to_the_formula_row_by_row(seed: int) -> None:
    """``window_sums`` (vectorized, several series at once, regular or ragged blocks) gives exactly the floats of
    the formula evaluated one row at a time: the vectorization changes no addition."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 900))
    index = pd.date_range("2026-01-01 00:07", periods=n * 2, freq="1min", tz="UTC")
    if seed % 2:  # gaps: ragged anchor blocks
        index = index[np.sort(rng.choice(n * 2, size=n, replace=False))]
    else:
        index = index[:n]
    x = rng.standard_normal((3, n)) ** 2 * 10.0 ** rng.uniform(-8, 2, size=(3, 1))
    x[1, rng.choice(n, size=3)] = np.nan
    for window in (1, 2, 15, 61, 240):
        for anchor in ("min", "15min", "h", "D"):
            blocks = anchor_ids(index, anchor)
            stacked = window_sums(x, window, blocks)
            for k in range(3):
                expected = x[k] if window == 1 else _loop_window_sum(x[k], window, blocks)
                assert np.array_equal(stacked[k], expected, equal_nan=True), (seed, window, anchor, k)
                assert np.array_equal(window_sum(x[k], window, blocks), stacked[k], equal_nan=True)
