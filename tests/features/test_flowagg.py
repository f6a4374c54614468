"""Trades to bars: equal to a plain loop over trades and bars, on hand-made edges and on the simulated market."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.flowagg import AGGREGATE_COLUMNS, aggregate_trades
from forecaster.errors import UsageError
from forecaster.market import load_trades
from forecaster.market.simulator import SimConfig, simulate

MINUTE = pd.Timedelta("1min")
T0 = pd.Timestamp("2026-01-01 00:00", tz="UTC")


def _trades(times: list[pd.Timestamp], sides: list[str], prices: list[float], amounts: list[float]) -> pd.DataFrame:
    """Trades in the loaders' form: indexed by UTC time, categorical side."""
    return pd.DataFrame(
        {
            "side": pd.Categorical(sides, categories=["buy", "sell", "unknown"]),
            "price": np.asarray(prices, dtype=float),
            "amount": np.asarray(amounts, dtype=float),
        },
        index=pd.DatetimeIndex(times, name="timestamp"),
    )


def _slow_aggregate(trades: pd.DataFrame, ends: pd.DatetimeIndex, freq: pd.Timedelta) -> dict[str, list[float]]:
    """One trade at a time, one bar at a time: a trade belongs to the bar with end − freq < time ≤ end."""
    out: dict[str, list[float]] = {c: [0.0] * len(ends) for c in AGGREGATE_COLUMNS}
    bounds = [(int(e.value) - int(freq.value), int(e.value)) for e in ends]  # integer ns
    for when, side, price, amount in zip(trades.index, trades["side"], trades["price"], trades["amount"], strict=True):
        s = int(when.value)
        for k, (opening, end) in enumerate(bounds):
            if opening < s <= end:
                out[f"{side}_volume"][k] += amount
                out["n_trades"][k] += 1
                out["notional"][k] += price * amount
                if side != "unknown":
                    out[f"{side}_count"][k] += 1
                break
    return out


def _assert_matches(got: pd.DataFrame, ref: dict[str, list[float]]) -> None:
    assert list(got.columns) == list(AGGREGATE_COLUMNS)
    for column in AGGREGATE_COLUMNS:
        np.testing.assert_allclose(got[column].to_numpy(dtype=float), ref[column], rtol=1e-12, atol=0, err_msg=column)
    for column in ("n_trades", "buy_count", "sell_count"):
        assert got[column].dtype == np.int64


def test_hand_made_edges_bar_ends_gaps_and_empty_bars() -> None:
    ends = pd.DatetimeIndex([T0 + MINUTE * k for k in (1, 2, 3, 5)])  # the bar ending 00:04 is missing
    us = pd.Timedelta(microseconds=1)
    trades = _trades(
        [
            T0,  # at the first bar's opening: no bar covers it
            T0 + pd.Timedelta(seconds=30),
            T0 + MINUTE,  # exactly at a bar end: that bar
            T0 + MINUTE + us,  # just after: the next bar
            T0 + pd.Timedelta(seconds=90),
            T0 + pd.Timedelta(seconds=210),  # inside the missing bar (00:03, 00:04]: dropped
            T0 + 4 * MINUTE,  # the missing bar's end: dropped
            T0 + 4 * MINUTE + us,  # the bar ending 00:05
            T0 + 5 * MINUTE + us,  # after the last bar end: dropped
        ],
        ["buy", "buy", "sell", "buy", "unknown", "buy", "sell", "sell", "buy"],
        [100, 100, 101, 102, 103, 99, 98, 98, 97],
        [1.0, 2.0, 3.0, 0.5, 4.0, 7.0, 1.5, 2.5, 9.0],
    )
    got = aggregate_trades(trades, ends, MINUTE)
    expected = pd.DataFrame(
        {
            "buy_volume": [2.0, 0.5, 0.0, 0.0],
            "sell_volume": [3.0, 0.0, 0.0, 2.5],
            "unknown_volume": [0.0, 4.0, 0.0, 0.0],
            "n_trades": [2, 2, 0, 1],
            "notional": [100 * 2.0 + 101 * 3.0, 102 * 0.5 + 103 * 4.0, 0.0, 98 * 2.5],
            "buy_count": [1, 1, 0, 0],
            "sell_count": [1, 0, 0, 1],
        },
        index=ends,
    )
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-15)
    _assert_matches(got, _slow_aggregate(trades, ends, MINUTE))


def test_random_trades_in_any_order_with_nanosecond_times_match_the_loop() -> None:
    rng = np.random.default_rng(7)
    ends = pd.DatetimeIndex([T0 + MINUTE * k for k in range(1, 121) if k % 17])  # every 17th bar missing
    end_ns = ends.as_unit("ns").asi8
    m = 3_000
    at_edges = rng.choice(end_ns, m) + rng.choice([-1_000, -1, 0, 1, 1_000], m)  # ns and µs around bar ends
    anywhere = rng.integers(T0.value - 2 * 60 * 10**9, end_ns[-1] + 2 * 60 * 10**9, m)
    times = np.where(rng.random(m) < 0.3, at_edges, anywhere)  # unsorted on purpose
    trades = _trades(
        list(pd.to_datetime(times, unit="ns", utc=True)),
        list(rng.choice(["buy", "sell", "unknown"], m, p=[0.45, 0.45, 0.1])),
        list(100 + rng.standard_normal(m)),
        list(rng.exponential(0.2, m)),
    )
    assert trades.index.unit == "ns"
    got = aggregate_trades(trades, ends, MINUTE)
    ref = _slow_aggregate(trades, ends, MINUTE)
    _assert_matches(got, ref)
    assert 0 < got["n_trades"].sum() < m  # some trades fell outside every bar
    assert np.isin(times, end_ns).sum() > 100 and np.isin(times, end_ns + 1).sum() > 100  # the edges were drawn


