"""The drift engine (forecaster.drift.engine) against brute force, pure time decay and a per-scenario reprice.

Acceptance (the issue): for a book of 50 random options, the quantiles of Δ at t+h from the default 2,048-scenario
Sobol' run agree with a brute-force Monte Carlo of 200,000 plain random scenarios (another seed) to within 2% of
the interquantile range, here q95 − q05 of the brute-force distribution of the same metric. Checked for every
reported quantile of delta, gamma, vega and P&L, for three seeds, for a forecast with quantiles and one without.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from forecaster.drift import QUANTILES, DriftResult, HorizonForecast, Scenarios, drift_distribution
from forecaster.portfolio import Book, position_greeks, total_greeks
from forecaster.pricing.revalue import revalue, revalue_reference

METRICS = ("delta", "gamma", "vega", "pnl")
QUANTILE_NAMES = ("q05", "q25", "q50", "q75", "q95")
BRUTE_FORCE_N = 200_000
BRUTE_FORCE_SEED = 20_250_115  # not one of the fast runs' seeds
GAP = 0.02  # of q95 - q05


@pytest.fixture(scope="module")
def brute_force(fifty_options: Book, forecasts: dict[str, HorizonForecast]) -> Callable[[str], DriftResult]:
    """The 200,000-scenario plain Monte Carlo of the 50-option book, once per forecast."""
    cache: dict[str, DriftResult] = {}

    def get(name: str) -> DriftResult:
        if name not in cache:
            cache[name] = drift_distribution(
                fifty_options, forecasts[name], n_scenarios=BRUTE_FORCE_N, seed=BRUTE_FORCE_SEED, method="random"
            )
        return cache[name]

    return get


def quantile_gaps(fast: DriftResult, reference: DriftResult) -> dict[str, float]:
    """Per metric: the largest |fast − reference| over the reported quantiles, as a share of reference q95 − q05."""
    gaps = {}
    for metric in METRICS:
        ref, got = reference.summary(metric), fast.summary(metric)
        spread = ref["q95"] - ref["q05"]
        assert spread > 0
        gaps[metric] = max(abs(got[q] - ref[q]) for q in QUANTILE_NAMES) / spread
    return gaps


@pytest.mark.parametrize("name", ["with_quantiles", "without_quantiles"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sobol_quantiles_match_brute_force(fifty_options, forecasts, brute_force, name: str, seed: int) -> None:
    fast = drift_distribution(fifty_options, forecasts[name], seed=seed)  # defaults: 2,048 Sobol' scenarios
    assert len(fast.scenarios) == 2048 and fast.quantiles == QUANTILES
    gaps = quantile_gaps(fast, brute_force(name))
    assert max(gaps.values()) < GAP, gaps


@pytest.mark.parametrize("name", ["with_quantiles", "without_quantiles"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_antithetic_quantiles_match_brute_force(fifty_options, forecasts, brute_force, name: str, seed: int) -> None:
    # antithetic pairs help means, not tail quantiles: their q05 and q95 are about as noisy as plain Monte Carlo
    # (at 2,048 scenarios delta's q05 misses by up to ~5%, at 16,384 P&L's q95 by ~2%), so the same 2% needs
    # 65,536 scenarios, 32 times Sobol's 2,048: why Sobol' is the default
    fast = drift_distribution(fifty_options, forecasts[name], n_scenarios=65_536, seed=seed, method="antithetic")
    gaps = quantile_gaps(fast, brute_force(name))
    assert max(gaps.values()) < GAP, gaps


def test_brute_force_is_a_real_distribution(brute_force) -> None:
    # the bound is only meaningful if the drift is genuinely spread out: quantiles strictly increasing
    for name in ("with_quantiles", "without_quantiles"):
        for metric in METRICS:
            q = [brute_force(name).summary(metric)[k] for k in QUANTILE_NAMES]
            assert np.all(np.diff(q) > 0), (name, metric, q)


def zero_forecast(**kwargs) -> HorizonForecast:
    return HorizonForecast(horizon=1440, bar_years=1 / 525_600, var=0.0, **kwargs)


@pytest.mark.parametrize(
    "forecast",
    [
        zero_forecast(rv_log_stdev=0.5, spot_vol_corr=-0.4),
        zero_forecast(rv_quantiles={0.1: 0.0, 0.9: 0.0}, div_quantiles={0.1: 0.0, 0.9: 0.0}, spot_vol_corr=0.3),
    ],
    ids=["normal", "quantiles"],
)
@pytest.mark.parametrize("which", ["mixed", "fifty"])
def test_zero_variance_and_iv_change_is_pure_time_decay(book, fifty_options, forecast, which: str) -> None:
    # the mixed book has linear positions and two options expiring inside the day (one in the money): settled
    # at intrinsic with no Greeks left, as position_greeks values an aged book
    book = book if which == "mixed" else fifty_options
    result = drift_distribution(book, forecast, n_scenarios=64, seed=3)
    assert (result.scenarios["log_return"] == 0).all() and (result.scenarios["iv_change"] == 0).all()
    today = total_greeks(position_greeks(book))
    later = total_greeks(position_greeks(book.aged(forecast.years)))
    for metric, column in (("delta", "delta"), ("gamma", "gamma"), ("vega", "vega"), ("pnl", "value")):
        expected = later[column] - today[column]
        drift = result.drift(metric)
        assert set(drift) == {"mean", *QUANTILE_NAMES}
        for value in drift.values():
            assert value == pytest.approx(expected, rel=1e-12), (metric, drift, expected)
        assert np.ptp(result.scenarios[metric]) == 0.0  # every scenario is the same: all quantiles equal
    if which == "mixed":
        assert result.notes == ("2 option(s) expire within the horizon: settled at intrinsic at t+h",)
        assert later["delta"] - today["delta"] > 200_000  # the short in-the-money call's delta is gone


def test_now_is_todays_book(book: Book, quantile_forecast: HorizonForecast) -> None:
    result = drift_distribution(book, quantile_forecast, n_scenarios=16)
    today = total_greeks(position_greeks(book))
    for metric in ("delta", "gamma", "vega"):
        assert result.now[metric] == pytest.approx(today[metric], rel=1e-12)
    assert result.now["pnl"] == 0.0


def reprice(book: Book, log_return: float, iv_change: float, years: float, floor: float) -> dict[str, float]:
    """The reference: age the book, move every spot by the return and every vol by the change (floored), and
    price it position by position with position_greeks."""
    moved = replace(book.aged(years), spot=book.spot * np.exp(log_return), iv=np.maximum(book.iv + iv_change, floor))
    return total_greeks(position_greeks(moved))


@pytest.mark.parametrize("vol_floor", [0.01, 0.3])
def test_every_scenario_is_a_full_reprice(book: Book, quantile_forecast: HorizonForecast, vol_floor: float) -> None:
    # hand-picked scenarios: crashes and rallies on both underlyings at once, vol spikes, and vol drops that
    # push some (-0.5) or every (-0.9) option's vol below the floor
    log_return = np.array([-0.25, -0.05, -0.01, 0.0, 0.0, 0.02, 0.08, 0.3])
    iv_change = np.array([0.4, 0.1, -0.02, 0.0, -0.9, 0.0, -0.5, -0.1])
    scen = Scenarios(rv=log_return**2, log_return=log_return, iv_change=iv_change)
    result = drift_distribution(book, quantile_forecast, scenarios=scen, vol_floor=vol_floor)
    np.testing.assert_array_equal(result.scenarios["log_return"], log_return)
    np.testing.assert_array_equal(result.scenarios["iv_change"], iv_change)
    np.testing.assert_allclose(result.scenarios["spot_ratio"], np.exp(log_return), rtol=1e-15)
    value_now = total_greeks(position_greeks(book))["value"]
    gross = np.abs(book.weight * book.spot).sum()  # the book's gross notional: the scale of rounding in P&L
    for j in range(len(scen)):
        ref = reprice(book, log_return[j], iv_change[j], quantile_forecast.years, vol_floor)
        row = result.scenarios.iloc[j]
        for metric in ("delta", "gamma", "vega"):
            assert row[metric] == pytest.approx(ref[metric], rel=1e-10, abs=1e-12 * gross), (j, metric)
        assert row["pnl"] == pytest.approx(ref["value"] - value_now, rel=1e-10, abs=1e-12 * gross), j


def test_summary_drift_and_json(book: Book, quantile_forecast: HorizonForecast) -> None:
    result = drift_distribution(book, quantile_forecast, n_scenarios=512, seed=4, quantiles=(0.1, 0.5, 0.9))
    assert result.horizon == 1440 and result.years == pytest.approx(1 / 365, rel=1e-15)
    assert result.metrics == list(METRICS)
    assert list(result.scenarios.columns) == ["rv", "log_return", "iv_change", "spot_ratio", *METRICS]
    for metric in METRICS:
        values = result.scenarios[metric].to_numpy()
        summary, drift = result.summary(metric), result.drift(metric)
        assert list(summary) == ["now", "mean", "q10", "q50", "q90"] and list(drift) == ["mean", "q10", "q50", "q90"]
        np.testing.assert_allclose(
            [summary[k] for k in ("q10", "q50", "q90")], np.quantile(values, [0.1, 0.5, 0.9]), rtol=1e-15
        )
        assert summary["mean"] == pytest.approx(values.mean(), rel=1e-15)
        scale = np.abs(values).max()
        for key in ("mean", "q10", "q50", "q90"):
            assert drift[key] == pytest.approx(summary[key] - summary["now"], rel=1e-12, abs=1e-12 * scale)
    document = json.loads(json.dumps(result.to_json()))
    assert list(document) == ["horizon", "quantiles", *METRICS, "n_scenarios"]
    assert document["horizon"] == 1440 and document["quantiles"] == [0.1, 0.5, 0.9] and document["n_scenarios"] == 512
    assert document["delta"] == {**result.summary("delta"), "drift": result.drift("delta")}


def test_same_seed_same_result(fifty_options: Book, plain_forecast: HorizonForecast) -> None:
    a = drift_distribution(fifty_options, plain_forecast, n_scenarios=256, seed=9)
    b = drift_distribution(fifty_options, plain_forecast, n_scenarios=256, seed=9)
    c = drift_distribution(fifty_options, plain_forecast, n_scenarios=256, seed=10)
    assert a.to_json() == b.to_json() and a.to_json() != c.to_json()


def revalue_inputs(n_scen: int, n_opt: int, seed: int) -> dict[str, np.ndarray]:
    """Random scenarios and options; vol shifts centred at -10 points so many vols cross a 5% floor."""
    rng = np.random.default_rng(seed)
    forward = rng.uniform(2_000.0, 70_000.0, n_opt)
    return {
        "log_return": rng.normal(0.0, 0.08, n_scen),
        "forward": forward,
        "strike": forward * np.exp(rng.uniform(-0.4, 0.4, n_opt)),
        "tau": rng.uniform(1 / 365, 0.5, n_opt),
        "sigma": rng.uniform(0.03, 1.0, n_opt),
        "is_call": rng.random(n_opt) < 0.5,
        "weight": rng.normal(0.0, 3.0, n_opt),
        "shift": rng.normal(-0.1, 0.2, n_scen),
    }


@pytest.mark.parametrize("vol_floor", [0.05, 0.4])
def test_revalue_vol_shift_and_floor(vol_floor: float) -> None:
    # 3,000 scenarios × 50 options: several of revalue's blocks, run on threads
    x = revalue_inputs(3_000, 50, seed=17)
    args = (x["log_return"], x["forward"], x["strike"], x["tau"])
    tail = (x["is_call"], x["weight"])
    shifted = revalue(*args, x["sigma"], *tail, vol_shift=x["shift"], vol_floor=vol_floor)
    reference = revalue_reference(*args, x["sigma"], *tail, vol_shift=x["shift"], vol_floor=vol_floor)
    explicit = np.maximum(x["sigma"] + x["shift"][:, None], vol_floor)  # (S, N), built by hand
    assert 0.1 < (explicit == vol_floor).mean() < 0.9  # the floor binds in a good share of cells
    full = revalue(*args, explicit, *tail)
    single = revalue(*args, x["sigma"], *tail, vol_shift=x["shift"], vol_floor=vol_floor, threads=1)
    gross = np.abs(x["weight"] * x["forward"]).sum() * np.exp(np.abs(x["log_return"]).max())
    for name in ("value", "delta", "gamma", "vega"):
        np.testing.assert_allclose(shifted[name], full[name], rtol=1e-12, atol=1e-12 * gross, err_msg=name)
        np.testing.assert_allclose(shifted[name], reference[name], rtol=1e-10, atol=1e-12 * gross, err_msg=name)
        np.testing.assert_array_equal(shifted[name], single[name], err_msg=name)


def test_revalue_floor_without_shift_and_zero_shift() -> None:
    x = revalue_inputs(700, 40, seed=5)
    args = (x["log_return"], x["forward"], x["strike"], x["tau"])
    tail = (x["is_call"], x["weight"])
    floored = revalue(*args, x["sigma"], *tail, vol_floor=0.3)
    assert (x["sigma"] < 0.3).any()
    by_hand = revalue(*args, np.maximum(x["sigma"], 0.3), *tail)
    reference = revalue_reference(*args, x["sigma"], *tail, vol_floor=0.3)
    zero = revalue(*args, x["sigma"], *tail, vol_shift=np.zeros(700))
    plain = revalue(*args, x["sigma"], *tail)
    gross = np.abs(x["weight"] * x["forward"]).sum() * np.exp(np.abs(x["log_return"]).max())
    for name in ("value", "delta", "gamma", "vega"):
        np.testing.assert_array_equal(floored[name], by_hand[name])
        np.testing.assert_allclose(floored[name], reference[name], rtol=1e-10, atol=1e-12 * gross)
        np.testing.assert_allclose(zero[name], plain[name], rtol=1e-13, atol=1e-13 * gross)
    with pytest.raises(ValueError, match=r"vol_shift must have shape \(700,\) like log_return; got \(699,\)"):
        revalue(*args, x["sigma"], *tail, vol_shift=np.zeros(699))


def test_margin_at_the_horizon_leaves_out_the_options_that_settled(book: Book) -> None:
    """No move, no IV change: the margin at t+h is today's margin model on the aged book of the positions still
    open; the two options expiring inside the day have settled into cash and carry none."""
    from forecaster.margin import MarginConfig, portfolio_margin

    forecast = zero_forecast(rv_log_stdev=0.0)
    config = MarginConfig()
    result = drift_distribution(book, forecast, n_scenarios=16, seed=1, margin=config)
    later = book.aged(forecast.years)
    open_later = later.select(~(book.is_option & (later.tau <= 0)))
    assert len(open_later) == len(book) - 2
    expected = portfolio_margin(open_later, config).initial
    np.testing.assert_allclose(result.scenarios["margin_initial"], expected, rtol=1e-9)
    assert result.now["margin_initial"] == pytest.approx(portfolio_margin(book, config).initial, rel=1e-12)
    assert portfolio_margin(later, config).initial != pytest.approx(expected, rel=1e-3)  # the settled ones mattered
