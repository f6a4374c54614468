"""Realized features: every column against a plain-Python loop over windows, exact warm-ups, and the estimators'
statistics on known data.

Known data: a driftless constant-volatility GBM simulated on a sub-grid of 16 steps a bar, whose highs and lows
are the exact extremes of a Brownian bridge within each step (a plain grid underestimates the range: −12% of
Parkinson's variance at 100 steps, −6% at 500). Independent bridge maxima and minima within one step are the
only approximation; at 1 step a bar it biases Parkinson by +2.7%, from 4 steps on it is below 0.1% (measured on
400,000 bars), a fifth or less of what the unbiasedness checks allow (3 standard errors: 0.5%–1.5%).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.base import Context, MarketData
from features.market import market_data
from features.pipeline import FeatureSpec, build_features, last_row
from features.realized import GROUP
from forecaster.market import load_bars
from forecaster.market.simulator import SimConfig, simulate

ALWAYS = ("rv", "ret", "rsp", "rsn", "parkinson", "gk", "rs")
FROM_TWO = ("bv", "jump", "rskew", "rkurt", "yz")
MINUTE = pd.Timedelta("1min")


def _frame(log_open: np.ndarray, log_high: np.ndarray, log_low: np.ndarray, log_close: np.ndarray) -> pd.DataFrame:
    """1-minute OHLCV bars from log prices, ending at 00:37, 00:38, … (windows cross hour anchors)."""
    index = pd.date_range("2026-01-05 00:37", periods=log_close.size, freq="1min", tz="UTC", name="timestamp")
    columns = {"open": log_open, "high": log_high, "low": log_low, "close": log_close}
    return pd.DataFrame({k: 100.0 * np.exp(v) for k, v in columns.items()} | {"volume": 1.0}, index=index)


def _compute(bars: pd.DataFrame, windows: tuple[int, ...], freq: pd.Timedelta = MINUTE) -> pd.DataFrame:
    return GROUP.compute(Context(MarketData(bars, freq)), windows, {})


# ---------------------------------------------------------------- reference: plain Python over each window


def _random_bars(n: int, seed: int, flat: tuple[int, int]) -> pd.DataFrame:
    """Random OHLC with overnight gaps and a constant-price stretch over bars ``flat[0]`` … ``flat[1] − 1``."""
    rng = np.random.default_rng(seed)
    gap, body = 0.002 * rng.standard_normal(n), 0.01 * rng.standard_normal(n)
    up, down = 0.004 * rng.exponential(size=n), 0.004 * rng.exponential(size=n)
    gap[flat[0] : flat[1]] = body[flat[0] : flat[1]] = up[flat[0] : flat[1]] = down[flat[0] : flat[1]] = 0.0
    log_open = np.cumsum(gap + np.r_[0.0, body[:-1]])
    log_close = log_open + body
    return _frame(log_open, np.maximum(log_open, log_close) + up, np.minimum(log_open, log_close) - down, log_close)


def _slow_window(bars: pd.DataFrame, t: int, w: int) -> dict[str, float]:
    """Every feature of the window of ``w`` bars ending at row ``t``, one bar at a time (NaN: an input missing)."""
    o, h, lo, c = (bars[k].tolist() for k in ("open", "high", "low", "close"))
    nan = math.nan
    days = range(t - w + 1, t + 1)
    if days.start < 0:
        return dict.fromkeys(ALWAYS + FROM_TWO, nan)
    r = [math.log(c[i] / c[i - 1]) if i >= 1 else nan for i in days]
    before = math.log(c[days.start - 1] / c[days.start - 2]) if days.start >= 2 else nan
    rv = math.fsum(x * x for x in r)
    out = {
        "rv": rv,
        "ret": math.fsum(r),
        "rsp": math.fsum(x * x if x > 0 else (nan if math.isnan(x) else 0.0) for x in r),
        "rsn": math.fsum(x * x if x < 0 else (nan if math.isnan(x) else 0.0) for x in r),
        "parkinson": math.fsum(math.log(h[i] / lo[i]) ** 2 / (4 * math.log(2)) for i in days),
        "gk": math.fsum(
            0.5 * math.log(h[i] / lo[i]) ** 2 - (2 * math.log(2) - 1) * math.log(c[i] / o[i]) ** 2 for i in days
        ),
        "rs": math.fsum(
            math.log(h[i] / c[i]) * math.log(h[i] / o[i]) + math.log(lo[i] / c[i]) * math.log(lo[i] / o[i])
            for i in days
        ),
    }
    previous = [before, *r[:-1]]
    out["bv"] = math.pi / 2 * math.fsum(abs(a) * abs(b) for a, b in zip(r, previous, strict=True))
    out["jump"] = max(rv - out["bv"], 0.0) if not math.isnan(out["bv"]) else nan
    flat = rv == 0
    out["rskew"] = 0.0 if flat else math.sqrt(w) * math.fsum(x**3 for x in r) / rv**1.5
    out["rkurt"] = 0.0 if flat else w * math.fsum(x**4 for x in r) / rv**2
    gaps = [math.log(o[i] / c[i - 1]) if i >= 1 else nan for i in days]
    bodies = [math.log(c[i] / o[i]) for i in days]
    if w >= 2 and not any(math.isnan(g) for g in gaps):
        k = 0.34 / (1.34 + (w + 1) / (w - 1))
        per_bar = statistics.variance(gaps) + k * statistics.variance(bodies) + (1 - k) * out["rs"] / w
        out["yz"] = w * per_bar
    else:
        out["yz"] = nan
    return out


REF_WINDOWS = (1, 2, 7, 45, 130)
REF_BARS = _random_bars(360, seed=3, flat=(150, 300))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for w in REF_WINDOWS:
        for t in range(len(REF_BARS)):
            for name, value in _slow_window(REF_BARS, t, w).items():
                out.setdefault(f"{name}_{w}", []).append(value)
    return {name: np.array(values) for name, values in out.items()}


def test_columns_are_the_documented_ones_in_order() -> None:
    data = MarketData(REF_BARS, MINUTE)
    names = list(GROUP.columns((1, 5), {}, data))
    expected = [f"{f}_{w}" for f in ("rv", "ret", "rsp", "rsn") for w in (1, 5)]
    expected += [f"{f}_5" for f in ("bv", "jump", "rskew", "rkurt")]
    expected += [f"{f}_{w}" for f in ("parkinson", "gk", "rs") for w in (1, 5)] + ["yz_5"]
    assert names == expected
    assert list(_compute(REF_BARS, (1, 5)).columns) == expected


def test_every_column_equals_the_plain_loop(reference: dict[str, np.ndarray]) -> None:
    got = _compute(REF_BARS, REF_WINDOWS)
    data = MarketData(REF_BARS, MINUTE)
    assert set(got.columns) == set(GROUP.columns(REF_WINDOWS, {}, data))
    for column in got.columns:
        ref, value = reference[column], got[column].to_numpy()
        assert np.array_equal(np.isnan(value), np.isnan(ref)), column
        # window sums are running-sum differences (measured: ≤ 1e-13 relative, 8e-13 for jump = rv − bv); a signed
        # sum near 0 needs the column's scale
        scale = np.nanmax(np.abs(ref))
        np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-13 * scale, err_msg=column)


def test_a_flat_stretch_gives_zero_variance_skew_and_kurtosis(reference: dict[str, np.ndarray]) -> None:
    got = _compute(REF_BARS, (45,))
    inside = slice(151 + 44, 300)  # windows of 45 returns that are all 0 (bars 151..299 close where they opened)
    for name in ("rv", "bv", "jump", "rskew", "rkurt", "parkinson", "gk", "rs", "yz", "ret"):
        np.testing.assert_array_equal(got[f"{name}_45"].to_numpy()[inside], 0.0, err_msg=name)
    assert not got.iloc[46:].isna().any().any()


# ---------------------------------------------------------------- warm-ups and identities on simulated bars


@pytest.fixture(scope="module")
def simulated() -> MarketData:
    sim = simulate(SimConfig(days=3, seed=1), with_trades=False, with_chain=False)
    return market_data(sim.bars, freq="1min")


def test_warmups_are_exact_and_nothing_is_nan_after_them(simulated: MarketData) -> None:
    spec = FeatureSpec(groups=("realized",), windows=(1, 5, 60, 1440))
    table = build_features(simulated, spec)
    assert table.names == list(table.warmup)
    for column in table.names:
        values = table.frame[column].to_numpy()
        rows = table.warmup[column]
        assert np.isnan(values[:rows]).all() and not np.isnan(values[rows:]).any(), column
    assert table.warmup["rv_60"] == 60 and table.warmup["bv_60"] == 61 and table.warmup["parkinson_60"] == 59
    assert table.warmup["parkinson_1"] == 0 and table.warmup["rv_1"] == 1
    served = last_row(simulated, spec)
    assert np.array_equal(served.to_numpy(), table.frame.iloc[-1].to_numpy())  # serving = batch, bit for bit


def test_semivariances_sum_to_rv_and_ret_is_the_window_log_return(simulated: MarketData) -> None:
    windows = (1, 60, 1440)
    got = GROUP.compute(Context(simulated), windows, {})
    close = np.log(simulated.bars["close"].to_numpy())
    for w in windows:
        rv, rsp, rsn = (got[f"{f}_{w}"].to_numpy()[w:] for f in ("rv", "rsp", "rsn"))
        assert (rsp >= 0).all() and (rsn >= 0).all()
        np.testing.assert_allclose(rsp + rsn, rv, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got[f"ret_{w}"].to_numpy()[w:], close[w:] - close[:-w], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- constant-volatility GBM


def _gbm_bars(
    n: int, var_bar: float, gap_var: float, seed: int, jumps: np.ndarray | None = None, steps: int = 16
) -> pd.DataFrame:
    """Driftless GBM bars: intraday variance ``var_bar``, an overnight gap of variance ``gap_var`` before each
    open, and ``jumps`` (n,) added to the log price at a random sub-step boundary of each bar.

    The same seed gives the same Brownian path whatever the jumps. Shapes: sub-grid (n, steps).
    """
    rng = np.random.default_rng(seed)
    dv = var_bar / steps
    inc = np.sqrt(dv) * rng.standard_normal((n, steps))
    hi_u, lo_u = rng.random((n, steps)), rng.random((n, steps))
    jump_step = rng.integers(1, steps, size=n)
    gap = np.sqrt(gap_var) * rng.standard_normal(n)
    shift = np.zeros((n, steps)) if jumps is None else jumps[:, None] * (np.arange(steps) >= jump_step[:, None])
    start = np.cumsum(inc, axis=1) - inc + shift  # level at each step's start, relative to the open (n, steps)
    # exact law of a Brownian bridge's maximum (minimum) over a step, given its increment
    high = (start + 0.5 * (inc + np.sqrt(inc**2 - 2 * dv * np.log1p(-hi_u)))).max(axis=1)
    low = (start + 0.5 * (inc - np.sqrt(inc**2 - 2 * dv * np.log1p(-lo_u)))).min(axis=1)
    body = start[:, -1] + inc[:, -1]
    log_open = np.cumsum(gap + np.r_[0.0, body[:-1]])
    return _frame(log_open, log_open + high, log_open + low, log_open + body)


def _disjoint(frame: pd.DataFrame, column: str, w: int) -> np.ndarray:
    """The column on non-overlapping windows of ``w`` bars (independent under iid bars)."""
    return frame[column].to_numpy()[w + 1 :: w]


GBM_VAR, GBM_W, GBM_N = 1e-4, 10, 100_000


@pytest.mark.parametrize("gap_share", [0.0, 0.25], ids=["24-7", "overnight-gaps"])
def test_variance_estimators_are_unbiased_under_constant_volatility(gap_share: float) -> None:
    gap_var = gap_share * GBM_VAR
    got = _compute(_gbm_bars(GBM_N, GBM_VAR, gap_var, seed=11), (GBM_W,))
    total, intraday = GBM_W * (GBM_VAR + gap_var), GBM_W * GBM_VAR
    # close-to-close and Yang-Zhang see the gap; the range estimators see the open-to-close part only
    truths = {"rv": total, "bv": total, "yz": total, "parkinson": intraday, "gk": intraday, "rs": intraday}
    for name, truth in truths.items():
        x = _disjoint(got, f"{name}_{GBM_W}", GBM_W)
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - truth) < 3 * se, (name, x.mean() / truth - 1, se / truth)


def test_bipower_variation_ignores_jumps_that_rv_and_jump_pick_up() -> None:
    n, w, sigma = GBM_N, GBM_W, np.sqrt(GBM_VAR)
    rng = np.random.default_rng(12)
    at = np.arange(50, n - 50, n // 20) + rng.integers(0, 20, size=20)  # 20 jumps, windows far apart
    size = 60 * sigma * rng.choice([-1.0, 1.0], size=at.size)
    jumps = np.zeros(n)
    jumps[at] = size
    plain = _compute(_gbm_bars(n, GBM_VAR, 0.0, seed=13), (w,))
    jumpy = _compute(_gbm_bars(n, GBM_VAR, 0.0, seed=13, jumps=jumps), (w,))
    rv_plain, bv_jumpy = _disjoint(plain, f"rv_{w}", w), _disjoint(jumpy, f"bv_{w}", w)
    # each jump J still leaks ≈ (π/2)|J| E(|r_{i-1}| + |r_{i+1}|) = √(2π)|J|σ into bv: +3.0% of the variance here
    leak = np.sum(np.sqrt(2 * np.pi) * np.abs(size) * sigma) / (n * GBM_VAR)
    ratio = bv_jumpy.mean() / rv_plain.mean()
    assert abs(ratio - 1) < 0.05 and abs(ratio - 1 - leak) < 0.01, (ratio, leak)
    rv, bv, jump = (jumpy[f"{f}_{w}"].to_numpy() for f in ("rv", "bv", "jump"))
    holding = at + w // 2  # a window that holds the jump bar
    assert (bv[holding] < rv[holding]).all()
    assert np.mean(bv[holding]) < 0.1 * np.mean(rv[holding])
    recovered = jump[holding].sum() / np.sum(size**2 - np.sqrt(2 * np.pi) * np.abs(size) * sigma)
    assert abs(recovered - 1) < 0.03
    clean = np.ones(n, dtype=bool)
    clean[: w + 1] = False
    clean[(at[:, None] + np.arange(w + 1)).ravel()] = False  # windows (and bipower pairs) that touch a jump
    # away from jumps jump_W is the positive part of rv − bv noise: ≈ 10% of the window's variance at W = 10
    assert np.mean(jump[clean]) < 0.15 * w * GBM_VAR


# ---------------------------------------------------------------- real daily data


def test_nasdaq_daily_has_no_nan_after_the_warmup(tmp_path: Path) -> None:
    import arch.data.nasdaq

    path = tmp_path / "nasdaq.csv"
    arch.data.nasdaq.load().to_csv(path)
    data = market_data(load_bars(path).data, freq="1D", annualization_days=252)
    table = build_features(data, FeatureSpec(groups=("realized",), windows=(1, 5, 22)))
    for column in table.names:
        values = table.frame[column].to_numpy()
        rows = table.warmup[column]
        assert np.isnan(values[:rows]).all() and not np.isnan(values[rows:]).any(), column
    frame = table.after_warmup()
    vol = np.sqrt(frame["rv_22"].mean() * 252 / 22)
    assert 0.15 < vol < 0.40, vol  # NASDAQ 1999-2018: about 25% a year
    # the range estimators miss the overnight gap (a quarter of rv here); Yang-Zhang adds it back
    mean = frame.mean()
    assert max(mean["parkinson_22"], mean["gk_22"], mean["rs_22"]) < mean["yz_22"]
