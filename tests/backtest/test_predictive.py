"""The predictive hedge policy, the margin policies and the forecast views, on hand-made states and against Black-76
directly (a deterministic forecast: the drift engine must give the option's own charm)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.engine import BacktestMarket
from forecaster.backtest.forecasts import forecast_views, views_provider
from forecaster.backtest.margin_policies import PredictiveTopUp, ReactiveTopUp, StaticBuffer, make_margin_policy
from forecaster.backtest.policy import ForecastView, HedgeState, MarginState
from forecaster.backtest.predictive import PredictiveHedge
from forecaster.drift.config import DriftConfig
from forecaster.errors import UsageError
from forecaster.pricing.black import black76_greeks

BAR_YEARS = 1 / 525_600
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def hedge_state(**overrides: Any) -> HedgeState:
    values: dict[str, Any] = {
        "timestamp": T0,
        "bar": 0,
        "spot": 100.0,
        "hedge_units": 0.0,
        "book_delta_units": 0.0,
        "book_gamma_units": -0.05,
        "book_vega": -10.0,
        "gamma_tau": 0.02,
        "iv": 0.6,
        "sigma_bar": 0.6 * math.sqrt(BAR_YEARS),
        "bar_years": BAR_YEARS,
        "bars_since_trade": 0,
        "cost_rate": 5e-4,
    }
    values.update(overrides)
    return HedgeState(**values)


def view(var_ratio: float = 1.0, p_stressed: float = 0.0, drift=(0.0, 0.0, 0.0), horizon: int = 240, **kw):
    """A forecast whose per-bar vol is ``sqrt(var_ratio)`` x the IV's; delta drift quantiles (d05, d50, d95)."""
    var = var_ratio * 0.6**2 * BAR_YEARS * horizon
    d05, d50, d95 = drift
    return ForecastView(
        horizon=horizon, var=var, p_stressed=p_stressed, delta_drift_quantiles={0.05: d05, 0.5: d50, 0.95: d95},
        source="stub", **kw,
    )  # fmt: skip


def test_band_tightens_with_forecast_vol_and_stress():
    policy = PredictiveHedge(band_units=1.0, vol_power=1.0, stress_tighten=0.5)
    assert policy.band(hedge_state(forecast=view(1.0))) == pytest.approx(1.0, rel=1e-12)
    assert policy.band(hedge_state(forecast=view(4.0))) == pytest.approx(0.5, rel=1e-12)  # vol twice the IV's
    assert policy.band(hedge_state(forecast=view(4.0, p_stressed=1.0))) == pytest.approx(0.25, rel=1e-12)
    assert PredictiveHedge(band_units=1.0, min_band_units=0.4).band(hedge_state(forecast=view(4.0, 1.0))) == 0.4


def test_decisions_band_preemption_and_target():
    policy = PredictiveHedge(band_units=1.0, preempt=1.5, stress_tighten=0.0)
    inside = policy.decide(hedge_state(book_delta_units=0.5, forecast=view()))
    assert inside.target_units is None and "inside" in inside.reason and inside.reason.startswith("stub: ")
    # no minimum-variance target in the view: the centre is minus the median drift
    out = policy.decide(hedge_state(book_delta_units=1.2, forecast=view(drift=(-0.1, 0.1, 0.3))))
    assert "|net delta - target| 1.300 > band 1.000" in out.reason and "net -median drift -0.100" in out.reason
    assert out.target_units == pytest.approx(-0.1 - 1.2)  # hedge units leaving a net of −0.1
    # inside the band now, but the forecast tail leaves 1.5 x band: pre-emptive
    early = policy.decide(hedge_state(book_delta_units=0.5, forecast=view(drift=(-0.2, 0.3, 0.9))))
    assert early.trades and "could reach" in early.reason
    assert early.target_units == pytest.approx(-0.3 - 0.5)
    clipped = PredictiveHedge(band_units=1.0, max_center=0.5).decide(
        hedge_state(book_delta_units=0.0, forecast=view(drift=(-3.0, 2.0, 4.0)))
    )
    assert clipped.target_units == pytest.approx(-0.5)  # −d50 = −2 clipped to −max_center x band


