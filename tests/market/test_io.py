"""Reading tables: formats, column names and file-level problems (forecaster.market.io)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import load_bars
from forecaster.market.io import read_table


def test_csv_gz_and_parquet_load_the_same_bars(good_bars, write_file, tmp_path, untouched):
    csv = untouched(write_file("bars.csv", good_bars))
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    parquet = tmp_path / "bars.parquet"
    pd.read_csv(csv).to_parquet(parquet)
    expected = load_bars(csv).data
    for path in (untouched(gz), untouched(parquet)):
        pd.testing.assert_frame_equal(load_bars(path).data, expected)


def test_format_is_recognized_by_content_not_name(good_bars, tmp_path):
    hidden_gz = tmp_path / "bars.dat"
    hidden_gz.write_bytes(gzip.compress(good_bars.encode()))
    assert len(load_bars(hidden_gz).data) == 5


def test_parquet_with_a_timestamp_index_reads_it_as_a_column(good_bars, write_file, tmp_path):
    frame = pd.read_csv(write_file("bars.csv", good_bars), parse_dates=["timestamp"]).set_index("timestamp")
    frame.to_parquet(tmp_path / "bars.parquet")
    loaded = load_bars(tmp_path / "bars.parquet").data
    assert loaded.index.name == "timestamp" and len(loaded) == 5


def test_column_names_are_case_insensitive_stripped_and_aliased(write_file):
    text = " Date ,OPEN, High,low ,Close,Volume,Adj_Close\n2024-01-02,100,105,99,104,1000,52\n"
    result = load_bars(write_file("bars.csv", text))
    assert list(result.data.columns) == ["open", "high", "low", "close", "volume"]
    assert result.data["close"].iloc[0] == pytest.approx(52.0)


def test_table_index_is_the_one_based_data_row(good_bars, write_file):
    table = read_table(write_file("bars.csv", good_bars))
    assert list(table.frame.index) == [1, 2, 3, 4, 5]
    assert table.source.line_of(3) == 4


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "must not be empty"),
        ("timestamp,open,high,low,close,volume\n", "header only"),
        ("timestamp;open;high;low;close;volume\n2024-01-02;1;1;1;1;1\n", "delimiter looks wrong"),
        ("timestamp\topen\thigh\tlow\tclose\tvolume\n2024-01-02\t1\t1\t1\t1\t1\n", "delimiter looks wrong"),
        ("timestamp|open|high|low|close|volume\n2024-01-02|1|1|1|1|1\n", "pipes"),
        ("timestamp,Open,open,high,low,close,volume\n2024-01-02,1,1,1,1,1,1\n", "column names must be unique"),
        ("timestamp,date,open,high,low,close,volume\n2024-01-02,2024-01-02,1,1,1,1,1\n", "both mean"),
    ],
    ids=["empty", "header-only", "semicolon", "tab", "pipe", "duplicate-column", "two-timestamp-columns"],
)
def test_file_level_problems_name_file_and_rule(text, rule, write_file):
    path = write_file("bad.csv", text)
    with pytest.raises(DataValidationError, match=rule) as info:
        load_bars(path)
    assert info.value.file == str(path)


def test_ragged_line_names_its_row_and_line(good_bars, write_file):
    path = write_file("bars.csv", good_bars + "2024-01-09,1,2,3,4,5,6,7\n")
    with pytest.raises(DataValidationError, match="as many fields as the header") as info:
        load_bars(path)
    assert (info.value.row, info.value.line) == (6, 7)


def test_gzip_of_an_empty_file_is_empty(tmp_path):
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataValidationError, match="must not be empty"):
        load_bars(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        load_bars(tmp_path / "nope.csv")
    with pytest.raises(DataValidationError, match="is a folder"):
        load_bars(tmp_path)


def test_damaged_parquet(tmp_path):
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match="readable Parquet"):
        load_bars(path)


def test_messages_show_plain_values_not_numpy_reprs(good_bars, write_file):
    path = write_file("bars.csv", good_bars.replace("2024-01-04,102,103,98,99,900", "2024-01-04,102,103,98,-99,900"))
    with pytest.raises(DataValidationError) as info:
        load_bars(path)
    assert "np.float64" not in str(info.value) and "value -99" in str(info.value)
