"""The decision of ``POST /v1/portfolio/adjustments`` (DESIGN section 10): the hedge trade and the collateral move
that the spec's policies make at the last bar of a request.

The server keeps no state, so the request carries what only the desk knows (:class:`serving.schemas.DeskIn`: its
clocks, its vol estimate, its account), and each decision is made the way
:func:`forecaster.backtest.engine.run_backtest` makes it at a decision bar, from the backtest's own pieces. A desk
that steps a market through this route (``forecaster rebalance``) therefore decides exactly as the backtest does:

- **the book**: the portfolio's options as backtest legs and its linear positions (perp, spot, future: their summed
  ``quantity · multiplier``) as the hedge position (:func:`forecaster.backtest.books.portfolio_book`, as
  ``forecaster backtest --portfolio`` reads a portfolio file); the options' Greeks as
  :func:`~forecaster.backtest.engine.book_path` sums them (:func:`open_leg_greeks`) at the last close and the last
  IV (Black-76, flat vol), the requirement by :func:`forecaster.margin.portfolio_margin` of
  ``engine._margin_book``;
- **the hedge policy**: :func:`forecaster.backtest.run.hedge_policy` of the spec's entry, behind the safety wrapper
  whose caps are the tighter of ``backtest.safety`` and the portfolio's ``limits``; the fixed and threshold
  policies' memory (first decision, last check) comes from ``desk`` and goes back in the response's ``desk``;
- **the forecast view** (predictive policies): the model's forecast of ``backtest.horizon`` at the last bar, mapped
  onto the book with no hedge as :func:`forecaster.backtest.forecasts.forecast_views` maps it
  (:func:`~forecaster.backtest.forecasts.horizon_forecast_of`, then ``_view``: the spec's drift settings and seed,
  ``backtest.scenarios``). When the model does not forecast that horizon, or the forecast is not finite, there is no
  view and the safety fallback (a reactive band) decides, as in the backtest;
- **the margin policy**: :func:`forecaster.backtest.run.margin_policy`, on the requirement of the book after the
  hedge trade and the equity after that trade's estimated cost (the spec's cost model); the predictive one reads a
  view at ``backtest.margin_h`` bars (the model's nearest horizon when it lacks that one) of the book delta-hedged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from forecaster.backtest.books import OptionLegs, portfolio_book
from forecaster.backtest.engine import YEAR, BacktestMarket, _margin_book, ewma_sigma_bar
from forecaster.backtest.forecasts import NEED_LEVELS, _view, horizon_forecast_of
from forecaster.backtest.hedging import FixedInterval, SafeHedgePolicy, ThresholdRule
from forecaster.backtest.margin_policies import MARGIN_POLICIES
from forecaster.backtest.policy import ForecastView, HedgeDecision, HedgeState, MarginDecision, MarginState
from forecaster.backtest.run import BacktestSpec, PolicySpec, hedge_policy, margin_policy
from forecaster.errors import UsageError
from forecaster.market.portfolio_file import Limits, Portfolio, one_underlying
from forecaster.pricing.black import black76_greeks
from serving.inference import Forecast, decimal_iv, finite_or_none, forecast_for, last_iv
from serving.metrics import Metrics
from serving.models import LoadedModel
from serving.routes.forecast import model_ref
from serving.schemas import (
    AdjustmentRequest,
    AdjustmentResponse,
    Caps,
    DeskIn,
    DeskOut,
    ForecastViewOut,
    HedgeOrder,
    HedgeOut,
    LevelValue,
    MarginOut,
    PolicyRef,
    Quantiles,
)
from serving.settings import Settings

log = logging.getLogger(__name__)

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
NOW = 1  # the decision bar's position in the two-bar market the book is priced on


# ---------------------------------------------------------------------------------------------------- policies


def default_policy(bt: BacktestSpec) -> str:
    """The spec's first predictive policy fed by the model, else its first policy."""
    predictive = (n for n, p in bt.policies.items() if p.kind == "predictive" and p.source == "model")
    return next(predictive, next(iter(bt.policies)))


def policy_spec(bt: BacktestSpec, name: str | None) -> PolicySpec:
    """The spec entry ``name`` (default :func:`default_policy`); UsageError (422) for an unknown or oracle one."""
    servable = [n for n, p in bt.policies.items() if p.source != "oracle"]
    chosen = name or default_policy(bt)
    if chosen not in bt.policies:
        raise UsageError(f"policy {chosen!r} is not one of the spec's backtest.hedge_policies; send one of {servable}")
    spec = bt.policies[chosen]
    if spec.source == "oracle":
        raise UsageError(
            f"policy {chosen!r} reads the simulator's truth (source: oracle), which a server does not have; send "
            f"one of {servable}"
        )
    return spec


