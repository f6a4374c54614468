"""Volume features: equal to plain loops on hand-made bars (zero-volume stretches included), finite after the
warm-up, and warm-ups that are exactly the leading NaN rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.base import Context, MarketData
from features.market import market_data
from features.volume import GROUP
from forecaster.market.simulator import SimConfig, simulate

WINDOWS = (1, 3, 5)


def _bars(volume: list[float], seed: int = 3) -> pd.DataFrame:
    """1-minute bars from 23:41 UTC, so windows cross an hour and a day; closes a random walk."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(0.002 * rng.standard_normal(len(volume))))
    index = pd.date_range("2026-01-01 23:41", periods=len(volume), freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": volume}, index=index
    )


# 40 bars: ordinary volume, one empty bar, then eight empty bars (whole windows without volume), then volume again
VOLUME = [5.0, 2.5, 7.0, 1.0, 0.0, 3.0, 4.0, 6.0, 2.0, 9.0] + [0.0] * 8 + [float(v) for v in range(1, 23)]


def _slow(bars: pd.DataFrame, w: int) -> dict[str, list[float]]:
    """Each feature by its definition, one row at a time."""
    v = list(bars["volume"])
    c = list(bars["close"])
    r = [math.nan] + [math.log(c[i] / c[i - 1]) for i in range(1, len(c))]
    n = len(v)
    vol, dollars, amihud, chg = ([math.nan] * n for _ in range(4))
    for t in range(w - 1, n):
        vol[t] = sum(v[t - w + 1 : t + 1])
        dollars[t] = sum(c[i] * v[i] for i in range(t - w + 1, t + 1))
        if t >= w:  # the window holds no first bar, whose return is unknown
            abs_r = sum(abs(r[i]) for i in range(t - w + 1, t + 1))
            amihud[t] = abs_r / dollars[t] if dollars[t] > 0 else 0.0
        if t >= 2 * w - 1:
            before = vol[t - w]
            chg[t] = (vol[t] - before) / (vol[t] + before) if vol[t] + before > 0 else 0.0
    return {f"volume_{w}": vol, f"dollar_volume_{w}": dollars, f"amihud_{w}": amihud, f"volume_chg_{w}": chg}


def _compute(bars: pd.DataFrame, windows: tuple[int, ...] = WINDOWS) -> tuple[pd.DataFrame, dict[str, int]]:
    data = market_data(bars, freq="1min")
    return GROUP.compute(Context(data), windows, {}), GROUP.columns(windows, {}, data)


def _leading_nan(values: np.ndarray) -> int:
    return int(np.argmin(np.isnan(values))) if not np.isnan(values).all() else len(values)


def test_every_feature_equals_its_plain_loop() -> None:
    bars = _bars(VOLUME)
    got, warmup = _compute(bars)
    assert list(got.columns) == list(warmup)
    for w in WINDOWS:
        for column, ref in _slow(bars, w).items():
            values = got[column].to_numpy()
            assert np.array_equal(np.isnan(values), np.isnan(ref)), column
            np.testing.assert_allclose(values, ref, rtol=1e-12, atol=1e-15, err_msg=column)
            assert warmup[column] == _leading_nan(np.asarray(ref)), column


def test_windows_without_volume_are_zero_not_nan() -> None:
    got, warmup = _compute(_bars(VOLUME))
    quiet = got.index[17]  # the last of the eight empty bars: every window of 1, 3 or 5 bars ending here is empty
    for w in WINDOWS:
        assert got.at[quiet, f"volume_{w}"] == 0.0
        assert got.at[quiet, f"amihud_{w}"] == 0.0  # no volume to measure impact against: 0, documented
    assert got.at[quiet, "volume_chg_3"] == 0.0  # (0 − 0) / (0 + 0): both windows empty
    assert got.at[quiet, "volume_chg_5"] == -1.0  # from some volume to none
    assert np.isfinite(got.iloc[max(warmup.values()) :].to_numpy()).all()


def test_a_market_without_volume_gives_finite_constant_columns() -> None:
    """Indices such as the VIX carry volume 0: the group stays finite (constant zeros), so models can ignore it."""
    got, warmup = _compute(_bars([0.0] * 30))
    rows = got.iloc[max(warmup.values()) :]
    assert (rows.to_numpy() == 0.0).all()


def test_a_series_shorter_than_the_warmup_is_all_nan() -> None:
    got, warmup = _compute(_bars([1.0] * 7), windows=(5,))  # volume_5 defined from row 4, its change from row 9
    assert warmup["volume_chg_5"] > 7 and got["volume_chg_5"].isna().all()
    assert got["volume_5"].notna().sum() == 7 - warmup["volume_5"]


def test_constant_volume_closed_forms() -> None:
    bars = _bars([2.0] * 30)
    got, _ = _compute(bars)
    assert (got["volume_5"].dropna() == 10.0).all()
    np.testing.assert_allclose(got["volume_chg_5"].dropna(), 0.0, atol=0)
    close = bars["close"].to_numpy()
    t = 20  # amihud_1 is one bar's |r| / (close × volume)
    assert got["amihud_1"].iloc[t] == pytest.approx(
        abs(math.log(close[t] / close[t - 1])) / (2.0 * close[t]), rel=1e-14
    )


@pytest.fixture(scope="module")
def simulated() -> MarketData:
    sim = simulate(SimConfig(days=2, seed=1), with_trades=False, with_chain=False)
    return market_data(sim.bars, freq="1min")


def test_no_nan_after_the_warmup_on_the_simulated_market(simulated: MarketData) -> None:
    windows = (1, 60, 1440)
    got = GROUP.compute(Context(simulated), windows, {})
    for column, rows in GROUP.columns(windows, {}, simulated).items():
        values = got[column].to_numpy()
        assert _leading_nan(values) == rows, column
        assert np.isfinite(values[rows:]).all(), column
    assert (got["amihud_60"].iloc[60:] > 0).all()  # the simulated market always trades and always moves
