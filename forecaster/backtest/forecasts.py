"""Forecast views for the predictive policies: a model's forecast at each decision bar, mapped onto the book.

The book does not depend on the hedge policy, so the view at a bar (the forecast of rv over the horizon, the
stress probability, and the drift engine's quantiles of the book's delta, gamma and vega drift and of its
initial margin at t + h) is computed once per decision bar and shared by every policy and sweep point.

A view at bar t uses only the forecast made at origin t (a row of a forecast frame whose timestamp is the bar's
end) and the book after bar t; the drift engine revalues the open legs under scenarios of the forecast
(:func:`forecaster.drift.engine.drift_distribution`). Delta and gamma drift are reported in units of the
underlying (delta ``Σ w ∂V/∂S``, gamma ``Σ w ∂²V/∂S²``) so the policies compare them with hedge positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.engine import BacktestMarket, _margin_book
from forecaster.backtest.policy import ForecastView
from forecaster.drift.config import DriftConfig
from forecaster.drift.engine import drift_distribution
from forecaster.drift.forecast import HorizonForecast
from forecaster.errors import UsageError
from forecaster.progress import progress

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
NEED_LEVELS = (0.5, 0.75, 0.9, 0.95, 0.975, 0.99)  # the margin need: a collateral buffer reads its upper tail
QCOLS = ("q05", "q25", "q50", "q75", "q95")


def forecast_views(
    market: BacktestMarket,
    legs: OptionLegs,
    bars: Iterable[int],
    forecasts: pd.DataFrame,
    horizon: int,
    *,
    source: str,
    drift: DriftConfig,
    margin_config: Any = None,
    margin_bars: Iterable[int] = (),
    margin_hedge_units: Mapping[int, float] | None = None,
    n_scenarios: int = 512,
    show_progress: bool = False,
) -> dict[int, ForecastView]:
    """{bar: ForecastView} for every bar of ``bars`` that has a forecast.

    ``forecasts``: one row per origin, indexed by the bar-end timestamp, columns ``var`` and optionally
    ``q05 .. q95`` and ``p_stressed`` (rv over ``horizon`` bars, decimal²); ``margin_bars``: the bars where the
    margin at t + h is also forecast (it is dearer: a margin scenario grid per drift scenario), with the
    account's margin need (maintenance at t + h minus the horizon's P&L); ``margin_hedge_units``: {bar: units} of
    the hedge the account holds at those bars (e.g. minus the book's delta: delta-hedged), else none.
    """
    missing = [c for c in ("var",) if c not in forecasts.columns]
    if missing:
        raise UsageError(
            f"forecasts for the backtest need the column(s) {missing}; they have {list(forecasts.columns)}"
        )
    margin_set = set(int(b) for b in margin_bars)
    rows = forecasts.reindex(market.index)  # NaN where no forecast at that bar
    views: dict[int, ForecastView] = {}
    bar_list = [int(b) for b in bars]
    for t in progress(bar_list, desc=f"drift views ({source})", unit="bar") if show_progress else bar_list:
        made = horizon_forecast_of(rows.iloc[t], horizon, market.bar_years, drift)
        if made is None:
            continue
        forecast, p_stressed = made
        hedge = float(margin_hedge_units.get(t, 0.0)) if margin_hedge_units and t in margin_set else 0.0
        book = _margin_book(legs, market, t, hedge)
        views[t] = _view(
            book,
            forecast,
            market,
            t,
            source,
            drift,
            n_scenarios,
            margin_config if t in margin_set else None,
            p_stressed,
        )
    return views


def horizon_forecast_of(
    row: pd.Series, horizon: int, bar_years: float, drift: DriftConfig
) -> tuple[HorizonForecast, float] | None:
    """The drift engine's input for one forecast row (``var``, optionally ``q05 .. q95`` and ``p_stressed``: rv over
    ``horizon`` bars, decimal²) and the row's ``p_stressed`` (NaN when absent); None when ``var`` is not finite (no
    view: a predictive policy falls back). The IV-change spread and the spot-vol correlation come from ``drift``.
    The one place a forecast row becomes a :class:`HorizonForecast`, for the backtest and the service alike."""
    var = float(row["var"])
    if not np.isfinite(var):
        return None
    rv_q = {lv: float(row[c]) for lv, c in zip(LEVELS, QCOLS, strict=True) if c in row.index and np.isfinite(row[c])}
    p_stressed = float(row["p_stressed"]) if "p_stressed" in row.index else float("nan")
    forecast = HorizonForecast(
        horizon=horizon,
        bar_years=bar_years,
        var=max(var, 0.0),
        rv_quantiles=rv_q if len(rv_q) >= 2 and all(v > 0 for v in rv_q.values()) else {},
        div_stdev=drift.iv_change_stdev(horizon * bar_years),
        spot_vol_corr=drift.spot_vol_corr,
        rv_log_stdev=drift.rv_log_stdev,
    )
    return forecast, p_stressed


def _view(
    book, forecast: HorizonForecast, market, t, source, drift: DriftConfig, n: int, margin_config, p_stressed: float
) -> ForecastView:
    spot = float(market.close[t])
    result = drift_distribution(
        book,
        forecast,
        n_scenarios=n,
        seed=drift.seed,
        method=drift.sampling,
        vol_floor=drift.vol_floor,
        margin=margin_config,
    )
    sc = result.scenarios
    spot_h = spot * sc["spot_ratio"].to_numpy()
    delta_units = sc["delta"].to_numpy() / spot_h  # cash delta w S ∂V/∂S -> units
    gamma_units = sc["gamma"].to_numpy() * 100.0 / spot_h**2  # per 1% move: w S² Γ / 100 -> units per unit spot
    now_delta = result.now["delta"] / spot
    d_spot = spot_h - spot
    pnl = sc["pnl"].to_numpy()
    var_ds = float(np.var(d_spot))
    # minimum-variance hedge H = −Cov(pnl, dS)/Var(dS); the net delta it leaves is the book's delta plus H
    hedge_mv = -float(np.mean((pnl - pnl.mean()) * (d_spot - d_spot.mean()))) / var_ds if var_ds > 0 else np.nan
    now_gamma = result.now["gamma"] * 100.0 / spot**2
    out: dict[str, Any] = {
        "horizon": forecast.horizon,
        "var": forecast.var,
        "rv_quantiles": dict(forecast.rv_quantiles),
        "p_stressed": p_stressed,
        "delta_drift_quantiles": _quantiles(delta_units - now_delta),
        "gamma_drift_quantiles": _quantiles(gamma_units - now_gamma),
        "vega_drift_quantiles": _quantiles(sc["vega"].to_numpy() - result.now["vega"]),
        "target_net_delta_units": now_delta + hedge_mv,
        "source": source,
    }
    if margin_config is not None and "margin_initial" in sc:
        from forecaster.margin import portfolio_margin

        initial = sc["margin_initial"].to_numpy()
        out["margin_quantiles"] = _quantiles(initial)
        today = portfolio_margin(book, margin_config)
        ratio = today.maintenance / today.initial if today.initial > 0 else 1.0  # maintenance per unit of initial
        out["margin_need_quantiles"] = _quantiles(ratio * initial - pnl, NEED_LEVELS)
    return ForecastView(**out)


def _quantiles(values: np.ndarray, levels: tuple[float, ...] = LEVELS) -> dict[float, float]:
    q = np.quantile(values, levels)
    return {lv: float(v) for lv, v in zip(levels, q, strict=True)}


def views_provider(views: Mapping[int, ForecastView]):
    """The engine's forecast provider over precomputed views (None where a bar has none: the fallback)."""

    def provide(bar: int, greeks: Mapping[str, float]) -> ForecastView | None:
        return views.get(int(bar))

    return provide