def margin_policy_name(bt: BacktestSpec, name: str | None) -> str:
    chosen = name or bt.margin_policy
    if chosen not in MARGIN_POLICIES:
        raise UsageError(f"margin_policy {chosen!r} is unknown; send one of {list(MARGIN_POLICIES)}")
    return chosen


def capped(bt: BacktestSpec, limits: Limits) -> BacktestSpec:
    """``bt`` with the portfolio's limits applied where they are tighter (max order size, max |delta|)."""
    safety = dict(bt.safety)
    if limits.max_order_size is not None:
        safety["max_order_units"] = min(safety["max_order_units"], float(limits.max_order_size))
    engine = bt.engine
    if limits.max_abs_delta is not None:
        engine = replace(engine, delta_limit_units=min(engine.delta_limit_units, float(limits.max_abs_delta)))
    return replace(bt, safety=safety, engine=engine)


def prime(policy: SafeHedgePolicy, desk: DeskIn, bar: int) -> None:
    """Give a fresh policy the memory the desk carries: the fixed policy's first decision, the threshold's last
    check (the policies keep it on themselves between decisions of one backtest)."""
    inner = policy.inner
    if isinstance(inner, FixedInterval):
        inner._started = not desk.first_decision
    if isinstance(inner, ThresholdRule):
        inner._last_check = None if desk.bars_since_check is None else bar - desk.bars_since_check


def checked_now(policy: SafeHedgePolicy, bar: int) -> bool:
    """Whether the threshold policy looked at the book at ``bar`` (its clock restarts)."""
    return isinstance(policy.inner, ThresholdRule) and policy.inner._last_check == bar


# ---------------------------------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class DeskBook:
    """The portfolio at the decision bar as the backtest holds it: option legs open at bar :data:`NOW` of a
    two-bar ``market`` ending at the decision time, the hedge position, and the legs' Greeks there."""

    market: BacktestMarket
    legs: OptionLegs
    underlying: str | None
    hedge_units: float
    delta_units: float
    gamma_units: float
    vega: float
    gamma_tau: float

    def margin_book(self, hedge_units: float) -> Any:
        return _margin_book(self.legs, self.market, NOW, hedge_units)


def desk_book(
    portfolio: Portfolio, *, as_of: pd.Timestamp, spot: float, atm_iv: float | None, bar: pd.Timedelta, years: float
) -> DeskBook:
    """Legs, hedge and Greeks of ``portfolio`` (checked at ``as_of``) priced at ``spot`` and ``atm_iv``."""
    name, has_options = one_underlying(
        portfolio, "the portfolio", "a request decides for one underlying against its bars: send one request per "
        "underlying",
    )  # fmt: skip
    if has_options and atm_iv is None:
        raise UsageError("the portfolio holds options: send bars with an iv column (the IV index) to price them")
    index = pd.DatetimeIndex([as_of - bar, as_of])
    iv = atm_iv if atm_iv is not None else 1.0  # no options: the IV prices nothing
    market = BacktestMarket(index, np.full(2, spot), np.full(2, iv), years, name or "")
    legs, hedge = portfolio_book(portfolio, index)
    delta, gamma, vega, gamma_tau = open_leg_greeks(legs, as_of, spot, iv)
    return DeskBook(market, legs, name, hedge, delta, gamma, vega, gamma_tau)


def open_leg_greeks(legs: OptionLegs, as_of: pd.Timestamp, spot: float, iv: float) -> tuple[float, float, float, float]:
    """(delta units, gamma units, vega per vol point, gamma-weighted years to expiry) of legs all open at
    ``as_of``, as :func:`~forecaster.backtest.engine.book_path` gives them at a bar: one vectorized Black-76 call,
    then the legs' terms added one by one in leg order, as ``book_path`` adds them, so the sums are the engine's
    bit for bit (``book_path`` itself marks each leg over its whole life: a loop over legs, slow for a request)."""
    if len(legs) == 0:
        return 0.0, 0.0, 0.0, math.nan
    tau = np.maximum(np.asarray((legs.expiry - as_of) / YEAR, dtype=float), 0.0)  # (K,)
    n = len(legs)
    g = black76_greeks(np.full(n, spot), legs.strike, tau, np.full(n, iv), legs.is_call)
    w = legs.weight
    terms = np.stack([w * g["delta"], w * g["gamma"], w * g["vega"] / 100.0]).T  # (K, 3)
    weighted = np.abs(w * g["gamma"])  # (K,)
    delta = gamma = vega = tau_num = tau_den = 0.0
    for (d, gm, v), a, t in zip(terms.tolist(), weighted.tolist(), tau.tolist(), strict=True):
        delta, gamma, vega = delta + d, gamma + gm, vega + v
        tau_num, tau_den = tau_num + a * t, tau_den + a
    return delta, gamma, vega, tau_num / tau_den if tau_den > 0 else math.nan


