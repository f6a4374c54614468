"""Trades in Tardis columns (forecaster.market.trades)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import load_trades


def test_tardis_deribit_trades(fixture_path, untouched):
    result = load_trades(untouched(fixture_path("deribit_trades.csv")))
    data = result.data
    assert len(data) == 18
    assert data.index.name == "timestamp" and str(data.index.tz) == "UTC"
    assert data.index[0] == pd.Timestamp("2025-01-01T00:00:00.012Z")
    assert data.index[0] == data.index[1]  # trades may share a timestamp
    assert data.index.is_monotonic_increasing
    assert list(data.columns) == ["exchange", "symbol", "local_timestamp", "id", "side", "price", "amount"]
    for column in ("exchange", "symbol", "side"):
        assert isinstance(data[column].dtype, pd.CategoricalDtype)
    assert list(data["side"].cat.categories) == ["buy", "sell", "unknown"]
    assert str(data["local_timestamp"].dtype) == "datetime64[us, UTC]"
    assert (data["local_timestamp"] >= data.index).all()
    assert data["price"].iloc[3] == 0.0345 and data["symbol"].iloc[3] == "BTC-31JAN25-100000-C"
    assert any("microseconds" in n for n in result.notes)


def test_gzip_variant_is_identical(fixture_path, tmp_path):
    gz = tmp_path / "trades.csv.gz"
    gz.write_bytes(gzip.compress(fixture_path("deribit_trades.csv").read_bytes()))
    pd.testing.assert_frame_equal(load_trades(gz).data, load_trades(fixture_path("deribit_trades.csv")).data)


def test_side_is_case_insensitive(fixture_path, tmp_path):
    text = fixture_path("deribit_trades.csv").read_text().replace(",buy,", ",BUY,", 1).replace(",sell,", " ,Sell ,", 1)
    (tmp_path / "t.csv").write_text(text)
    sides = load_trades(tmp_path / "t.csv").data["side"]
    assert list(sides.iloc[:3]) == ["buy", "buy", "sell"]


@pytest.mark.parametrize(
    ("old", "new", "row", "column", "rule"),
    [
        (",sell,93512.0,10", ",short,93512.0,10", 3, "side", "must be one of buy, sell, unknown"),
        (",sell,93512.0,10", ",sell,93512.0,0", 3, "amount", "'amount' must be a finite number in (0, inf)"),
        (",sell,93512.0,10", ",sell,-1,10", 3, "price", "'price' must be a finite number in (0, inf)"),
        ("1735689600085331,", "1735689600000001,", 3, "timestamp", "non-decreasing"),
    ],
    ids=["bad-side", "zero-amount", "negative-price", "unsorted"],
)
def test_violations_name_row_and_column(fixture_path, tmp_path, old, new, row, column, rule):
    text = fixture_path("deribit_trades.csv").read_text().replace(old, new, 1)
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(DataValidationError) as info:
        load_trades(tmp_path / "t.csv")
    assert (info.value.row, info.value.column) == (row, column) and rule in info.value.rule


def test_half_a_million_trades_load(tmp_path):
    n = 500_000
    rng = np.random.default_rng(0)
    timestamp = 1735689600000000 + np.cumsum(rng.integers(0, 40_000, n))  # µs, ties included
    frame = pd.DataFrame(
        {
            "exchange": "deribit",
            "symbol": np.where(rng.random(n) < 0.9, "BTC-PERPETUAL", "ETH-PERPETUAL"),
            "timestamp": timestamp,
            "local_timestamp": timestamp + 1500,
            "id": np.arange(n) + 300_000_000,
            "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
            "price": np.round(93_000 + rng.normal(0, 50, n), 1),
            "amount": rng.integers(1, 5_000, n) * 10.0,
        }
    )
    path = tmp_path / "trades.csv"
    frame.to_csv(path, index=False)
    data = load_trades(path).data
    assert len(data) == n and data.index.is_monotonic_increasing
    assert data["symbol"].cat.categories.size == 2
    np.testing.assert_array_equal(data["price"].to_numpy(), frame["price"].to_numpy())