def test_the_minimum_variance_target_centres_the_band():
    policy = PredictiveHedge(band_units=1.0, stress_tighten=0.0)
    fv = view(drift=(-0.1, 0.0, 0.1), target_net_delta_units=0.4)
    assert policy.decide(hedge_state(book_delta_units=0.0, forecast=fv)).target_units is None  # |0 − 0.4| < 1
    moved = policy.decide(hedge_state(book_delta_units=1.5, forecast=fv))
    assert moved.target_units == pytest.approx(0.4 - 1.5) and "min-variance net +0.400" in moved.reason
    plain = PredictiveHedge(band_units=1.0, min_variance=False).decide(hedge_state(book_delta_units=1.5, forecast=fv))
    assert plain.target_units == pytest.approx(0.0 - 1.5)


def test_suggestions_when_gamma_or_vega_drift_cross_limits():
    policy = PredictiveHedge(band_units=1.0, gamma_limit_units=0.08, vega_limit=12.0)
    state = hedge_state(
        forecast=view(gamma_drift_quantiles={0.05: -0.05, 0.95: 0.01}, vega_drift_quantiles={0.05: -1.0, 0.95: 1.0})
    )
    decision = policy.decide(state)
    assert any(s.startswith("gamma may reach 0.1 (limit 0.08)") for s in decision.suggestions)
    assert not any("vega" in s for s in decision.suggestions)  # 10 + 1 = 11 < 12
    assert PredictiveHedge(band_units=1.0).decide(state).suggestions == ()  # no limits, no suggestions
    with pytest.raises(UsageError, match="needs a forecast"):
        policy.decide(hedge_state())
    with pytest.raises(UsageError, match="stress_tighten must be a number in"):
        PredictiveHedge(stress_tighten=1.0)


def margin_state(**overrides: Any) -> MarginState:
    values: dict[str, Any] = {
        "timestamp": T0,
        "bar": 0,
        "initial_margin": 1000.0,
        "maintenance_margin": 800.0,
        "equity": 1300.0,
        "posted": 1200.0,
        "breached_recently": False,
    }
    values.update(overrides)
    return MarginState(**values)


def test_margin_policies():
    static = StaticBuffer(multiple=1.5).decide(margin_state())
    assert static.target_posted == pytest.approx(1200 + (1500 - 1300))  # equity to 1,500
    reactive = ReactiveTopUp(multiple=1.2, release_multiple=2.0)
    assert reactive.decide(margin_state()).target_posted is None  # no breach, not too much: hold
    topped = reactive.decide(margin_state(breached_recently=True))
    assert topped.target_posted == pytest.approx(1200 + max(1200 - 1300, 0)) and "breach" in topped.reason
    released = reactive.decide(margin_state(equity=2500.0))
    assert released.target_posted == pytest.approx(1200 + (1200 - 2500))
    predictive = PredictiveTopUp(quantile=0.95, cushion=1.1, release_per_day=0.5, check_every_days=0.25, cap=3.0)
    fv = ForecastView(horizon=240, var=1e-4, margin_quantiles={0.5: 1100.0, 0.95: 1600.0}, source="m")
    up = predictive.decide(margin_state(forecast=fv))
    assert up.target_posted == pytest.approx(1200 + (1760 - 1300)) and "pre-emptive" in up.reason
    slow = predictive.decide(margin_state(equity=2760.0, forecast=fv))
    assert slow.target_posted == pytest.approx(1200 - 1000 * 0.5 * 0.25)  # an eighth of the 1,000 excess
    capped = predictive.decide(margin_state(forecast=ForecastView(horizon=240, var=1e-4, margin_quantiles={0.95: 1e6})))
    assert capped.target_posted == pytest.approx(1200 + (3000 - 1300))
    fallback = predictive.decide(margin_state())
    assert fallback.fallback and fallback.target_posted == pytest.approx(1200 + (1500 - 1300))
    with pytest.raises(UsageError, match="unknown margin policy"):
        make_margin_policy("yolo")