# ---------------------------------------------------------------------------------------------- calibration

CALIBRATED_FIELDS = {
    "delta": "delta_drift_quantiles",
    "gamma": "gamma_drift_quantiles",
    "vega": "vega_drift_quantiles",
    "margin": "margin_quantiles",
}


def split_conformal_shift(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """The additive split-conformal correction of an interval [lo, hi] (Romano et al. 2019, on the raw scale: the
    drifts are signed): the ⌈(1 − α)(n + 1)⌉-th smallest of the scores max(lo − y, y − hi). Positive widens.
    Needs n ≥ 1/α − 1 scores."""
    from models.calibration import conformal_rank

    scores = np.sort(np.maximum(lo - y, y - hi))
    return float(scores[conformal_rank(scores.size, alpha) - 1])


def fit_view_calibration(
    views: Mapping[int, ForecastView], realized: pd.DataFrame, *, alpha: float = 0.1
) -> dict[str, tuple[float, float]]:
    """{target: (outer, inner)}: additive corrections of [q05, q95] (level 1 − α) and of [q25, q75] (50%) learned on
    calibration origins (``realized`` from :func:`forecaster.backtest.drift_eval.realized_drift`, indexed by bar)."""
    out = {}
    for target, name in CALIBRATED_FIELDS.items():
        if target not in realized.columns:
            continue
        rows = [(t, getattr(views[t], name)) for t in realized.index if t in views and getattr(views[t], name)]
        if len(rows) < 20:
            continue
        y = realized.loc[[t for t, _ in rows], target].to_numpy(dtype=float)
        q = np.array([[levels[lv] for lv in LEVELS] for _, levels in rows])  # (n, 5)
        out[target] = (
            split_conformal_shift(q[:, 0], q[:, 4], y, alpha),
            split_conformal_shift(q[:, 1], q[:, 3], y, 0.5),
        )
    return out


def apply_view_calibration(
    views: Mapping[int, ForecastView], corrections: Mapping[str, tuple[float, float]]
) -> dict[int, ForecastView]:
    """The views with each corrected quantile set moved outwards (q05 − outer, q25 − inner, q75 + inner, q95 + outer;
    the median unchanged, then made non-decreasing around it)."""
    from dataclasses import replace

    out = {}
    for t, view in views.items():
        changes = {}
        for target, (outer, inner) in corrections.items():
            levels = getattr(view, CALIBRATED_FIELDS[target])
            if not levels:
                continue
            q05, q25, q50, q75, q95 = (levels[lv] for lv in LEVELS)
            q25, q75 = min(q25 - inner, q50), max(q75 + inner, q50)
            q05, q95 = min(q05 - outer, q25), max(q95 + outer, q75)
            changes[CALIBRATED_FIELDS[target]] = dict(zip(LEVELS, (q05, q25, q50, q75, q95), strict=True))
        out[t] = replace(view, **changes) if changes else view
    return out
