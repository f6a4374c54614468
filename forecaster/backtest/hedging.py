"""Reactive hedge policies, the Whalley-Wilmott band, and the safety wrapper (DESIGN section 10).

Every policy implements :class:`forecaster.backtest.policy.HedgePolicy`: at each decision it answers with the hedge
position to hold (``HedgeDecision.target_units``; None = no trade) and a reason with the numbers behind it.
Hedging "to net x" means ``target_units = x − book_delta_units``, so ``book_delta_units + target_units = x``;
hedging "to zero" is ``target_units = −book_delta_units``.

- :class:`NoHedge` (``none``): never trades.
- :class:`FixedInterval` (``fixed``, param ``every_bars``): hedges to zero at the first decision and then whenever
  at least ``every_bars`` bars have passed since the last trade.
- :class:`DeltaBand` (``band``, param ``band_units``): when |net delta| > ``band_units``, hedges to zero
  (``to="zero"``) or to the nearest band edge (``to="edge"``).
- :class:`WhalleyWilmott` (``ww``, param ``risk_aversion``): the asymptotically optimal band of Whalley & Wilmott
  (1997) around zero net delta, :func:`whalley_wilmott_band`; trades to the nearest edge.
- :class:`ThresholdRule` (``threshold``, param ``threshold_units``): looks every ``check_every_bars`` bars and
  re-hedges to zero when |net delta| > ``threshold_units`` (the rule of open-source crypto delta hedgers).
- :class:`SafeHedgePolicy`: wraps any policy with a fallback (model missing, failing, or inputs out of
  distribution per :class:`OutOfDistribution`) and caps on order size and notional per step.

Every policy takes ``min_trade_units`` (default 1e-9): a trade smaller than that is never issued (the decision is
"no trade" with the reason), so a hedged book does not churn 1e-15 units of rounding noise.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import KW_ONLY, MISSING, dataclass, field, fields
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from forecaster.backtest.policy import HedgeDecision, HedgePolicy, HedgeState
from forecaster.errors import UsageError

FloatArray = npt.NDArray[np.float64]

DEFAULT_MIN_TRADE_UNITS = 1e-9
REASON_EXCEPTION_CHARS = 200  # how much of a failing model's message goes into the reason


# ----------------------------------------------------------------------------------------------------------------
# Functional core
# ----------------------------------------------------------------------------------------------------------------


@overload
def whalley_wilmott_band(cost_rate: float, spot: float, gamma_units: float, risk_aversion: float) -> float: ...


@overload
def whalley_wilmott_band(
    cost_rate: FloatArray | float, spot: FloatArray | float, gamma_units: FloatArray | float, risk_aversion: float
) -> FloatArray: ...


def whalley_wilmott_band(
    cost_rate: FloatArray | float,
    spot: FloatArray | float,
    gamma_units: FloatArray | float,
    risk_aversion: float | FloatArray,
) -> float | FloatArray:
    """Half-width of the Whalley-Wilmott no-trade band around zero net delta (units of the underlying).

    ``H = (3/2 · λ · S · Γ² / γ)^(1/3)`` with λ the proportional cost rate, S the spot, Γ the book's gamma (its
    absolute value is used) and γ the risk aversion; with zero rates the discount factor of the original formula
    is 1 (Whalley & Wilmott 1997, "An asymptotic analysis of an optimal hedging model for option pricing with
    transaction costs"). H grows like λ^(1/3) and Γ^(2/3) and shrinks like γ^(−1/3); Γ = 0 gives H = 0.

    Parameters
    ----------
    cost_rate, spot, gamma_units, risk_aversion
        Scalars or arrays broadcasting together (Shape: any common broadcast shape). NaN propagates.

    Returns
    -------
    float or ndarray
        A float when every input is a scalar, else an array of the broadcast shape.

    Raises
    ------
    UsageError
        When a finite cost_rate is negative, a finite spot is not positive, or a risk_aversion is not positive.
    """
    scalars = (cost_rate, spot, gamma_units, risk_aversion)
    if all(isinstance(x, float | int) for x in scalars):  # the per-decision path: plain floats, no numpy overhead
        return _ww_band_scalar(*(float(x) for x in scalars))  # type: ignore[arg-type]
    lam, s, g, ra = (np.asarray(x, dtype=float) for x in scalars)
    _require_array("cost_rate", lam, lambda x: x >= 0, "a number >= 0")
    _require_array("spot", s, lambda x: x > 0, "a number > 0")
    _require_array("risk_aversion", ra, lambda x: x > 0, "a number > 0 (inf allowed)", nan_ok=False)
    band = np.cbrt(1.5 * lam * s * np.square(g) / ra)  # Shape: broadcast of the four inputs
    return float(band) if band.ndim == 0 else band


def _ww_band_scalar(cost_rate: float, spot: float, gamma_units: float, risk_aversion: float) -> float:
    """:func:`whalley_wilmott_band` for plain floats (same rules, same errors)."""
    for name, value, ok, allowed in (
        ("cost_rate", cost_rate, cost_rate >= 0 or math.isnan(cost_rate), "a number >= 0"),
        ("spot", spot, spot > 0 or math.isnan(spot), "a number > 0"),
        ("risk_aversion", risk_aversion, risk_aversion > 0, "a number > 0 (inf allowed)"),
    ):
        if not ok:
            raise UsageError(f"whalley_wilmott_band: {name} must be {allowed}; got {value!r}")
    return math.cbrt(1.5 * cost_rate * spot * gamma_units * gamma_units / risk_aversion)


def _require_array(name: str, values: np.ndarray, ok: Any, allowed: str, *, nan_ok: bool = True) -> None:
    bad = ~ok(values) & (~np.isnan(values) if nan_ok else True)
    if np.any(bad):
        raise UsageError(f"whalley_wilmott_band: {name} must be {allowed}; got {float(values[bad].flat[0])!r}")


def _fmt(x: float) -> str:
    return f"{x + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


def _hedge_to(state: HedgeState, net_target: float, why: str, min_trade_units: float) -> HedgeDecision:
    """The decision that brings net delta to ``net_target``, or "no trade" when that trade is below the minimum."""
    target = net_target - state.book_delta_units
    trade = target - state.hedge_units
    if not math.isfinite(trade):  # a NaN book delta or hedge: nothing sensible to trade
        return HedgeDecision(
            None, f"{why}: trade {trade!r} not finite (book delta {state.book_delta_units!r}): no trade"
        )
    if abs(trade) < min_trade_units:
        return HedgeDecision(
            None, f"{why}: trade {trade:.3g} units below min_trade_units {min_trade_units:g}: no trade"
        )
    return HedgeDecision(target + 0.0, f"{why}: hedge to net {_fmt(net_target)} (trade {trade:+.4g} units)")


# ----------------------------------------------------------------------------------------------------------------
# Parameter validation: one validator, one message shape (policy, parameter, allowed, received)
# ----------------------------------------------------------------------------------------------------------------


def _number(policy: str, param: str, value: object, *, low: float, strict: bool = False, inf_ok: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    ok = ok and (x > low if strict else x >= low) and (math.isfinite(x) or (inf_ok and x == math.inf))
    if not ok:
        bound = f"{'>' if strict else '>='} {low:g}"
        allowed = f"a number {bound}" + (" (inf: no limit)" if inf_ok else ", finite")
        raise UsageError(f"hedge policy {policy!r}: {param} must be {allowed}; got {value!r}")
    return x


def _integer(policy: str, param: str, value: object, *, low: int) -> int:
    integral = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or int(value) < low:  # type: ignore[call-overload]
        raise UsageError(f"hedge policy {policy!r}: {param} must be an integer >= {low}; got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _choice(policy: str, param: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(
            f"hedge policy {policy!r}: {param} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )
    return str(value)


# ----------------------------------------------------------------------------------------------------------------
# Reactive policies
# ----------------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class NoHedge:
    """Never trades (``none``): the unhedged book."""

    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="none", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.min_trade_units = _number(self.name, "min_trade_units", self.min_trade_units, low=0.0)

    @property
    def param(self) -> float | None:
        return None

    def reset(self) -> None:
        pass

    def decide(self, state: HedgeState) -> HedgeDecision:
        return HedgeDecision(None, f"no hedge: net delta {_fmt(state.net_delta_units)} left open")


@dataclass(kw_only=True)
class FixedInterval:
    """Hedges to zero net delta at the first decision and then once ``every_bars`` bars passed since the last trade.

    The clock is the engine's ``state.bars_since_trade``; whether this is the first decision since :meth:`reset`
    is kept here.
    """

    every_bars: int
    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="fixed", init=False)
    needs_forecast: bool = field(default=False, init=False)
    _started: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.every_bars = _integer(self.name, "every_bars", self.every_bars, low=1)
        self.min_trade_units = _number(self.name, "min_trade_units", self.min_trade_units, low=0.0)

    @property
    def param(self) -> float:
        return float(self.every_bars)

    def reset(self) -> None:
        self._started = False

    def decide(self, state: HedgeState) -> HedgeDecision:
        first, self._started = not self._started, True
        since, every = state.bars_since_trade, self.every_bars
        if first:
            return _hedge_to(state, 0.0, f"fixed interval: first decision (every {every} bars)", self.min_trade_units)
        if since >= every:
            return _hedge_to(
                state, 0.0, f"fixed interval: {since} bars since last trade >= {every}", self.min_trade_units
            )
        return HedgeDecision(None, f"fixed interval: wait, {since} bars since last trade < {every}")


@dataclass(kw_only=True)
class DeltaBand:
    """Reactive band: when |net delta| > ``band_units`` hedge to zero (``to="zero"``) or to the nearest edge
    (``to="edge"``); inside the band (edge included) do nothing. ``band_units = 0`` hedges every nonzero delta."""

    band_units: float
    to: str = "zero"
    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="band", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.band_units = _number(self.name, "band_units", self.band_units, low=0.0)
        self.to = _choice(self.name, "to", self.to, ("zero", "edge"))
        self.min_trade_units = _number(self.name, "min_trade_units", self.min_trade_units, low=0.0)

    @property
    def param(self) -> float:
        return float(self.band_units)

    def reset(self) -> None:
        pass

    def decide(self, state: HedgeState) -> HedgeDecision:
        net, band = state.net_delta_units, self.band_units
        if not abs(net) > band:
            return HedgeDecision(None, f"inside band: |net delta| {_fmt(abs(net))} <= {_fmt(band)}")
        goal = math.copysign(band, net) if self.to == "edge" else 0.0
        why = f"|net delta| {_fmt(abs(net))} > band {_fmt(band)}"
        return _hedge_to(state, goal, why + (" (to edge)" if self.to == "edge" else ""), self.min_trade_units)


@dataclass(kw_only=True)
class WhalleyWilmott:
    """The Whalley-Wilmott band (:func:`whalley_wilmott_band`) around zero net delta; trades to the nearest edge.

    λ = ``state.cost_rate``, S = ``state.spot``, Γ = |``state.book_gamma_units``|, γ = ``risk_aversion``. With
    Γ = 0 the band is 0 and the policy is "always hedged": it hedges to zero whenever |net delta| is at least
    ``min_trade_units``. When the band is not finite (NaN cost, spot or gamma in the state) it hedges to zero and
    says so: a hedger that cannot size its band keeps the book flat rather than open.
    """

    risk_aversion: float
    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="ww", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.risk_aversion = _number(self.name, "risk_aversion", self.risk_aversion, low=0.0, strict=True)
        self.min_trade_units = _number(self.name, "min_trade_units", self.min_trade_units, low=0.0)

    @property
    def param(self) -> float:
        return float(self.risk_aversion)

    def reset(self) -> None:
        pass

    def decide(self, state: HedgeState) -> HedgeDecision:
        net, gamma = state.net_delta_units, abs(state.book_gamma_units)
        inputs = f"λ {state.cost_rate:.3g}, S {state.spot:.6g}, |Γ| {gamma:.3g}, γ {self.risk_aversion:g}"
        try:
            band = whalley_wilmott_band(state.cost_rate, state.spot, gamma, self.risk_aversion)
        except UsageError as err:  # a negative cost rate or spot in the state: no band can be sized
            band, inputs = math.nan, f"{inputs}; {err}"
        if not math.isfinite(band):
            return _hedge_to(state, 0.0, f"WW band not finite ({inputs})", self.min_trade_units)
        label = f"WW band {_fmt(band)} ({inputs}{'; Γ 0: always hedged' if band == 0 else ''})"
        if not abs(net) > band:
            return HedgeDecision(None, f"inside {label}: |net delta| {_fmt(abs(net))} <= {_fmt(band)}")
        why = f"|net delta| {_fmt(abs(net))} > {label}, to edge"
        return _hedge_to(state, math.copysign(band, net), why, self.min_trade_units)


@dataclass(kw_only=True)
class ThresholdRule:
    """Every ``check_every_bars`` bars (counted on ``state.bar`` from this policy's last check; the first decision
    after :meth:`reset` is a check) re-hedge to zero when |net delta| > ``threshold_units``."""

    threshold_units: float
    check_every_bars: int
    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="threshold", init=False)
    needs_forecast: bool = field(default=False, init=False)
    _last_check: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.threshold_units = _number(self.name, "threshold_units", self.threshold_units, low=0.0)
        self.check_every_bars = _integer(self.name, "check_every_bars", self.check_every_bars, low=1)
        self.min_trade_units = _number(self.name, "min_trade_units", self.min_trade_units, low=0.0)

    @property
    def param(self) -> float:
        return float(self.threshold_units)

    def reset(self) -> None:
        self._last_check = None

    def decide(self, state: HedgeState) -> HedgeDecision:
        every = self.check_every_bars
        if self._last_check is not None and state.bar - self._last_check < every:
            since = state.bar - self._last_check
            return HedgeDecision(None, f"no check: {since} bars since last check at bar {self._last_check} < {every}")
        self._last_check = state.bar
        net, threshold = state.net_delta_units, self.threshold_units
        if not abs(net) > threshold:
            return HedgeDecision(None, f"check at bar {state.bar}: |net delta| {_fmt(abs(net))} <= {_fmt(threshold)}")
        why = f"check at bar {state.bar}: |net delta| {_fmt(abs(net))} > threshold {_fmt(threshold)}"
        return _hedge_to(state, 0.0, why, self.min_trade_units)


HEDGE_POLICIES: dict[str, type[NoHedge | FixedInterval | DeltaBand | WhalleyWilmott | ThresholdRule]] = {
    "none": NoHedge,
    "fixed": FixedInterval,
    "band": DeltaBand,
    "ww": WhalleyWilmott,
    "threshold": ThresholdRule,
}


def make_hedge_policy(name: str, **params: Any) -> HedgePolicy:
    """A reactive hedge policy by its name (``none``, ``fixed``, ``band``, ``ww``, ``threshold``) and parameters.

    Raises
    ------
    UsageError
        For an unknown name (the message lists the known ones), an unknown or missing parameter (it lists the
        parameters that policy takes) or a value out of range.
    """
    if name not in HEDGE_POLICIES:
        raise UsageError(f"unknown hedge policy {name!r}; known: {', '.join(HEDGE_POLICIES)}")
    cls = HEDGE_POLICIES[name]
    taken = [f.name for f in fields(cls) if f.init]
    required = [f.name for f in fields(cls) if f.init and f.default is MISSING and f.default_factory is MISSING]
    unknown = sorted(set(params) - set(taken))
    missing = [p for p in required if p not in params]
    if unknown or missing:
        problem = f"unknown parameter(s) {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise UsageError(
            f"hedge policy {name!r}: {problem}; it takes {', '.join(taken)} (required: {', '.join(required) or '-'})"
        )
    return cls(**params)


# ----------------------------------------------------------------------------------------------------------------
# Safety
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OutOfDistribution:
    """Checks that a state's inputs look like what a predictive model was trained on.

    :meth:`check` returns the first failing check's reason, or None. The checks, in order:

    1. ``spot`` finite and > 0.
    2. ``iv`` finite and in [``iv_lo``, ``iv_hi``] (default [0.01, 5.0]; a missing IV (NaN) is flagged too).
    3. With a forecast only (``state.forecast`` not None):

       a. ``forecast.horizon`` >= 1 bar;
       b. ``forecast.var`` finite and > 0;
       c. ``forecast.var`` within [``var_ratio_lo``, ``var_ratio_hi``] (default [0.02, 50]) times the trailing
          realized variance over the same horizon, ``sigma_bar² · horizon``; skipped when ``sigma_bar`` is not
          finite or is 0 (the engine's EWMA warming up: nothing to compare with);
       d. ``forecast.p_stressed`` in [0, 1] when finite (NaN means "not forecast" and passes).
    """

    var_ratio_lo: float = 0.02
    var_ratio_hi: float = 50.0
    iv_lo: float = 0.01
    iv_hi: float = 5.0

    def __post_init__(self) -> None:
        for low, high, what in ((self.var_ratio_lo, self.var_ratio_hi, "var_ratio"), (self.iv_lo, self.iv_hi, "iv")):
            _number("ood", f"{what}_lo", low, low=0.0, strict=True)
            _number("ood", f"{what}_hi", high, low=0.0, strict=True)
            if not low < high:
                raise UsageError(f"OutOfDistribution: {what}_lo must be < {what}_hi; got {low!r} >= {high!r}")

    def check(self, state: HedgeState) -> str | None:
        """The reason the state is out of distribution, or None when every check passes (class docstring)."""
        if not (math.isfinite(state.spot) and state.spot > 0):
            return f"spot {state.spot!r} not a finite positive price"
        if not (math.isfinite(state.iv) and self.iv_lo <= state.iv <= self.iv_hi):
            return f"iv {state.iv:.4g} outside [{self.iv_lo:g}, {self.iv_hi:g}]"
        forecast = state.forecast
        if forecast is None:
            return None
        if forecast.horizon < 1:
            return f"forecast horizon {forecast.horizon} < 1 bar"
        var = float(forecast.var)
        if not (math.isfinite(var) and var > 0):
            return f"forecast var {var!r} not finite and positive"
        trailing = state.sigma_bar**2 * forecast.horizon
        if math.isfinite(trailing) and trailing > 0:
            ratio = var / trailing
            if not self.var_ratio_lo <= ratio <= self.var_ratio_hi:
                return (
                    f"forecast var {var:.4g} is {ratio:.3g} x trailing realized var {trailing:.4g} over "
                    f"{forecast.horizon} bars, outside [{self.var_ratio_lo:g}, {self.var_ratio_hi:g}]"
                )
        p = float(forecast.p_stressed)
        if math.isfinite(p) and not 0.0 <= p <= 1.0:
            return f"p_stressed {p:.4g} outside [0, 1]"
        return None


@dataclass
class SafeHedgePolicy:
    """``inner`` with a fallback and caps (DESIGN section 10: safety).

    At each decision, in order:

    1. ``inner`` needs a forecast and ``state.forecast`` is None: the fallback decides ("model unavailable").
    2. ``ood`` (when given) flags the state: the fallback decides, the reason names the failed check. ``ood=None``
       runs no such check; pass ``OutOfDistribution()`` for the default checks.
    3. ``inner.decide`` raises any Exception, or returns a non-finite target: the fallback decides; the reason
       names the exception's type and message (first 200 characters). Nothing is re-raised.
    4. The trade (target − ``state.hedge_units``) is clipped to ±``max_order_units`` and to
       ±``max_notional_per_step`` / spot (the smaller wins); the reason then says "capped: wanted X units,
       traded Y (limit ...)". When the spot is not a finite positive price the notional cap cannot be evaluated
       and no trade is made. A capped trade below ``min_trade_units`` is not issued.

    A fallback decision has ``fallback=True``. Should the fallback itself raise, the decision is "no trade" with
    both reasons (the wrapper never raises from :meth:`decide`). ``name``, ``param`` and ``needs_forecast`` are
    the inner policy's; :meth:`reset` resets both policies.
    """

    inner: HedgePolicy
    fallback: HedgePolicy
    _: KW_ONLY
    max_order_units: float
    max_notional_per_step: float
    ood: OutOfDistribution | None = None
    min_trade_units: float = DEFAULT_MIN_TRADE_UNITS
    name: str = field(default="", init=False)
    needs_forecast: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for role, policy in (("inner", self.inner), ("fallback", self.fallback)):
            if not isinstance(policy, HedgePolicy):
                raise UsageError(f"SafeHedgePolicy: {role} must implement HedgePolicy; got {policy!r}")
        if self.fallback.needs_forecast:
            raise UsageError(
                f"SafeHedgePolicy: fallback must not need a forecast (it runs when the model is missing); "
                f"got {self.fallback.name!r}. Use a reactive policy such as make_hedge_policy('band', band_units=...)"
            )
        if self.ood is not None and not isinstance(self.ood, OutOfDistribution):
            raise UsageError(f"SafeHedgePolicy: ood must be an OutOfDistribution or None; got {self.ood!r}")
        name = f"safe({self.inner.name})"
        self.max_order_units = _number(name, "max_order_units", self.max_order_units, low=0.0, strict=True, inf_ok=True)
        self.max_notional_per_step = _number(
            name, "max_notional_per_step", self.max_notional_per_step, low=0.0, strict=True, inf_ok=True
        )
        self.min_trade_units = _number(name, "min_trade_units", self.min_trade_units, low=0.0)
        self.name, self.needs_forecast = self.inner.name, self.inner.needs_forecast

    @property
    def param(self) -> float | None:
        return self.inner.param

    def reset(self) -> None:
        self.inner.reset()
        self.fallback.reset()

    def decide(self, state: HedgeState) -> HedgeDecision:
        return self._cap(state, self._uncapped(state))

    def _uncapped(self, state: HedgeState) -> HedgeDecision:
        if self.inner.needs_forecast and state.forecast is None:
            return self._fall_back(state, "no forecast: model unavailable")
        if self.ood is not None and (why := self.ood.check(state)) is not None:
            return self._fall_back(state, f"out of distribution: {why}")
        try:
            decision = self.inner.decide(state)
        except Exception as err:  # any model failure ends in the fallback, never in a crashed backtest
            return self._fall_back(state, f"model failed: {_describe_error(err)}")
        if decision.target_units is not None and not math.isfinite(decision.target_units):
            return self._fall_back(state, f"model returned a non-finite target {decision.target_units!r}")
        return decision

    def _fall_back(self, state: HedgeState, why: str) -> HedgeDecision:
        try:
            decision = self.fallback.decide(state)
        except Exception as err:
            reason = f"fallback ({why}) failed too: {_describe_error(err)}: no trade"
            return HedgeDecision(None, reason, fallback=True)
        return HedgeDecision(
            decision.target_units, f"fallback ({why}): {decision.reason}", decision.suggestions, fallback=True
        )

    def _cap(self, state: HedgeState, decision: HedgeDecision) -> HedgeDecision:
        if decision.target_units is None:
            return decision
        wanted = decision.target_units - state.hedge_units
        if not (math.isfinite(state.spot) and state.spot > 0):
            reason = f"{decision.reason}; no trade: notional cap needs a positive spot, got {state.spot!r}"
            return HedgeDecision(None, reason, decision.suggestions, decision.fallback)
        notional_units = self.max_notional_per_step / state.spot
        limit = min(self.max_order_units, notional_units)
        if abs(wanted) <= limit:
            return decision
        traded = math.copysign(limit, wanted)
        which = (
            f"max_order_units {self.max_order_units:g}"
            if self.max_order_units <= notional_units
            else f"max_notional_per_step {self.max_notional_per_step:g} / spot {state.spot:.6g}"
        )
        reason = f"{decision.reason}; capped: wanted {wanted:+.4g} units, traded {traded:+.4g} (limit {which})"
        if abs(traded) < self.min_trade_units:
            return HedgeDecision(
                None, f"{reason}: below min_trade_units, no trade", decision.suggestions, decision.fallback
            )
        return HedgeDecision(state.hedge_units + traded, reason, decision.suggestions, decision.fallback)


def _describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:REASON_EXCEPTION_CHARS]}"
