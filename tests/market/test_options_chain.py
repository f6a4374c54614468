"""Option-chain snapshots in Tardis columns (forecaster.market.options_chain)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import load_options_chain

NAME = "deribit_options_chain.csv"


@pytest.fixture
def chain_text(fixture_path) -> str:
    return fixture_path(NAME).read_text()


def _edit(text: str, row: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chain.csv"
    path.write_text(text)
    return path


def test_tardis_deribit_chain(fixture_path, untouched):
    path = untouched(fixture_path(NAME))
    result = load_options_chain(path)
    data = result.data
    raw = pd.read_csv(path)
    assert len(data) == 24 and data.index.name == "timestamp" and str(data.index.tz) == "UTC"
    assert data.index[0] == pd.Timestamp("2025-01-01T00:00:00Z")
    assert data.index.nunique() == 2  # two snapshots, twelve rows each
    np.testing.assert_allclose(data["mark_iv"].to_numpy(), raw["mark_iv"].to_numpy() / 100)
    assert data["mark_iv"].between(0.3, 1.0).all()
    # Deribit quotes premiums in coin; they come out in quote currency (auto-detected): coin x underlying_price
    for column in ("mark_price", "bid_price", "ask_price", "last_price"):
        usd = (raw[column] * raw["underlying_price"]).to_numpy()
        np.testing.assert_array_equal(np.isnan(data[column].to_numpy()), np.isnan(usd) | (raw[column] == 0).to_numpy())
        np.testing.assert_allclose(data[column].to_numpy()[raw[column] > 0], usd[raw[column] > 0], rtol=1e-15)
    assert list(data["type"].cat.categories) == ["call", "put"]
    assert data["expiration"].iloc[0] == pd.Timestamp("2025-01-03T08:00:00Z")
    assert (data["expiration"] > data.index).all()
    assert data["strike_price"].dtype == np.float64
    # A zero bid (price and IV) means no quote: NaN, not 0.
    no_bid = raw["bid_iv"].to_numpy() == 0
    assert no_bid.sum() == 2
    assert np.isnan(data["bid_iv"].to_numpy()[no_bid]).all()
    assert np.isnan(data["bid_price"].to_numpy()[no_bid]).all()
    assert any("no quote" in n for n in result.notes) and any("percent" in n for n in result.notes)
    assert any("in coin, multiplied by underlying_price into quote currency (auto" in n for n in result.notes)


def test_gzip_variant_is_identical(fixture_path, tmp_path):
    gz = tmp_path / "chain.csv.gz"
    gz.write_bytes(gzip.compress(fixture_path(NAME).read_bytes()))
    pd.testing.assert_frame_equal(load_options_chain(gz).data, load_options_chain(fixture_path(NAME)).data)


def test_decimal_ivs_in_parquet_with_dec_and_auto(chain_text, tmp_path):
    frame = pd.read_csv(io.StringIO(chain_text))
    for column in ("bid_iv", "ask_iv", "mark_iv"):
        frame[column] = frame[column] / 100
    path = tmp_path / "dec.parquet"
    frame.to_parquet(path)
    expected = load_options_chain(_write(tmp_path, chain_text)).data
    for units in ("dec", "auto"):
        pd.testing.assert_series_equal(load_options_chain(path, units).data["mark_iv"], expected["mark_iv"])


def test_type_accepts_c_and_p_in_any_case(chain_text, tmp_path):
    text = _edit(_edit(chain_text, 1, "type", "C"), 2, "type", "p")
    types = load_options_chain(_write(tmp_path, text)).data["type"]
    assert list(types.iloc[:2]) == ["call", "put"]


def test_optional_columns_may_be_absent(chain_text, tmp_path):
    frame = pd.read_csv(io.StringIO(chain_text)).drop(columns=["delta", "gamma", "open_interest"])
    path = tmp_path / "slim.csv"
    frame.to_csv(path, index=False)
    result = load_options_chain(path)
    assert result.data["delta"].isna().all() and any("absent" in n for n in result.notes)


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        (5, "strike_price", "abc", "'strike_price' must be a number"),
        (5, "strike_price", "-100", "'strike_price' must be a finite number in (0, inf)"),
        (7, "mark_iv", "0", "'mark_iv' must be a finite number in (0, 500] in percent"),
        (7, "mark_iv", "", "'mark_iv' must be a finite number in (0, 500] in percent"),
        (7, "ask_iv", "900", "'ask_iv' must be a finite number in (0, 500] in percent"),
        (3, "underlying_price", "0", "'underlying_price' must be a finite number in (0, inf)"),
        (3, "mark_price", "-0.01", "'mark_price' must be a finite number in [0, inf)"),
        (3, "type", "straddle", "'type' must be one of call, put"),
        (4, "expiration", "1735689600000000", "must not have expired"),
        (4, "expiration", "1735603200000000", "must not have expired"),
        (13, "timestamp", "1735689599000000", "non-decreasing"),
        (2, "delta", "inf", "'delta' must be a finite number or empty"),
    ],
    ids=[
        "text-strike",
        "negative-strike",
        "zero-mark-iv",
        "empty-mark-iv",
        "ask-iv-900",
        "zero-underlying",
        "negative-mark",
        "bad-type",
        "expires-at-snapshot",
        "expired",
        "unsorted",
        "inf-greek",
    ],
)
def test_violations_name_row_and_column(chain_text, tmp_path, row, column, value, rule):
    with pytest.raises(DataValidationError) as info:
        load_options_chain(_write(tmp_path, _edit(chain_text, row, column, value)))
    error = info.value
    assert (error.row, error.line, error.column) == (row, row + 1, column)
    assert rule in error.rule


def test_zero_ask_iv_is_no_quote(chain_text, tmp_path):
    data = load_options_chain(_write(tmp_path, _edit(chain_text, 6, "ask_iv", "0"))).data
    assert np.isnan(data["ask_iv"].iloc[5])
