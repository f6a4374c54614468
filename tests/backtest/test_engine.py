"""The backtester against independent references: a plain loop that delta-hedges with Black-76 directly, the
telescoping P&L of a held leg, the cost formula, causality (changing the future changes no earlier decision) and
the collateral accounting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest.books import OptionLegs, market_maker_book, short_straddle_book
from forecaster.backtest.costs import CostModel
from forecaster.backtest.engine import BacktestConfig, BacktestMarket, book_path, ewma_sigma_bar, run_backtest
from forecaster.backtest.hedging import DeltaBand, FixedInterval, NoHedge
from forecaster.backtest.margin_policies import ReactiveTopUp, StaticBuffer
from forecaster.errors import UsageError
from forecaster.pricing.black import black76_greeks, black76_price

BAR_YEARS = 1 / 525_600
YEAR = pd.Timedelta(days=365)


def make_market(n: int = 3 * 1440, seed: int = 3, vol: float = 0.6, jump_at: int | None = None) -> BacktestMarket:
    """A GBM-like path of 1-minute bars from 2026-01-01 00:01 with a slowly varying IV around ``vol``."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    r = vol * math.sqrt(BAR_YEARS) * rng.standard_normal(n)
    r[0] = 0.0
    if jump_at is not None:
        r[jump_at] = -0.25
    close = 60_000.0 * np.exp(np.cumsum(r))
    iv = vol * np.exp(0.1 * np.sin(np.arange(n) / 500.0))
    return BacktestMarket(index=index, close=close, iv=iv, bar_years=BAR_YEARS)


def one_leg(market: BacktestMarket, *, start: int, days: float, call: bool, weight: float, strike: float) -> OptionLegs:
    expiry = market.index[start] + pd.Timedelta(days=days)
    return OptionLegs(
        strike=np.array([strike]),
        is_call=np.array([call]),
        weight=np.array([weight]),
        start_bar=np.array([start]),
        expiry_bar=np.array([int(market.index.searchsorted(expiry))]),
        expiry=pd.DatetimeIndex([expiry]),
    )


def test_a_held_leg_telescopes_to_its_payoff_minus_its_premium():
    market = make_market()
    start, strike = 100, 60_500.0
    legs = one_leg(market, start=start, days=1.0, call=True, weight=-2.0, strike=strike)
    path = book_path(legs, market)
    end = int(legs.expiry_bar[0])
    assert market.index[end] == market.index[start] + pd.Timedelta(days=1)  # expiry falls on a bar end
    tau0 = (legs.expiry[0] - market.index[start]) / YEAR
    premium = float(black76_price(market.close[start], strike, tau0, market.iv[start], True))
    payoff = max(market.close[end] - strike, 0.0)
    assert path.pnl.sum() == pytest.approx(-2.0 * (payoff - premium), rel=1e-12, abs=1e-9)
    assert path.pnl[: start + 1].sum() == 0.0 and np.all(path.delta_units[end:] == 0.0)  # nothing after expiry
    t = start + 500
    g = black76_greeks(market.close[t], strike, (legs.expiry[0] - market.index[t]) / YEAR, market.iv[t], True)
    assert path.delta_units[t] == pytest.approx(-2.0 * g["delta"], rel=1e-12)
    assert path.gamma_units[t] == pytest.approx(-2.0 * g["gamma"], rel=1e-12)
    assert path.vega[t] == pytest.approx(-2.0 * g["vega"] / 100, rel=1e-12)
    assert path.gamma_tau[t] == pytest.approx((legs.expiry[0] - market.index[t]) / YEAR, rel=1e-12)
    assert path.live[t] == 1 and path.live[end] == 0