def request_sigma_bar(close: np.ndarray, iv: np.ndarray, years: float, halflife_bars: float) -> float:
    """The engine's EWMA per-bar vol at the last bar, over the request's closes only, started at the first known
    IV's per-bar variance (at the bars' own mean square return without any IV)."""
    known = iv[np.isfinite(iv)]
    if known.size:
        start = float(known[0])
    else:
        r = np.diff(np.log(close))
        start = math.sqrt(float(np.mean(r**2)) / years) if r.size else 0.0
    return float(ewma_sigma_bar(close, np.full(close.size, start), years, halflife_bars)[-1])


# ---------------------------------------------------------------------------------------------------- views


def view_for(
    forecast: Forecast,
    horizon: int,
    book: Any,
    desk: DeskBook,
    *,
    source: str,
    settings: Settings,
    n_scenarios: int,
    margin: bool,
    warnings: list[str],
) -> ForecastView | None:
    """The view at ``horizon`` as the backtest builds it (module docstring); None when there is none."""
    rows = forecast.frame[forecast.frame["horizon"] == horizon]
    if rows.empty:
        return None
    try:
        made = horizon_forecast_of(rows.iloc[0], horizon, desk.market.bar_years, settings.drift)
        if made is None:
            warnings.append(f"the model's forecast of h{horizon} is not finite: no forecast view")
            return None
        outlook, p_stressed = made
        margin_config = settings.margin if margin else None
        return _view(book, outlook, desk.market, NOW, source, settings.drift, n_scenarios, margin_config, p_stressed)
    except Exception as exc:  # a view that cannot be built is a missing forecast: the policy falls back
        log.warning("forecast view at h%d failed: %s", horizon, exc, exc_info=not isinstance(exc, UsageError))
        warnings.append(f"the forecast view of h{horizon} failed ({type(exc).__name__}: {str(exc)[:200]})")
        return None


def nearest_horizon(model: LoadedModel, wanted: int) -> int:
    return min(model.horizons, key=lambda h: (abs(h - wanted), h))


def view_out(view: ForecastView | None, warnings: list[str], what: str) -> ForecastViewOut | None:
    if view is None:
        return None

    def quantiles(levels: dict[float, float], name: str) -> Quantiles:
        values = {f"q{round(lv * 100):02d}": levels.get(lv, math.nan) for lv in LEVELS}
        if not levels:
            return Quantiles(**{k: None for k in values})
        return Quantiles(**{k: finite_or_none(v, f"{what}.{name}.{k}", warnings) for k, v in values.items()})

    return ForecastViewOut(
        horizon=view.horizon,
        source=view.source,
        var=finite_or_none(view.var, f"{what}.var", warnings),
        p_stressed=view.p_stressed if math.isfinite(view.p_stressed) else None,  # NaN: not forecast
        target_net_delta_units=finite_or_none(view.target_net_delta_units, f"{what}.target", warnings),
        delta_drift=quantiles(view.delta_drift_quantiles, "delta_drift"),
        gamma_drift=quantiles(view.gamma_drift_quantiles, "gamma_drift"),
        vega_drift=quantiles(view.vega_drift_quantiles, "vega_drift"),
        margin_need=[
            LevelValue(level=lv, value=finite_or_none(view.margin_need_quantiles[lv], f"{what}.margin_need", warnings))
            for lv in NEED_LEVELS
            if lv in view.margin_need_quantiles
        ],
    )


# ---------------------------------------------------------------------------------------------------- decide