def test_integer_microsecond_column_and_string_sides_give_the_same_bars() -> None:
    ends = pd.DatetimeIndex([T0 + MINUTE * k for k in range(1, 4)])
    times = [T0 + pd.Timedelta(seconds=s) for s in (5, 60, 61, 125, 179)]
    indexed = _trades(times, ["buy", "sell", "unknown", "buy", "sell"], [1, 2, 3, 4, 5], [1, 1, 2, 3, 5])
    raw = pd.DataFrame(
        {
            "timestamp": [t.value // 1_000 for t in times],  # Tardis: epoch µs
            "side": ["BUY", "Sell", "unknown", "buy", "sell"],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0],
            "amount": [1.0, 1.0, 2.0, 3.0, 5.0],
        }
    )
    pd.testing.assert_frame_equal(aggregate_trades(raw, ends, MINUTE), aggregate_trades(indexed, ends, MINUTE))


def test_bad_inputs_say_what_and_how_to_fix() -> None:
    ends = pd.DatetimeIndex([T0 + MINUTE])
    good = _trades([T0 + pd.Timedelta(seconds=1)], ["buy"], [1.0], [1.0])
    with pytest.raises(UsageError, match=r"row 0 \(0-based\): value 'hold' is not one of buy, sell, unknown"):
        aggregate_trades(good.assign(side=["hold"]), ends, MINUTE)
    with pytest.raises(UsageError, match="missing: amount"):
        aggregate_trades(good.drop(columns="amount"), ends, MINUTE)
    with pytest.raises(UsageError, match="tz-aware"):
        aggregate_trades(good.tz_localize(None), ends, MINUTE)
    with pytest.raises(UsageError, match="'timestamp' column"):
        aggregate_trades(good.reset_index(drop=True), ends, MINUTE)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two simulated days: bars, the raw trades (µs column) and the trades read back by the loader."""
    out: Path = tmp_path_factory.mktemp("sim")
    sim = simulate(SimConfig(days=2, seed=1), out_dir=out, with_chain=False, keep_trades=True)
    return sim.bars, sim.trades, load_trades(sim.files["trades"]).data


def test_aggregated_volume_is_the_simulated_bar_volume(simulated: tuple[pd.DataFrame, ...]) -> None:
    bars, raw, loaded = simulated
    agg = aggregate_trades(loaded, bars.index, MINUTE)
    total = agg["buy_volume"] + agg["sell_volume"] + agg["unknown_volume"]
    np.testing.assert_allclose(total.to_numpy(), bars["volume"].to_numpy(), rtol=1e-12, atol=0)
    assert agg["n_trades"].sum() == len(loaded) == len(raw)  # every simulated trade lies inside its bar
    assert (agg["buy_count"] + agg["sell_count"] == agg["n_trades"]).all()  # the simulator signs every trade
    assert ((agg["notional"] / total).between(bars["low"], bars["high"])).all()  # VWAP inside the bar's range
    pd.testing.assert_frame_equal(aggregate_trades(raw, bars.index, MINUTE), agg, check_exact=True)


def test_throughput_is_printed() -> None:
    """Two million trades on a week of 1-minute bars; the rate is printed (the feature bench holds the target)."""
    rng = np.random.default_rng(0)
    n_bars, m = 7 * 1440, 2_000_000
    ends = pd.date_range(T0 + MINUTE, periods=n_bars, freq="1min", unit="us")
    times = np.sort(rng.integers(T0.value // 1_000 + 1, ends[-1].value // 1_000 + 1, m))
    trades = pd.DataFrame(
        {
            "side": pd.Categorical.from_codes(rng.integers(0, 3, m).astype(np.int8), ["buy", "sell", "unknown"]),
            "price": 100 + rng.standard_normal(m),
            "amount": rng.exponential(0.1, m),
        },
        index=pd.DatetimeIndex(pd.to_datetime(times, unit="us", utc=True), name="timestamp"),
    )
    started = time.perf_counter()
    agg = aggregate_trades(trades, ends, MINUTE)
    elapsed = time.perf_counter() - started
    print(f"aggregate_trades: {m / elapsed / 1e6:.1f}M trades/s ({m:,} trades in {elapsed:.3f} s)")
    assert agg["n_trades"].sum() == m
    np.testing.assert_allclose(agg["buy_volume"].sum(), trades["amount"][trades["side"] == "buy"].sum(), rtol=1e-9)