def reference_hedged_pnl(market: BacktestMarket, legs: OptionLegs, costs: CostModel, sigma_daily: np.ndarray) -> float:
    """Delta-hedge to zero at every bar's close with Black-76 directly; a loop, leg by leg and bar by bar."""
    n = len(market.index)
    total, hedge = 0.0, 0.0
    for t in range(1, n):
        total += hedge * (market.close[t] - market.close[t - 1])
        book_delta = 0.0
        for k in range(len(legs)):
            if legs.start_bar[k] < t <= legs.expiry_bar[k]:
                tau = 0.0 if t == legs.expiry_bar[k] else (legs.expiry[k] - market.index[t]) / YEAR
                tau_prev = (legs.expiry[k] - market.index[t - 1]) / YEAR
                now = black76_price(market.close[t], legs.strike[k], tau, market.iv[t], bool(legs.is_call[k]))
                before = black76_price(
                    market.close[t - 1], legs.strike[k], tau_prev, market.iv[t - 1], bool(legs.is_call[k])
                )
                total += legs.weight[k] * (float(now) - float(before))
            if legs.start_bar[k] <= t < legs.expiry_bar[k]:
                tau = (legs.expiry[k] - market.index[t]) / YEAR
                g = black76_greeks(market.close[t], legs.strike[k], tau, market.iv[t], bool(legs.is_call[k]))
                book_delta += legs.weight[k] * float(g["delta"])
        target = -book_delta
        total -= costs.cost(target - hedge, market.close[t], sigma_daily[t])
        hedge = target
    return total


def test_hedging_every_bar_equals_a_plain_black76_loop():
    market = make_market(n=1200)
    legs = short_straddle_book(market.index, market.close, size_units=1.5, hour_utc=8)  # one sale at 08:00
    legs = OptionLegs(
        legs.strike, legs.is_call, legs.weight, legs.start_bar, np.minimum(legs.expiry_bar, 1100), legs.expiry
    )  # settle early (at bar 1100) so the loop also checks settlement
    legs = OptionLegs(
        legs.strike, legs.is_call, legs.weight, legs.start_bar, legs.expiry_bar,
        pd.DatetimeIndex([market.index[1100]] * len(legs)),
    )  # fmt: skip
    costs = CostModel(fee_rate=0.0004, impact_coef=0.2, adv_units=5_000.0)
    config = BacktestConfig(decision_every=1, margin_every=600, costs=costs)
    result = run_backtest(market, legs, FixedInterval(every_bars=1), StaticBuffer(), config)
    sigma_daily = ewma_sigma_bar(market.close, market.iv, BAR_YEARS, config.vol_halflife_bars) * math.sqrt(1440)
    expected = reference_hedged_pnl(market, legs, costs, sigma_daily)
    # the engine also trades at bar 0 (nothing to hedge yet: no leg before 08:00) — same as the loop from bar 1
    assert result.record["pnl"].sum() == pytest.approx(expected, rel=1e-9)
    assert result.record["hedge_cost"].sum() > 0 and (result.record["hedge_cost"] >= 0).all()
    np.testing.assert_allclose(result.record["net_delta_units"], 0.0, atol=1e-9)  # hedged after every close


def test_no_hedge_earns_the_options_pnl_and_pays_nothing():
    market = make_market()
    legs = short_straddle_book(market.index, market.close, size_units=1.0)
    result = run_backtest(market, legs, NoHedge(), StaticBuffer(), BacktestConfig())
    record = result.record
    assert (record["hedge_units"] == 0).all() and record["hedge_cost"].sum() == 0.0
    np.testing.assert_allclose(record["pnl"], record["options_pnl"], rtol=0, atol=0)
    assert record["options_pnl"].sum() == pytest.approx(book_path(legs, market).pnl[1:].sum(), rel=1e-12)
    assert result.metrics["hedging_cost"] == 0.0


