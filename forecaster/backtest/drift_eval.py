"""Greek-drift forecast evaluation: the product's headline forecast against what happened along the path.

At each evaluation origin t the book open at t is *held fixed* to t + h (no new legs, no hedge): its delta and
gamma (units of the underlying) and vega (per vol point) at t + h are those of the same legs repriced at the spot
and IV of bar t + h with h less to expiry (legs expiring in between have settled: no Greeks), and its initial margin
at t + h that of the same legs. The realized drift is the value at t + h minus the value at t.

Forecast quantiles of each drift (and of the margin at t + h) are scored against it with the coverage of every
quantile level (the share of realized values at or below it: a calibrated q05 covers 5%), the coverage of the
q05..q95 interval and the pinball loss. Three forecasts are compared:

- ``model``: the drift engine fed the model's forecast (the predictive policy's views);
- ``naive``: the drift engine fed the trailing realized variance (the engine's EWMA, ``sigma_bar² · h``) and no IV
  change;
- ``direct``: a LightGBM quantile model of each drift straight from the features at t plus the book's Greeks at t,
  trained on the origins of the training period (the same book generator run over it), no drift engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.engine import YEAR, BacktestMarket, _margin_book
from forecaster.backtest.forecasts import LEVELS
from forecaster.backtest.policy import ForecastView
from forecaster.pricing.black import black76_greeks

TARGETS = ("delta", "gamma", "vega")
VIEW_FIELDS = {"delta": "delta_drift_quantiles", "gamma": "gamma_drift_quantiles", "vega": "vega_drift_quantiles"}


def _greeks(legs: OptionLegs, keep: np.ndarray, spot: float, iv: float, tau: np.ndarray) -> dict[str, float]:
    live = keep & (tau > 0)
    if not live.any():
        return {"delta": 0.0, "gamma": 0.0, "vega": 0.0}
    g = black76_greeks(spot, legs.strike[live], tau[live], iv, legs.is_call[live])
    w = legs.weight[live]
    return {
        "delta": float(np.sum(w * g["delta"])),
        "gamma": float(np.sum(w * g["gamma"])),
        "vega": float(np.sum(w * g["vega"]) / 100.0),
    }


def realized_drift(
    market: BacktestMarket, legs: OptionLegs, origins: Sequence[int], horizon: int, *, margin_config: Any = None
) -> pd.DataFrame:
    """One row per origin t with t + h inside the market: the book's Greeks at t (``delta_now`` ...), their realized
    drift to t + h with the book held fixed (``delta`` ...), and ``margin`` (initial margin at t + h) when
    ``margin_config`` is given. Indexed by the origin's bar number."""
    from forecaster.margin import portfolio_margin

    n = len(market.index)
    rows = []
    for t in (int(o) for o in origins):
        if t + horizon >= n:
            continue
        keep = (legs.start_bar <= t) & (legs.expiry_bar > t)
        tau_now = np.asarray((legs.expiry - market.index[t]) / YEAR, dtype=float)
        tau_later = np.asarray((legs.expiry - market.index[t + horizon]) / YEAR, dtype=float)
        now = _greeks(legs, keep, float(market.close[t]), float(market.iv[t]), tau_now)
        later = _greeks(legs, keep, float(market.close[t + horizon]), float(market.iv[t + horizon]), tau_later)
        row = {"bar": t, "timestamp": market.index[t]}
        row |= {f"{k}_now": now[k] for k in TARGETS} | {k: later[k] - now[k] for k in TARGETS}
        if margin_config is not None:
            still = keep & (legs.expiry_bar > t + horizon)
            book = _margin_book(legs, market, t + horizon, 0.0, held=still)
            row["margin"] = float(portfolio_margin(book, margin_config).initial)
        rows.append(row)
    return pd.DataFrame(rows).set_index("bar")


