"""Margin policies: how much collateral to keep at the venue, decided at each margin check.

Every policy answers with the collateral it wants *posted* (``MarginDecision.target_posted``): the engine moves
the difference in or out. Equity at the venue is posted collateral plus the P&L since the start; the account is in
*breach* when equity is below the maintenance margin. Idle collateral (equity above the initial margin) is the
cost of a buffer.

- :class:`StaticBuffer` (``static``): equity held at ``multiple`` × the initial margin at every check, topped up
  and released both ways. The usual desk rule.
- :class:`ReactiveTopUp` (``reactive``): acts only after the fact: tops up to ``multiple`` × IM when the account
  breached since the last check (or is below IM now), and releases down to it only when equity exceeds
  ``release_multiple`` × IM.
- :class:`PredictiveTopUp` (``predictive``): tops up ahead of the spike, at each collateral move, to ``cushion``
  times the larger of the initial margin now and the ``quantile`` of the forecast *margin need* at t + h (the next
  move): the equity that keeps the account above maintenance then, maintenance margin at t + h minus the P&L over
  the horizon (``ForecastView.margin_need_quantiles``, scenarios of the forecast; a view without it: the forecast
  quantile of the initial margin at t + h, ``margin_quantiles``). It releases the excess slowly
  (``release_per_day``, a share of the excess per day: anti-procyclical), never holding more than ``cap`` × IM.
  Without a forecast it falls back to the static buffer (``fallback=True`` on the decision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from forecaster.backtest.policy import MarginDecision, MarginState
from forecaster.errors import UsageError


def _check(name: str, value: float, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
        raise UsageError(f"margin policy parameter {name} must be a number in [{low:g}, {high:g}]; got {value!r}")


def _equity_target_to_posted(state: MarginState, equity_target: float) -> float:
    """The posted collateral that brings equity to ``equity_target`` (posted − equity is the P&L)."""
    return state.posted + (equity_target - state.equity)


@dataclass
class StaticBuffer:
    multiple: float = 1.5
    name: str = field(default="static", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        _check("multiple", self.multiple, 1.0)

    @property
    def param(self) -> float:
        return float(self.multiple)

    def reset(self) -> None:
        pass

    def decide(self, state: MarginState) -> MarginDecision:
        target = self.multiple * state.initial_margin
        reason = f"static buffer: equity to {self.multiple:g} x IM {state.initial_margin:,.0f} = {target:,.0f}"
        return MarginDecision(_equity_target_to_posted(state, target), reason)


@dataclass
class ReactiveTopUp:
    multiple: float = 1.2
    release_multiple: float = 2.0
    name: str = field(default="reactive", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        _check("multiple", self.multiple, 1.0)
        _check("release_multiple", self.release_multiple, self.multiple)

    @property
    def param(self) -> float:
        return float(self.multiple)

    def reset(self) -> None:
        pass

    def decide(self, state: MarginState) -> MarginDecision:
        im = state.initial_margin
        target = self.multiple * im
        if state.breached_recently or state.equity < im:
            why = "breach since the last check" if state.breached_recently else f"equity {state.equity:,.0f} < IM"
            reason = f"reactive top-up after {why}: equity to {self.multiple:g} x IM = {target:,.0f}"
            return MarginDecision(_equity_target_to_posted(state, max(target, state.equity)), reason)
        if state.equity > self.release_multiple * im:
            reason = f"release: equity {state.equity:,.0f} > {self.release_multiple:g} x IM; down to {target:,.0f}"
            return MarginDecision(_equity_target_to_posted(state, target), reason)
        return MarginDecision(None, f"hold: IM {im:,.0f} <= equity {state.equity:,.0f}, no breach")


@dataclass
class PredictiveTopUp:
    quantile: float = 0.99
    cushion: float = 1.1
    release_per_day: float = 0.2
    cap: float = 3.0
    check_every_days: float = 1.0 / 24.0  # the engine's margin cadence, for the release rate per check
    fallback_multiple: float = 1.5
    name: str = field(default="predictive", init=False)
    needs_forecast: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        _check("quantile", self.quantile, 0.5, 0.999)
        _check("cushion", self.cushion, 1.0)
        _check("release_per_day", self.release_per_day, 0.0, 1.0)
        _check("cap", self.cap, 1.0)
        _check("check_every_days", self.check_every_days, 1e-6, 30.0)
        _check("fallback_multiple", self.fallback_multiple, 1.0)

    @property
    def param(self) -> float:
        return float(self.cushion)

    def reset(self) -> None:
        pass

    def decide(self, state: MarginState) -> MarginDecision:
        im = state.initial_margin
        forecast = state.forecast
        need = forecast is not None and bool(forecast.margin_need_quantiles)
        levels = {} if forecast is None else (forecast.margin_need_quantiles or forecast.margin_quantiles)
        what = "margin need (maintenance - P&L)" if need else "IM"
        if not levels:
            target = self.fallback_multiple * im
            reason = f"fallback (no margin forecast): static buffer {self.fallback_multiple:g} x IM = {target:,.0f}"
            return MarginDecision(_equity_target_to_posted(state, target), reason, fallback=True)
        level = min(levels, key=lambda q: abs(q - self.quantile))
        forecast_im = float(levels[level])
        if not math.isfinite(forecast_im) or forecast_im < 0:
            target = self.fallback_multiple * im
            reason = f"fallback (margin forecast {forecast_im!r} not usable): {self.fallback_multiple:g} x IM"
            return MarginDecision(_equity_target_to_posted(state, target), reason, fallback=True)
        target = min(max(im, forecast_im) * self.cushion, self.cap * max(im, 1e-12))
        src = forecast.source or "forecast"
        if state.equity < target:
            reason = (
                f"pre-emptive top-up: q{level:.1%} of the {what} at t+{forecast.horizon} bars ({src}) "
                f"{forecast_im:,.0f} x {self.cushion:g} = {target:,.0f} > equity {state.equity:,.0f}"
            )
            return MarginDecision(_equity_target_to_posted(state, target), reason)
        excess = state.equity - target
        release = excess * min(1.0, self.release_per_day * self.check_every_days)
        if release <= 0:
            return MarginDecision(None, f"hold: equity {state.equity:,.0f} at the target {target:,.0f}")
        reason = (
            f"slow release: equity {state.equity:,.0f} above target {target:,.0f}; release {release:,.0f} "
            f"({self.release_per_day:.0%} of the excess per day)"
        )
        return MarginDecision(state.posted - release, reason)


MARGIN_POLICIES = {"static": StaticBuffer, "reactive": ReactiveTopUp, "predictive": PredictiveTopUp}


def make_margin_policy(name: str, **params: float) -> StaticBuffer | ReactiveTopUp | PredictiveTopUp:
    if name not in MARGIN_POLICIES:
        raise UsageError(f"unknown margin policy {name!r}; known: {', '.join(MARGIN_POLICIES)}")
    cls = MARGIN_POLICIES[name]
    try:
        return cls(**params)
    except TypeError as err:
        import inspect

        taken = [p for p in inspect.signature(cls).parameters]
        raise UsageError(f"margin policy {name!r}: {err}; it takes {taken}") from None