@dataclass
class Context:
    """One request's inputs, checked and priced: what the hedge and the margin decisions read."""

    body: AdjustmentRequest
    model: LoadedModel
    settings: Settings
    bt: BacktestSpec  # the spec's backtest section with the portfolio's limits applied
    spec: PolicySpec
    margin_name: str
    forecast: Forecast
    desk: DeskBook
    spot: float
    atm_iv: float | None
    bar: int  # the decision bar's position in the request
    sigma_bar: float
    source: str
    notes: list[str]
    warnings: list[str]
    metrics: Metrics

    @property
    def sigma_daily(self) -> float:
        return self.sigma_bar * math.sqrt(self.desk.market.bars_per_day)

    @property
    def n_scenarios(self) -> int:
        return self.body.n_scenarios or self.bt.scenarios

    def view(self, horizon: int, hedge_units: float, *, source: str, margin: bool) -> ForecastView | None:
        """The view at ``horizon`` of the book with ``hedge_units`` of hedge (timed as ``drift``)."""
        book = self.desk.margin_book(hedge_units)
        with self.metrics.timed("drift"):
            return view_for(
                self.forecast, horizon, book, self.desk, source=source, settings=self.settings,
                n_scenarios=self.n_scenarios, margin=margin, warnings=self.warnings,
            )  # fmt: skip


@dataclass
class HedgeOutcome:
    decision: HedgeDecision
    state: HedgeState
    view: ForecastView | None
    target: float  # the hedge position after (the one before when no trade)
    trade: float
    cost: float
    checked: bool  # the threshold policy looked at the book now


@dataclass
class MarginOutcome:
    state: MarginState
    decision: MarginDecision
    view: ForecastView | None
    target_posted: float


def decide(
    body: AdjustmentRequest, model: LoadedModel, settings: Settings, metrics: Metrics, request_id: str
) -> AdjustmentResponse:
    """The response to ``body`` (module docstring); UsageError / DataValidationError (422) for bad input."""
    context = prepare(body, model, settings, metrics)
    hedge = decide_hedge(context) if "hedge" in body.decide else None
    margin = decide_margin(context, hedge) if "margin" in body.decide else None
    return respond(context, hedge, margin, request_id)


def prepare(body: AdjustmentRequest, model: LoadedModel, settings: Settings, metrics: Metrics) -> Context:
    """The policies named, the model's forecast, the portfolio checked and priced at the last bar, the vol."""
    from forecaster.market.portfolio_file import portfolio_from_mapping

    spec = policy_spec(settings.backtest, body.policy)
    margin_name = margin_policy_name(settings.backtest, body.margin_policy)
    forecast = forecast_for(model, body.bars, metrics)
    spot, atm_iv = float(body.bars.close[-1]), last_iv(body.bars, model)
    document = body.portfolio.model_dump(mode="json", exclude_none=True)
    portfolio = portfolio_from_mapping(document, name="portfolio", as_of=forecast.as_of).data
    years = model.bar_years
    desk = desk_book(portfolio, as_of=forecast.as_of, spot=spot, atm_iv=atm_iv, bar=model.bar_length, years=years)
    bt = capped(settings.backtest, portfolio.limits)
    notes: list[str] = []
    sigma_bar = body.desk.sigma_bar
    if sigma_bar is None:
        close = body.bars.close
        sigma_bar = request_sigma_bar(close, decimal_iv(body.bars, model), years, bt.engine.vol_halflife_bars)
        notes.append(
            f"sigma_bar {sigma_bar:.4g}: the EWMA of the request's {len(body.bars)} bars (send desk.sigma_bar, the "
            "desk's own EWMA over its whole history, to decide as the backtest does)"
        )
    return Context(
        body, model, settings, bt, spec, margin_name, forecast, desk, spot, atm_iv, len(body.bars) - 1,
        float(sigma_bar), f"model:{model.config['model_name']}", notes, list(forecast.warnings), metrics,
    )  # fmt: skip


