"""The one timestamp parser: epoch units, ISO strings, one time zone per file (forecaster.market.timestamps)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import load_trades
from forecaster.market.io import Source
from forecaster.market.timestamps import epoch_unit_index, parse_timestamps

SOURCE = Source(Path("file.csv"), "csv")
T0 = pd.Timestamp("2025-01-01T00:00:00Z")
SECONDS = np.array([1735689600, 1735689660, 1735689720])


def _parse(values, dtype=None) -> tuple[pd.Series, list[str]]:
    series = pd.Series(values, index=pd.RangeIndex(1, len(values) + 1), dtype=dtype)
    return parse_timestamps(series, SOURCE, "timestamp")


@pytest.mark.parametrize(
    ("unit", "scale"), [("seconds", 1), ("milliseconds", 10**3), ("microseconds", 10**6), ("nanoseconds", 10**9)]
)
def test_epoch_unit_is_detected_and_logged(unit, scale, caplog):
    with caplog.at_level(logging.INFO, logger="forecaster.market.timestamps"):
        parsed, notes = _parse(SECONDS.astype(np.int64) * scale)
    assert list(parsed) == [T0, T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=2)]
    assert str(parsed.dtype) == "datetime64[us, UTC]"
    assert unit in notes[0] and unit in caplog.text


def test_float_epochs_keep_fractions():
    parsed, _ = _parse([1735689600.25, 1735689600.5])
    assert parsed.iloc[0] == T0 + pd.Timedelta(milliseconds=250)


def test_epochs_written_as_text_are_numbers():
    parsed, notes = _parse(["1735689600000000", "1735689660000000"], dtype=object)
    assert parsed.iloc[1] == T0 + pd.Timedelta(minutes=1) and "microseconds" in notes[0]


def test_epoch_unit_boundaries():
    assert list(epoch_unit_index(np.array([9.1e8, 1.7e9, 1.7e12, 1.7e15, 1.7e18]))) == [0, 0, 1, 2, 3]


def test_mixed_epoch_units_name_the_first_odd_row():
    with pytest.raises(DataValidationError, match="one unit") as info:
        _parse([1735689600000000, 1735689660000000, 1735689720000, 1735689780000000])
    assert (info.value.row, info.value.column, info.value.value, info.value.line) == (3, "timestamp", 1735689720000, 4)


@pytest.mark.parametrize(
    ("texts", "expected", "note"),
    [
        (["2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"], [T0, T0 + pd.Timedelta(minutes=1)], "+00:00"),
        (["2025-01-01T02:00:00+02:00", "2025-01-01T02:01:00+02:00"], [T0, T0 + pd.Timedelta(minutes=1)], "+02:00"),
        (["2025-01-01T02:00:00+0200", "2025-01-01T02:01:00+0200"], [T0, T0 + pd.Timedelta(minutes=1)], "+02:00"),
        (["2025-01-01 00:00:00", "2025-01-01 00:01:00"], [T0, T0 + pd.Timedelta(minutes=1)], "assumed UTC"),
        (["2025-01-01", "2025-01-02"], [T0, T0 + pd.Timedelta(days=1)], "assumed UTC"),
        (["2025-01-01T00:00:00Z", "2025-01-01T00:01:00+00:00"], [T0, T0 + pd.Timedelta(minutes=1)], "+00:00"),
        (["2024-12-31T19:00:00-05:00", "2024-12-31T19:01:00-05:00"], [T0, T0 + pd.Timedelta(minutes=1)], "-05:00"),
    ],
    ids=["Z", "offset", "compact-offset", "naive", "dates", "Z-and-+00:00", "negative-offset"],
)
def test_iso_strings_become_utc(texts, expected, note):
    parsed, notes = _parse(texts)
    assert list(parsed) == expected
    assert note in notes[0]


def test_mixed_offsets_name_the_first_row_with_another_offset():
    texts = ["2025-01-01T00:00:00+00:00", "2025-01-01T00:01:00+00:00", "2025-01-01T02:02:00+02:00"]
    with pytest.raises(DataValidationError, match="one time zone per file") as info:
        _parse(texts)
    assert (info.value.row, info.value.value) == (3, "2025-01-01T02:02:00+02:00")


def test_naive_mixed_with_offset_is_two_time_zones():
    with pytest.raises(DataValidationError, match="one time zone per file") as info:
        _parse(["2025-01-01T00:00:00Z", "2025-01-01 00:01:00"])
    assert info.value.row == 2


@pytest.mark.parametrize("bad", ["2025-13-45", "yesterday", "2025-01-01T25:00:00Z"])
def test_unparseable_timestamp_names_its_row(bad):
    with pytest.raises(DataValidationError, match="parseable") as info:
        _parse(
            ["2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", bad]
            if bad.endswith("Z")
            else ["2025-01-01", "2025-01-02", bad]
        )
    assert (info.value.row, info.value.value) == (3, bad)


def test_text_among_epoch_numbers_names_its_row():
    with pytest.raises(DataValidationError, match="parseable") as info:
        _parse(["1735689600", "1735689660", "soon", "1735689720"], dtype=object)
    assert (info.value.row, info.value.value) == (3, "soon")


def test_empty_timestamp_cell_names_its_row():
    with pytest.raises(DataValidationError, match="must have a timestamp") as info:
        _parse([1735689600.0, np.nan])
    assert info.value.row == 2


def test_datetime_columns_are_converted_to_utc():
    aware = pd.Series(pd.date_range("2025-01-01 02:00", periods=2, freq="min", tz="Europe/Paris"))
    parsed, _ = _parse(list(aware))
    assert parsed.iloc[0] == pd.Timestamp("2025-01-01T01:00:00Z")
    naive, notes = _parse(list(pd.date_range("2025-01-01", periods=2, freq="min")))
    assert naive.iloc[0] == T0 and "assumed UTC" in notes[0]


def test_loader_reports_the_file_column_name(fixture_path, tmp_path):
    text = fixture_path("deribit_trades.csv").read_text().replace("1735689600085331", "1735689600085", 1)
    path = tmp_path / "trades.csv"
    path.write_text(text)
    with pytest.raises(DataValidationError, match="one unit") as info:
        load_trades(path)
    assert (info.value.row, info.value.column) == (3, "timestamp")


@pytest.mark.parametrize(
    ("texts", "expected", "word"),
    [
        (["01/02/1990", "01/31/1990"], ["1990-01-02", "1990-01-31"], "MM/DD/YYYY"),  # CBOE VIX history
        (["31/01/2024", "01/02/2024"], ["2024-01-31", "2024-02-01"], "DD/MM/YYYY"),
        (["31/01/2024 10:30", "01/02/2024 11:00"], ["2024-01-31T10:30", "2024-02-01T11:00"], "DD/MM/YYYY"),
        (["12/13/2024 10:30:15"], ["2024-12-13T10:30:15"], "MM/DD/YYYY"),
    ],
)
def test_slash_dates_are_read_when_the_order_is_certain(texts, expected, word):
    parsed, notes = _parse(texts, dtype=object)
    assert list(parsed) == [pd.Timestamp(e, tz="UTC") for e in expected]
    assert word in notes[0]


def test_ambiguous_or_mixed_slash_dates_are_refused():
    with pytest.raises(DataValidationError, match="ambiguous"):
        _parse(["01/02/2024", "02/03/2024"], dtype=object)
    with pytest.raises(DataValidationError, match="throughout") as info:
        _parse(["31/01/2024", "01/31/2024"], dtype=object)
    assert info.value.row == 2


_SHAPES = [
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S+0530",
    "%Y-%m-%dT%H:%M:%S-05:00",
    "%Y-%m-%dT%H:%M:%S -02",
]


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_iso_path_agrees_with_the_row_by_row_check(seed):
    """Whatever the column (one shape, mixed spellings of one offset, offsets mixed, naive mixed with zoned,
    garbage): the fast path either gives the checked path's instants and offset, or declines (None) and the
    checked path decides. It never accepts a column the checked path refuses."""
    from forecaster.market.timestamps import _iso_checked, _iso_one_zone

    rng = np.random.default_rng(seed)
    source = Source(Path("t.csv"), "csv")
    times = pd.date_range("2025-03-01", periods=50, freq="17min")
    for _ in range(40):
        shapes = rng.choice(_SHAPES, size=int(rng.integers(1, 3)))
        texts = [t.strftime(str(rng.choice(shapes))) for t in times]
        if rng.random() < 0.2:
            texts[int(rng.integers(0, len(texts)))] = str(rng.choice(["soon", "2025-02-30T00:00:00Z", "25:00"]))
        strings = pd.Series(texts, index=pd.RangeIndex(1, len(texts) + 1), dtype="str")
        fast = _iso_one_zone(strings)
        try:
            checked = _iso_checked(strings, strings, source, "timestamp")
        except DataValidationError:
            assert fast is None, texts
            continue
        if fast is not None:
            assert fast[1] == checked[1], texts
            assert (fast[0].dt.as_unit("ns") == checked[0].dt.as_unit("ns")).all(), texts


@pytest.mark.parametrize(
    "cell",
    ["1", " 2 ", "1e5", "inf", "-inf", "nan", "NaN", "", "abc", "1_000", "0x10", "1,5", True, 3, 2.5, None,
     "2026-01-01", "١٢", "+5", ".5", "5.", "1e400"],
)  # fmt: skip
def test_number_sniffing_reads_cells_as_pandas_does(cell):
    from forecaster.market.timestamps import _is_number_text

    expected = bool(pd.notna(pd.to_numeric(pd.Series([cell], dtype=object), errors="coerce").iloc[0]))
    assert _is_number_text(cell) == expected
