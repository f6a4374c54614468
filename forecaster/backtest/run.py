"""From a spec's ``backtest:`` section to policy results: the market, the book, the forecasts, the runs and sweeps.

Out of sample by construction: the simulated market spans ``train_days + days``; the forecasting model
(``backtest.model``, a name of the spec's ``models:``) is fitted on origins of the first ``train_days`` only (purged:
every training target ends before the backtest starts), then forecasts each decision bar of the last ``days``.
The oracle-fed policy reads the simulator's own model (:class:`models.oracle.Oracle`, fitted the same way). Policies
start deciding at the first bar of the backtest; the book is the spec's (``backtest.book``), traded from then on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from forecaster.backtest.books import OptionLegs, make_book, portfolio_book
from forecaster.backtest.costs import CostModel
from forecaster.backtest.drift_eval import realized_drift
from forecaster.backtest.engine import (
    BacktestConfig,
    BacktestMarket,
    BacktestResult,
    BookPath,
    book_path,
    collateral_event_bars,
    run_backtest,
)
from forecaster.backtest.forecasts import apply_view_calibration, fit_view_calibration, forecast_views, views_provider
from forecaster.backtest.hedging import (
    HEDGE_POLICIES,
    DeltaBand,
    OutOfDistribution,
    SafeHedgePolicy,
    make_hedge_policy,
)
from forecaster.backtest.margin_policies import MARGIN_POLICIES, make_margin_policy
from forecaster.backtest.policy import ForecastView
from forecaster.backtest.predictive import PredictiveHedge
from forecaster.config import check_keys, checked_section
from forecaster.errors import ConfigError

SECTION_KEYS = (
    "days",
    "demo_days",
    "calibration_days",
    "train_days",
    "seed",
    "model",
    "horizon",
    "decision_every",
    "margin_every",
    "collateral_every",
    "margin_horizon",
    "hedge_instrument",
    "funding_rate_annual",
    "vol_halflife_bars",
    "delta_limit_units",
    "initial_collateral",
    "scenarios",
    "costs",
    "book",
    "safety",
    "hedge_policies",
    "margin_policy",
    "margin_policies",
)
SAFETY_KEYS = ("max_order_units", "max_notional_per_step", "fallback_band_units")
PREDICTIVE_SOURCES = ("model", "oracle")


@dataclass(frozen=True)
class PolicySpec:
    """One entry of ``backtest.hedge_policies``: its name, kind, parameters, forecast source and sweep values."""

    name: str
    kind: str
    params: dict[str, Any]
    source: str | None = None  # "model" or "oracle" for predictive policies
    sweep: tuple[float, ...] = ()

    @property
    def sweep_param(self) -> str | None:
        if self.kind == "predictive" and self.params.get("risk_aversion") is not None:
            return "risk_aversion"
        return SWEEP_PARAM.get(self.kind)


SWEEP_PARAM = {
    "fixed": "every_bars",
    "band": "band_units",
    "ww": "risk_aversion",
    "threshold": "threshold_units",
    "predictive": "band_units",
}


@dataclass(frozen=True)
class BacktestSpec:
    days: float
    train_days: float
    calibration_days: float
    seed: int
    model: str
    horizon: int
    scenarios: int
    engine: BacktestConfig
    book: dict[str, Any]
    safety: dict[str, float]
    policies: dict[str, PolicySpec]
    margin_policy: str
    margin_policies: dict[str, dict[str, Any]]
    margin_sweeps: dict[str, tuple[float, ...]] = field(default_factory=dict)
    margin_horizon: int = 0  # bars the predictive margin policy looks ahead; 0: to just before the next move

    @property
    def margin_h(self) -> int:
        """The predictive margin policy's horizon: ``margin_horizon``, else the last bar before the next collateral
        move (the legs that expire at that move are still held then, and count in the requirement)."""
        return self.margin_horizon or max(self.engine.collateral_bars - 1, 1)


def backtest_spec(spec_values: Mapping[str, Any], *, where: str) -> BacktestSpec:
    """Parse and check the spec's ``backtest:`` section (every key named in errors)."""
    section = checked_section(spec_values, "backtest", SECTION_KEYS, where)
    costs = section.get("costs") or {}
    check_keys(costs, ("fee_rate", "impact_coef", "adv_units"), where, "backtest.costs")
    safety = {"max_order_units": 50.0, "max_notional_per_step": 5e6, "fallback_band_units": 0.8}
    given = section.get("safety") or {}
    check_keys(given, SAFETY_KEYS, where, "backtest.safety")
    safety.update({k: float(v) for k, v in given.items()})
    try:
        engine = BacktestConfig(
            decision_every=int(section.get("decision_every", 15)),
            margin_every=int(section.get("margin_every", 60)),
            collateral_every=None if section.get("collateral_every") is None else int(section["collateral_every"]),
            hedge_instrument=str(section.get("hedge_instrument", "perp")),
            funding_rate_annual=float(section.get("funding_rate_annual", 0.0)),
            vol_halflife_bars=float(section.get("vol_halflife_bars", 240.0)),
            delta_limit_units=float(section.get("delta_limit_units") or math.inf),
            initial_collateral=section.get("initial_collateral"),
            costs=CostModel(**costs),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(where, "backtest", str(err)) from None
    policies = {}
    for name, settings in (section.get("hedge_policies") or {"none": {"policy": "none"}}).items():
        policies[name] = _policy_spec(str(name), settings or {}, where)
    margin_policies = {str(k): dict(v or {}) for k, v in (section.get("margin_policies") or {}).items()}
    margin_sweeps = {}
    for name, params in margin_policies.items():
        if name not in MARGIN_POLICIES:
            raise ConfigError(
                where, f"backtest.margin_policies.{name}", f"unknown; known: {', '.join(MARGIN_POLICIES)}"
            )
        margin_sweeps[name] = tuple(float(v) for v in params.pop("sweep", []) or [])
        try:
            make_margin_policy(name, **params)
        except Exception as err:
            raise ConfigError(where, f"backtest.margin_policies.{name}", str(err)) from None
    margin_policy = str(section.get("margin_policy", "static"))
    if margin_policy not in MARGIN_POLICIES:
        raise ConfigError(where, "backtest.margin_policy", f"unknown {margin_policy!r}; known: {list(MARGIN_POLICIES)}")
    horizon = int(section.get("horizon", 240))
    if horizon < 1:
        raise ConfigError(where, "backtest.horizon", f"must be a whole number of bars >= 1; got {horizon}")
    margin_horizon = section.get("margin_horizon")
    margin_horizon = int(margin_horizon) if margin_horizon is not None else 0
    if margin_horizon < 0:
        raise ConfigError(
            where, "backtest.margin_horizon", f"must be a whole number of bars >= 1 (null: the collateral interval); "
            f"got {margin_horizon}",
        )  # fmt: skip
    return BacktestSpec(
        days=float(section.get("days", 30)),
        train_days=float(section.get("train_days", 75)),
        calibration_days=float(section.get("calibration_days", 0)),
        seed=int(section["seed"])
        if section.get("seed") is not None
        else int(spec_values.get("simulator", {}).get("seed", 7)) + 1,
        model=str(section.get("model", "harx_range")),
        horizon=horizon,
        scenarios=int(section.get("scenarios", 256)),
        engine=engine,
        book=dict(section.get("book") or {"kind": "short_straddle"}),
        safety=safety,
        policies=policies,
        margin_policy=margin_policy,
        margin_policies=margin_policies,
        margin_sweeps=margin_sweeps,
        margin_horizon=margin_horizon,
    )


def _policy_spec(name: str, settings: Mapping[str, Any], where: str) -> PolicySpec:
    params = dict(settings)
    kind = str(params.pop("policy", name))
    sweep = tuple(float(v) for v in params.pop("sweep", []) or [])
    source = params.pop("source", None)
    if kind == "predictive":
        source = source or "model"
        if source not in PREDICTIVE_SOURCES:
            raise ConfigError(
                where, f"backtest.hedge_policies.{name}.source", f"one of {PREDICTIVE_SOURCES}; got {source!r}"
            )
        try:
            PredictiveHedge(**params)
        except TypeError as err:
            raise ConfigError(where, f"backtest.hedge_policies.{name}", str(err)) from None
    elif kind in HEDGE_POLICIES:
        if source is not None:
            raise ConfigError(
                where, f"backtest.hedge_policies.{name}.source", "only predictive policies read forecasts"
            )
        make_hedge_policy(kind, **params)  # checks the parameters
    else:
        known = [*HEDGE_POLICIES, "predictive"]
        raise ConfigError(where, f"backtest.hedge_policies.{name}.policy", f"unknown {kind!r}; known: {known}")
    if sweep and kind not in SWEEP_PARAM:
        raise ConfigError(where, f"backtest.hedge_policies.{name}.sweep", f"policy {kind!r} has no parameter to sweep")
    return PolicySpec(name, kind, params, source, sweep)


# ---------------------------------------------------------------------------------------------- setup


@dataclass
class Setup:
    """Everything the policy runs share: the market, the book and its path, the forecast views per source."""

    market: BacktestMarket
    legs: OptionLegs
    path: BookPath
    start_bar: int
    views: dict[str, dict[int, ForecastView]]
    description: str
    truth: pd.DataFrame | None = None
    margin_config: Any = None
    drift: Any = None  # the spec's DriftConfig
    all_legs: OptionLegs | None = (
        None  # the book generator run over the whole market (training origins of the direct model)
    )
    features: pd.DataFrame | None = None  # the feature table of the whole market
    raw_views: dict[str, dict[int, ForecastView]] = field(default_factory=dict)  # before the drift calibration
    margin_views: dict[int, ForecastView] = field(default_factory=dict)  # the model's, at the collateral moves
    initial_hedge_units: float = 0.0  # a portfolio file's linear positions
    corrections: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # source -> target -> shifts
    notes: list[str] = field(default_factory=list)


def simulated_setup(spec: Any, bt: BacktestSpec, *, show_progress: bool = False) -> Setup:
    """Simulate ``train_days + days``, fit the forecasting model (and the oracle) on the first part, build views."""
    from forecaster.market.simulator import sim_config_from_spec
    from training.data import simulated_market

    values = {**spec.values, "simulator": {**spec.values.get("simulator", {})}}
    # the truth carries the oracle at every horizon the backtest forecasts
    values["horizons"] = sorted({int(h) for h in spec.values.get("horizons") or []} | {bt.horizon, bt.margin_h})
    values["simulator"]["days"] = bt.train_days + bt.days
    values["simulator"]["seed"] = bt.seed
    config = sim_config_from_spec(values, where=spec.path)
    market, truth = simulated_market(config)
    index = market.bars.index
    start = int(index.searchsorted(index[0] + pd.Timedelta(days=bt.train_days)))
    what = f"simulated {bt.train_days:g} + {bt.days:g} days (seed {bt.seed})"
    return market_setup(spec, bt, market, truth, start, what, show_progress=show_progress)


def file_setup(
    spec: Any, bt: BacktestSpec, market: Any, source: str, *, portfolio: Any = None, show_progress: bool = False
) -> Setup:
    """A market read from files (:func:`features.market.market_data`): the policies run on its last ``days`` days,
    the model learns on everything before them. There is no truth, so no oracle-fed policy. ``portfolio`` (a loaded
    portfolio file): the book instead of the spec's generator, its options traded at the first backtested bar and
    its linear positions the hedge's starting position."""
    from forecaster.errors import UsageError

    index = market.bars.index
    if market.iv is None and market.chain is None:
        raise UsageError(
            f"{source}: the backtest prices the book from an implied vol on every bar; give --iv-index or --options"
        )
    start = int(index.searchsorted(index[-1] - pd.Timedelta(days=bt.days), side="right"))
    span = (index[-1] - index[0]) / pd.Timedelta(days=1)
    if start <= 0 or (index[start] - index[0]) < pd.Timedelta(days=1):
        raise UsageError(
            f"{source} spans {span:.1f} days: too short to backtest {bt.days:g} days after a training period; pass "
            "--days smaller, or longer files"
        )
    train = (index[start] - index[0]) / pd.Timedelta(days=1)
    what = f"{source}: {train:.1f} days of training + the last {bt.days:g} days"
    book = None
    if portfolio is not None:
        legs, linear = portfolio_book(portfolio, index[start:])
        legs = OptionLegs(
            legs.strike, legs.is_call, legs.weight, legs.start_bar + start, legs.expiry_bar + start, legs.expiry,
            legs.label,
        )  # fmt: skip
        book = (legs, linear)
    return market_setup(spec, bt, market, None, start, what, book=book, show_progress=show_progress)


def market_setup(
    spec: Any,
    bt: BacktestSpec,
    market: Any,
    truth: pd.DataFrame | None,
    start: int,
    what: str,
    *,
    book: tuple[OptionLegs, float] | None = None,
    show_progress: bool,
) -> Setup:
    """Fit the forecasting model (and, with a truth, the oracle) on the bars before ``start``, build the book (the
    spec's generator, or ``book``: legs and the hedge's starting units), the views and the shared path; the
    policies run from ``start`` on."""
    from features.pipeline import feature_spec_from_spec
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.margin import margin_config_from_spec
    from training.data import market_iv, model_data

    values = spec.values
    index = market.bars.index
    bt_market = BacktestMarket(index, market.bars["close"].to_numpy(float), market_iv(market), market.bar_years)
    all_legs = legs = make_book(bt.book, index, bt_market.close, seed=bt.seed) if book is None else book[0]
    keep = legs.start_bar >= start
    legs = OptionLegs(
        legs.strike[keep], legs.is_call[keep], legs.weight[keep], legs.start_bar[keep], legs.expiry_bar[keep],
        legs.expiry[keep], tuple(np.asarray(legs.label, dtype=object)[keep]) if legs.label else (),
    )  # fmt: skip
    fspec = feature_spec_from_spec(values, where=spec.path)
    predictive_margin = bt.margin_policy == "predictive" or "predictive" in bt.margin_policies
    horizons = sorted({bt.horizon} | ({bt.margin_h} if predictive_margin else set()))
    data = model_data(market, fspec, horizons, truth=truth, show_progress=show_progress)
    decision_bars = np.arange(start, len(index), bt.engine.decision_every)
    margin_bars = np.arange(start, len(index), bt.engine.margin_every)
    drift = drift_config_from_spec(spec.values, where=spec.path)
    margin_config = margin_config_from_spec(spec)
    path = book_path(legs, bt_market)
    views, margin_views = {}, {}
    sources = {p.source for p in bt.policies.values() if p.source} | ({"model"} if predictive_margin else set())
    if truth is None:
        sources.discard("oracle")
    raw_views, corrections = {}, {}
    # the end of the training period calibrates the drift forecasts (the model learns before it)
    cal_days = min(bt.calibration_days, 0.25 * bt.train_days)  # at most a quarter of the training period
    cal_start = int(index.searchsorted(index[start] - pd.Timedelta(days=cal_days)))
    cal_origins = np.arange(cal_start, start - bt.horizon, bt.engine.margin_every)
    for source in sorted(sources):
        label = f"model:{bt.model}" if source == "model" else "oracle:truth"
        model = fit_forecaster(spec, bt, data, cal_start if cal_origins.size else start, source, horizons)
        common = {"drift": drift, "margin_config": margin_config, "n_scenarios": bt.scenarios}
        if source == "model" and predictive_margin:  # the margin policy's views: to the next collateral move
            moves = collateral_event_bars(bt.engine, legs, start, len(index))
            margin_views = forecast_views(
                bt_market, legs, moves, _predict(model, data, moves, bt.margin_h), bt.margin_h,
                source=f"{label} margin", margin_bars=moves, show_progress=show_progress,
                margin_hedge_units={int(t): -float(path.delta_units[t]) for t in moves}, **common,
            )  # fmt: skip
        raw_views[source] = forecast_views(
            bt_market, legs, decision_bars, _predict(model, data, decision_bars, bt.horizon), bt.horizon,
            source=label, margin_bars=margin_bars, show_progress=show_progress, **common,
        )  # fmt: skip
        corrections[source] = {}
        if cal_origins.size:
            cal_views = forecast_views(
                bt_market, all_legs, cal_origins, _predict(model, data, cal_origins, bt.horizon), bt.horizon,
                source=label, margin_bars=cal_origins, **common,
            )  # fmt: skip
            realized = realized_drift(bt_market, all_legs, cal_origins, bt.horizon, margin_config=margin_config)
            corrections[source] = fit_view_calibration(cal_views, realized)
        views[source] = apply_view_calibration(raw_views[source], corrections[source])
    description = (
        f"{what}: model {bt.model!r} fitted before the backtest, policies on the last "
        f"{(index[-1] - index[start]) / pd.Timedelta(days=1) + market.bar_years * 365:.3g} days "
        f"({len(index) - start:,} bars, {len(legs)} option legs)"
    )
    return Setup(
        bt_market, legs, path, start, views, description, truth, margin_config, drift, all_legs,
        data.features, raw_views=raw_views, corrections=corrections, margin_views=margin_views,
        initial_hedge_units=book[1] if book is not None else 0.0,
    )  # fmt: skip


def _predict(model: Any, data: Any, bars: np.ndarray, horizon: int) -> pd.DataFrame:
    """The forecast frame (var, q05..q95, p_stressed; indexed by bar time) of a fitted model at ``bars``."""
    frame = model.predict(data, bars)
    frame = frame[frame["horizon"] == horizon].copy()
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
    return frame[["var", "q05", "q25", "q50", "q75", "q95", "p_stressed"]]


def fit_forecaster(spec, bt: BacktestSpec, data, start: int, source: str, horizons=None) -> Any:
    """The forecasting model of ``source`` (``model``: the spec's ``backtest.model``; ``oracle``) fitted on origins
    every ``decision_every`` bars before the backtest (purged: each target ends before ``start``), from the end of the
    longest feature warm-up, or of its own inputs' when it reads fewer features (a HAR learns from earlier).
    ``horizons``: the horizons it forecasts (default the policies' ``horizon``)."""
    horizons = tuple(horizons or (bt.horizon,))
    from models.registry import make_model

    models = spec.section("models") or {}
    if source == "oracle":
        model = make_model("oracle", {"family": "oracle"}, where=spec.path)
    else:
        if bt.model not in models:
            raise ConfigError(
                spec.path, "backtest.model", f"{bt.model!r} is not in the spec's models ({', '.join(models)})"
            )
        model = make_model(bt.model, dict(models[bt.model]), where=spec.path)
    model = model.set_params(horizons=horizons)
    warmup = data.info.get("warmup") or {}
    warm = int(max(warmup.values(), default=0))  # the walk-forward's rule: after the longest feature warm-up
    last_train = start - max(horizons)  # every training target ends before the backtest starts
    step = bt.engine.decision_every
    train = np.arange(warm, last_train, step)
    if train.size < 100:
        raise ConfigError(
            spec.path,
            "backtest.train_days",
            f"{bt.train_days:g} days leave {train.size} training origins after the features' warm-up of {warm:,} bars "
            f"({max(warmup, key=warmup.get) if warmup else '?'}), every {step} bars and purged by the horizon; "
            f"give the model at least {math.ceil((warm + max(horizons) + 100 * step) / 1440) + 1} days",
        )
    model.fit(data, train)
    # a model that reads only some features (a HAR) can learn from earlier origins: after its own inputs' warm-up
    own = [c for c in (model.input_features() or []) if c in warmup]
    if own and max(warmup[c] for c in own) < warm:
        own_warm = int(max(warmup[c] for c in own))
        model = model.clone().fit(data, np.arange(own_warm, last_train, step))
    return model


# ---------------------------------------------------------------------------------------------- runs


def hedge_policy(p: PolicySpec, bt: BacktestSpec, value: float | None = None) -> Any:
    """The policy of a spec entry (its sweep parameter set to ``value`` when given), behind the safety wrapper."""
    params = dict(p.params)
    if value is not None and p.sweep_param:
        params[p.sweep_param] = int(value) if p.sweep_param == "every_bars" else value
    if p.kind == "predictive":
        inner = PredictiveHedge(**params, name="oracle" if p.source == "oracle" else "predictive")
    else:
        inner = make_hedge_policy(p.kind, **params)
    fallback = DeltaBand(band_units=bt.safety["fallback_band_units"])
    return SafeHedgePolicy(
        inner,
        fallback,
        max_order_units=bt.safety["max_order_units"],
        max_notional_per_step=bt.safety["max_notional_per_step"],
        ood=OutOfDistribution() if inner.needs_forecast else None,
    )


MARGIN_SWEEP_PARAM = {"static": "multiple", "reactive": "multiple", "predictive": "cushion"}


def margin_policy(bt: BacktestSpec, name: str | None = None, value: float | None = None) -> Any:
    """The margin policy ``name`` (default the spec's) with its parameters; ``value`` sets its swept parameter."""
    name = name or bt.margin_policy
    params = dict(bt.margin_policies.get(name, {}))
    if value is not None:
        params[MARGIN_SWEEP_PARAM[name]] = float(value)
    if name == "predictive":
        params.setdefault("check_every_days", bt.engine.collateral_bars / 1440.0)
    return make_margin_policy(name, **params)


def run_policy(
    setup: Setup,
    bt: BacktestSpec,
    p: PolicySpec,
    *,
    value: float | None = None,
    margin: str | None = None,
    margin_value: float | None = None,
) -> BacktestResult:
    policy = hedge_policy(p, bt, value)
    mpolicy = margin_policy(bt, margin, margin_value)
    provider = views_provider(setup.views.get(p.source, {})) if p.source else None
    margin_provider = views_provider(setup.margin_views) if mpolicy.needs_forecast else None
    return run_backtest(
        setup.market, setup.legs, policy, mpolicy, bt.engine, margin_config=setup.margin_config,
        forecasts=provider, margin_forecasts=margin_provider, path=setup.path, start_bar=setup.start_bar,
        initial_hedge_units=setup.initial_hedge_units,
    )  # fmt: skip


def sweep_policy(setup: Setup, bt: BacktestSpec, p: PolicySpec) -> pd.DataFrame:
    """One row per swept value: ``param`` and the policy metrics."""
    rows = []
    for value in p.sweep:
        result = run_policy(setup, bt, p, value=value)
        rows.append({"param": value, **result.metrics})
    return pd.DataFrame(rows)


def with_engine(bt: BacktestSpec, **changes: Any) -> BacktestSpec:
    return replace(bt, engine=replace(bt.engine, **changes))


def drift_evaluation(setup: Setup, bt: BacktestSpec, *, every: int | None = None) -> dict[str, Any]:
    """The Greek-drift forecast evaluation (:mod:`forecaster.backtest.drift_eval`) on the backtest's origins (every
    ``every`` bars, default the margin cadence): scores of the model, naive and direct forecasts of the delta,
    gamma and vega drift and of the margin at t + h; also the realized frame and the model's quantiles (fan chart)."""
    from forecaster.backtest.drift_eval import (
        TARGETS,
        direct_quantile_model,
        evaluate_drift_forecasts,
        naive_forecasts,
        no_iv_change,
        view_quantiles,
    )
    from forecaster.backtest.engine import ewma_sigma_bar

    every = every or bt.engine.margin_every
    h = bt.horizon
    market = setup.market
    n = len(market.index)
    origins = np.arange(setup.start_bar, n - h, every)
    realized = realized_drift(market, setup.legs, origins, h, margin_config=setup.margin_config)
    bars = realized.index.to_numpy()
    forecasts: dict[str, dict[str, np.ndarray]] = {}
    model_views = setup.views.get("model", {})
    if model_views:
        forecasts["model"] = {t: view_quantiles(model_views, bars, t) for t in (*TARGETS, "margin")}
    if setup.raw_views.get("model") and setup.corrections.get("model"):
        raw = setup.raw_views["model"]
        forecasts["model_uncalibrated"] = {t: view_quantiles(raw, bars, t) for t in (*TARGETS, "margin")}
    sigma_bar = ewma_sigma_bar(market.close, market.iv, market.bar_years, bt.engine.vol_halflife_bars)
    naive = forecast_views(
        market, setup.legs, bars, naive_forecasts(sigma_bar, market.index, bars, h), h, source="naive",
        drift=no_iv_change(setup.drift), margin_config=setup.margin_config, margin_bars=bars,
        n_scenarios=bt.scenarios,
    )  # fmt: skip
    forecasts["naive"] = {t: view_quantiles(naive, bars, t) for t in (*TARGETS, "margin")}
    if setup.all_legs is not None and setup.features is not None:
        # every origin of the training period (the trees take features still inside their warm-up as missing);
        # purged: each training drift ends before the backtest starts
        train_origins = np.arange(0, setup.start_bar - h, every)
        train = realized_drift(market, setup.all_legs, train_origins, h)
        train = train[(train[[f"{k}_now" for k in TARGETS]] != 0).any(axis=1)]  # origins with a book
        if len(train) >= 50:
            test = realized.copy()
            forecasts["direct"] = {
                t: direct_quantile_model(train, test, setup.features, t, seed=bt.seed) for t in TARGETS
            }
    table = evaluate_drift_forecasts(realized, forecasts)
    return {"realized": realized, "forecasts": forecasts, "table": table}


def sweep_margin(setup: Setup, bt: BacktestSpec, hedge: PolicySpec) -> pd.DataFrame:
    """Every margin policy over its ``sweep`` values under one hedge policy: ``policy``, ``param``, breaches,
    liquidations and mean idle collateral (the breach-cost frontier of each margin policy)."""
    rows = []
    for name, values in bt.margin_sweeps.items():
        for value in values:
            metrics = run_policy(setup, bt, hedge, margin=name, margin_value=value).metrics
            rows.append(
                {
                    "policy": name,
                    "param": value,
                    "margin_breaches": metrics["margin_breaches"],
                    "breach_bars": metrics["breach_bars"],
                    "forced_liquidations": metrics["forced_liquidations"],
                    "mean_idle_collateral": metrics["mean_idle_collateral"],
                }
            )
    return pd.DataFrame(rows)