def decide_hedge(c: Context) -> HedgeOutcome:
    """The hedge policy's decision, applied as the engine applies one (a target, its trade and cost)."""
    policy = hedge_policy(c.spec, c.bt)
    prime(policy, c.body.desk, c.bar)
    view = None
    if policy.needs_forecast:
        if c.bt.horizon not in c.model.horizons:
            c.warnings.append(
                f"the model does not forecast backtest.horizon = {c.bt.horizon} bars (it forecasts "
                f"{c.model.horizons}): no forecast view, the safety fallback decides; serve a model trained with it"
            )
        view = c.view(c.bt.horizon, 0.0, source=c.source, margin=False)
    desk = c.desk
    state = HedgeState(
        timestamp=c.forecast.as_of,
        bar=c.bar,
        spot=c.spot,
        hedge_units=desk.hedge_units,
        book_delta_units=desk.delta_units,
        book_gamma_units=desk.gamma_units,
        book_vega=desk.vega,
        gamma_tau=desk.gamma_tau,
        iv=c.atm_iv if c.atm_iv is not None else math.nan,
        sigma_bar=c.sigma_bar,
        bar_years=desk.market.bar_years,
        bars_since_trade=c.body.desk.bars_since_trade,
        cost_rate=c.bt.engine.costs.rate(c.sigma_daily),
        delta_limit_units=c.bt.engine.delta_limit_units,
        forecast=view,
    )
    decision = policy.decide(state)
    target, trade, cost = desk.hedge_units, 0.0, 0.0
    if decision.target_units is not None:
        target = float(decision.target_units)
        trade = target - desk.hedge_units
        cost = c.bt.engine.costs.cost(trade, c.spot, c.sigma_daily)
    return HedgeOutcome(decision, state, view, target, trade, cost, checked_now(policy, c.bar))


def decide_margin(c: Context, hedge: HedgeOutcome | None) -> MarginOutcome:
    """The margin policy's decision on the book after the hedge trade, the equity after its cost."""
    from forecaster.margin import portfolio_margin

    bt, desk = c.bt, c.desk
    mpolicy = margin_policy(bt, c.margin_name)
    view = None
    if mpolicy.needs_forecast:  # the backtest's margin view: the book delta-hedged, to the next collateral move
        h = bt.margin_h if bt.margin_h in c.model.horizons else nearest_horizon(c.model, bt.margin_h)
        if h != bt.margin_h:
            c.notes.append(f"the margin view forecasts h{h}, the model's nearest to backtest.margin_h {bt.margin_h}")
        view = c.view(h, -desk.delta_units, source=f"{c.source} margin", margin=True)
    hedge_after = hedge.target if hedge is not None else desk.hedge_units
    requirement = portfolio_margin(desk.margin_book(hedge_after), c.settings.margin)
    posted = _posted(c.body)
    equity = c.body.desk.equity if c.body.desk.equity is not None else posted
    state = MarginState(
        timestamp=c.forecast.as_of,
        bar=c.bar,
        initial_margin=requirement.initial,
        maintenance_margin=requirement.maintenance,
        equity=equity - (hedge.cost if hedge is not None else 0.0),
        posted=posted,
        breached_recently=c.body.desk.breached_recently,
        forecast=view,
    )
    decision = mpolicy.decide(state)
    target = posted if decision.target_posted is None else float(decision.target_posted)  # as the engine
    return MarginOutcome(state, decision, view, target)


def respond(
    c: Context, hedge: HedgeOutcome | None, margin: MarginOutcome | None, request_id: str
) -> AdjustmentResponse:
    """The response: every number finite or null (with a warning), as DESIGN section 11 asks."""
    warnings = c.warnings

    def num(value: float, name: str) -> float | None:
        return finite_or_none(value, name, warnings)

    hedge_out, orders = hedge_parts(c, hedge, num) if hedge is not None else (None, [])
    margin_out = None
    if margin is not None:
        state, amount = margin.state, margin.target_posted - margin.state.posted
        margin_out = MarginOut(
            initial_margin=num(state.initial_margin, "margin.initial_margin"),
            maintenance_margin=num(state.maintenance_margin, "margin.maintenance_margin"),
            equity=num(state.equity, "margin.equity"),
            posted=num(state.posted, "margin.posted"),
            target_posted=num(margin.target_posted, "margin.target_posted"),
            amount=num(amount, "margin.amount"),
            action="top_up" if amount > 0 else "release" if amount < 0 else "hold",
            below_maintenance_after=bool(margin.target_posted + state.equity - state.posted < state.maintenance_margin),
            reason=margin.decision.reason,
            fallback=margin.decision.fallback,
        )
    sent = c.body.desk
    desk = DeskOut(
        bars_since_trade=0 if hedge is not None and hedge.trade != 0.0 else sent.bars_since_trade,
        first_decision=sent.first_decision and hedge is None,
        bars_since_check=0 if hedge is not None and hedge.checked else sent.bars_since_check,
        sigma_bar=num(c.sigma_bar, "desk.sigma_bar"),
        hedge_units=num(hedge.target if hedge is not None else c.desk.hedge_units, "desk.hedge_units"),
        posted=num(margin.target_posted, "desk.posted") if margin is not None else _posted(c.body),
    )
    view = hedge.view if hedge is not None else None
    bt = c.bt
    return AdjustmentResponse(
        request_id=request_id,
        model=model_ref(c.model),
        as_of=c.forecast.as_of,
        spot=c.spot,
        atm_iv=c.atm_iv,
        policy=PolicyRef(name=c.spec.name, kind=c.spec.kind, params=_plain(c.spec.params), source=c.spec.source),
        margin_policy=PolicyRef(
            name=c.margin_name, kind=c.margin_name, params=_plain(bt.margin_policies.get(c.margin_name))
        ),
        fallback=bool((hedge is not None and hedge.decision.fallback) or (margin and margin.decision.fallback)),
        orders=orders,
        hedge=hedge_out,
        margin=margin_out,
        suggestions=list(hedge.decision.suggestions) if hedge is not None else [],
        view=view_out(view, warnings, "view"),
        margin_view=view_out(margin.view if margin is not None else None, warnings, "margin_view"),
        forecast=c.forecast.row(bt.horizon) if view is not None else None,
        desk=desk,
        notes=c.notes,
        warnings=warnings,
    )


