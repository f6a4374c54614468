"""Backtester correctness against independent references: the Derman-Kamal law of discrete delta hedging, a cash
ledger rebuilt with Black-76 at every bar, and one contract every hedge policy meets (no look-ahead, caps,
determinism with a seed)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest.books import OptionLegs, market_maker_book, short_straddle_book
from forecaster.backtest.costs import CostModel
from forecaster.backtest.engine import BacktestConfig, BacktestMarket, run_backtest
from forecaster.backtest.hedging import (
    DeltaBand,
    FixedInterval,
    NoHedge,
    OutOfDistribution,
    SafeHedgePolicy,
    ThresholdRule,
    WhalleyWilmott,
)
from forecaster.backtest.margin_policies import StaticBuffer
from forecaster.backtest.policy import ForecastView
from forecaster.backtest.predictive import PredictiveHedge
from forecaster.pricing.black import black76_greeks, black76_price

BAR_YEARS = 1 / 525_600
YEAR = pd.Timedelta(days=365)
FREE = CostModel(fee_rate=0.0, impact_coef=0.0)

pytestmark = pytest.mark.filterwarnings("ignore:daily_pnl_std is None")


def gbm(n: int, sigma: float, rng: np.random.Generator, s0: float = 50_000.0) -> np.ndarray:
    """A driftless GBM path of ``n`` one-minute closes (E[S_t] = S_0)."""
    r = sigma * math.sqrt(BAR_YEARS) * rng.standard_normal(n) - 0.5 * sigma**2 * BAR_YEARS
    r[0] = 0.0
    return s0 * np.exp(np.cumsum(r))


def test_discrete_delta_hedging_error_follows_derman_kamal():
    """A short 8-hour ATM call on a GBM whose vol equals its implied vol, delta-hedged N times at zero cost: the
    P&L has mean 0 and standard deviation sqrt(pi/4) * vega * sigma / sqrt(N) (Derman & Kamal 1999, the large-N
    law). Tolerance: the mean within 3 standard errors of 0, the std within 15% of the law (its estimate from 200
    paths has a relative standard error of 5%; at N = 8 the law is also a little high, about 4%), and the ratio of
    the two stds within 15% of sqrt(32 / 8) = 2."""
    n, sigma, s0 = 481, 0.8, 50_000.0
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    expiry = index[0] + pd.Timedelta(minutes=480)
    legs = OptionLegs(np.array([s0]), np.array([True]), np.array([-1.0]), np.array([0]), np.array([480]),
                      pd.DatetimeIndex([expiry]))  # fmt: skip
    vega = float(black76_greeks(s0, s0, 480 * BAR_YEARS, sigma, True)["vega"])  # per unit of vol
    rng = np.random.default_rng(2026)
    stds = {}
    for every in (60, 15):  # N = 8 and 32 re-hedges over the option's life
        n_hedges = 480 // every
        config = BacktestConfig(decision_every=every, margin_every=480, costs=FREE)
        pnl = np.array(
            [
                run_backtest(
                    BacktestMarket(index, gbm(n, sigma, rng, s0), np.full(n, sigma), BAR_YEARS),
                    legs, DeltaBand(band_units=0.0), StaticBuffer(), config,
                ).record["pnl"].sum()
                for _ in range(200)
            ]
        )  # fmt: skip
        law = math.sqrt(math.pi / 4) * vega * sigma / math.sqrt(n_hedges)
        stds[n_hedges] = pnl.std(ddof=1)
        assert abs(pnl.mean()) < 3 * stds[n_hedges] / math.sqrt(pnl.size), n_hedges
        assert stds[n_hedges] == pytest.approx(law, rel=0.15), n_hedges
    assert stds[8] / stds[32] == pytest.approx(2.0, rel=0.15)  # 1 / sqrt(N)


def test_premiums_settlements_hedge_and_costs_add_up_to_the_pnl_at_every_bar():
    """The cash ledger rebuilt by hand: premiums received at each sale (Black-76 at the sale bar), intrinsic paid at
    each expiry, the hedge's variation and the costs as cash, plus the open legs marked with Black-76, equals the
    engine's cumulative P&L at every bar (to 1e-9 of the book's notional)."""
    rng = np.random.default_rng(7)
    n = 3 * 1440
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    close = gbm(n, 0.7, rng)
    iv = 0.6 * np.exp(0.1 * np.sin(np.arange(n) / 400.0))
    market = BacktestMarket(index, close, iv, BAR_YEARS)
    legs = short_straddle_book(index, close, size_units=2.0, tenor_days=1.0)  # sold at 08:00, settled a day later
    config = BacktestConfig(decision_every=15, costs=CostModel(fee_rate=0.0005, impact_coef=0.1, adv_units=20_000.0))
    record = run_backtest(market, legs, DeltaBand(band_units=0.3), StaticBuffer(), config).record
    cash = np.zeros(n)
    marks = np.zeros(n)
    for k in range(len(legs)):
        start, end = int(legs.start_bar[k]), int(legs.expiry_bar[k])
        call, w, strike = bool(legs.is_call[k]), float(legs.weight[k]), float(legs.strike[k])
        tau = np.asarray((legs.expiry[k] - index[start:end]) / YEAR, dtype=float)
        value = black76_price(close[start:end], strike, tau, iv[start:end], call)
        cash[start] -= w * value[0]  # the premium, received when selling (w < 0)
        marks[start:end] += w * value  # the open leg marked every bar until it settles
        if end < n:
            payoff = max(close[end] - strike, 0.0) if call else max(strike - close[end], 0.0)
            cash[end] += w * payoff  # settlement paid
    hedge = record["hedge_units"].to_numpy()
    variation = np.r_[0.0, hedge[:-1] * np.diff(close)]
    ledger = np.cumsum(cash + variation - record["hedge_cost"].to_numpy()) + marks
    assert len(legs) == 6 and (legs.expiry_bar < n).sum() == 4  # three straddles, two settled
    scale = float(np.abs(legs.weight).sum() * close.max())
    np.testing.assert_allclose(record["pnl"].cumsum().to_numpy(), ledger, rtol=0, atol=1e-9 * scale)
    assert record["hedge_cost"].sum() > 0


# ------------------------------------------------------------------------------------------------- shared contract


def causal_views(market: BacktestMarket, horizon: int = 240) -> Callable[[int, dict[str, float]], ForecastView]:
    """A forecast provider that reads the closes up to the bar only: an EWMA variance and a drift from the Greeks."""
    logret = np.r_[0.0, np.diff(np.log(market.close))]

    def provide(bar: int, greeks: dict[str, float]) -> ForecastView:
        past = logret[max(0, bar - 600) : bar + 1]
        weights = 0.99 ** np.arange(past.size)[::-1]
        var = float(np.sum(weights * past**2) / weights.sum()) * horizon
        spread = abs(greeks["gamma_units"]) * float(market.close[bar]) * math.sqrt(var)
        return ForecastView(
            horizon=horizon, var=var, p_stressed=min(1.0, var / (0.6**2 * BAR_YEARS * horizon) / 4),
            delta_drift_quantiles={0.05: -1.6 * spread, 0.5: 0.0, 0.95: 1.6 * spread},
            target_net_delta_units=0.1 * math.tanh(greeks["vega"] / 1e3), source="causal",
        )  # fmt: skip

    return provide


def capped(inner: Any) -> SafeHedgePolicy:
    return SafeHedgePolicy(
        inner, DeltaBand(band_units=0.5), max_order_units=0.7, max_notional_per_step=40_000.0,
        ood=OutOfDistribution() if inner.needs_forecast else None,
    )  # fmt: skip


CONTRACT = {
    "none": lambda: capped(NoHedge()),
    "fixed": lambda: capped(FixedInterval(every_bars=60)),
    "band": lambda: capped(DeltaBand(band_units=0.3)),
    "band_edge": lambda: capped(DeltaBand(band_units=0.3, to="edge")),
    "ww": lambda: capped(WhalleyWilmott(risk_aversion=1e-3)),
    "threshold": lambda: capped(ThresholdRule(threshold_units=0.3, check_every_bars=60)),
    "predictive": lambda: capped(PredictiveHedge(band_units=0.3, preempt=2.0, lookahead_bars=15)),
    "predictive_edge": lambda: capped(PredictiveHedge(band_units=0.3, to="edge", preempt=None)),
    "predictive_ww": lambda: capped(PredictiveHedge(risk_aversion=1e-3, gamma_limit_units=0.01)),
}


def contract_market(seed: int, tail: np.ndarray | None = None) -> BacktestMarket:
    rng = np.random.default_rng(seed)
    n = 2 * 1440
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    close = gbm(n, 0.9, rng)
    if tail is not None:
        close = np.r_[close[: n - tail.size], tail]
    return BacktestMarket(index, close, np.full(n, 0.7), BAR_YEARS)


@pytest.mark.parametrize("key", list(CONTRACT))
def test_every_policy_meets_the_contract(key: str):
    """No look-ahead (a different future changes no decision and no record row before it), the caps on every
    trade, and the same run twice with the same seed gives the same result."""
    market = contract_market(11)
    legs = market_maker_book(market.index, market.close, seed=3)
    config = BacktestConfig(decision_every=15, costs=CostModel(fee_rate=0.0005, impact_coef=0.1, adv_units=2e4))

    def run(m: BacktestMarket, book: OptionLegs):
        return run_backtest(m, book, CONTRACT[key](), StaticBuffer(), config, forecasts=causal_views(m))

    a = run(market, legs)
    again = run(contract_market(11), market_maker_book(market.index, market.close, seed=3))
    pd.testing.assert_frame_equal(a.record, again.record)
    pd.testing.assert_frame_equal(a.decisions, again.decisions)
    # caps: no order above 0.7 units or 40,000 of notional
    traded = a.decisions["traded_units"].abs().to_numpy()
    spot = market.close[a.decisions["bar"].to_numpy()]
    assert (traded <= 0.7 + 1e-12).all() and (traded * spot <= 40_000.0 * (1 + 1e-12)).all()
    # no look-ahead: the last 12 hours replaced by a crash; the book's legs are the same options
    cut = len(market.index) - 720
    other = contract_market(11, tail=market.close[cut] * np.exp(np.linspace(0.0, -0.3, 720)))
    b = run(other, legs)
    before = a.decisions["bar"] < cut
    pd.testing.assert_frame_equal(a.decisions[before], b.decisions[b.decisions["bar"] < cut])
    pd.testing.assert_frame_equal(a.record.iloc[:cut], b.record.iloc[:cut])
    if key != "none":
        assert (
            not a.decisions[~before]
            .reset_index(drop=True)
            .equals(b.decisions[b.decisions["bar"] >= cut].reset_index(drop=True))
        )
    assert a.decisions["reason"].str.len().gt(0).all()
