"""OHLCV bars: the real NASDAQ daily file, adj-close scaling, and each rule (forecaster.market.bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import load_bars


@pytest.fixture(scope="module")
def nasdaq() -> pd.DataFrame:
    arch_nasdaq = pytest.importorskip("arch.data.nasdaq")
    return arch_nasdaq.load()


def test_real_nasdaq_daily_file(nasdaq, tmp_path, untouched):
    path = tmp_path / "nasdaq.csv"
    nasdaq.to_csv(path)  # columns Date, Open, High, Low, Close, Adj Close, Volume
    result = load_bars(untouched(path))
    data = result.data
    assert len(data) == 5031
    assert isinstance(data.index, pd.DatetimeIndex) and str(data.index.tz) == "UTC"
    assert data.index.name == "timestamp" and data.index.is_monotonic_increasing and data.index.is_unique
    assert data.index[0] == pd.Timestamp("1999-01-04", tz="UTC")
    assert list(data.columns) == ["open", "high", "low", "close", "volume"]
    np.testing.assert_allclose(data["close"].to_numpy(), nasdaq["Adj Close"].to_numpy(), rtol=1e-12)
    assert (data["high"] >= np.maximum(data["open"], data["close"])).all()
    assert (np.minimum(data["open"], data["close"]) >= data["low"]).all()
    assert any("Adj Close" in n for n in result.notes) and any("assumed UTC" in n for n in result.notes)
    assert result.repairs == ()


def test_adj_close_scales_open_high_low_close(good_bars, write_file):
    text = good_bars.replace("volume\n", "volume,adj close\n", 1)
    lines = text.splitlines()
    lines[1:] = [f"{line},{float(line.split(',')[4]) / 2}" for line in lines[1:]]
    result = load_bars(write_file("bars.csv", "\n".join(lines) + "\n"))
    plain = load_bars(write_file("plain.csv", good_bars)).data
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(result.data[column], plain[column] / 2)
    np.testing.assert_array_equal(result.data["volume"], plain["volume"])


def test_ccxt_ohlcv_with_ms_epochs(write_file):
    text = "timestamp,open,high,low,close,volume\n1735689600000,93500,93600,93400,93550,12.5\n"
    text += "1735689660000,93550,93700,93500,93650,8.25\n"
    data = load_bars(write_file("ccxt.csv", text)).data
    assert data.index[1] == pd.Timestamp("2025-01-01T00:01:00Z")


@pytest.mark.parametrize(
    ("row", "line", "column", "rule"),
    [
        (3, "2024-01-04,102,103,98,,900", "close", "'close' must be a finite number in (0, inf)"),
        (2, "2024-01-03,104,inf,101,102,1200", "high", "'high' must be a finite number"),
        (4, "2024-01-05,0,101,97,100,1100", "open", "'open' must be a finite number"),
        (3, "2024-01-04,102,103,98,99,-900", "volume", "'volume' must be a finite number in [0, inf)"),
        (2, "2024-01-03,104,100,101,102,1200", "high", "high must be ≥ max(open, close)"),
        (2, "2024-01-03,104,106,103,102,1200", "low", "low must be ≤ min(open, close)"),
        (2, "2024-01-03,104,106,101,abc,1200", "close", "'close' must be a number"),
        (3, "2024-01-02,102,103,98,99,900", "timestamp", "increasing order"),
        (3, "2024-01-03,102,103,98,99,900", "timestamp", "must be unique"),
    ],
    ids=[
        "nan",
        "inf",
        "zero",
        "negative-volume",
        "high-below-close",
        "low-above-close",
        "text",
        "unsorted",
        "duplicate",
    ],
)
def test_first_violation_names_row_column_and_rule(good_bars, write_file, row, line, column, rule):
    lines = good_bars.splitlines()
    lines[row] = line
    path = write_file("bars.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as info:
        load_bars(path)
    error = info.value
    assert (error.row, error.line, error.column) == (row, row + 1, column)
    assert rule in error.rule and error.fix


def test_count_reports_all_rows_breaking_the_rule(good_bars, write_file):
    text = good_bars.replace(",900\n", ",-900\n").replace(",950\n", ",-950\n")
    with pytest.raises(DataValidationError, match=r"2 rows in all") as info:
        load_bars(write_file("bars.csv", text))
    assert info.value.count == 2 and info.value.row == 3