def test_decisions_never_depend_on_later_prices():
    market = make_market()
    legs = short_straddle_book(market.index, market.close, size_units=1.0)
    cut = 2000
    future = market.close.copy()
    future[cut + 1 :] *= np.exp(np.linspace(0.0, 0.3, future.size - cut - 1))  # a different future after the cut
    other = BacktestMarket(market.index, future, market.iv, BAR_YEARS)
    legs_other = OptionLegs(legs.strike, legs.is_call, legs.weight, legs.start_bar, legs.expiry_bar, legs.expiry)
    config = BacktestConfig(decision_every=15)
    a = run_backtest(market, legs, DeltaBand(band_units=0.2), StaticBuffer(), config).decisions
    b = run_backtest(other, legs_other, DeltaBand(band_units=0.2), StaticBuffer(), config).decisions
    before = a["bar"] <= cut
    pd.testing.assert_frame_equal(a[before], b[b["bar"] <= cut])
    assert not a[~before].reset_index(drop=True).equals(b[b["bar"] > cut].reset_index(drop=True))


def test_collateral_accounting_static_buffer_and_breaches():
    market = make_market(jump_at=2500)  # a 25% crash between two margin checks
    legs = short_straddle_book(market.index, market.close, size_units=5.0)
    config = BacktestConfig(decision_every=15, margin_every=240)
    result = run_backtest(market, legs, DeltaBand(band_units=0.5), StaticBuffer(multiple=1.5), config)
    record, margin = result.record, result.margin_decisions
    checks = margin["bar"].to_numpy()
    # after each check, equity = 1.5 x IM (topped up or released both ways), unless liquidated
    ok = ~margin["forced_liquidation"].to_numpy()
    np.testing.assert_allclose(margin["equity_after"][ok], 1.5 * margin["initial_margin"][ok], rtol=1e-9)
    np.testing.assert_allclose(record["equity"].to_numpy()[checks], margin["equity_after"], rtol=1e-9)
    np.testing.assert_allclose(record["equity"], record["posted"] + record["pnl"].cumsum(), rtol=1e-12)
    crash = record.index[record["timestamp"] == market.index[2500]][0]
    assert record["equity"].iloc[crash] < record["maintenance_margin"].iloc[crash]  # the crash breaches
    assert result.metrics["margin_breaches"] >= 1
    assert margin.loc[margin["bar"] > 2500, "breached_since_check"].iloc[0]  # the next check sees it
    # the reactive policy tops up only after the fact: it never holds more than needed before the crash
    reactive = run_backtest(market, legs, DeltaBand(band_units=0.5), ReactiveTopUp(multiple=1.2), config)
    assert reactive.metrics["mean_idle_collateral"] < result.metrics["mean_idle_collateral"]


def test_cost_model_formula_and_rate():
    costs = CostModel(fee_rate=0.001, impact_coef=0.5, adv_units=10_000.0)
    q, spot, sigma = -40.0, 50_000.0, 0.03
    expected = 0.001 * 40 * spot + 0.5 * sigma * spot * 40 * math.sqrt(40 / 10_000)
    assert costs.cost(q, spot, sigma) == pytest.approx(expected, rel=1e-14)
    assert costs.cost(0.0, spot, sigma) == 0.0
    assert costs.rate(sigma) == pytest.approx(0.001 + 0.5 * sigma * math.sqrt(1 / 10_000), rel=1e-14)
    with pytest.raises(UsageError, match=r"backtest\.costs\.adv_units"):
        CostModel(adv_units=0.0)


def test_ewma_sigma_bar_equals_a_loop():
    market = make_market(n=500)
    got = ewma_sigma_bar(market.close, market.iv, BAR_YEARS, 30.0)
    lam = 0.5 ** (1 / 30)
    v = market.iv[0] ** 2 * BAR_YEARS
    r = np.diff(np.log(market.close), prepend=np.log(market.close[0]))
    for t in range(500):
        v = lam * v + (1 - lam) * r[t] ** 2
        assert got[t] == pytest.approx(math.sqrt(v), rel=1e-12)


