"""IV index files and their as-of alignment to bars (forecaster.market.iv_index)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError, UsageError
from forecaster.market import align_iv_to_bars, load_iv_index

VIX = "DATE,OPEN,HIGH,LOW,CLOSE\n2024-01-02,13.21,14.23,13.1,13.2\n2024-01-03,13.38,14.22,13.36,14.04\n"
VIX += "2024-01-04,13.76,14.1,13.51,14.13\n"


def test_vix_in_percent_is_auto_detected_and_read_at_close(write_file, caplog):
    caplog.set_level("INFO")
    result = load_iv_index(write_file("vix.csv", VIX))
    np.testing.assert_allclose(result.data.to_numpy(), [0.132, 0.1404, 0.1413])
    assert result.data.name == "iv" and str(result.data.index.tz) == "UTC"
    assert any("percent" in n and "auto" in n for n in result.notes) and "percent" in caplog.text
    assert any("'CLOSE'" in n for n in result.notes)


def test_dvol_in_decimal_is_auto_detected(write_file):
    text = "timestamp,dvol\n1735689600,0.5521\n1735693200,0.5604\n1735696800,0.5488\n"
    result = load_iv_index(write_file("dvol.csv", text))
    np.testing.assert_allclose(result.data.to_numpy(), [0.5521, 0.5604, 0.5488])
    assert any("decimal" in n for n in result.notes)


@pytest.mark.parametrize(("units", "expected"), [("pct", 0.0155), ("dec", 1.55)])
def test_explicit_units_override_auto(write_file, units, expected):
    path = write_file("iv.csv", "date,iv\n2024-01-02,1.55\n")
    assert load_iv_index(path, units).data.iloc[0] == pytest.approx(expected)


def test_unknown_units_is_a_usage_error(write_file):
    with pytest.raises(UsageError, match="pct, dec, auto"):
        load_iv_index(write_file("iv.csv", "date,iv\n2024-01-02,15.5\n"), "percent")


@pytest.mark.parametrize(
    ("header", "column"),
    [("date,vix,close", "vix"), ("date,level", "level"), ("date,name,level", "level"), ("date,iv,vix", "iv")],
)
def test_value_column_choice(write_file, header, column):
    names = header.split(",")
    values = {"vix": "15.5", "close": "99", "level": "15.5", "name": "VIX", "iv": "15.5"}
    text = f"{header}\n2024-01-02,{','.join(values[n] for n in names[1:])}\n"
    assert load_iv_index(write_file("iv.csv", text)).data.iloc[0] == pytest.approx(0.155)


def test_ambiguous_value_columns_raise(write_file):
    with pytest.raises(DataValidationError, match="one value column"):
        load_iv_index(write_file("iv.csv", "date,a,b\n2024-01-02,15.5,16\n"))


@pytest.mark.parametrize(("value", "rule"), [("0", "(0, 500] in percent"), ("900", "(0, 500] in percent")])
def test_iv_out_of_range_names_row(write_file, value, rule):
    text = VIX.replace("14.04", value)
    with pytest.raises(DataValidationError) as info:
        load_iv_index(write_file("vix.csv", text))
    assert (info.value.row, info.value.column, info.value.value) == (2, "CLOSE", float(value))
    assert rule in info.value.rule


def test_decimal_iv_above_five_is_rejected(write_file):
    with pytest.raises(DataValidationError, match=r"\(0, 5\]"):
        load_iv_index(write_file("iv.csv", "date,iv\n2024-01-02,0.5\n2024-01-03,5.5\n"), "dec")


BARS = pd.DatetimeIndex(["2025-01-01 00:00", "2025-01-01 01:00", "2025-01-01 02:00", "2025-01-01 03:00"], tz="UTC")


def test_alignment_is_as_of_and_never_forward():
    iv = pd.Series(
        [0.50, 0.60, 0.70],
        index=pd.DatetimeIndex(["2025-01-01 00:30", "2025-01-01 02:00", "2025-01-01 02:59:59"], tz="UTC"),
    )
    aligned = align_iv_to_bars(iv, BARS)
    # Before the first observation: NaN. 00:30 lies strictly between the 00:00 and 01:00 bars: it appears only
    # from the 01:00 bar on. An observation at a bar's own timestamp is known at that bar.
    np.testing.assert_array_equal(aligned.to_numpy(), [np.nan, 0.50, 0.60, 0.70])
    assert aligned.name == "iv" and aligned.index.equals(BARS)


def test_alignment_matches_pandas_merge_asof():
    rng = np.random.default_rng(3)
    minutes = np.sort(rng.choice(10_000, 300, replace=False))
    iv_times = pd.to_datetime(minutes, unit="m", utc=True).as_unit("us")
    iv = pd.Series(rng.uniform(0.3, 0.9, 300), index=iv_times)
    bars = pd.date_range("1970-01-01", periods=2_000, freq="5min", tz="UTC").as_unit("us")
    reference = pd.merge_asof(
        pd.DataFrame({"timestamp": bars}),
        iv.rename("iv").rename_axis("timestamp").reset_index(),
        on="timestamp",
        direction="backward",
    )["iv"]
    np.testing.assert_array_equal(align_iv_to_bars(iv, bars).to_numpy(), reference.to_numpy())


def test_alignment_accepts_other_time_zones_and_units():
    iv = pd.Series([0.5], index=pd.DatetimeIndex(["2025-01-01 01:30"], tz="Europe/Paris").as_unit("s"))
    assert align_iv_to_bars(iv, BARS).to_numpy()[1] == 0.5  # 01:30 Paris = 00:30 UTC


def test_alignment_rejects_naive_or_unsorted_input():
    with pytest.raises(ValueError, match="tz-aware"):
        align_iv_to_bars(pd.Series([0.5], index=pd.DatetimeIndex(["2025-01-01"])), BARS)
    unsorted = pd.Series([0.5, 0.6], index=BARS[[1, 0]])
    with pytest.raises(ValueError, match="increasing"):
        align_iv_to_bars(unsorted, BARS)


def test_load_then_align(write_file):
    iv = load_iv_index(write_file("vix.csv", VIX)).data
    bars = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    np.testing.assert_allclose(align_iv_to_bars(iv, bars).to_numpy(), [np.nan, 0.132, 0.1404, 0.1413, 0.1413])