def test_views_give_the_charm_of_a_call_under_a_deterministic_forecast():
    """Near-zero variance and no IV change: the delta drift is the option's own drift with time, Black-76."""
    n = 3000
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    close = np.full(n, 60_000.0)
    market = BacktestMarket(index, close, np.full(n, 0.6), BAR_YEARS)
    expiry = index[0] + pd.Timedelta(days=2)
    legs = OptionLegs(
        np.array([61_000.0]), np.array([True]), np.array([-3.0]), np.array([0]),
        np.array([int(index.searchsorted(expiry))]), pd.DatetimeIndex([expiry]),
    )  # fmt: skip
    h, t = 240, 100
    forecasts = pd.DataFrame({"var": 1e-16, "p_stressed": 0.25}, index=index)
    drift = DriftConfig(iv_change_stdev_daily=0.0, rv_log_stdev=0.0)
    views = forecast_views(market, legs, [t], forecasts, h, source="det", drift=drift, n_scenarios=64)
    fv = views[t]
    tau = (expiry - index[t]) / pd.Timedelta(days=365)
    g0 = black76_greeks(60_000.0, 61_000.0, tau, 0.6, True)
    g1 = black76_greeks(60_000.0, 61_000.0, tau - h * BAR_YEARS, 0.6, True)
    charm = -3.0 * (g1["delta"] - g0["delta"])
    for level, value in fv.delta_drift_quantiles.items():
        assert value == pytest.approx(charm, rel=1e-4), level
    assert fv.gamma_drift_quantiles[0.5] == pytest.approx(-3.0 * (g1["gamma"] - g0["gamma"]), rel=1e-4)
    assert fv.p_stressed == 0.25 and fv.source == "det" and fv.margin_quantiles == {}
    assert views_provider(views)(t, {}) is fv and views_provider(views)(t + 1, {}) is None


def test_minimum_variance_target_limits():
    """No IV change: the MV net delta of a short straddle is about 0 (the Black-76 hedge); with IV rising as the spot
    falls (spot_vol_corr < 0), a short-vega book loses on down moves, so the MV net delta is negative."""
    n = 600
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    market = BacktestMarket(index, np.full(n, 60_000.0), np.full(n, 0.6), BAR_YEARS)
    expiry = index[0] + pd.Timedelta(days=7)
    legs = OptionLegs(
        np.array([60_000.0, 60_000.0]), np.array([True, False]), np.array([-10.0, -10.0]), np.array([0, 0]),
        np.array([n + 10_000, n + 10_000]), pd.DatetimeIndex([expiry, expiry]),
    )  # fmt: skip
    h, t = 240, 10
    forecasts = pd.DataFrame({"var": 0.6**2 * BAR_YEARS * h}, index=index)
    flat = forecast_views(
        market, legs, [t], forecasts, h, source="f", drift=DriftConfig(iv_change_stdev_daily=0.0, rv_log_stdev=0.0)
    )[t]
    book_delta = abs(flat.delta_drift_quantiles[0.95] - flat.delta_drift_quantiles[0.05])  # the scale of delta moves
    assert abs(flat.target_net_delta_units) < 0.02 * book_delta
    skewed = forecast_views(
        market, legs, [t], forecasts, h, source="f",
        drift=DriftConfig(iv_change_stdev_daily=0.05, spot_vol_corr=-0.8, rv_log_stdev=0.0),
    )[t]  # fmt: skip
    assert skewed.target_net_delta_units < -0.1 * book_delta


def test_whalley_wilmott_base_band_follows_gamma():
    """With risk_aversion set, the base band is the Whalley-Wilmott half-width of the current gamma (its closed
    form), then scaled by the forecast vol like the constant band."""
    policy = PredictiveHedge(risk_aversion=1e-3, vol_power=1.0, stress_tighten=0.0)
    state = hedge_state(book_gamma_units=-0.05, spot=100.0, cost_rate=5e-4, forecast=view(4.0))
    closed_form = (1.5 * 5e-4 * 100.0 * 0.05**2 / 1e-3) ** (1 / 3)
    assert policy.band(state) == pytest.approx(closed_form * 0.5, rel=1e-12)  # forecast vol twice the IV's
    quadrupled = hedge_state(book_gamma_units=-0.2, spot=100.0, cost_rate=5e-4, forecast=view(4.0))
    assert policy.band(quadrupled) / policy.band(state) == pytest.approx(4 ** (2 / 3), rel=1e-12)
    assert policy.param == 1e-3 and PredictiveHedge(band_units=0.7).param == 0.7
    with pytest.raises(UsageError, match="risk_aversion must be a number > 0"):
        PredictiveHedge(risk_aversion=0.0)


