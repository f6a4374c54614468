"""The policy interface of the backtester (DESIGN section 10): what a policy sees at a decision time, what it
returns, and the one protocol every hedge policy and every margin policy implements.

A policy is called by :mod:`forecaster.backtest.engine` at each *decision time* t (every ``decision_every`` bars
of the market) with a frozen state built from data at or before t only. It never sees the market after t: the
engine builds the state from the bars up to t, the book priced at t, and (for predictive policies) a forecast
made at origin t. A policy may keep its own memory between calls (e.g. the time of its last trade) and must be
reset by :meth:`reset` before a new run, so one instance can run several backtests.

Units
-----
- ``*_units``: units of the underlying (coins for BTC): the hedge instrument (a perpetual or spot) holds
  ``hedge_units``; the options book's delta is ``book_delta_units = Σ w ∂V/∂S``; the net delta is their sum.
- ``book_gamma_units``: ``Σ w ∂²V/∂S²`` (units of the underlying per unit of spot), so a spot move dS changes the
  book's delta by ``book_gamma_units · dS`` units.
- ``book_vega``: value change for +1 vol point (quote currency), as in :mod:`forecaster.portfolio.greeks`.
- variances and vols are decimal; ``sigma_bar`` is a per-bar standard deviation of log returns.
- money (margin, collateral, costs) in quote currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ForecastView:
    """What a predictive policy knows at t about the next ``horizon`` bars (all from a forecast made at t).

    ``var``: point forecast of rv over the horizon (decimal², not annualized); ``rv_quantiles``: {level: value};
    ``p_stressed``: probability of the stressed regime within the horizon; ``delta_drift_quantiles``: quantiles of
    the change of the book's delta over the horizon in units of the underlying, from the drift engine (book and
    hedge held fixed; empty when not computed); ``margin_quantiles``: quantiles of the book's initial margin at
    t + h (quote currency; empty when not computed); ``gamma_drift_quantiles``, ``vega_drift_quantiles``: the same
    for the book's gamma (units per unit of spot) and vega (per vol point); ``target_net_delta_units``: the net
    delta that minimizes the variance of the book's P&L over the horizon under the forecast's scenarios (NaN when
    not computed; it differs from 0 when the book's vega moves with the spot, or its gamma P&L is skewed);
    ``margin_need_quantiles``: quantiles of the equity the account needs now to stay above maintenance at t + h,
    maintenance margin at t + h minus the P&L over the horizon of the book delta-hedged at t (a margin view, levels
    up to 0.99; empty when not computed); ``source``: where it came from (e.g. ``"model:lgbm"``, ``"oracle"``,
    ``"naive"``) for the decision's reason.
    """

    horizon: int
    var: float
    rv_quantiles: dict[float, float] = field(default_factory=dict)
    p_stressed: float = float("nan")
    delta_drift_quantiles: dict[float, float] = field(default_factory=dict)
    gamma_drift_quantiles: dict[float, float] = field(default_factory=dict)
    vega_drift_quantiles: dict[float, float] = field(default_factory=dict)
    margin_quantiles: dict[float, float] = field(default_factory=dict)
    margin_need_quantiles: dict[float, float] = field(default_factory=dict)
    target_net_delta_units: float = float("nan")
    source: str = ""


@dataclass(frozen=True)
class HedgeState:
    """What a hedge policy sees at decision time t. Nothing in it is from after t.

    Attributes
    ----------
    timestamp, bar
        The decision time and its bar number (0-based position in the backtest's bars).
    spot
        The underlying's price at t (the close of bar ``bar``).
    hedge_units
        The hedge instrument's position before this decision (units).
    book_delta_units, book_gamma_units, book_vega
        The options book's Greeks at t (module docstring units); 0 when the book is empty.
    gamma_tau
        Gamma-weighted mean time to expiry of the options (years; NaN when the book has no gamma).
    iv
        The at-the-money implied vol at t (decimal), from the IV index or the chain.
    sigma_bar
        Trailing realized volatility per bar at t (decimal; the engine's EWMA of squared log returns), the
        reactive policies' vol estimate.
    bar_years
        One bar in years (1-minute bars of a 24/7 market: 1/525,600).
    bars_since_trade
        Bars since this policy's last hedge trade (since the start when none).
    cost_rate
        Proportional cost of trading one unit at t as a fraction of notional: fee rate plus the impact of a
        one-unit order (the engine's cost model), the λ of Whalley-Wilmott.
    delta_limit_units
        The book's hard limit on |net delta| (units; inf when none).
    forecast
        The forecast at t (predictive policies); None for reactive policies or when the model is unavailable.
    """

    timestamp: pd.Timestamp
    bar: int
    spot: float
    hedge_units: float
    book_delta_units: float
    book_gamma_units: float
    book_vega: float
    gamma_tau: float
    iv: float
    sigma_bar: float
    bar_years: float
    bars_since_trade: int
    cost_rate: float
    delta_limit_units: float = float("inf")
    forecast: ForecastView | None = None

    @property
    def net_delta_units(self) -> float:
        """Net delta of book plus hedge (units)."""
        return self.book_delta_units + self.hedge_units


@dataclass(frozen=True)
class HedgeDecision:
    """A hedge policy's answer: the hedge position to hold after t (``target_units``; None = no trade) and why.

    ``reason`` is a short human-readable sentence with the numbers that triggered the decision (e.g.
    ``"|net delta| 0.42 > band 0.30: hedge to 0"``); ``suggestions`` holds non-binding advice (e.g. gamma or vega
    roll/reduce suggestions of the predictive policy); ``fallback`` is True when a safety wrapper replaced the
    policy's own decision (model missing, failed or out of distribution)."""

    target_units: float | None
    reason: str
    suggestions: tuple[str, ...] = ()
    fallback: bool = False

    @property
    def trades(self) -> bool:
        return self.target_units is not None


@runtime_checkable
class HedgePolicy(Protocol):
    """One interface for every hedge policy.

    ``name``: a short identifier (``none``, ``fixed``, ``band``, ``ww``, ``threshold``, ``predictive``,
    ``oracle``); ``param``: the value of the parameter a sweep varies (None when the policy has none);
    ``needs_forecast``: whether the engine must build ``HedgeState.forecast``.
    """

    name: str
    needs_forecast: bool

    @property
    def param(self) -> float | None: ...

    def reset(self) -> None: ...

    def decide(self, state: HedgeState) -> HedgeDecision: ...


@dataclass(frozen=True)
class MarginState:
    """What a margin policy sees at decision time t.

    ``initial_margin``, ``maintenance_margin``: the book's requirement at t (risk matrix or SPAN, quote currency);
    ``equity``: collateral posted plus the unrealized and realized P&L since the start (quote currency);
    ``posted``: collateral currently posted at the venue; ``breached_recently``: whether equity fell below the
    maintenance margin at any decision since the last call; ``forecast``: as for hedging (its
    ``margin_quantiles`` hold the forecast of the initial margin at t + h)."""

    timestamp: pd.Timestamp
    bar: int
    initial_margin: float
    maintenance_margin: float
    equity: float
    posted: float
    breached_recently: bool
    forecast: ForecastView | None = None


@dataclass(frozen=True)
class MarginDecision:
    """The collateral to have posted after t (``target_posted``; None = unchanged) and why."""

    target_posted: float | None
    reason: str
    fallback: bool = False


@runtime_checkable
class MarginPolicy(Protocol):
    name: str
    needs_forecast: bool

    @property
    def param(self) -> float | None: ...

    def reset(self) -> None: ...

    def decide(self, state: MarginState) -> MarginDecision: ...


def finite_or(value: float, default: float) -> float:
    """``value`` when finite, else ``default`` (policies read optional numbers through it)."""
    return float(value) if np.isfinite(value) else float(default)


def describe(policy: Any) -> str:
    """``name(param=value)`` for logs and reports."""
    param = getattr(policy, "param", None)
    return policy.name if param is None else f"{policy.name}({param:g})"
