"""``repair=True``: every change reported with counts equal to the rows broken; inputs never modified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import RepairAction, load_bars, load_iv_index, load_options_chain, load_trades


def _bars(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "open": open_.round(4),
            "high": (np.maximum(open_, close) * 1.01).round(4),
            "low": (np.minimum(open_, close) * 0.99).round(4),
            "close": close.round(4),
            "volume": rng.integers(1_000, 5_000, n).astype(float),
        }
    )


def _by_rule(repairs: tuple[RepairAction, ...]) -> dict[str, RepairAction]:
    return {r.rule: r for r in repairs}


def test_bars_repair_counts_match_the_injected_faults(tmp_path, untouched):
    good = _bars()
    bad = good.copy()
    bad.loc[[4, 8], "close"] = np.nan  # rows 5 and 9
    bad.loc[11, "open"] = 0.0  # row 12
    bad.loc[14, "high"] = bad.loc[14, "low"] - 1  # row 15: high < low
    bad.loc[[19, 20]] = bad.loc[[20, 19]].to_numpy()  # rows 20, 21 swapped: one row out of order
    extra = pd.concat([bad.loc[[24]]] * 3).assign(volume=[1.0, 2.0, 3.0])  # three more rows for 2024-01-25
    bad = pd.concat([bad.loc[:24], extra, bad.loc[25:]], ignore_index=True)
    path = tmp_path / "bars.csv"
    bad.to_csv(path, index=False)
    untouched(path)

    result = load_bars(path, repair=True)

    assert [(r.rule, r.count, r.rows_sample) for r in result.repairs] == [
        ("'open' must be a finite number in (0, inf)", 1, (12,)),
        ("'close' must be a finite number in (0, inf)", 2, (5, 9)),
        ("high must be ≥ max(open, close)", 1, (15,)),
        ("timestamps must be in increasing order", 1, (21,)),
        ("timestamps must be unique", 3, (25, 26, 27)),  # the last of the four, row 28, is kept
    ]
    assert [r.action for r in result.repairs] == ["dropped rows"] * 3 + [
        "sorted rows by timestamp (stable)",
        "dropped rows with a repeated timestamp, kept the last of each",
    ]
    data = result.data
    assert len(data) == len(bad) - 2 - 1 - 1 - 3
    assert data.index.is_monotonic_increasing and data.index.is_unique
    assert data.loc["2024-01-25", "volume"].item() == 3.0


def test_trades_repair(fixture_path, tmp_path, untouched):
    text = fixture_path("deribit_trades.csv").read_text()
    text = text.replace(",sell,93512.0,", ",SHORT,93512.0,").replace(",buy,93511.0,", ",?,93511.0,")
    lines = text.splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    path = tmp_path / "trades.csv"
    path.write_text("\n".join(lines) + "\n")
    untouched(path)
    result = load_trades(path, repair=True)
    repairs = _by_rule(result.repairs)
    assert repairs["'side' must be one of buy, sell, unknown (case-insensitive)"].rows_sample == (3, 8)
    assert repairs["timestamps must be in non-decreasing order"].count == 1
    assert len(result.data) == 16 and result.data.index.is_monotonic_increasing


def test_options_chain_repair_drops_expired_and_bad_iv(fixture_path, tmp_path, untouched):
    frame = pd.read_csv(fixture_path("deribit_options_chain.csv"))
    frame.loc[[2, 3, 9], "expiration"] = frame.loc[[2, 3, 9], "timestamp"] - 1
    frame.loc[5, "mark_iv"] = 0.0
    path = tmp_path / "chain.csv.gz"
    frame.to_csv(path, index=False, compression="gzip")
    untouched(path)
    result = load_options_chain(path, repair=True)
    assert [(r.count, r.rows_sample) for r in result.repairs] == [(1, (6,)), (3, (3, 4, 10))]
    assert len(result.data) == 20


def test_iv_index_repair(tmp_path, untouched):
    text = "date,vix\n2024-01-02,13.2\n2024-01-03,0\n2024-01-04,14.1\n2024-01-04,14.2\n2024-01-05,14.3\n"
    path = tmp_path / "vix.csv"
    path.write_text(text)
    untouched(path)
    result = load_iv_index(path, repair=True)
    assert [(r.count, r.rows_sample) for r in result.repairs] == [(1, (2,)), (1, (3,))]
    np.testing.assert_allclose(result.data.to_numpy(), [0.132, 0.142, 0.143])


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (
            "date,open,high,low,close,volume\n2024-01-02T00:00:00Z,1,1,1,1,1\n2024-01-03T00:00:00+02:00,1,1,1,1,1\n",
            "one time zone per file",
        ),
        ("date,open,high,low,close\n2024-01-02,1,1,1,1\n", "required column 'volume'"),
        ("date,open,high,low,close,volume\n2024-01-02,0,1,1,1,1\n", "at least one row must remain"),
    ],
    ids=["mixed-time-zones", "missing-column", "nothing-left"],
)
def test_what_repair_cannot_fix_still_raises(tmp_path, untouched, text, rule):
    path = tmp_path / "bars.csv"
    path.write_text(text)
    untouched(path)
    with pytest.raises(DataValidationError, match=rule):
        load_bars(path, repair=True)
