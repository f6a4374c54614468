"""The implied group against slow plain-Python loops (exact), closed forms, and on simulated and real daily data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.base import Context, MarketData
from features.implied import GROUP, iv_percentile, rows_per_day
from features.pipeline import FeatureSpec, build_features
from forecaster.errors import UsageError
from forecaster.market.simulator import SimConfig, simulate

START = pd.Timestamp("2024-01-01", tz="UTC")


# ---------------------------------------------------------------- slow references (plain Python, one row at a time)


def asof_loop(bar_times: list[pd.Timestamp], iv_times: list[pd.Timestamp], iv_values: list[float]) -> list[float]:
    """The last non-NaN IV value stamped at or before each bar (two pointers), NaN before the first."""
    out, j, last = [], 0, math.nan
    for t in bar_times:
        while j < len(iv_times) and iv_times[j] <= t:
            if not math.isnan(iv_values[j]):
                last = iv_values[j]
            j += 1
        out.append(last)
    return out


def change_loop(iv: list[float], w: int) -> list[float]:
    return [iv[t] - iv[t - w] if t >= w else math.nan for t in range(len(iv))]


def percentile_loop(iv: list[float], days: int, step: int) -> list[float]:
    out = []
    for t in range(len(iv)):
        if t < days * step:
            out.append(math.nan)
            continue
        past = [iv[t - k * step] for k in range(1, days + 1)]
        if math.isnan(iv[t]) or any(math.isnan(p) for p in past):
            out.append(math.nan)
            continue
        below = sum(1 for p in past if p < iv[t])
        equal = sum(1 for p in past if p == iv[t])
        out.append((below + 0.5 * equal) / days)
    return out


def vrp_loop(iv: list[float], close: list[float], w: int, bar_years: float) -> list[float]:
    out = []
    for t in range(len(close)):
        if t < w:
            out.append(math.nan)
            continue
        rv = 0.0
        for i in range(w):
            rv += math.log(close[t - i] / close[t - i - 1]) ** 2
        out.append(iv[t] ** 2 * w * bar_years - rv)
    return out


# ---------------------------------------------------------------- helpers


def random_bars(n: int, freq: str, seed: int, start: pd.Timestamp = START) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start + pd.Timedelta(freq), periods=n, freq=freq, name="timestamp")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)


def assert_warmup_exact(frame: pd.DataFrame, warmup: dict[str, int]) -> None:
    """The first ``warmup`` rows of each column are NaN, every later row is finite, and some later row exists."""
    for column, rows in warmup.items():
        values = frame[column].to_numpy()
        assert rows < len(values), column
        assert np.isnan(values[:rows]).all(), f"{column}: a value inside its warm-up of {rows} rows"
        assert np.isfinite(values[rows:]).all(), f"{column}: NaN after its warm-up of {rows} rows"


def compare_with_loops(data: MarketData, windows: tuple[int, ...], days: int) -> pd.DataFrame:
    """Build the group through the pipeline and check every column against the loops; returns the frame."""
    table = build_features(data, FeatureSpec(("implied",), windows, {"iv_percentile_days": days}))
    frame = table.frame
    iv = asof_loop(list(data.index), list(data.iv.index), data.iv.tolist())
    close = data.bars["close"].tolist()
    np.testing.assert_array_equal(frame["iv"].to_numpy(), iv)
    for w in windows:
        np.testing.assert_array_equal(frame[f"iv_chg_{w}"].to_numpy(), change_loop(iv, w))
        np.testing.assert_allclose(
            frame[f"vrp_{w}"].to_numpy(), vrp_loop(iv, close, w, data.bar_years), rtol=1e-12, atol=1e-17
        )
    step = rows_per_day(data.freq)
    np.testing.assert_array_equal(frame[f"iv_pct_{days}"].to_numpy(), percentile_loop(iv, days, step))
    assert_warmup_exact(frame, table.warmup)
    return frame


# ---------------------------------------------------------------- exact against the loops


@pytest.mark.parametrize("iv_delay_hours", [0, 10])
def test_columns_match_slow_loops_with_irregular_iv_that_may_start_late(iv_delay_hours):
    """Hourly bars; IV prints every ~37 minutes (off the bar grid), rounded so ties occur, with missing prints."""
    rng = np.random.default_rng(11)
    bars = random_bars(24 * 6, "1h", seed=3)
    offsets = np.cumsum(rng.integers(20, 55, size=260))  # minutes
    iv_times = pd.DatetimeIndex(START + pd.Timedelta(hours=iv_delay_hours) + pd.to_timedelta(offsets, unit="min"))
    iv_values = np.round(0.5 + 0.05 * rng.standard_normal(offsets.size), 2)  # 2 decimals: many ties
    iv_values[[5, 6, 40]] = np.nan  # missing prints: the as-of value carries over them
    iv = pd.Series(iv_values, index=iv_times, name="iv")
    data = MarketData(bars, pd.Timedelta("1h"), 365.0, iv=iv)
    frame = compare_with_loops(data, windows=(1, 3, 24), days=2)

    lead = int(np.searchsorted(bars.index, iv.dropna().index[0]))  # bars ending before the first IV print
    warmup = GROUP.columns((1, 3, 24), {"iv_percentile_days": 2}, data)
    assert warmup == {
        "iv": lead,
        "iv_chg_1": lead + 1,
        "iv_chg_3": lead + 3,
        "iv_chg_24": lead + 24,
        "iv_pct_2": lead + 2 * 24,
        "vrp_1": max(lead, 1),
        "vrp_3": max(lead, 3),
        "vrp_24": max(lead, 24),
    }
    assert lead == (0 if iv_delay_hours == 0 else iv_delay_hours)  # the first print after START+10h at 11:00
    assert frame["iv_pct_2"].isin([0.25, 0.75]).any()  # rows with exactly one tie: the loops saw ties


def test_an_iv_print_between_bars_reaches_the_next_bar_only():
    bars = random_bars(4, "1h", seed=1)  # bars end 01:00, 02:00, 03:00, 04:00
    iv = pd.Series([0.4, 0.7], index=pd.DatetimeIndex([START + pd.Timedelta("1h"), START + pd.Timedelta("2h30min")]))
    frame = GROUP.compute(Context(MarketData(bars, pd.Timedelta("1h"), iv=iv)), (1,), {"iv_percentile_days": 1})
    np.testing.assert_array_equal(frame["iv"].to_numpy(), [0.4, 0.4, 0.7, 0.7])
    np.testing.assert_array_equal(frame["iv_chg_1"].to_numpy(), [np.nan, 0.0, 0.7 - 0.4, 0.0])


# ---------------------------------------------------------------- percentile edge cases


def test_percentile_ties_take_half_weight_closed_form():
    # rows 0..4 of daily bars, D = 4: at row 4 the past is rows 3, 2, 1, 0 = 0.2, 0.2, 0.3, 0.2
    iv = np.array([0.2, 0.3, 0.2, 0.2, 0.2, 0.35, 0.1])
    out = iv_percentile(iv, days=4, step=1)
    np.testing.assert_array_equal(out[:4], np.nan)
    assert out[4] == (0 + 0.5 * 3) / 4  # three ties, none below
    assert out[5] == 1.0  # above all four
    assert out[6] == 0.0  # below all four
    np.testing.assert_array_equal(iv_percentile(np.full(30, 0.6), days=7, step=2)[14:], 0.5)  # flat: all ties


def test_percentile_compares_the_same_time_of_day_only():
    # 6-hour bars (4 a day): a value differing only at other times of day must not move the percentile
    step = rows_per_day(pd.Timedelta("6h"))
    assert step == 4
    iv = np.tile([0.5, 0.9, 0.1, 0.5], 3)  # three days, same value at each time of day every day
    out = iv_percentile(iv, days=2, step=step)
    np.testing.assert_array_equal(out[8:], 0.5)


@pytest.mark.parametrize("n_days", [29, 30, 31])
def test_fewer_than_d_days_of_history_stays_in_the_warm_up(n_days):
    """30-day percentile on hourly bars: defined from row 30·24 on; with ≤ 30 days of bars it is all NaN."""
    bars = random_bars(24 * n_days, "1h", seed=5)
    iv = pd.Series(0.3 + 0.01 * (np.arange(len(bars)) % 7), index=bars.index)
    data = MarketData(bars, pd.Timedelta("1h"), iv=iv)
    table = build_features(data, FeatureSpec(("implied",), (1,), {}))  # default iv_percentile_days = 30
    assert table.warmup["iv_pct_30"] == 30 * 24
    pct = table.frame["iv_pct_30"].to_numpy()
    assert np.isnan(pct[: 30 * 24]).all()
    assert np.isfinite(pct[30 * 24 :]).all() and pct[30 * 24 :].size == max(0, 24 * (n_days - 30))


def test_percentile_needs_a_bar_length_that_divides_a_day():
    bars = random_bars(10, "7min", seed=1)
    data = MarketData(bars, pd.Timedelta("7min"), iv=pd.Series(0.5, index=bars.index))
    with pytest.raises(UsageError, match=r"divides a day; got 0 days 00:07:00\. Fix: resample"):
        GROUP.columns((1,), {}, data)
    assert rows_per_day(pd.Timedelta("1D")) == 1 and rows_per_day(pd.Timedelta("7D")) == 1
    assert rows_per_day(pd.Timedelta("5min")) == 288


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "30"])
def test_bad_percentile_days_names_the_key_and_the_value(bad):
    bars = random_bars(10, "1D", seed=1)
    data = MarketData(bars, pd.Timedelta("1D"), iv=pd.Series(0.5, index=bars.index))
    with pytest.raises(
        UsageError, match=rf"features\.iv_percentile_days must be a whole number of days ≥ 1; got {bad!r}"
    ):
        GROUP.columns((1,), {"iv_percentile_days": bad}, data)


# ---------------------------------------------------------------- variance risk premium


def test_vrp_on_flat_prices_is_the_implied_variance_closed_form():
    bars = random_bars(40, "1D", seed=1).assign(close=123.0)
    data = MarketData(bars, pd.Timedelta("1D"), 365.0, iv=pd.Series(0.5, index=bars.index))
    frame = build_features(data, FeatureSpec(("implied",), (1, 5, 22), {"iv_percentile_days": 3})).frame
    for w in (1, 5, 22):
        np.testing.assert_array_equal(frame[f"vrp_{w}"].to_numpy()[w:], 0.25 * w / 365.0)


def test_vrp_mean_on_gbm_is_implied_minus_true_variance_within_3_se():
    """Log returns N(0, σ² dt), constant IV: E[vrp_W] = (IV² − σ²) W dt. Non-overlapping windows are iid."""
    sigma, iv_level, w, n = 0.2, 0.25, 5, 20_000
    dt = 1 / 252
    rng = np.random.default_rng(2024)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma * math.sqrt(dt), n)))
    index = pd.date_range("1960-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)
    data = MarketData(bars, pd.Timedelta("1D"), 252.0, iv=pd.Series(iv_level, index=index))
    vrp = build_features(data, FeatureSpec(("implied",), (w,), {"iv_percentile_days": 1})).frame[f"vrp_{w}"]
    samples = vrp.to_numpy()[w::w]  # windows (t−w, t] that do not overlap
    expected = (iv_level**2 - sigma**2) * w * dt
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    closed_se = math.sqrt(2 * w) * sigma**2 * dt / math.sqrt(samples.size)  # Var(rv_W) = 2 W σ⁴ dt²
    assert abs(samples.mean() - expected) < 3 * se, (samples.mean(), expected, se)
    assert se == pytest.approx(closed_se, rel=0.1)
    assert 3 * se < 0.1 * expected  # power: a 10% error in the implied or the realized term would show


# ---------------------------------------------------------------- no NaN after the warm-up on realistic inputs


@pytest.fixture(scope="module")
def simulated() -> MarketData:
    """35 days of 5-minute bars (the least history a 30-day percentile leaves rows for)."""
    sim = simulate(SimConfig(days=35, seed=2, freq="5min", horizons=(12,)), with_trades=False, with_chain=False)
    iv = sim.iv_index["dvol"] / 100.0  # the simulator writes DVOL-like percent
    return MarketData(sim.bars, pd.Timedelta("5min"), 365.0, iv=iv)


def test_simulated_market_has_no_nan_after_the_warm_up(simulated):
    windows = (12, 288, 2016)  # 1 hour, 1 day, 1 week
    table = build_features(simulated, FeatureSpec(("implied",), windows, {"iv_percentile_days": 30}))
    assert table.warmup == {
        "iv": 0,
        **{f"iv_chg_{w}": w for w in windows},
        "iv_pct_30": 30 * 288,
        **{f"vrp_{w}": w for w in windows},
    }
    assert_warmup_exact(table.frame, table.warmup)
    assert not table.after_warmup().isna().any().any() and len(table.after_warmup()) == 5 * 288
    pct = table.frame["iv_pct_30"].dropna()
    assert pct.between(0, 1).all() and 0.2 < pct.mean() < 0.8
    # implied above realized on average in the simulator (a variance risk premium of 12-30%)
    assert table.frame["vrp_2016"].mean() > 0


@pytest.fixture(scope="module")
def nasdaq_with_synthetic_iv() -> MarketData:
    """arch's NASDAQ daily bars (1999-2018) and a synthetic VIX-like index that starts a year later, stamped at
    00:00 of its day, with holes and missing prints."""
    arch_nasdaq = pytest.importorskip("arch.data.nasdaq")
    raw = arch_nasdaq.load()
    index = pd.DatetimeIndex(raw.index).tz_localize("UTC").as_unit("ns").rename("timestamp")
    bars = pd.DataFrame(
        {c: raw[c.capitalize()].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}, index=index
    )
    rng = np.random.default_rng(9)
    days = pd.date_range(pd.Timestamp("2000-01-01", tz="UTC"), index[-1], freq="1D")
    days = days[rng.random(days.size) < 0.8]  # an index printed on some calendar days only
    level = 0.2 * np.exp(np.cumsum(rng.normal(0, 0.05, days.size)) * 0.3)
    level[rng.random(days.size) < 0.01] = np.nan
    return MarketData(bars, pd.Timedelta("1D"), 252.0, iv=pd.Series(level, index=days, name="iv"))


def test_nasdaq_daily_with_a_late_synthetic_iv_matches_the_loops_and_has_no_nan_after_the_warm_up(
    nasdaq_with_synthetic_iv,
):
    data = nasdaq_with_synthetic_iv
    frame = compare_with_loops(data, windows=(1, 5, 22), days=30)  # also checks the warm-ups exactly
    lead = int(np.searchsorted(data.index, pd.Timestamp("2000-01-03", tz="UTC")))  # first trading day with an IV
    assert lead == 252  # the 252 trading days of 1999 have no IV
    table = build_features(data, FeatureSpec(("implied",), (1, 5, 22), {"iv_percentile_days": 30}))
    assert table.warmup["iv"] == lead and table.warmup["iv_pct_30"] == lead + 30 and table.warmup["vrp_22"] == lead
    assert not table.after_warmup().isna().any().any()
    assert len(frame) == len(data.index) == 5031