def quantile_scores(realized: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] = LEVELS) -> dict[str, float]:
    """Coverage of each level (share of realized ≤ the quantile), of the first-to-last interval, and pinball loss.

    ``realized`` (m,), ``quantiles`` (m, L) at ``levels`` (L,)."""
    y = np.asarray(realized, dtype=float)[:, None]
    q = np.asarray(quantiles, dtype=float)
    tau = np.asarray(levels, dtype=float)[None, :]
    diff = y - q
    pinball = np.mean(np.maximum(tau * diff, (tau - 1.0) * diff), axis=0)  # (L,)
    out = {f"coverage_q{round(lv * 100):02d}": float(np.mean(y[:, 0] <= q[:, i])) for i, lv in enumerate(levels)}
    out["coverage_interval"] = float(np.mean((y[:, 0] >= q[:, 0]) & (y[:, 0] <= q[:, -1])))
    out |= {f"pinball_q{round(lv * 100):02d}": float(v) for lv, v in zip(levels, pinball, strict=True)}
    out["pinball_mean"] = float(pinball.mean())
    out["n"] = float(y.shape[0])
    return out


def view_quantiles(views: Mapping[int, ForecastView], bars: Sequence[int], target: str) -> np.ndarray:
    """Quantiles (m, 5) of ``target`` (a drift or ``margin``) from the views at ``bars``; NaN rows where missing."""
    out = np.full((len(bars), len(LEVELS)), np.nan)
    for i, t in enumerate(bars):
        view = views.get(int(t))
        if view is None:
            continue
        levels = view.margin_quantiles if target == "margin" else getattr(view, VIEW_FIELDS[target])
        if levels:
            out[i] = [levels[lv] for lv in LEVELS]
    return out


def direct_quantile_model(
    train: pd.DataFrame, test: pd.DataFrame, features: pd.DataFrame, target: str, *, seed: int = 0
) -> np.ndarray:
    """LightGBM quantile regressions (one per level) of ``target`` on the features at t plus the book's Greeks at t;
    fitted on ``train`` origins, predicting ``test`` origins. Returns sorted quantiles (m, 5)."""
    import lightgbm as lgb

    def design(frame: pd.DataFrame) -> np.ndarray:
        x = features.iloc[frame.index.to_numpy()].to_numpy(dtype=float)
        book = frame[[f"{k}_now" for k in TARGETS]].to_numpy(dtype=float)
        return np.column_stack([x, book])

    x_train, y_train = design(train), train[target].to_numpy(dtype=float)
    x_test = design(test)
    preds = []
    for level in LEVELS:
        params = {
            "objective": "quantile", "alpha": level, "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50,
            "verbose": -1, "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": 2,
        }  # fmt: skip
        booster = lgb.train(params, lgb.Dataset(x_train, y_train), num_boost_round=150)
        preds.append(booster.predict(x_test))
    return np.sort(np.column_stack(preds), axis=1)


def evaluate_drift_forecasts(realized: pd.DataFrame, forecasts: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """One row per (source, target): :func:`quantile_scores` of that source's quantiles on the realized drifts.
    ``forecasts[source][target]`` is (m, 5) aligned with ``realized``; rows with NaN quantiles are left out."""
    rows = []
    for source, by_target in forecasts.items():
        for target, q in by_target.items():
            ok = np.isfinite(q).all(axis=1) & np.isfinite(realized[target].to_numpy(dtype=float))
            if not ok.any():
                continue
            scores = quantile_scores(realized[target].to_numpy(dtype=float)[ok], q[ok])
            rows.append({"source": source, "target": target, **scores})
    return pd.DataFrame(rows)


def naive_forecasts(sigma_bar: np.ndarray, index: pd.DatetimeIndex, bars: Sequence[int], horizon: int) -> pd.DataFrame:
    """The naive forecast frame: rv over the horizon = trailing per-bar variance × h (no quantiles, no stress)."""
    bars = np.asarray(bars, dtype=np.int64)
    return pd.DataFrame({"var": sigma_bar[bars] ** 2 * horizon}, index=index[bars])


def no_iv_change(drift: Any) -> Any:
    """The drift config with no IV change (the naive forecast)."""
    return replace(drift, iv_change_stdev_daily=0.0)
