"""Order-flow features: equal to plain loops on hand-made trades (quiet stretches, unknown sides, trades at bar
ends), deterministic in windows without trades, finite after the warm-up, and tracking the simulator's stress."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.base import Context, MarketData
from features.flow import FEATURES, GROUP
from features.market import market_data
from features.pipeline import FeatureSpec, build_features, last_row, recent_start, resolve
from forecaster.market import load_trades
from forecaster.market.simulator import SimConfig, simulate

WINDOWS = (1, 3, 5)
BAR = pd.Timedelta("2min")
N_BARS = 45
UNKNOWN_ONLY = range(12, 15)  # bars whose trades are all unknown-side
QUIET = range(20, 35)  # bars without any trade: two whole windows of 5 in a row


def _hand_made() -> tuple[MarketData, list[list[tuple[str, float]]]]:
    """2-minute bars from 23:42 UTC (windows cross an hour and a day) and 0-6 trades per bar, some exactly at the
    bar end. Returns the market and, per bar, its trades as (side, amount): the bar each trade was drawn for."""
    rng = np.random.default_rng(11)
    index = pd.date_range("2026-01-01 23:42", periods=N_BARS, freq=BAR, tz="UTC", name="timestamp")
    per_bar: list[list[tuple[str, float]]] = []
    times: list[pd.Timestamp] = []
    for k, end in enumerate(index):
        count = 0 if k in QUIET else int(rng.integers(0, 7))
        sides = ["unknown"] * count if k in UNKNOWN_ONLY else list(rng.choice(["buy", "sell", "unknown"], count))
        amounts = [round(float(a), 4) + 0.0001 for a in rng.exponential(0.3, count)]
        offsets = sorted(int(rng.integers(0, 120_000_000)) for _ in range(count))  # µs before the end
        if count and k % 4 == 0:
            offsets[0] = 0  # a trade exactly at the bar end belongs to this bar
        times += [end - pd.Timedelta(microseconds=o) for o in reversed(offsets)]
        per_bar.append(list(zip(sides, amounts, strict=True)))
    flat = [trade for bar in per_bar for trade in bar]
    trades = pd.DataFrame(
        {
            "side": pd.Categorical([s for s, _ in flat], categories=["buy", "sell", "unknown"]),
            "price": 100.0,
            "amount": [a for _, a in flat],
        },
        index=pd.DatetimeIndex(times, name="timestamp"),
    )
    close = np.full(N_BARS, 100.0)
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 0.0}, index=index)
    return market_data(bars, freq=BAR, trades=trades), per_bar


def _slow(per_bar: list[list[tuple[str, float]]], w: int, bar_minutes: float) -> dict[str, list[float]]:
    """Each feature by its definition, one row and one trade at a time."""
    n = len(per_bar)
    buy = [sum(a for s, a in bar if s == "buy") for bar in per_bar]
    sell = [sum(a for s, a in bar if s == "sell") for bar in per_bar]
    unknown = [sum(a for s, a in bar if s == "unknown") for bar in per_bar]
    count = [len(bar) for bar in per_bar]
    out = {f"{f}_{w}": [math.nan] * n for f in FEATURES}
    for t in range(w - 1, n):
        rows = range(t - w + 1, t + 1)
        b, s, u = sum(buy[i] for i in rows), sum(sell[i] for i in rows), sum(unknown[i] for i in rows)
        trades = sum(count[i] for i in rows)
        churn = sum(abs(buy[i] - sell[i]) for i in rows)
        out[f"imbalance_{w}"][t] = (b - s) / (b + s) if b + s > 0 else 0.0
        out[f"trades_{w}"][t] = float(trades)
        out[f"intensity_{w}"][t] = trades / (w * bar_minutes)
        out[f"avg_size_{w}"][t] = (b + s + u) / trades if trades else 0.0
        out[f"vpin_{w}"][t] = churn / (b + s) if b + s > 0 else 0.0
    for t in range(2 * w - 1, n):
        out[f"imbalance_chg_{w}"][t] = out[f"imbalance_{w}"][t] - out[f"imbalance_{w}"][t - w]
        now, before = out[f"trades_{w}"][t], out[f"trades_{w}"][t - w]
        out[f"intensity_chg_{w}"][t] = (now - before) / (now + before) if now + before > 0 else 0.0
    return out


def _leading_nan(values: np.ndarray) -> int:
    return int(np.argmin(np.isnan(values))) if not np.isnan(values).all() else len(values)


@pytest.fixture(scope="module")
def hand_made() -> tuple[MarketData, list[list[tuple[str, float]]], pd.DataFrame]:
    data, per_bar = _hand_made()
    return data, per_bar, GROUP.compute(Context(data), WINDOWS, {})


def test_every_feature_equals_its_plain_loop(hand_made: tuple[MarketData, list, pd.DataFrame]) -> None:
    data, per_bar, got = hand_made
    warmup = GROUP.columns(WINDOWS, {}, data)
    assert list(got.columns) == list(warmup) and len(warmup) == len(FEATURES) * len(WINDOWS)
    assert sum(len(bar) for bar in per_bar) == len(data.trades) > 60
    for w in WINDOWS:
        for column, ref in _slow(per_bar, w, bar_minutes=2.0).items():
            values = got[column].to_numpy()
            assert np.array_equal(np.isnan(values), np.isnan(ref)), column
            np.testing.assert_allclose(values, ref, rtol=1e-12, atol=1e-15, err_msg=column)
            assert warmup[column] == _leading_nan(np.asarray(ref)), column


def test_windows_without_trades_are_quiet_not_missing(hand_made: tuple[MarketData, list, pd.DataFrame]) -> None:
    data, _, got = hand_made
    last_quiet = got.index[QUIET[-1]]  # the windows of 5 ending here and 5 bars earlier are both empty
    for feature in FEATURES:
        assert got.at[last_quiet, f"{feature}_5"] == 0.0, feature
    only_unknown = got.index[UNKNOWN_ONLY[-1]]  # trades, but none signed: no imbalance, no VPIN, a real size
    assert got.at[only_unknown, "imbalance_3"] == got.at[only_unknown, "vpin_3"] == 0.0
    assert got.at[only_unknown, "trades_3"] > 0 and got.at[only_unknown, "avg_size_3"] > 0
    rows = got.iloc[max(GROUP.columns(WINDOWS, {}, data).values()) :]
    assert np.isfinite(rows.to_numpy()).all()


def test_the_group_is_skipped_without_trades(hand_made: tuple[MarketData, list, pd.DataFrame]) -> None:
    data, _, _ = hand_made
    no_trades = market_data(data.bars, freq=BAR)
    run, skipped = resolve(FeatureSpec(groups=("volume", "flow"), windows=WINDOWS), no_trades)
    assert list(run) == ["volume"] and skipped == {"flow": "no trades input"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketData, pd.DataFrame]:
    """Four simulated days, trades read back by the loader (UTC-indexed, as the CLI passes them), and the truth."""
    sim = simulate(SimConfig(days=4, seed=1), out_dir=tmp_path_factory.mktemp("sim"), with_chain=False)
    trades = load_trades(sim.files["trades"]).data
    return market_data(sim.bars, freq="1min", trades=trades), sim.truth


def test_no_nan_after_the_warmup_on_the_simulated_market(simulated: tuple[MarketData, pd.DataFrame]) -> None:
    data, _ = simulated
    windows = (5, 60, 1440)
    got = GROUP.compute(Context(data), windows, {})
    for column, rows in GROUP.columns(windows, {}, data).items():
        values = got[column].to_numpy()
        assert _leading_nan(values) == rows, column
        assert np.isfinite(values[rows:]).all(), column
    assert got["vpin_60"].dropna().between(0, 1).all() and got["imbalance_60"].dropna().between(-1, 1).all()
    day = got["trades_1440"].iloc[1439]  # the first whole day
    assert day == (data.trades.index <= data.index[1439]).sum()


def test_imbalance_tracks_the_stress_that_precedes_switches(simulated: tuple[MarketData, pd.DataFrame]) -> None:
    """The simulator shifts the buy share down as its latent stress builds before a regime switch."""
    data, truth = simulated
    got = GROUP.compute(Context(data), (60,), {})
    ok = ~got["imbalance_60"].isna()
    stress = truth["stress"].to_numpy()[ok]
    assert stress.std() > 0
    assert np.corrcoef(got["imbalance_60"][ok], stress)[0, 1] < -0.1


def test_serving_a_recent_window_reproduces_the_batch_rows(simulated: tuple[MarketData, pd.DataFrame]) -> None:
    """The serving path cuts bars and trades at a calendar anchor; each bar's trades are still exactly its own."""
    data, _ = simulated
    spec = FeatureSpec(groups=("volume", "flow"), windows=(5, 60, 1440))
    table = build_features(data, spec)
    rng = np.random.default_rng(4)
    for t in data.index[np.sort(rng.choice(np.arange(4_400, len(data.index)), size=8, replace=False))]:
        history = data.until(t)
        start = recent_start(history, spec, table.warmup)
        assert start > data.index[0]  # a real cut, with trades before it that must not leak in
        served = last_row(history.tail_from(start), spec)
        assert np.array_equal(served.to_numpy(), table.frame.loc[t].to_numpy()), f"differs at {t}"