def hedge_parts(
    c: Context, hedge: HedgeOutcome, num: Callable[[float, str], float | None]
) -> tuple[HedgeOut, list[HedgeOrder]]:
    """The hedge decision and its order (none when holding)."""
    decision, state, safety, engine = hedge.decision, hedge.state, c.bt.safety, c.bt.engine

    def cap(value: float, name: str) -> float | None:
        return num(value, f"caps.{name}") if math.isfinite(value) else None  # inf: no cap

    caps = Caps(
        max_order_units=cap(safety["max_order_units"], "max_order_units"),
        max_notional_per_step=cap(safety["max_notional_per_step"], "max_notional_per_step"),
        fallback_band_units=cap(safety["fallback_band_units"], "fallback_band_units"),
        delta_limit_units=cap(engine.delta_limit_units, "delta_limit_units"),
    )
    trades = decision.target_units is not None
    out = HedgeOut(
        instrument=engine.hedge_instrument,
        underlying=c.desk.underlying,
        trades=trades,
        hedge_units=num(state.hedge_units, "hedge.hedge_units"),
        target_units=num(hedge.target, "hedge.target_units"),
        trade_units=num(hedge.trade, "hedge.trade_units"),
        estimated_cost=num(hedge.cost, "hedge.estimated_cost"),
        book_delta_units=num(state.book_delta_units, "hedge.book_delta_units"),
        book_gamma_units=num(state.book_gamma_units, "hedge.book_gamma_units"),
        book_vega=num(state.book_vega, "hedge.book_vega"),
        gamma_tau=state.gamma_tau if math.isfinite(state.gamma_tau) else None,  # NaN: no gamma
        net_delta_before=num(state.net_delta_units, "hedge.net_delta_before"),
        net_delta_after=num(state.book_delta_units + hedge.target, "hedge.net_delta_after"),
        sigma_bar=num(state.sigma_bar, "hedge.sigma_bar"),
        cost_rate=num(state.cost_rate, "hedge.cost_rate"),
        caps=caps,
        reason=decision.reason,
        fallback=decision.fallback,
        suggestions=list(decision.suggestions),
    )
    orders = []
    if trades and hedge.trade != 0.0 and math.isfinite(hedge.trade):
        orders.append(
            HedgeOrder(
                instrument=engine.hedge_instrument,
                underlying=c.desk.underlying,
                side="buy" if hedge.trade > 0 else "sell",
                units=abs(hedge.trade),
                target_units=hedge.target,
                estimated_cost=num(hedge.cost, "orders.estimated_cost"),
                reason=decision.reason,
            )
        )
    return out, orders


def _posted(body: AdjustmentRequest) -> float:
    return body.desk.posted if body.desk.posted is not None else float(body.portfolio.collateral)


def _policy_ref(spec: PolicySpec) -> PolicyRef:
    return PolicyRef(name=spec.name, kind=spec.kind, params=_plain(spec.params), source=spec.source)


def _plain(params: dict[str, Any] | None) -> dict[str, float | int | str | bool | None]:
    """Spec parameters as JSON values (a non-finite number as null)."""
    out: dict[str, float | int | str | bool | None] = {}
    for key, value in (params or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[str(key)] = value if isinstance(value, float | int | str | bool) or value is None else str(value)
    return out
