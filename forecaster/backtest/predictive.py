"""The predictive hedge policy (ours) and the forecasts it reads.

Policy
------
At decision time t the policy reads the forecast of the next ``horizon`` bars (:class:`ForecastView`): the
variance forecast, the probability of the stressed regime, and the drift engine's quantiles of the book's delta
drift D over the horizon (book held fixed: full revaluation under the forecast's return and IV scenarios). With N
the net delta now:

- **band**: ``B_t = B · (σ_ref / σ_f)^vol_power · (1 − stress_tighten · p_stressed)``, floored at
  ``min_band_units``. The base B is ``band_units``, or, with ``risk_aversion`` γ set, the Whalley-Wilmott
  half-width (3/2 · λ · S · Γ² / γ)^(1/3) of the book's current gamma (so the band also follows the gamma as
  options roll). ``σ_f`` is the forecast per-bar vol (sqrt(var / horizon)), ``σ_ref`` the per-bar vol the
  options are priced at (the ATM IV, ``iv · sqrt(bar_years)``). Tighter when the forecast realized vol exceeds
  the implied one and when stress is likely: the tail days are the stressed ones, and a unit of delta costs more
  P&L variance there (a band's hedging-error variance is about B²σ²/3 per bar), so hedging effort moves from calm
  to stressed stretches at the same total cost.
- **pre-emptive trigger**: trade when |N| > B_t (the band), or *ahead* of the drift: when the forecast net delta at
  t + h leaves ``preempt · B_t`` in the median or the tail sense, |N + d50| > preempt · B_t or
  N + d95 > preempt · B_t or N + d05 < −preempt · B_t (quantiles d05, d50, d95 of D). ``preempt=None``: off.
  ``lookahead_bars`` L < h scales the drift to the next L bars (the time to the next decision): the median by
  L/h, the spread around it by sqrt(L/h) (a diffusion's), so the policy trades now when the book could leave the
  band before it looks again.
- **target** (the band's centre): the net delta that minimizes the variance of the book's P&L over the horizon
  under the forecast's scenarios (``ForecastView.target_net_delta_units``, ``min_variance=True``): not 0 when the
  book's vega moves with the spot (the leverage effect: IV rises as the spot falls) or its gamma P&L is skewed;
  else ``−d50`` (pre-positioned for the median drift). Clipped to ±``max_center`` · B_t. The deviations above
  are measured from it.
- **suggestions** (advice, not orders): when a quantile of the forecast gamma (vega) at t + h crosses
  ``gamma_limit_units`` (``vega_limit``), a "reduce or roll" suggestion with the numbers.

The oracle-fed policy is the same class fed the simulator's truth (``name="oracle"``): the upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from forecaster.backtest.policy import HedgeDecision, HedgeState
from forecaster.errors import UsageError


def _q(levels: dict[float, float], q: float) -> float:
    """The value at the level nearest ``q``."""
    return float(levels[min(levels, key=lambda level: abs(level - q))])


@dataclass
class PredictiveHedge:
    band_units: float = 1.0
    risk_aversion: float | None = None
    vol_power: float = 1.0
    stress_tighten: float = 0.5
    preempt: float | None = 1.5
    min_band_units: float = 0.01
    gamma_limit_units: float = math.inf
    vega_limit: float = math.inf
    min_variance: bool = True
    max_center: float = 2.0
    lookahead_bars: int | None = None
    to: str = "center"
    min_trade_units: float = 1e-9
    name: str = "predictive"
    needs_forecast: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        for key, low, high in (
            ("band_units", 0.0, math.inf),
            ("vol_power", 0.0, 3.0),
            ("stress_tighten", 0.0, 0.95),
            *((("preempt", 1.0, math.inf),) if self.preempt is not None else ()),
            ("min_band_units", 0.0, math.inf),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
                raise UsageError(f"predictive policy: {key} must be a number in [{low:g}, {high:g}]; got {value!r}")
        if self.lookahead_bars is not None and not (
            isinstance(self.lookahead_bars, int)
            and not isinstance(self.lookahead_bars, bool)
            and self.lookahead_bars >= 1
        ):
            raise UsageError(f"predictive policy: lookahead_bars must be a whole number >= 1 or None; got "
                             f"{self.lookahead_bars!r}")  # fmt: skip
        if self.to not in ("center", "edge"):
            raise UsageError(f"predictive policy: to must be 'center' or 'edge'; got {self.to!r}")
        if self.band_units <= 0:
            raise UsageError(f"predictive policy: band_units must be > 0; got {self.band_units!r}")
        if self.risk_aversion is not None and not (
            isinstance(self.risk_aversion, int | float)
            and not isinstance(self.risk_aversion, bool)
            and self.risk_aversion > 0
        ):
            raise UsageError(
                f"predictive policy: risk_aversion must be a number > 0 or None; got {self.risk_aversion!r}"
            )

    @property
    def param(self) -> float:
        return float(self.band_units if self.risk_aversion is None else self.risk_aversion)

    def reset(self) -> None:
        pass

    def band(self, state: HedgeState) -> float:
        f = state.forecast
        if f is None:
            raise UsageError("the predictive policy needs a forecast (wrap it in SafeHedgePolicy for the fallback)")
        sigma_f = math.sqrt(max(f.var, 0.0) / f.horizon)
        sigma_ref = state.iv * math.sqrt(state.bar_years)
        ratio = (sigma_ref / sigma_f) ** self.vol_power if sigma_f > 0 else 1.0
        stress = f.p_stressed if math.isfinite(f.p_stressed) else 0.0
        if self.risk_aversion is not None:
            from forecaster.backtest.hedging import whalley_wilmott_band

            base = float(whalley_wilmott_band(state.cost_rate, state.spot, state.book_gamma_units, self.risk_aversion))
        else:
            base = self.band_units
        return max(base * ratio * (1.0 - self.stress_tighten * stress), self.min_band_units)

    def center(self, state: HedgeState, band: float) -> tuple[float, str]:
        """The net delta the policy hedges to, and its name: the forecast's minimum-variance net delta when
        ``min_variance`` and the view has one, else minus the median drift; clipped to ±``max_center`` · band."""
        f = state.forecast
        if self.min_variance and f is not None and math.isfinite(f.target_net_delta_units):
            value, what = f.target_net_delta_units, "min-variance net"
        else:
            drift = f.delta_drift_quantiles if f is not None else {}
            value, what = (-_q(drift, 0.5) if drift else 0.0), "net -median drift"
        limit = self.max_center * band
        return min(max(value, -limit), limit), what

    def decide(self, state: HedgeState) -> HedgeDecision:
        f = state.forecast
        band = self.band(state)
        center, what = self.center(state, band)
        dev = state.net_delta_units - center  # deviation from the target net delta
        drift = f.delta_drift_quantiles if f is not None else {}
        d05, d50, d95 = (_q(drift, q) for q in (0.05, 0.5, 0.95)) if drift else (0.0, 0.0, 0.0)
        ahead = f.horizon if f is not None else 0
        if drift and self.lookahead_bars is not None and self.lookahead_bars < f.horizon:
            ahead, share = self.lookahead_bars, self.lookahead_bars / f.horizon
            mid = d50 * share
            d05, d95 = mid + (d05 - d50) * math.sqrt(share), mid + (d95 - d50) * math.sqrt(share)
            d50 = mid
        edge = self.preempt * band if self.preempt is not None else math.inf
        suggestions = self._suggestions(state)
        why = None
        if abs(dev) > band:
            why = f"|net delta - target| {abs(dev):.3f} > band {band:.3f}"
        elif abs(dev + d50) > edge:
            why = f"forecast deviation at t+{ahead} (median drift {d50:+.3f}) {dev + d50:+.3f} beyond {edge:.3f}"
        elif dev + d95 > edge or dev + d05 < -edge:
            why = (
                f"forecast deviation at t+{ahead} could reach [{dev + d05:+.3f}, {dev + d95:+.3f}], "
                f"beyond +/-{edge:.3f}"
            )
        src = f"{f.source}: " if f is not None and f.source else ""
        if why is None:
            return HedgeDecision(
                None,
                f"{src}inside: |net delta - target| {abs(dev):.3f} <= band {band:.3f}"
                + (f", drift within +/-{edge:.3f}" if self.preempt is not None else ""),
                suggestions,
            )
        goal, label = center, f"{what} {center:+.3f}"
        if self.to == "edge" and abs(dev) > band:  # a band exit: to the nearest edge (the pre-emptive ones: centre)
            goal = center + math.copysign(band, dev)
            label = f"the band's edge {goal:+.3f} (around {what} {center:+.3f})"
        target = goal - state.book_delta_units
        if abs(target - state.hedge_units) < self.min_trade_units:
            return HedgeDecision(None, f"{src}{why}; trade below the minimum", suggestions)
        return HedgeDecision(target, f"{src}{why}: hedge to {label}", suggestions)

    def _suggestions(self, state: HedgeState) -> tuple[str, ...]:
        f = state.forecast
        out = []
        if f is None:
            return ()
        if f.gamma_drift_quantiles and math.isfinite(self.gamma_limit_units):
            lo, hi = (state.book_gamma_units + _q(f.gamma_drift_quantiles, q) for q in (0.05, 0.95))
            worst = max(abs(lo), abs(hi))
            if worst > self.gamma_limit_units:
                out.append(
                    f"gamma may reach {worst:.4g} (limit {self.gamma_limit_units:.4g}) by t+{f.horizon}: reduce short "
                    "gamma (buy back the nearest expiry) or roll it out"
                )
        if f.vega_drift_quantiles and math.isfinite(self.vega_limit):
            lo, hi = (state.book_vega + _q(f.vega_drift_quantiles, q) for q in (0.05, 0.95))
            worst = max(abs(lo), abs(hi))
            if worst > self.vega_limit:
                out.append(f"vega may reach {worst:,.0f} (limit {self.vega_limit:,.0f}) by t+{f.horizon}: reduce vega")
        return tuple(out)