def test_books_are_reproducible_and_checked():
    market = make_market()
    a = market_maker_book(market.index, market.close, seed=5)
    b = market_maker_book(market.index, market.close, seed=5)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert len(a) > 0 and (a.expiry_bar > a.start_bar).all()
    assert (a.strike[a.is_call] >= market.close[a.start_bar[a.is_call]]).all()  # out of the money
    straddles = short_straddle_book(market.index, market.close, size_units=2.0, strike_step=500.0)
    assert (straddles.strike % 500 == 0).all() and (straddles.weight == -2.0).all()
    assert list(market.index[straddles.start_bar].hour) == [8] * len(straddles)
    with pytest.raises(UsageError, match="no bar ends then"):
        short_straddle_book(market.index[:300], market.close[:300], hour_utc=8)
    with pytest.raises(UsageError, match="implied vol at bar 3"):
        BacktestMarket(
            market.index, market.close, np.where(np.arange(len(market.iv)) == 3, np.nan, market.iv), BAR_YEARS
        )


def test_collateral_moves_at_its_cadence_and_with_every_trade():
    market = make_market(jump_at=2500)
    legs = short_straddle_book(market.index, market.close, size_units=5.0)
    config = BacktestConfig(decision_every=15, margin_every=60, collateral_every=1440)
    result = run_backtest(market, legs, DeltaBand(band_units=0.5), StaticBuffer(multiple=1.5), config)
    margin, record = result.margin_decisions, result.record
    moves = margin["collateral_move"].to_numpy()
    opens = sorted(set(legs.start_bar.tolist()))  # a straddle sold at 08:00 every day
    assert opens == [479, 1919, 3359]  # bar ends at 08:00 (the index starts at 00:01)
    # the first bar, then at each sale (a day apart): once a day
    assert margin.loc[moves, "bar"].tolist() == [0, *opens]
    assert set(opens) <= set(margin["bar"])  # the venue checks the requirement at every new leg too
    between = margin[~moves]
    # between the desk's moves nothing is transferred except after a liquidation
    assert (between.loc[~between["forced_liquidation"], "transfer"] == 0).all()
    liquidated = margin["forced_liquidation"].to_numpy()
    assert liquidated.any()  # the 25% crash between two moves
    ok = moves & ~liquidated
    np.testing.assert_allclose(margin.loc[ok, "equity_after"], 1.5 * margin.loc[ok, "initial_margin"], rtol=1e-9)
    np.testing.assert_allclose(record["equity"], record["posted"] + record["pnl"].cumsum(), rtol=1e-12)
    # a liquidation is a breach even when the requirement jumped at the check itself
    assert result.metrics["margin_breaches"] >= result.metrics["forced_liquidations"] >= 1
    # an hourly desk on the same market tops up at every check: it never breaches more
    hourly = run_backtest(market, legs, DeltaBand(band_units=0.5), StaticBuffer(multiple=1.5), BacktestConfig())
    assert hourly.metrics["breach_bars"] <= result.metrics["breach_bars"]
    with pytest.raises(UsageError, match="collateral_every must be a whole multiple of margin_every"):
        BacktestConfig(margin_every=60, collateral_every=90)


def test_a_book_without_options_is_margined_and_backtested():
    """A portfolio of linear positions only (empty legs): the margin book holds just the hedge, the run completes."""
    from forecaster.backtest.books import empty_legs
    from forecaster.backtest.engine import _margin_book

    market = make_market(n=600)
    legs = empty_legs()
    book = _margin_book(legs, market, 10, 2.5)
    assert list(book.ids) == ["hedge"] and book.weight.tolist() == [2.5]
    result = run_backtest(market, legs, DeltaBand(band_units=0.5), StaticBuffer(), BacktestConfig(),
                          initial_hedge_units=2.5)  # fmt: skip
    assert result.metrics["hedging_cost"] > 0  # the band hedges the lone perp position back to flat
    np.testing.assert_allclose(result.record["net_delta_units"].iloc[-1], 0.0, atol=0.5)
