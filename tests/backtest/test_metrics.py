"""Backtest metrics against hand computations, closed forms, plain loops and scipy/numpy references."""

from __future__ import annotations

import itertools
import math
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from forecaster.backtest.metrics import (
    POLICY_METRIC_KEYS,
    MetricNote,
    daily_pnl,
    daily_requirement,
    expected_shortfall,
    kupiec_pof,
    margin_exceedances,
    margin_model_report,
    matched_cost_comparison,
    matched_point,
    pareto_front,
    policy_metrics,
    procyclicality,
    traffic_light,
    value_at_cost,
)
from forecaster.errors import UsageError

UTC = "UTC"


# ---------------------------------------------------------------- slow references


def es_by_quantile_integral(x: np.ndarray, a: float) -> float:
    """−(1/a) ∫_0^a q(u) du with q the empirical quantile function q(u) = x_(⌈n u⌉), integrated numerically."""
    xs = np.sort(x)
    n = xs.size

    def q(u: float) -> float:
        return float(xs[min(max(math.ceil(n * u), 1), n) - 1])

    edges = [j / n for j in range(1, n) if j / n < a * (1.0 - 1e-12)]  # no sliver interval at a = j/n
    bounds = [0.0, *edges, a]
    total = sum(integrate.quad(q, lo, hi)[0] for lo, hi in itertools.pairwise(bounds) if hi > lo)
    return -total / a


def day_loop(t: pd.Timestamp) -> pd.Timestamp:
    """The UTC day of a bar ending at t, interval (t − Δ, t]: midnight belongs to the day before."""
    u = t.tz_convert(UTC)
    day = pd.Timestamp(u.date(), tz=UTC)
    return day - pd.Timedelta(days=1) if u == day else day


def dominated_brute(cost: np.ndarray, risk: np.ndarray) -> np.ndarray:
    n = cost.size
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            weakly = cost[j] <= cost[i] and risk[j] <= risk[i]
            strictly = cost[j] < cost[i] or risk[j] < risk[i]
            if weakly and strictly:
                out[i] = True
    return out


# ---------------------------------------------------------------- expected shortfall

SAMPLE = np.array([-10.0, -4.0, 2.0, 5.0, 7.0, 1.0, -1.0, 3.0, 0.0, 6.0])  # sorted: -10, -4, -1, 0, 1, 2, ...


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0.9, 10.0),  # n·a = 1: the worst outcome
        (0.8, 7.0),  # n·a = 2: mean of -10 and -4
        (0.75, 14.5 / 2.5),  # n·a = 2.5: (10 + 4 + 0.5·1) / 2.5
        (0.95, 10.0),  # n·a = 0.5, ⌊n·a⌋ = 0: 0.5·10 / 0.5
        (0.65, (10 + 4 + 1 + 0.5 * 0) / 3.5),  # n·a = 3.5
        (0.5, (10 + 4 + 1 + 0 - 1) / 5.0),  # the tail includes gains
    ],
)
def test_expected_shortfall_hand_computed(level: float, expected: float) -> None:
    assert expected_shortfall(SAMPLE, level) == pytest.approx(expected, rel=1e-12)
    assert expected_shortfall(pd.Series(SAMPLE[::-1]), level) == pytest.approx(expected, rel=1e-12)


