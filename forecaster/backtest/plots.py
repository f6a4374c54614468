"""Backtest plots (PNG, matplotlib Agg): P&L paths, drawdowns, cost-risk frontiers, margin usage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd


def _figure(width: float = 9.0, height: float = 4.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height))


def plot_pnl_paths(records: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Cumulative P&L of every policy (quote currency) over the backtest."""
    plt, fig, ax = _figure()
    for name, record in records.items():
        ax.plot(record["timestamp"], record["pnl"].cumsum(), label=name, lw=1.0)
    ax.set_title("cumulative P&L after hedging costs")
    ax.set_ylabel("quote currency")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(plt, fig, path)


def plot_drawdowns(records: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Drawdown of the cumulative P&L (its distance below the running maximum) per policy."""
    plt, fig, ax = _figure()
    for name, record in records.items():
        cum = record["pnl"].cumsum().to_numpy()
        ax.plot(record["timestamp"], cum - np.maximum.accumulate(cum), label=name, lw=1.0)
    ax.set_title("drawdown")
    ax.set_ylabel("quote currency")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(plt, fig, path)


def plot_frontiers(
    frontiers: Mapping[str, pd.DataFrame],
    path: str | Path,
    *,
    cost: str = "hedging_cost",
    risk: str = "daily_pnl_cvar95",
) -> Path:
    """Each policy's swept points (cost, risk), joined in cost order and labelled with the parameter."""
    plt, fig, ax = _figure(7.5, 5.5)
    for name, frame in frontiers.items():
        f = frame.sort_values(cost)
        ax.plot(f[cost], f[risk], marker="o", lw=1.2, label=name)
        for _, row in f.iterrows():
            ax.annotate(f"{row['param']:g}", (row[cost], row[risk]), fontsize=6, alpha=0.7)
    ax.set_xlabel("hedging cost (fees + impact)")
    ax.set_ylabel("CVaR95 of daily P&L" if risk == "daily_pnl_cvar95" else risk)
    ax.set_title("cost-risk frontiers (lower left is better)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_margin_usage(record: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Initial and maintenance margin against equity; breaches marked."""
    plt, fig, ax = _figure()
    t = record["timestamp"]
    ax.plot(t, record["equity"], label="equity", lw=1.0)
    ax.plot(t, record["initial_margin"], label="initial margin", lw=1.0)
    ax.plot(t, record["maintenance_margin"], label="maintenance margin", lw=0.8, ls="--")
    breach = record["equity"] < record["maintenance_margin"]
    if breach.any():
        ax.scatter(t[breach], record["equity"][breach], s=6, color="red", label="breach", zorder=3)
    ax.set_title(title or "margin usage")
    ax.set_ylabel("quote currency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(plt, fig, path)


def plot_fan(realized: pd.DataFrame, quantiles: np.ndarray, path: str | Path, target: str = "delta") -> Path:
    """Realized drift over time (``realized[target]``, a :func:`forecaster.backtest.drift_eval.realized_drift`
    frame) with the forecast's q05..q95 and q25..q75 bands (``quantiles`` (m, 5))."""
    plt, fig, ax = _figure(10.0, 4.5)
    t = realized["timestamp"]
    ax.fill_between(t, quantiles[:, 0], quantiles[:, 4], alpha=0.2, label="forecast q05..q95", step="mid")
    ax.fill_between(t, quantiles[:, 1], quantiles[:, 3], alpha=0.35, label="forecast q25..q75", step="mid")
    ax.plot(t, quantiles[:, 2], lw=0.8, label="forecast median")
    ax.scatter(t, realized[target], s=3, color="black", label="realized", zorder=3)
    ax.set_title(f"{target} drift over the horizon: forecast fan against realized (book held fixed)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
