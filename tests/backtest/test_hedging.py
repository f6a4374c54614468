"""Hedge policies: decisions and reasons on hand-made states, the Whalley-Wilmott band against its closed form and
scaling laws, a Brownian simulation for the 1/B law of traded units, and the safety wrapper."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest.hedging import (
    DeltaBand,
    FixedInterval,
    NoHedge,
    OutOfDistribution,
    SafeHedgePolicy,
    ThresholdRule,
    WhalleyWilmott,
    make_hedge_policy,
    whalley_wilmott_band,
)
from forecaster.backtest.policy import ForecastView, HedgeDecision, HedgePolicy, HedgeState, describe
from forecaster.errors import UsageError

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def make_state(**overrides: Any) -> HedgeState:
    """A HedgeState with plain defaults: flat book at spot 100, IV 60%, 0.1% per-bar vol, no forecast."""
    values: dict[str, Any] = {
        "timestamp": T0,
        "bar": 0,
        "spot": 100.0,
        "hedge_units": 0.0,
        "book_delta_units": 0.0,
        "book_gamma_units": 0.0,
        "book_vega": 0.0,
        "gamma_tau": math.nan,
        "iv": 0.6,
        "sigma_bar": 1e-3,
        "bar_years": 1 / 525_600,
        "bars_since_trade": 0,
        "cost_rate": 5e-4,
    }
    values.update(overrides)
    return HedgeState(**values)


def forecast(var: float = 1e-5, horizon: int = 10, p_stressed: float = math.nan) -> ForecastView:
    return ForecastView(horizon=horizon, var=var, p_stressed=p_stressed, source="stub")


class StubModel:
    """A predictive policy stand-in: hedges to zero, or raises ``error`` when given one."""

    name = "stub"
    needs_forecast = True

    def __init__(self, error: Exception | None = None, target: float | None = None) -> None:
        self.error, self.target, self.resets = error, target, 0

    @property
    def param(self) -> float | None:
        return 1.0

    def reset(self) -> None:
        self.resets += 1

    def decide(self, state: HedgeState) -> HedgeDecision:
        if self.error is not None:
            raise self.error
        target = -state.book_delta_units if self.target is None else self.target
        return HedgeDecision(target, "stub: hedge to zero")


def safe(inner: HedgePolicy | None = None, **kwargs: Any) -> SafeHedgePolicy:
    kwargs = {"max_order_units": math.inf, "max_notional_per_step": math.inf, **kwargs}
    return SafeHedgePolicy(inner or StubModel(), DeltaBand(band_units=0.3), **kwargs)


# ------------------------------------------------------------------------------------------------- shared contract

POLICY_FACTORIES = {
    "none": lambda: NoHedge(),
    "fixed": lambda: FixedInterval(every_bars=5),
    "band": lambda: DeltaBand(band_units=0.3),
    "band-edge": lambda: DeltaBand(band_units=0.3, to="edge"),
    "ww": lambda: WhalleyWilmott(risk_aversion=1.0),
    "threshold": lambda: ThresholdRule(threshold_units=0.3, check_every_bars=10),
    "safe": lambda: safe(ood=OutOfDistribution()),
}


@pytest.mark.parametrize("key", list(POLICY_FACTORIES))
def test_every_policy_meets_the_protocol(key: str) -> None:
    policy = POLICY_FACTORIES[key]()
    assert isinstance(policy, HedgePolicy)
    assert isinstance(policy.name, str) and policy.name and isinstance(policy.needs_forecast, bool)
    assert policy.param is None or isinstance(policy.param, float)
    assert describe(policy)
    policy.reset()
    state = make_state(book_delta_units=0.5, book_gamma_units=-0.01, forecast=forecast())
    for bar in range(3):  # every decision has a reason and a finite target (or none)
        decision = policy.decide(make_state(bar=bar, book_delta_units=0.5 + bar, forecast=state.forecast))
        assert isinstance(decision, HedgeDecision) and decision.reason
        assert decision.target_units is None or math.isfinite(decision.target_units)


def test_constructors_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        DeltaBand(0.3)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------- reactive rules


def test_no_hedge_never_trades() -> None:
    decision = NoHedge().decide(make_state(book_delta_units=42.0))
    assert decision.target_units is None and "42" in decision.reason


def test_fixed_interval_hedges_first_then_every_n_bars_and_reset_restarts() -> None:
    policy = FixedInterval(every_bars=5)
    first = policy.decide(make_state(book_delta_units=0.4, bars_since_trade=0))
    assert first.target_units == pytest.approx(-0.4) and "first decision" in first.reason
    wait = policy.decide(make_state(book_delta_units=0.6, hedge_units=-0.4, bars_since_trade=4))
    assert wait.target_units is None and wait.reason == "fixed interval: wait, 4 bars since last trade < 5"
    due = policy.decide(make_state(book_delta_units=0.6, hedge_units=-0.4, bars_since_trade=5))
    assert due.target_units == pytest.approx(-0.6) and "5 bars since last trade >= 5" in due.reason
    policy.reset()
    again = policy.decide(make_state(book_delta_units=0.1, bars_since_trade=1))
    assert again.target_units == pytest.approx(-0.1) and "first decision" in again.reason


@pytest.mark.parametrize(
    ("to", "book", "hedge", "expected_target"),
    [
        ("zero", 0.5, -0.08, -0.5),  # net +0.42 → 0
        ("edge", 0.5, -0.08, -0.2),  # net +0.42 → +0.3
        ("zero", -0.5, 0.08, 0.5),  # net −0.42 → 0
        ("edge", -0.5, 0.08, 0.2),  # net −0.42 → −0.3
    ],
)
def test_delta_band_outside_hedges_to_zero_or_edge(to: str, book: float, hedge: float, expected_target: float) -> None:
    decision = DeltaBand(band_units=0.3, to=to).decide(make_state(book_delta_units=book, hedge_units=hedge))
    assert decision.target_units == pytest.approx(expected_target)
    assert decision.reason.startswith("|net delta| 0.42 > band 0.3")
    assert not decision.fallback


@pytest.mark.parametrize("net", [0.12, -0.12, 0.3, -0.3])
def test_delta_band_inside_or_on_the_edge_does_nothing(net: float) -> None:
    decision = DeltaBand(band_units=0.3).decide(make_state(book_delta_units=net))
    assert decision.target_units is None
    assert decision.reason == f"inside band: |net delta| {abs(net):g} <= 0.3"


def test_min_trade_units_suppresses_dust_trades() -> None:
    band = DeltaBand(band_units=0.0)
    dust = band.decide(make_state(book_delta_units=1e-12))
    assert dust.target_units is None and "below min_trade_units 1e-09" in dust.reason
    assert band.decide(make_state(book_delta_units=1e-6)).target_units == pytest.approx(-1e-6)
    coarse = DeltaBand(band_units=0.0, min_trade_units=0.01)
    assert coarse.decide(make_state(book_delta_units=0.005)).target_units is None


def test_a_nan_book_delta_means_no_trade_with_the_reason() -> None:
    decision = FixedInterval(every_bars=1).decide(make_state(book_delta_units=math.nan))
    assert decision.target_units is None and "not finite (book delta nan)" in decision.reason


def test_threshold_rule_checks_on_its_cadence_and_reset_clears_it() -> None:
    policy = ThresholdRule(threshold_units=0.3, check_every_bars=10)
    first = policy.decide(make_state(bar=100, book_delta_units=0.5))
    assert first.target_units == pytest.approx(-0.5) and "check at bar 100" in first.reason
    skipped = policy.decide(make_state(bar=109, book_delta_units=0.9, hedge_units=-0.5))
    assert skipped.target_units is None
    assert skipped.reason == "no check: 9 bars since last check at bar 100 < 10"
    calm = policy.decide(make_state(bar=110, book_delta_units=0.7, hedge_units=-0.5))
    assert calm.target_units is None and calm.reason == "check at bar 110: |net delta| 0.2 <= 0.3"
    # the calm check at 110 restarts the cadence: bar 115 is not a check even with a large delta
    assert policy.decide(make_state(bar=115, book_delta_units=2.0, hedge_units=-0.5)).target_units is None
    due = policy.decide(make_state(bar=120, book_delta_units=2.0, hedge_units=-0.5))
    assert due.target_units == pytest.approx(-2.0) and "> threshold 0.3" in due.reason
    policy.reset()
    assert policy.decide(make_state(bar=121, book_delta_units=1.0)).target_units == pytest.approx(-1.0)


# ------------------------------------------------------------------------------------------------- Whalley-Wilmott


def ww_reference(cost: float, spot: float, gamma: float, risk_aversion: float) -> float:
    """Whalley & Wilmott (1997), zero rates: H = (3 λ S Γ² / (2 γ))^(1/3)."""
    return (3.0 * cost * spot * gamma * gamma / (2.0 * risk_aversion)) ** (1.0 / 3.0)


@pytest.mark.parametrize(
    ("cost", "spot", "gamma", "risk_aversion"),
    [(5e-4, 60_000.0, 2e-4, 1.0), (1e-3, 100.0, -0.5, 0.2), (2e-4, 3_000.0, 0.01, 10.0), (1e-3, 100.0, 0.0, 1.0)],
)
def test_ww_band_matches_the_closed_form(cost: float, spot: float, gamma: float, risk_aversion: float) -> None:
    expected = ww_reference(cost, spot, abs(gamma), risk_aversion)
    assert whalley_wilmott_band(cost, spot, gamma, risk_aversion) == pytest.approx(expected, rel=1e-12, abs=0.0)
    as_array = whalley_wilmott_band(np.array([cost]), spot, gamma, risk_aversion)  # the numpy path agrees
    assert as_array.shape == (1,) and as_array[0] == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_ww_band_vectorizes_and_obeys_its_scaling_laws() -> None:
    cost = np.array([1e-4, 8e-4])  # Shape: (2,)
    gamma = np.array([[0.01], [0.08]])  # Shape: (2, 1)
    band = whalley_wilmott_band(cost, 100.0, gamma, 1.0)  # Shape: (2, 2)
    assert isinstance(band, np.ndarray) and band.shape == (2, 2)
    expected = [[ww_reference(c, 100.0, g, 1.0) for c in cost] for g in gamma[:, 0]]
    np.testing.assert_allclose(band, expected, rtol=1e-12)
    assert band[0, 1] / band[0, 0] == pytest.approx(8 ** (1 / 3))  # ∝ λ^(1/3)
    assert band[1, 0] / band[0, 0] == pytest.approx(8 ** (2 / 3))  # ∝ Γ^(2/3)
    by_aversion = whalley_wilmott_band(5e-4, 100.0, 0.01, np.array([1.0, 8.0]))
    assert by_aversion[1] / by_aversion[0] == pytest.approx(8 ** (-1 / 3))  # ∝ γ^(−1/3)
    assert math.isnan(whalley_wilmott_band(math.nan, 100.0, 0.01, 1.0))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1e-4, 100.0, 0.01, 1.0), r"cost_rate must be a number >= 0; got -0.0001"),
        ((1e-4, 0.0, 0.01, 1.0), r"spot must be a number > 0; got 0.0"),
        ((1e-4, 100.0, 0.01, 0.0), r"risk_aversion must be a number > 0 .*; got 0.0"),
    ],
)
def test_ww_band_rejects_invalid_inputs(args: tuple[float, ...], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        whalley_wilmott_band(*args)
    with pytest.raises(UsageError, match=match):  # the numpy path
        whalley_wilmott_band(*(np.array([x]) for x in args))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ww_trades_to_the_band_edge(sign: float) -> None:
    state = make_state(spot=100.0, cost_rate=1e-3, book_gamma_units=-0.5, book_delta_units=sign * 1.0)
    band = ww_reference(1e-3, 100.0, 0.5, 0.2)  # 0.5724
    decision = WhalleyWilmott(risk_aversion=0.2).decide(state)
    assert state.book_delta_units + decision.target_units == pytest.approx(sign * band)
    assert f"> WW band {band:.4g}" in decision.reason and "to edge" in decision.reason
    inside = WhalleyWilmott(risk_aversion=0.2).decide(make_state(**{**state.__dict__, "book_delta_units": 0.5}))
    assert inside.target_units is None and inside.reason.startswith(f"inside WW band {band:.4g}")


def test_ww_with_zero_gamma_is_always_hedged_except_for_dust() -> None:
    policy = WhalleyWilmott(risk_aversion=1.0)
    decision = policy.decide(make_state(book_delta_units=0.01))
    assert decision.target_units == pytest.approx(-0.01) and "always hedged" in decision.reason
    assert policy.decide(make_state(book_delta_units=1e-15)).target_units is None


def test_ww_with_a_nan_input_hedges_to_zero_and_says_so() -> None:
    decision = WhalleyWilmott(risk_aversion=1.0).decide(make_state(book_delta_units=0.2, cost_rate=math.nan))
    assert decision.target_units == pytest.approx(-0.2) and "not finite" in decision.reason


# ------------------------------------------------------------------------------------------------- simulation

SIM_BARS, SIM_STEP, SIM_GAMMA, SIM_S0, SIM_COST = 100_000, 0.01, 1.0, 100.0, 1e-4


def simulate(policy: HedgePolicy, band_of: Any, seed: int = 7) -> tuple[float, float]:
    """Brownian spot (arithmetic, per-bar std SIM_STEP) and a short-gamma book with delta −Γ·(S − S0).

    Returns the total units traded and the largest |net delta| / band right after a decision.
    """
    rng = np.random.default_rng(seed)
    spot = SIM_S0 + SIM_STEP * np.cumsum(rng.standard_normal(SIM_BARS))  # Shape: (SIM_BARS,)
    book_delta = -SIM_GAMMA * (spot - SIM_S0)  # Shape: (SIM_BARS,)
    policy.reset()
    hedge, traded, worst, last_trade = 0.0, 0.0, 0.0, 0
    for t, (s, delta) in enumerate(zip(spot.tolist(), book_delta.tolist(), strict=True)):
        state = make_state(
            bar=t,
            spot=s,
            hedge_units=hedge,
            book_delta_units=delta,
            book_gamma_units=-SIM_GAMMA,
            bars_since_trade=t - last_trade,
            cost_rate=SIM_COST,
        )
        target = policy.decide(state).target_units
        if target is not None:
            traded += abs(target - hedge)
            hedge, last_trade = target, t
        worst = max(worst, abs(delta + hedge) / band_of(s))
    return traded, worst


def ww_aversion_for(band: float) -> float:
    """The risk aversion whose WW band at S0 is ``band`` (inverting the closed form)."""
    return 1.5 * SIM_COST * SIM_S0 * SIM_GAMMA**2 / band**3


@pytest.mark.parametrize("kind", ["band-zero", "band-edge", "ww"])
def test_units_traded_scale_like_one_over_band_and_net_stays_inside(kind: str) -> None:
    traded = {}
    for band in (0.05, 0.10):  # 5 and 10 per-bar std of the book's delta
        if kind == "ww":
            aversion = ww_aversion_for(band)
            policy: HedgePolicy = WhalleyWilmott(risk_aversion=aversion)
            band_of = lambda s, a=aversion: whalley_wilmott_band(SIM_COST, s, SIM_GAMMA, a)  # noqa: E731
        else:
            policy = DeltaBand(band_units=band, to=kind.removeprefix("band-"))
            band_of = lambda s, b=band: b  # noqa: E731
        traded[band], worst = simulate(policy, band_of)
        assert worst <= 1.0 + 1e-12
    assert traded[0.05] / traded[0.10] == pytest.approx(2.0, rel=0.15)


# ------------------------------------------------------------------------------------------------- safety wrapper


def test_safe_policy_delegates_name_param_and_reset() -> None:
    inner = StubModel()
    wrapped = SafeHedgePolicy(inner, ThresholdRule(threshold_units=0.1, check_every_bars=5), max_order_units=1.0,
                              max_notional_per_step=1e6)  # fmt: skip
    assert (wrapped.name, wrapped.param, wrapped.needs_forecast) == ("stub", 1.0, True)
    wrapped.fallback.decide(make_state(bar=0))
    wrapped.reset()
    assert inner.resets == 1 and wrapped.fallback._last_check is None  # type: ignore[attr-defined]


def test_safe_policy_uses_the_model_when_all_is_well() -> None:
    decision = safe(ood=OutOfDistribution()).decide(make_state(book_delta_units=0.1, forecast=forecast()))
    assert decision == HedgeDecision(-0.1, "stub: hedge to zero")


def test_no_forecast_falls_back_to_the_band() -> None:
    decision = safe().decide(make_state(book_delta_units=0.42))
    assert decision.fallback and decision.target_units == pytest.approx(-0.42)
    assert decision.reason.startswith("fallback (no forecast: model unavailable): |net delta| 0.42 > band 0.3")


def test_a_failing_model_falls_back_with_its_message_cut_to_200_chars() -> None:
    wrapped = safe(StubModel(error=ValueError("boom " + "x" * 500)))
    decision = wrapped.decide(make_state(book_delta_units=0.1, forecast=forecast()))
    assert decision.fallback and decision.target_units is None
    assert decision.reason.startswith("fallback (model failed: ValueError: boom xxx")
    assert "x" * 195 in decision.reason and "x" * 196 not in decision.reason
    assert decision.reason.endswith("inside band: |net delta| 0.1 <= 0.3")


def test_a_non_finite_model_target_falls_back() -> None:
    decision = safe(StubModel(target=math.nan)).decide(make_state(book_delta_units=0.5, forecast=forecast()))
    assert decision.fallback and decision.target_units == pytest.approx(-0.5) and "non-finite target" in decision.reason


class StubFallbackError:
    name, needs_forecast, param = "broken", False, None

    def reset(self) -> None:
        pass

    def decide(self, state: HedgeState) -> HedgeDecision:
        raise KeyError("sigma")


def test_a_failing_fallback_means_no_trade_and_never_raises() -> None:
    wrapped = SafeHedgePolicy(StubModel(error=RuntimeError("model")), StubFallbackError(), max_order_units=1.0,
                              max_notional_per_step=1e9)  # fmt: skip
    decision = wrapped.decide(make_state(book_delta_units=0.5, forecast=forecast()))
    assert decision.target_units is None and decision.fallback
    assert "RuntimeError: model" in decision.reason and "KeyError" in decision.reason


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"spot": math.nan}, "spot nan not a finite positive price"),
        ({"spot": -5.0}, "spot -5.0 not a finite positive price"),
        ({"iv": 0.005}, "iv 0.005 outside [0.01, 5]"),
        ({"iv": 7.0}, "iv 7 outside [0.01, 5]"),
        ({"iv": math.nan}, "iv nan outside [0.01, 5]"),
        ({"forecast": forecast(horizon=0)}, "forecast horizon 0 < 1 bar"),
        ({"forecast": forecast(var=math.inf)}, "forecast var inf not finite and positive"),
        ({"forecast": forecast(var=0.0)}, "forecast var 0.0 not finite and positive"),
        # trailing var over 10 bars = (1e-3)² · 10 = 1e-5
        ({"forecast": forecast(var=1e-7)}, "forecast var 1e-07 is 0.01 x trailing realized var 1e-05 over 10 bars"),
        ({"forecast": forecast(var=1e-3)}, "forecast var 0.001 is 100 x trailing realized var 1e-05 over 10 bars"),
        ({"forecast": forecast(p_stressed=1.5)}, "p_stressed 1.5 outside [0, 1]"),
        ({"forecast": forecast(p_stressed=-0.1)}, "p_stressed -0.1 outside [0, 1]"),
    ],
)
def test_each_out_of_distribution_check_triggers_the_fallback(overrides: dict[str, Any], why: str) -> None:
    state = make_state(book_delta_units=0.5, **{"forecast": forecast(), **overrides})
    assert (OutOfDistribution().check(state) or "").startswith(why)
    decision = safe(ood=OutOfDistribution()).decide(state)
    assert decision.fallback and decision.reason.startswith(f"fallback (out of distribution: {why}")


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # ratio 1
        {"forecast": forecast(var=2.1e-7)},  # ratio 0.021 ≥ 0.02
        {"forecast": forecast(var=4.9e-4)},  # ratio 49 ≤ 50
        {"forecast": forecast(var=1e-9), "sigma_bar": math.nan},  # no trailing vol yet: ratio check skipped
        {"forecast": forecast(p_stressed=1.0)},
        {"iv": 5.0},
        {"forecast": None},  # reactive inputs only
    ],
)
def test_in_distribution_states_pass(overrides: dict[str, Any]) -> None:
    assert OutOfDistribution().check(make_state(**{"forecast": forecast(), **overrides})) is None


def test_out_of_distribution_bounds_are_configurable_and_validated() -> None:
    assert OutOfDistribution(var_ratio_hi=200.0).check(make_state(forecast=forecast(var=1e-3))) is None
    with pytest.raises(UsageError, match=r"var_ratio_lo must be < var_ratio_hi; got 3.0 >= 2.0"):
        OutOfDistribution(var_ratio_lo=3.0, var_ratio_hi=2.0)


@pytest.mark.parametrize(
    ("max_order", "max_notional", "traded", "limit"),
    [
        (0.2, 1e9, 0.2, "limit max_order_units 0.2"),
        (1e9, 10.0, 0.1, "limit max_notional_per_step 10 / spot 100"),  # 10 / 100 = 0.1 units
        (0.2, 10.0, 0.1, "limit max_notional_per_step 10 / spot 100"),  # the smaller of the two wins
        (0.05, 10.0, 0.05, "limit max_order_units 0.05"),
    ],
)
def test_caps_clip_the_trade_and_say_so(max_order: float, max_notional: float, traded: float, limit: str) -> None:
    wrapped = safe(max_order_units=max_order, max_notional_per_step=max_notional)
    decision = wrapped.decide(make_state(book_delta_units=0.5, hedge_units=0.1, forecast=forecast()))  # wants −0.6
    assert decision.target_units == pytest.approx(0.1 - traded)
    assert decision.reason == f"stub: hedge to zero; capped: wanted -0.6 units, traded {-traded:+.4g} ({limit})"


def test_caps_also_apply_to_fallback_decisions_and_leave_small_trades_alone() -> None:
    capped = safe(max_order_units=0.1).decide(make_state(book_delta_units=-0.5))
    assert capped.fallback and capped.target_units == pytest.approx(0.1) and "capped: wanted +0.5" in capped.reason
    small = safe(max_order_units=1.0).decide(make_state(book_delta_units=0.5, forecast=forecast()))
    assert small.target_units == pytest.approx(-0.5) and "capped" not in small.reason


def test_safe_policy_validates_its_arguments() -> None:
    with pytest.raises(UsageError, match=r"max_order_units must be a number > 0 \(inf: no limit\); got 0"):
        safe(max_order_units=0)
    with pytest.raises(UsageError, match=r"fallback must not need a forecast.*got 'stub'"):
        SafeHedgePolicy(StubModel(), StubModel(), max_order_units=1.0, max_notional_per_step=1.0)
    with pytest.raises(UsageError, match=r"inner must implement HedgePolicy; got 3"):
        SafeHedgePolicy(3, NoHedge(), max_order_units=1.0, max_notional_per_step=1.0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("name", "params", "cls", "param"),
    [
        ("none", {}, NoHedge, None),
        ("fixed", {"every_bars": 60}, FixedInterval, 60.0),
        ("fixed", {"every_bars": 60.0}, FixedInterval, 60.0),  # YAML may give an integral float
        ("band", {"band_units": 0.5, "to": "edge"}, DeltaBand, 0.5),
        ("ww", {"risk_aversion": 2.0}, WhalleyWilmott, 2.0),
        ("threshold", {"threshold_units": 0.1, "check_every_bars": 15}, ThresholdRule, 0.1),
    ],
)
def test_registry_builds_each_reactive_policy(name: str, params: dict[str, Any], cls: type, param: float) -> None:
    policy = make_hedge_policy(name, **params)
    assert type(policy) is cls and policy.name == name and policy.param == param


def test_registry_errors_name_the_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown hedge policy 'delta'; known: none, fixed, band, ww, threshold"):
        make_hedge_policy("delta")
    with pytest.raises(UsageError, match=r"'band': unknown parameter\(s\) width; it takes band_units, to, min_trade"):
        make_hedge_policy("band", width=0.3)
    with pytest.raises(UsageError, match=r"'threshold': missing check_every_bars; it takes threshold_units, check"):
        make_hedge_policy("threshold", threshold_units=0.3)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("fixed", {"every_bars": 0}, r"'fixed': every_bars must be an integer >= 1; got 0"),
        ("fixed", {"every_bars": 2.5}, r"every_bars must be an integer >= 1; got 2.5"),
        ("band", {"band_units": -0.1}, r"'band': band_units must be a number >= 0, finite; got -0.1"),
        ("band", {"band_units": math.nan}, r"band_units must be a number >= 0, finite; got nan"),
        ("band", {"band_units": 0.3, "to": "middle"}, r"'band': to must be one of 'zero', 'edge'; got 'middle'"),
        ("ww", {"risk_aversion": 0.0}, r"'ww': risk_aversion must be a number > 0, finite; got 0.0"),
        ("threshold", {"threshold_units": "0.3", "check_every_bars": 5}, r"threshold_units must be .*; got '0.3'"),
        ("none", {"min_trade_units": -1.0}, r"'none': min_trade_units must be a number >= 0, finite; got -1.0"),
    ],
)
def test_invalid_parameters_are_rejected_with_the_value_and_the_rule(
    name: str, params: dict[str, Any], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        make_hedge_policy(name, **params)