def test_expected_shortfall_single_value_and_all_gains() -> None:
    assert expected_shortfall([3.5], 0.99) == pytest.approx(-3.5)
    assert expected_shortfall([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(-1.5)


@pytest.mark.parametrize(("n", "level", "seed"), [(7, 0.95, 0), (40, 0.95, 1), (33, 0.9, 2), (120, 0.99, 3)])
def test_expected_shortfall_equals_quantile_integral(n: int, level: float, seed: int) -> None:
    x = np.random.default_rng(seed).standard_t(4, size=n)
    assert expected_shortfall(x, level) == pytest.approx(es_by_quantile_integral(x, 1.0 - level), rel=1e-9, abs=1e-12)


def test_expected_shortfall_normal_closed_form() -> None:
    mu, sigma, a, n = 0.3, 2.0, 0.05, 400_000
    x = np.random.default_rng(11).normal(mu, sigma, n)
    z = stats.norm.ppf(a)
    lam = stats.norm.pdf(z) / a
    closed = sigma * lam - mu
    # asymptotic standard error of the ES estimator: tail variance plus the quantile's contribution
    tail_var = sigma**2 * (1.0 - z * lam - lam**2)
    q, tail_mean = mu + sigma * z, mu - sigma * lam
    se = math.sqrt((tail_var + (1.0 - a) * (q - tail_mean) ** 2) / (n * a))
    assert abs(expected_shortfall(x, 1.0 - a) - closed) < 4.0 * se


@pytest.mark.parametrize(
    ("pnl", "level", "match"),
    [
        ([], 0.95, "pnl is empty"),
        ([1.0, np.nan, 2.0], 0.95, r"pnl has 1 non-finite value\(s\), the first at position 1"),
        ([1.0, np.inf], 0.95, "non-finite"),
        ([[1.0, 2.0]], 0.95, r"pnl must be 1-d.*shape \(1, 2\)"),
        ([1.0, 2.0], 1.0, "level must be a number strictly between 0 and 1.*got 1.0"),
        ([1.0, 2.0], 0.0, "level must be"),
        ([1.0, 2.0], True, "level must be"),
        (["a", "b"], 0.95, "pnl must be numbers"),
    ],
)
def test_expected_shortfall_errors(pnl: object, level: float, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        expected_shortfall(pnl, level)  # type: ignore[arg-type]


# ---------------------------------------------------------------- daily P&L


def test_daily_pnl_bar_at_midnight_belongs_to_previous_day() -> None:
    idx = pd.DatetimeIndex(["2024-03-01 23:00", "2024-03-02 00:00", "2024-03-02 00:01", "2024-03-02 12:00"], tz=UTC)
    out = daily_pnl(pd.Series([1.0, 2.0, 4.0, 8.0], index=idx))
    expected = pd.Series(
        [3.0, 12.0], index=pd.DatetimeIndex(["2024-03-01", "2024-03-02"], tz=UTC, name="day"), name="daily_pnl"
    )
    pd.testing.assert_series_equal(out, expected, check_index_type=False, check_freq=False)
    assert out.index.tz is not None and str(out.index.tz) == UTC


def test_daily_pnl_equals_plain_loop_in_another_zone() -> None:
    rng = np.random.default_rng(5)
    idx = pd.date_range("2024-01-01 00:07", periods=1500, freq="7min", tz="Asia/Tokyo")  # UTC days differ from Tokyo
    values = rng.normal(size=idx.size)
    sums: dict[pd.Timestamp, float] = {}
    for t, v in zip(idx, values, strict=True):
        day = day_loop(t)
        sums[day] = sums.get(day, 0.0) + float(v)
    out = daily_pnl(pd.Series(values, index=idx))
    assert list(out.index) == sorted(sums)
    np.testing.assert_allclose(out.to_numpy(), [sums[d] for d in sorted(sums)], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(daily_pnl(pd.Series(values, index=idx), bar_length="7min"), out)


def test_daily_pnl_skips_days_without_bars_and_keeps_single_bar() -> None:
    idx = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-04 10:00"], tz=UTC)
    out = daily_pnl(pd.Series([1.0, 2.0], index=idx), bar_length="1h")  # inferred, Δ would be 3 days: refused
    assert list(out.index.day) == [1, 4]
    one = daily_pnl(pd.Series([5.0], index=pd.DatetimeIndex(["2024-01-02 00:00"], tz=UTC)))
    assert one.index[0] == pd.Timestamp("2024-01-01", tz=UTC) and one.iloc[0] == 5.0


@pytest.mark.parametrize(
    ("index", "bar_length", "match"),
    [
        (pd.DatetimeIndex(["2024-01-01", "2024-01-03"]), None, "tz-naive"),
        (pd.RangeIndex(2), None, r"tz-aware DatetimeIndex\); got RangeIndex"),
        (pd.DatetimeIndex(["2024-01-01", "2024-01-01"], tz=UTC), None, "duplicate timestamps"),
        (pd.DatetimeIndex(["2024-01-02", "2024-01-01"], tz=UTC), None, "not increasing"),
        (pd.DatetimeIndex(["2024-01-01", "2024-01-03"], tz=UTC), None, "longer than one day"),
        (pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:01"], tz=UTC), "5min", "closer than bar_length"),
        (pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:01"], tz=UTC), "-1min", "positive duration"),
        (pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:01"], tz=UTC), "soon", "bar_length must be a duration"),
    ],
)
def test_daily_pnl_errors(index: pd.Index, bar_length: str | None, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        daily_pnl(pd.Series([1.0, 2.0], index=index), bar_length=bar_length)


def test_daily_pnl_non_finite_and_not_series() -> None:
    idx = pd.date_range("2024-01-01", periods=2, freq="h", tz=UTC)
    with pytest.raises(UsageError, match="pnl has 1 non-finite"):
        daily_pnl(pd.Series([1.0, np.nan], index=idx))
    with pytest.raises(UsageError, match=r"pnl must be a pandas Series.*got ndarray"):
        daily_pnl(np.ones(2))  # type: ignore[arg-type]


# ---------------------------------------------------------------- policy metrics


def hand_record() -> pd.DataFrame:
    # 6-hour bars ending 06, 12, 18, 00 → day 1 has four bars, day 2 four, day 3 one
    times = pd.date_range("2024-01-01 06:00", periods=9, freq="6h", tz=UTC)
    inf = math.inf
    return pd.DataFrame(
        {
            "timestamp": times,
            "pnl": [10.0, -5.0, 3.0, -20.0, 4.0, 6.0, -1.0, -30.0, 8.0],
            "hedge_cost": [1.0, 0.0, 0.0, 2.0, 0.0, 0.5, 0.0, 0.0, 1.5],
            "net_delta_units": [0.5, -2.0, 1.5, 3.0, -0.2, 0.0, 4.0, -1.0, 0.1],
            "delta_limit_units": [1.5, 1.5, 1.5, inf, 1.5, 1.5, 1.5, 1.5, 1.5],
            "equity": [100.0, 90.0, 85.0, 70.0, 75.0, 95.0, 60.0, 50.0, 100.0],
            "initial_margin": [90.0] * 9,
            "maintenance_margin": [80.0] * 9,
            "forced_liquidation": [False] * 7 + [True, False],
            "traded_units": [0.5, 0.0, 0.0, -1.0, 0.0, 0.2, 0.0, 0.0, 3.0],
            "spot": 1.0,  # extra columns are ignored
        }
    )


def test_policy_metrics_hand_computed() -> None:
    m = policy_metrics(hand_record())
    assert tuple(m) == POLICY_METRIC_KEYS
    days = [10 - 5 + 3 - 20, 4 + 6 - 1 - 30, 8]  # -12, -21, 8
    mean = sum(days) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in days) / 2)
    expected = {
        "hedging_cost": 5.0,
        "pnl_total": -25.0,
        "daily_pnl_mean": -25.0 / 3,
        "daily_pnl_std": std,
        "daily_pnl_cvar95": 21.0,  # 3 days: n·a = 0.15 < 1, the worst day
        "max_abs_net_delta": 4.0,
        "time_outside_limits": 2.0 / 9,  # |-2| and |4| > 1.5; 1.5 is at the limit; |3| is under an infinite limit
        "margin_breaches": 2.0,  # breach runs: bars 3-4 and 6-7
        "breach_bars": 4.0,
        "forced_liquidations": 1.0,
        "mean_idle_collateral": (10.0 + 5.0 + 10.0) / 9,
        "n_trades": 4.0,
        "days": 3.0,
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-12), key


def test_policy_metrics_datetime_index_and_breach_on_first_bar() -> None:
    record = hand_record().set_index("timestamp")
    assert policy_metrics(record) == policy_metrics(hand_record())
    record["equity"] = [70.0, 70.0, 90.0, 70.0, 90.0, 70.0, 70.0, 70.0, 90.0]  # runs: 0-1, 3, 5-7
    m = policy_metrics(record)
    assert m["margin_breaches"] == 3.0 and m["breach_bars"] == 6.0
    assert m["mean_idle_collateral"] == 0.0


def test_policy_metrics_one_day_reports_std_as_none() -> None:
    record = hand_record().iloc[:4]
    notes: list[str] = []
    m = policy_metrics(record, notes=notes)
    assert m["daily_pnl_std"] is None and m["days"] == 1.0
    assert notes and "daily_pnl_std" in notes[0]
    with pytest.warns(MetricNote, match="one UTC day"):
        policy_metrics(record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy_metrics(hand_record())  # two or more days: no note
    without = policy_metrics(hand_record().drop(columns="traded_units"), notes=notes)
    assert without["n_trades"] is None and "traded_units" in notes[-1]


def test_policy_metrics_errors() -> None:
    with pytest.raises(UsageError, match=r"record lacks column\(s\) \['equity', 'forced_liquidation'\]"):
        policy_metrics(hand_record().drop(columns=["equity", "forced_liquidation"]))
    bad = hand_record()
    bad.loc[2, "equity"] = np.nan
    with pytest.raises(UsageError, match=r"'equity' has 1 value\(s\) that are not finite numbers, the first at row 2"):
        policy_metrics(bad)
    bad = hand_record()
    bad.loc[0, "hedge_cost"] = -1.0
    with pytest.raises(UsageError, match="'hedge_cost' must be >= 0; row 0"):
        policy_metrics(bad)
    bad = hand_record()
    bad["timestamp"] = bad["timestamp"].dt.tz_localize(None)
    with pytest.raises(UsageError, match="'timestamp' must hold tz-aware"):
        policy_metrics(bad)
    with pytest.raises(UsageError, match="neither a 'timestamp' column nor a DatetimeIndex"):
        policy_metrics(hand_record().drop(columns="timestamp"))
    with pytest.raises(UsageError, match="record has no rows"):
        policy_metrics(hand_record().iloc[:0])
    bad = hand_record()
    bad["forced_liquidation"] = ["no"] * 9
    with pytest.raises(UsageError, match="'forced_liquidation' must be bool"):
        policy_metrics(bad)


# ---------------------------------------------------------------- margin backtests


@pytest.mark.parametrize(("x", "n", "coverage"), [(0, 250, 0.99), (3, 250, 0.99), (17, 250, 0.99), (4, 37, 0.95)])
def test_kupiec_matches_binomial_log_likelihood(x: int, n: int, coverage: float) -> None:
    p = 1.0 - coverage
    # the binomial coefficient cancels in the ratio, so logpmf differences are the log-likelihood ratio
    lr = -2.0 * (stats.binom.logpmf(x, n, p) - stats.binom.logpmf(x, n, x / n))
    stat, pvalue = kupiec_pof(x, n, coverage)
    assert stat == pytest.approx(lr, rel=1e-10, abs=1e-12)
    assert pvalue == pytest.approx(stats.chi2.sf(lr, df=1), rel=1e-10)


def test_kupiec_edges() -> None:
    stat, pvalue = kupiec_pof(0, 100, 0.99)
    assert stat == pytest.approx(-2.0 * 100 * math.log(0.99))
    assert pvalue == pytest.approx(stats.chi2.sf(stat, 1))
    stat, pvalue = kupiec_pof(10, 10, 0.99)
    assert stat == pytest.approx(-2.0 * 10 * math.log(0.01))
    assert pvalue == pytest.approx(stats.chi2.sf(stat, 1))
    assert kupiec_pof(5, 500, 0.99) == pytest.approx((0.0, 1.0), abs=1e-12)  # x = n·p exactly


@pytest.mark.parametrize(
    ("x", "n", "coverage", "match"),
    [
        (11, 10, 0.99, "exceedances must be between 0 and n=10; got 11"),
        (-1, 10, 0.99, "exceedances must be a whole number >= 0; got -1"),
        (0, 0, 0.99, "n must be a whole number >= 1; got 0"),
        (1.5, 10, 0.99, "exceedances must be a whole number"),
        (1, 10, 1.0, "coverage must be a number strictly between 0 and 1"),
        (True, 10, 0.99, "exceedances must be a whole number"),
    ],
)
def test_kupiec_and_traffic_light_errors(x: int, n: int, coverage: float, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        kupiec_pof(x, n, coverage)
    with pytest.raises(UsageError, match=match):
        traffic_light(x, n, coverage)


def test_traffic_light_basel_zones_250_days() -> None:
    zones = [traffic_light(x) for x in range(0, 16)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 6
    assert traffic_light(250) == "red"


@pytest.mark.parametrize(("n", "coverage"), [(500, 0.99), (120, 0.975)])
def test_traffic_light_edges_from_binomial_cdf(n: int, coverage: float) -> None:
    cdf = stats.binom.cdf(np.arange(n + 1), n, 1.0 - coverage)
    first_yellow = int(np.argmax(cdf >= 0.95))
    first_red = int(np.argmax(cdf >= 0.9999))
    assert 0 < first_yellow < first_red
    assert traffic_light(first_yellow - 1, n, coverage) == "green"
    assert traffic_light(first_yellow, n, coverage) == "yellow"
    assert traffic_light(first_red - 1, n, coverage) == "yellow"
    assert traffic_light(first_red, n, coverage) == "red"


def test_traffic_light_matches_binomial_cdf_for_many_n() -> None:
    # every (n, x) near the zone edges, so a threshold off by a little is caught where some cdf lands between
    for n in range(20, 400, 3):
        cdf = stats.binom.cdf(np.arange(16), n, 0.01)
        expected = np.where(cdf < 0.95, "green", np.where(cdf < 0.9999, "yellow", "red"))
        assert [traffic_light(x, n) for x in range(16)] == expected.tolist(), n


def daily_index(days: int, start: str = "2024-01-02") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=days, freq="D", tz=UTC)


def test_margin_exceedances_and_alignment_error() -> None:
    idx = daily_index(4)
    req = pd.Series([10.0, 10.0, 12.0, 8.0], index=idx)
    loss = pd.Series([11.0, 10.0, -3.0, 8.5], index=idx)
    out = margin_exceedances(req, loss)
    assert out.dtype == bool and list(out) == [True, False, False, True]  # equal loss is not an exceedance
    assert out.index.equals(idx)
    with pytest.raises(UsageError, match=r"requirement and loss must share one index.*1 only in requirement"):
        margin_exceedances(req, loss.iloc[:3])
    with pytest.raises(UsageError, match="loss has 1 non-finite"):
        margin_exceedances(req, loss.where(loss > 0))


def test_procyclicality_hand_series() -> None:
    im = pd.Series([100.0, 110.0, 99.0, 120.0, 150.0, 140.0, 160.0], index=daily_index(7))
    out = procyclicality(im)
    assert out["peak_to_trough"] == pytest.approx(160.0 / 99.0)
    assert out["max_increase_1d"] == pytest.approx(150.0 / 120.0 - 1.0)
    assert out["max_increase_5d"] == pytest.approx(160.0 / 110.0 - 1.0)
    assert out["days"] == 7.0


def test_procyclicality_takes_the_last_value_of_each_day() -> None:
    # 12-hour stamps: the 00:00 value closes the previous day
    idx = pd.date_range("2024-01-01 12:00", periods=6, freq="12h", tz=UTC)
    im = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=idx)
    daily = daily_requirement(im)
    assert list(daily) == [2.0, 4.0, 6.0]
    assert list(daily.index) == list(pd.date_range("2024-01-01", periods=3, freq="D", tz=UTC))
    notes: list[str] = []
    out = procyclicality(im, notes=notes)
    assert out["max_increase_1d"] == pytest.approx(1.0) and out["peak_to_trough"] == pytest.approx(3.0)
    assert out["max_increase_5d"] is None and "needs 6" in notes[0]
    with pytest.warns(MetricNote) as caught:
        one = procyclicality(im.iloc[:1])
    assert [str(w.message).split(" is None")[0] for w in caught] == ["max_increase_1d", "max_increase_5d"]
    assert one["peak_to_trough"] == 1.0 and one["max_increase_1d"] is None


def test_procyclicality_errors() -> None:
    # daily stamps at 00:00 close the previous day: the value stamped 2024-01-03 00:00 is day 2024-01-02
    with pytest.raises(UsageError, match=r"requirement must be > 0 on every day.*day 1 \(2024-01-02\) has 0.0"):
        procyclicality(pd.Series([1.0, 0.0], index=daily_index(2)))
    with pytest.raises(UsageError, match=r"requirement must be indexed by .*tz-aware DatetimeIndex\); got RangeIndex"):
        procyclicality(pd.Series([1.0, 2.0]))


def test_margin_model_report_uses_the_last_window() -> None:
    idx = daily_index(300)
    req = pd.Series(np.linspace(100.0, 130.0, 300), index=idx)
    loss = pd.Series(0.0, index=idx)
    loss.iloc[[3, 10, 60, 100, 200, 260, 280, 299]] = 1_000.0  # 8 exceedances, 6 in the last 250 days, 5 in the first
    notes: list[str] = []
    report = margin_model_report(req, loss, notes=notes)
    assert report["exceedances"] == 6 and report["n"] == 250
    lr, pvalue = kupiec_pof(6, 250, 0.99)
    assert report["kupiec_lr"] == pytest.approx(lr) and report["kupiec_pvalue"] == pytest.approx(pvalue)
    assert report["traffic_light"] == "yellow"
    assert report["peak_to_trough"] == pytest.approx(1.3)  # over the whole series
    assert report["days"] == 300.0 and not notes
    short = margin_model_report(req.iloc[:40], loss.iloc[:40], coverage=0.95, window=250)
    assert short["n"] == 40 and short["exceedances"] == 2 and short["coverage"] == 0.95
    assert short["traffic_light"] == traffic_light(2, 40, 0.95)
    with pytest.raises(UsageError, match="window must be a whole number >= 1; got 0"):
        margin_model_report(req, loss, window=0)


# ---------------------------------------------------------------- frontiers


@pytest.mark.parametrize("seed", range(6))
def test_pareto_front_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # small integer grids make ties and duplicate points common
    cost = rng.integers(0, 8, n).astype(float)
    risk = rng.integers(0, 8, n).astype(float)
    front = pareto_front(cost, risk)
    assert sorted(front.tolist()) == np.flatnonzero(~dominated_brute(cost, risk)).tolist()
    assert np.all(np.diff(cost[front]) >= 0)
    continuous = rng.normal(size=(2, n))
    front = pareto_front(*continuous)
    assert sorted(front.tolist()) == np.flatnonzero(~dominated_brute(*continuous)).tolist()


def test_pareto_front_errors() -> None:
    with pytest.raises(UsageError, match="cost and risk must have one value per swept point; got 3 and 2"):
        pareto_front([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(UsageError, match="risk has 1 non-finite"):
        pareto_front([1.0, 2.0], [1.0, np.nan])


def test_value_at_cost_matches_numpy_interp() -> None:
    rng = np.random.default_rng(8)
    cost = np.sort(rng.uniform(0, 10, 25))
    value = rng.normal(size=25)
    perm = rng.permutation(25)
    for target in [*rng.uniform(cost[0], cost[-1], 20), cost[0], cost[-1], cost[7]]:
        got = value_at_cost(cost[perm], value[perm], float(target))
        assert got == pytest.approx(np.interp(target, cost, value), rel=1e-12, abs=1e-12)


def test_value_at_cost_averages_ties_and_refuses_to_extrapolate() -> None:
    assert value_at_cost([1.0, 1.0, 2.0], [1.0, 3.0, 5.0], 1.5) == pytest.approx(3.5)
    assert value_at_cost([4.0], [7.0], 4.0) == 7.0
    with pytest.raises(UsageError, match=r"target_cost=2.5 is outside the swept cost range \[1.0, 2.0\]"):
        value_at_cost([1.0, 2.0], [1.0, 2.0], 2.5)
    with pytest.raises(UsageError, match="target_cost must be finite"):
        value_at_cost([1.0, 2.0], [1.0, 2.0], math.nan)
    with pytest.raises(UsageError, match="cost and value must have one value per swept point"):
        value_at_cost([1.0, 2.0], [1.0], 1.0)


def frontiers() -> dict[str, pd.DataFrame]:
    return {
        "reactive": pd.DataFrame(
            {"param": [0.5, 0.2, 0.1], "hedging_cost": [1.0, 2.0, 3.0], "daily_pnl_cvar95": [10.0, 8.0, 6.0]}
        ),
        "ours": pd.DataFrame(
            {"param": ["q90", "q75", "q50"], "hedging_cost": [1.5, 2.05, 4.0], "daily_pnl_cvar95": [9.0, 5.0, 4.0]}
        ),
    }


def test_matched_cost_comparison() -> None:
    out = matched_cost_comparison(frontiers(), "reactive")
    assert list(out.columns) == [
        "reference_param",
        "cost",
        "reference_risk",
        "policy",
        "risk",
        "ratio",
        "matched_param",
    ]
    assert list(out["reference_param"]) == [0.5, 0.2, 0.1] and set(out["policy"]) == {"ours"}
    assert math.isnan(out["risk"].iloc[0]) and math.isnan(out["ratio"].iloc[0])  # cost 1.0 < 1.5: outside
    expected = np.interp([2.0, 3.0], [1.5, 2.05, 4.0], [9.0, 5.0, 4.0])
    np.testing.assert_allclose(out["risk"].iloc[1:], expected, rtol=1e-12)
    np.testing.assert_allclose(out["ratio"].iloc[1:], expected / np.array([8.0, 6.0]), rtol=1e-12)
    assert list(out["matched_param"]) == [None, "q75", None]  # 2.05 is within 5% of 2.0
    loose = matched_cost_comparison(frontiers(), "reactive", tolerance=0.5)
    assert list(loose["matched_param"]) == ["q90", "q75", "q75"]  # 4.0 is 33% from 3.0, 2.05 is 32%: closest
    back = matched_cost_comparison(frontiers(), "ours")
    assert back["risk"].isna().tolist() == [False, False, True]


def test_matched_point() -> None:
    frame = frontiers()["ours"]
    assert matched_point(frame, 2.0)["param"] == "q75"  # type: ignore[index]
    assert matched_point(frame, 3.0) is None
    assert matched_point(frame, 0.0, tolerance=10.0) is None  # a zero target only matches a zero cost
    with pytest.raises(UsageError, match=r"tolerance must be a finite number >= 0.*got -0\.1"):
        matched_point(frame, 2.0, tolerance=-0.1)


def test_matched_cost_comparison_errors() -> None:
    with pytest.raises(UsageError, match=r"reference must be one of the frontiers' policies \['reactive', 'ours'\]"):
        matched_cost_comparison(frontiers(), "ww")
    with pytest.raises(UsageError, match="add at least one other policy"):
        matched_cost_comparison({"reactive": frontiers()["reactive"]}, "reactive")
    broken = frontiers()
    broken["ours"] = broken["ours"].drop(columns="param")
    with pytest.raises(UsageError, match=r"frontiers\['ours'\] lacks column\(s\) \['param'\]"):
        matched_cost_comparison(broken, "reactive")
    negative = frontiers()
    negative["reactive"].loc[1, "daily_pnl_cvar95"] = -1.0
    with pytest.raises(UsageError, match=r"daily_pnl_cvar95=-1\.0 at param=0\.2: a ratio needs a reference risk > 0"):
        matched_cost_comparison(negative, "reactive")
    nan = frontiers()
    nan["ours"].loc[0, "hedging_cost"] = np.nan
    with pytest.raises(UsageError, match=r"frontiers\['ours'\]\['hedging_cost'\] has 1 non-finite"):
        matched_cost_comparison(nan, "reactive")


def test_day_loop_reference_itself() -> None:
    # the loop reference is independent of the module: check it on the two cases that matter
    assert day_loop(pd.Timestamp("2024-01-02 00:00", tz=UTC)) == pd.Timestamp("2024-01-01", tz=UTC)
    assert day_loop(pd.Timestamp("2024-01-02 00:00", tz=UTC) + timedelta(microseconds=1)) == pd.Timestamp(
        "2024-01-02", tz=UTC
    )