def test_view_calibration_widens_under_dispersed_drift_quantiles():
    """Forecast quantiles of N(0, 0.5²) for drifts that are N(0, 1): split conformal on 500 calibration origins
    brings the q05..q95 coverage of 5,000 new ones from about 0.58 to about 0.90; the median is left alone."""
    from forecaster.backtest.forecasts import apply_view_calibration, fit_view_calibration, split_conformal_shift

    z = np.array([-1.6448536, -0.6744898, 0.0, 0.6744898, 1.6448536])
    rng = np.random.default_rng(9)

    def views_and_truth(n: int, offset: int):
        views = {
            offset + i: ForecastView(
                horizon=240,
                var=1e-4,
                delta_drift_quantiles=dict(zip((0.05, 0.25, 0.5, 0.75, 0.95), 0.5 * z, strict=True)),
            )
            for i in range(n)
        }
        return views, pd.DataFrame({"delta": rng.standard_normal(n)}, index=list(views))

    cal_views, cal_truth = views_and_truth(500, 0)
    corrections = fit_view_calibration(cal_views, cal_truth)
    assert set(corrections) == {"delta"}  # no gamma, vega or margin quantiles in these views
    outer, inner = corrections["delta"]
    assert outer == pytest.approx(1.645 - 0.822, abs=0.15) and inner == pytest.approx(0.674 - 0.337, abs=0.1)
    scores = np.sort(np.maximum(0.5 * z[0] - cal_truth["delta"], cal_truth["delta"] - 0.5 * z[4]))
    assert (
        split_conformal_shift(np.full(500, 0.5 * z[0]), np.full(500, 0.5 * z[4]), cal_truth["delta"].to_numpy(), 0.1)
        == scores[451 - 1]
    )
    test_views, test_truth = views_and_truth(5000, 1000)
    fixed = apply_view_calibration(test_views, corrections)
    y = test_truth["delta"].to_numpy()
    raw = np.array([[v.delta_drift_quantiles[lv] for lv in (0.05, 0.95)] for v in test_views.values()])
    new = np.array([[v.delta_drift_quantiles[lv] for lv in (0.05, 0.5, 0.95)] for v in fixed.values()])
    assert np.mean((y >= raw[:, 0]) & (y <= raw[:, 1])) < 0.65
    assert abs(np.mean((y >= new[:, 0]) & (y <= new[:, 2])) - 0.9) < 0.02
    assert (new[:, 1] == 0.0).all()


def test_margin_need_under_a_deterministic_forecast_is_maintenance_later_minus_the_theta_pnl():
    """Zero variance, no IV change: every scenario is the book aged by h at the same spot, so each need quantile is
    the maintenance margin of the book at t + h (the engine's own margin call there) minus its Black-76 P&L."""
    from forecaster.backtest.engine import _margin_book
    from forecaster.margin import margin_config_from_spec, portfolio_margin
    from forecaster.pricing.black import black76_price

    n = 3000
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    market = BacktestMarket(index, np.full(n, 60_000.0), np.full(n, 0.6), BAR_YEARS)
    expiry = index[0] + pd.Timedelta(days=2)
    legs = OptionLegs(
        np.array([61_000.0]), np.array([True]), np.array([-3.0]), np.array([0]),
        np.array([int(index.searchsorted(expiry))]), pd.DatetimeIndex([expiry]),
    )  # fmt: skip
    h, t, hedge = 1440, 100, 1.2
    config = margin_config_from_spec({})
    forecasts = pd.DataFrame({"var": 1e-16}, index=index)
    drift = DriftConfig(iv_change_stdev_daily=0.0, rv_log_stdev=0.0)
    fv = forecast_views(
        market, legs, [t], forecasts, h, source="det", drift=drift, n_scenarios=64, margin_config=config,
        margin_bars=[t], margin_hedge_units={t: hedge},
    )[t]  # fmt: skip
    later = portfolio_margin(_margin_book(legs, market, t + h, hedge), config)
    tau = (expiry - index[t]) / pd.Timedelta(days=365)
    pnl = -3.0 * (black76_price(60_000.0, 61_000.0, tau - h * BAR_YEARS, 0.6, True) - black76_price(
        60_000.0, 61_000.0, tau, 0.6, True))  # fmt: skip
    assert pnl > 0  # a short call earns its theta
    assert set(fv.margin_need_quantiles) == {0.5, 0.75, 0.9, 0.95, 0.975, 0.99}
    for level, value in fv.margin_need_quantiles.items():
        assert value == pytest.approx(later.maintenance - pnl, rel=1e-6), level
    assert fv.margin_quantiles[0.95] == pytest.approx(later.initial, rel=1e-6)


