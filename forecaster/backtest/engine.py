"""The backtester: a book of options, a hedge instrument and collateral stepped through a market bar by bar.

Market and book
---------------
The market is a series of bars (close prices, bar-end timestamps) with an at-the-money implied vol on every bar
(the IV index, or the chain's 30-day ATM IV: :func:`training.data.market_iv`). The book's options are marked with
Black-76 at the spot (zero carry: the crypto convention of :mod:`forecaster.portfolio.book`) and that flat implied
vol, every bar; a leg settles at its intrinsic value at its expiry bar (:mod:`forecaster.backtest.books`). Because
the book does not depend on the policies, its per-bar P&L and Greeks are computed once, vectorized over each leg's
life (:func:`book_path`).

Hedging
-------
Hedge decisions happen at the close of every ``decision_every``-th bar. The policy sees a
:class:`forecaster.backtest.policy.HedgeState` built from the bars up to and including that bar only: the spot,
the book's Greeks after the bar, the hedge position, the IV, an EWMA of past squared returns (``sigma_bar``), the
cost rate, the book's delta limit and, for predictive policies, a forecast made at that bar. A trade is executed at
that close; it pays the cost model's fee and impact (:mod:`forecaster.backtest.costs`, with the EWMA daily vol).
The hedge (a perpetual or spot, ``weight`` units) earns ``units · (S_t − S_{t−1})`` on each later bar; a perpetual
also pays ``funding_rate_annual · units · S · bar_years`` per bar (long pays when the rate is positive).

Margin and collateral
---------------------
Every ``margin_every`` bars, and at every bar where the book opens legs, the book plus hedge is margined with
:mod:`forecaster.margin` (risk matrix or SPAN, the spec's ``margin:`` section; IVs flat at the bar's IV): the
venue's requirement. The desk moves collateral (the margin policy sets the posted collateral) at the bars of
:func:`collateral_event_bars`: when it trades options, and otherwise every ``collateral_every`` bars (default: at
every check). Equity = posted collateral + cumulative P&L. A bar with equity below the maintenance margin (of the
last check) is in *breach*. At a check, an account below maintenance after the desk's transfer (none between
collateral moves) is *liquidated* by the venue: a breach too, counted in ``forced_liquidation``; the desk then
restores equity to the initial margin (so the run continues; the liquidation loss itself is not modelled).

Outputs
-------
:class:`BacktestResult`: ``record`` (one row per bar), ``decisions`` (one row per hedge decision, with its reason),
``margin_decisions`` and the policy metrics (:func:`forecaster.backtest.metrics.policy_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import lfilter

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.costs import CostModel
from forecaster.backtest.policy import ForecastView, HedgeDecision, HedgePolicy, HedgeState, MarginPolicy, MarginState
from forecaster.errors import UsageError
from forecaster.pricing.black import black76_greeks, black76_price

FloatArray = npt.NDArray[np.float64]
YEAR = pd.Timedelta(days=365)
HEDGE_INSTRUMENTS = ("perp", "spot")

# forecast provider: (bar, book Greeks at the bar as a dict) -> ForecastView | None
ForecastProvider = Callable[[int, dict[str, float]], ForecastView | None]


@dataclass(frozen=True)
class BacktestMarket:
    """Bars of one underlying: ``index`` (bar ends, tz-aware, increasing), ``close`` (n,), ``iv`` (n,) decimal ATM
    implied vol known at each bar, ``bar_years`` (one bar in years), ``underlying`` name."""

    index: pd.DatetimeIndex
    close: FloatArray
    iv: FloatArray
    bar_years: float
    underlying: str = "BTC"

    def __post_init__(self) -> None:
        n = len(self.index)
        if n < 2:
            raise UsageError(f"the backtest needs at least 2 bars; got {n}")
        if self.close.shape != (n,) or self.iv.shape != (n,):
            raise UsageError(f"close and iv must have one value per bar ({n}); got {self.close.shape}, {self.iv.shape}")
        bad = np.flatnonzero(~(np.isfinite(self.close) & (self.close > 0)))
        if bad.size:
            raise UsageError(
                f"close at bar {bad[0]} ({self.index[bad[0]]}) is {self.close[bad[0]]}: prices must be > 0"
            )
        bad = np.flatnonzero(~(np.isfinite(self.iv) & (self.iv > 0)))
        if bad.size:
            raise UsageError(
                f"implied vol at bar {bad[0]} ({self.index[bad[0]]}) is {self.iv[bad[0]]}: the backtest prices the "
                "book from an IV on every bar; give an IV index (or chain) covering the whole market"
            )

    @property
    def bars_per_day(self) -> float:
        return 1.0 / (self.bar_years * 365.0)


@dataclass(frozen=True)
class BacktestConfig:
    """The spec's ``backtest:`` section (engine part)."""

    decision_every: int = 15
    margin_every: int = 60
    collateral_every: int | None = None  # None: collateral moves at every margin check
    hedge_instrument: str = "perp"
    funding_rate_annual: float = 0.0
    vol_halflife_bars: float = 240.0
    delta_limit_units: float = math.inf
    initial_collateral: float | None = None  # None: the margin policy's first target
    costs: CostModel = field(default_factory=CostModel)

    def __post_init__(self) -> None:
        for name in ("decision_every", "margin_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise UsageError(f"backtest.{name} must be a whole number of bars >= 1; got {value!r}")
        c = self.collateral_every
        if c is not None and not (
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 and c % self.margin_every == 0
        ):
            raise UsageError(
                f"backtest.collateral_every must be a whole multiple of margin_every ({self.margin_every}) or null; "
                f"got {c!r}"
            )
        if self.hedge_instrument not in HEDGE_INSTRUMENTS:
            raise UsageError(
                f"backtest.hedge_instrument must be one of {HEDGE_INSTRUMENTS}; got {self.hedge_instrument!r}"
            )
        if not (self.vol_halflife_bars > 0):
            raise UsageError(f"backtest.vol_halflife_bars must be > 0; got {self.vol_halflife_bars!r}")
        if not (self.delta_limit_units > 0):
            raise UsageError(f"backtest.delta_limit_units must be > 0 (inf: none); got {self.delta_limit_units!r}")

    @property
    def collateral_bars(self) -> int:
        """Bars between the desk's collateral moves."""
        return self.collateral_every or self.margin_every


def collateral_event_bars(config: BacktestConfig, legs: OptionLegs, start_bar: int, n: int) -> npt.NDArray[np.int64]:
    """The bars (of ``n``, from ``start_bar``) where the margin policy moves collateral: the first bar, every bar
    that opens legs (a trade's margin is posted when it is made), and any margin check ``collateral_every`` or more
    bars after the last move (without ``collateral_every``: every margin check). With the default book (a straddle
    sold every day) and a daily ``collateral_every`` that is once a day, at the sale. The same for every policy."""
    starts = np.asarray(legs.start_bar, dtype=np.int64)
    opens = np.unique(starts[(starts >= start_bar) & (starts < n)])
    checks = np.union1d(np.arange(start_bar, n, config.margin_every, dtype=np.int64), opens)
    if config.collateral_every is None:
        return checks
    is_open = np.zeros(n, dtype=bool)
    is_open[opens] = True
    moves, last = [], None
    for t in checks.tolist():
        if last is None or is_open[t] or t - last >= config.collateral_every:
            moves.append(t)
            last = t
    return np.asarray(moves, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class BookPath:
    """The book along the market, per bar (n,): ``pnl`` (mark-to-market P&L of the options over the bar, quote
    currency), and after the bar's close ``delta_units``, ``gamma_units``, ``vega`` (per vol point),
    ``gamma_tau`` (gamma-weighted time to expiry, years; NaN without gamma), ``live`` (legs open)."""

    pnl: FloatArray
    delta_units: FloatArray
    gamma_units: FloatArray
    vega: FloatArray
    gamma_tau: FloatArray
    live: npt.NDArray[np.int64]


def book_path(legs: OptionLegs, market: BacktestMarket) -> BookPath:
    """Mark every leg on every bar of its life (Black-76 at the spot and the bar's IV); sum over legs."""
    n = len(market.index)
    pnl, delta, gamma, vega = (np.zeros(n) for _ in range(4))
    gamma_tau_num = np.zeros(n)
    abs_gamma = np.zeros(n)
    live = np.zeros(n, dtype=np.int64)
    times = market.index
    for k in range(len(legs)):
        start = int(legs.start_bar[k])
        if start >= n:
            continue
        end = int(min(legs.expiry_bar[k], n - 1))  # the last bar it is marked on
        bars = np.arange(start, end + 1)
        tau = np.maximum(np.asarray((legs.expiry[k] - times[bars]) / YEAR, dtype=float), 0.0)
        if legs.expiry_bar[k] <= n - 1:
            tau[-1] = 0.0  # settles at its expiry bar's close: intrinsic
        s, iv = market.close[bars], market.iv[bars]
        w = float(legs.weight[k])
        price = black76_price(s, legs.strike[k], tau, iv, bool(legs.is_call[k]))
        pnl[bars[1:]] += w * np.diff(price)
        held = bars[tau > 0]  # open after the close of these bars
        if held.size:
            g = black76_greeks(s[tau > 0], legs.strike[k], tau[tau > 0], iv[tau > 0], bool(legs.is_call[k]))
            delta[held] += w * g["delta"]
            gamma[held] += w * g["gamma"]
            vega[held] += w * g["vega"] / 100.0
            gamma_tau_num[held] += np.abs(w * g["gamma"]) * tau[tau > 0]
            abs_gamma[held] += np.abs(w * g["gamma"])
            live[held] += 1
    gamma_tau = np.where(abs_gamma > 0, gamma_tau_num / np.where(abs_gamma > 0, abs_gamma, 1.0), np.nan)
    return BookPath(pnl, delta, gamma, vega, gamma_tau, live)


def ewma_sigma_bar(close: FloatArray, iv: FloatArray, bar_years: float, halflife_bars: float) -> FloatArray:
    """Trailing per-bar volatility at each bar (n,): EWMA of squared log returns up to and including the bar,
    started at the first bar's implied per-bar variance ``iv² · bar_years``. Causal."""
    r = np.diff(np.log(close), prepend=np.log(close[0]))
    lam = 0.5 ** (1.0 / halflife_bars)
    var0 = float(iv[0]) ** 2 * bar_years
    # v_t = λ v_{t−1} + (1 − λ) r_t², v_{−1} = var0
    v, _ = lfilter([1.0 - lam], [1.0, -lam], r**2, zi=[lam * var0])
    return np.sqrt(np.maximum(v, 0.0))


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class BacktestResult:
    policy: str
    margin_policy: str
    record: pd.DataFrame
    decisions: pd.DataFrame
    margin_decisions: pd.DataFrame
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)


def run_backtest(
    market: BacktestMarket,
    legs: OptionLegs,
    hedge_policy: HedgePolicy,
    margin_policy: MarginPolicy,
    config: BacktestConfig,
    *,
    margin_config: Any = None,
    forecasts: ForecastProvider | None = None,
    margin_forecasts: ForecastProvider | None = None,
    path: BookPath | None = None,
    initial_hedge_units: float = 0.0,
    start_bar: int = 0,
) -> BacktestResult:
    """Run one hedge policy and one margin policy over ``market`` (module docstring).

    ``forecasts`` gives the :class:`ForecastView` at a decision bar (predictive policies; called only when a
    policy needs one); ``margin_forecasts`` the view at a collateral bar for a predictive margin policy (its
    horizon: the time to the next collateral move; default ``forecasts``); ``path`` reuses a precomputed
    :func:`book_path` (the same for every policy); ``start_bar``: decisions start there (earlier bars only warm up
    the vol estimate).
    """
    from forecaster.backtest.metrics import policy_metrics
    from forecaster.margin import portfolio_margin

    n = len(market.index)
    book = path if path is not None else book_path(legs, market)
    sigma_bar = ewma_sigma_bar(market.close, market.iv, market.bar_years, config.vol_halflife_bars)
    sigma_daily = sigma_bar * math.sqrt(market.bars_per_day)
    hedge_policy.reset()
    margin_policy.reset()
    close = market.close
    bars = np.arange(start_bar, n)
    is_decision = (bars - start_bar) % config.decision_every == 0
    opens = np.zeros(n, dtype=bool)
    opens[legs.start_bar[(legs.start_bar >= start_bar) & (legs.start_bar < n)].astype(int)] = True
    is_margin = ((bars - start_bar) % config.margin_every == 0) | opens[start_bar:]
    events = bars[is_decision | is_margin]
    margin_forecasts = margin_forecasts if margin_forecasts is not None else forecasts
    is_collateral = np.zeros(n, dtype=bool)
    is_collateral[collateral_event_bars(config, legs, start_bar, n)] = True

    hedge_after = np.full(n, np.nan)  # hedge units held after each event bar's close
    trade_units = np.zeros(n)
    trade_cost = np.zeros(n)
    im = np.full(n, np.nan)
    mm = np.full(n, np.nan)
    posted_after = np.full(n, np.nan)
    liquidated = np.zeros(n, dtype=bool)
    decisions: list[dict[str, Any]] = []
    margin_rows: list[dict[str, Any]] = []

    h = float(initial_hedge_units)
    last_trade: int | None = None
    posted = math.nan
    last_mm = math.nan
    funding_rate = config.funding_rate_annual if config.hedge_instrument == "perp" else 0.0
    # cumulative P&L at the close of bar t = opt_cum[t] + hedge/funding/cost running sums (tracked between events)
    opt_cum = np.cumsum(np.where(np.arange(n) > start_bar, book.pnl, 0.0))
    running = 0.0  # hedge P&L + funding − costs up to the last event bar
    prev = start_bar
    breach_since_check = False
    for t in events:
        t = int(t)
        if t > prev:  # the hedge held over (prev, t]
            seg = np.arange(prev + 1, t + 1)
            dS = close[seg] - close[seg - 1]
            seg_pnl = h * dS - funding_rate * h * close[seg] * market.bar_years
            if math.isfinite(last_mm):
                equity_seg = posted + opt_cum[seg] + running + np.cumsum(seg_pnl)
                breach_since_check |= bool(np.any(equity_seg < last_mm))
            running += float(seg_pnl.sum())
        prev = t
        greeks = {
            "delta_units": float(book.delta_units[t]),
            "gamma_units": float(book.gamma_units[t]),
            "vega": float(book.vega[t]),
        }
        is_decision_bar = (t - start_bar) % config.decision_every == 0
        is_margin_bar = (t - start_bar) % config.margin_every == 0 or bool(opens[t])
        is_collateral_bar = bool(is_collateral[t])
        wants = is_decision_bar and hedge_policy.needs_forecast
        forecast = forecasts(t, greeks) if wants and forecasts is not None else None  # one view per event
        if is_decision_bar:
            state = HedgeState(
                timestamp=market.index[t],
                bar=t,
                spot=float(close[t]),
                hedge_units=h,
                book_delta_units=greeks["delta_units"],
                book_gamma_units=greeks["gamma_units"],
                book_vega=greeks["vega"],
                gamma_tau=float(book.gamma_tau[t]),
                iv=float(market.iv[t]),
                sigma_bar=float(sigma_bar[t]),
                bar_years=market.bar_years,
                bars_since_trade=t - (start_bar if last_trade is None else last_trade),
                cost_rate=config.costs.rate(float(sigma_daily[t])),
                delta_limit_units=config.delta_limit_units,
                forecast=forecast if hedge_policy.needs_forecast else None,
            )
            decision: HedgeDecision = hedge_policy.decide(state)
            traded = 0.0
            cost = 0.0
            if decision.target_units is not None:
                target = float(decision.target_units)
                if not math.isfinite(target):
                    raise UsageError(f"hedge policy {hedge_policy.name} returned a non-finite target at bar {t}")
                traded = target - h
                cost = config.costs.cost(traded, float(close[t]), float(sigma_daily[t]))
                h = target
                running -= cost
                if traded != 0.0:
                    last_trade = t
            trade_units[t] += traded
            trade_cost[t] += cost
            decisions.append(
                {
                    "timestamp": market.index[t],
                    "bar": t,
                    "net_delta_before": state.net_delta_units,
                    "traded_units": traded,
                    "hedge_units": h,
                    "cost": cost,
                    "reason": decision.reason,
                    "fallback": decision.fallback,
                    "suggestions": "; ".join(decision.suggestions),
                }
            )
        hedge_after[t] = h
        if is_margin_bar:
            result = portfolio_margin(_margin_book(legs, market, t, h), margin_config)
            im[t], mm[t] = result.initial, result.maintenance
            pnl_now = float(opt_cum[t] + running)
            if not math.isfinite(posted):
                first = config.initial_collateral
                posted = float(first) if first is not None else math.nan
            equity = (posted if math.isfinite(posted) else 0.0) + pnl_now
            old_posted = posted if math.isfinite(posted) else 0.0
            breached = breach_since_check  # since the last collateral move
            fallback = False
            if is_collateral_bar or not math.isfinite(posted):
                mforecast = None
                if margin_policy.needs_forecast and margin_forecasts is not None:
                    mforecast = forecast if margin_forecasts is forecasts and forecast is not None else None
                    mforecast = mforecast or margin_forecasts(t, greeks)
                mstate = MarginState(
                    timestamp=market.index[t],
                    bar=t,
                    initial_margin=result.initial,
                    maintenance_margin=result.maintenance,
                    equity=equity,
                    posted=old_posted,
                    breached_recently=breached,
                    forecast=mforecast,
                )
                mdecision = margin_policy.decide(mstate)
                new_posted = old_posted if mdecision.target_posted is None else float(mdecision.target_posted)
                reason, fallback = mdecision.reason, mdecision.fallback
                breach_since_check = False
            else:
                new_posted = old_posted
                reason = f"requirement check (the desk moves collateral every {config.collateral_bars} bars)"
            forced = False
            if new_posted + pnl_now < result.maintenance:  # still short after the desk: the venue liquidates
                forced = True
                new_posted = result.initial - pnl_now
                breach_since_check = True  # the next collateral move is told
            liquidated[t] = forced
            margin_rows.append(
                {
                    "timestamp": market.index[t],
                    "bar": t,
                    "collateral_move": bool(is_collateral_bar),
                    "initial_margin": result.initial,
                    "maintenance_margin": result.maintenance,
                    "equity_before": equity,
                    "transfer": new_posted - old_posted,
                    "equity_after": new_posted + pnl_now,
                    "breached_since_check": breached,
                    "forced_liquidation": forced,
                    "reason": reason + (" — still below maintenance: liquidated" if forced else ""),
                    "fallback": fallback,
                }
            )
            posted = new_posted
            posted_after[t] = posted
            last_mm = result.maintenance

    record = _record(market, book, start_bar, hedge_after, trade_units, trade_cost, funding_rate, im, mm, posted_after)
    record["forced_liquidation"] = liquidated[start_bar:]
    record["delta_limit_units"] = config.delta_limit_units
    metrics = policy_metrics(record)
    return BacktestResult(
        policy=_describe(hedge_policy),
        margin_policy=_describe(margin_policy),
        record=record,
        decisions=pd.DataFrame(decisions),
        margin_decisions=pd.DataFrame(margin_rows),
        metrics=metrics,
    )


def _record(market, book, start, hedge_after, trade_units, trade_cost, funding_rate, im, mm, posted_after):
    n = len(market.index)
    hedge = pd.Series(hedge_after).ffill().to_numpy()[start:]  # held after each bar's close
    close = market.close[start:]
    held_over = np.r_[0.0, hedge[:-1]]  # the position held over bar t: the one after bar t−1
    dS = np.r_[0.0, np.diff(close)]
    hedge_pnl = held_over * dS
    funding = -funding_rate * held_over * close * market.bar_years
    options_pnl = np.r_[0.0, book.pnl[start + 1 :]] if n - start > 1 else np.zeros(1)
    cost = trade_cost[start:]
    pnl = options_pnl + hedge_pnl + funding - cost
    posted = pd.Series(posted_after[start:]).ffill().to_numpy()
    frame = pd.DataFrame(
        {
            "timestamp": market.index[start:],
            "spot": close,
            "iv": market.iv[start:],
            "options_pnl": options_pnl,
            "hedge_pnl": hedge_pnl,
            "funding": funding,
            "hedge_cost": cost,
            "pnl": pnl,
            "traded_units": trade_units[start:],
            "hedge_units": hedge,
            "book_delta_units": book.delta_units[start:],
            "net_delta_units": book.delta_units[start:] + hedge,
            "book_gamma_units": book.gamma_units[start:],
            "book_vega": book.vega[start:],
            "initial_margin": pd.Series(im[start:]).ffill().to_numpy(),
            "maintenance_margin": pd.Series(mm[start:]).ffill().to_numpy(),
            "posted": posted,
        }
    )
    frame["equity"] = frame["posted"] + np.cumsum(pnl)
    return frame


def _margin_book(legs: OptionLegs, market: BacktestMarket, t: int, hedge_units: float, held=None):
    """The book after the close of bar t (open legs plus the hedge) as a :class:`forecaster.portfolio.Book`;
    ``held`` (bool, (K,)): only these legs, all open at t (a book held fixed since an earlier bar)."""
    from forecaster.portfolio.book import Book

    open_ = (legs.start_bar <= t) & (legs.expiry_bar > t)
    if held is not None:
        open_ &= held
    k = np.flatnonzero(open_)
    spot = float(market.close[t])
    tau = np.maximum(np.asarray((legs.expiry[k] - market.index[t]) / YEAR, dtype=float), 1e-9)
    m = k.size + 1
    return Book(
        as_of=market.index[t],
        ids=(*(f"leg{i}" for i in k), "hedge"),
        instrument=np.array(["option"] * k.size + ["perp"]),
        underlying=np.array([market.underlying] * m),
        weight=np.r_[legs.weight[k], hedge_units],
        is_call=np.r_[legs.is_call[k], False],
        strike=np.r_[legs.strike[k], np.nan],
        tau=np.r_[tau, np.nan],
        iv=np.r_[np.full(k.size, float(market.iv[t])), np.nan],
        spot=np.full(m, spot),
    )


def _describe(policy: Any) -> str:
    from forecaster.backtest.policy import describe

    return describe(policy)