def test_predictive_margin_tops_up_to_the_need_quantile():
    policy = PredictiveTopUp(quantile=0.99, cushion=1.05, release_per_day=1.0, check_every_days=1.0, cap=3.0)
    fv = ForecastView(
        horizon=1440, var=1e-4, margin_quantiles={0.95: 5000.0}, margin_need_quantiles={0.5: 700.0, 0.99: 1400.0}
    )
    up = policy.decide(margin_state(forecast=fv))  # need q99 1,400 > IM 1,000: equity to 1.05 x 1,400
    assert up.target_posted == pytest.approx(1200 + (1470 - 1300)) and "margin need" in up.reason
    calm = ForecastView(horizon=1440, var=1e-4, margin_need_quantiles={0.99: 600.0})
    held = policy.decide(margin_state(equity=1050.0, forecast=calm))  # need below IM: 1.05 x IM = 1,050, hold
    assert held.target_posted is None
    released = policy.decide(margin_state(equity=1500.0, forecast=calm))  # a full day's release: down to 1,050
    assert released.target_posted == pytest.approx(1200 - 450)


def test_predictive_hedge_to_the_edge_and_without_preemption():
    policy = PredictiveHedge(band_units=1.0, stress_tighten=0.0, to="edge", preempt=None)
    fv = view(drift=(-3.0, 2.5, 4.0), target_net_delta_units=0.2)
    # inside the band around the centre 0.2: no pre-emption even though the drift would leave it
    assert policy.decide(hedge_state(book_delta_units=0.9, forecast=fv)).target_units is None
    out = policy.decide(hedge_state(book_delta_units=1.7, forecast=fv))  # deviation +1.5 > 1: to the upper edge 1.2
    assert out.target_units == pytest.approx(1.2 - 1.7) and "edge +1.200" in out.reason
    down = policy.decide(hedge_state(book_delta_units=-2.0, forecast=fv))  # to the lower edge −0.8
    assert down.target_units == pytest.approx(-0.8 + 2.0)
    with pytest.raises(UsageError, match="to must be 'center' or 'edge'"):
        PredictiveHedge(to="middle")


def test_lookahead_scales_the_drift_to_the_next_decision():
    """Over L of the view's h bars the median drift scales by L/h and the spread around it by sqrt(L/h)."""
    fv = view(drift=(-1.5, 0.4, 2.3), horizon=240, target_net_delta_units=0.0)  # spread 1.9 about the median
    full = PredictiveHedge(band_units=1.0, stress_tighten=0.0, preempt=1.0)
    near = PredictiveHedge(band_units=1.0, stress_tighten=0.0, preempt=1.0, lookahead_bars=15)
    state = hedge_state(book_delta_units=0.3, forecast=fv)
    assert full.decide(state).trades  # 0.3 + 2.3 > 1 within 240 bars
    # within 15 bars: 0.3 + 0.4/16 + 1.9/4 = 0.8 < 1: wait
    assert not near.decide(state).trades
    edge_case = near.decide(hedge_state(book_delta_units=0.55, forecast=fv))  # 0.55 + 0.025 + 0.475 = 1.05 > 1
    assert edge_case.trades and "t+15 could reach" in edge_case.reason
    with pytest.raises(UsageError, match="lookahead_bars must be a whole number"):
        PredictiveHedge(lookahead_bars=0)
