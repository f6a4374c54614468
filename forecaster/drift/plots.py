"""The drift distribution as a picture: one panel per metric at t+h, and the P&L against the move."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forecaster.drift.engine import DriftResult

UNITS = {
    "delta": "cash delta (quote ccy per 100% move)",
    "gamma": "gamma (change of cash delta per 1%)",
    "vega": "vega (quote ccy per vol point)",
    "pnl": "P&L (quote ccy)",
    "margin_initial": "initial margin (quote ccy)",
}


def plot_drift(result: DriftResult, path: str | Path, title: str = "") -> Path:
    """Write a PNG: a histogram per metric at t+h with today's value (dashed) and the 5/50/95% quantiles, and a
    scatter of P&L against the scenario's return coloured by its IV change. Returns the path written."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notes are not the user's business
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    metrics = result.metrics
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    flat = axes.ravel()
    for ax, metric in zip(flat, metrics, strict=False):
        values = result.scenarios[metric].to_numpy()
        ax.hist(values, bins=60, color="#8fb3d9", edgecolor="none")
        ax.axvline(result.now[metric], color="black", linestyle="--", linewidth=1.2, label="now")
        q05, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
        for level, value, color in (("q05", q05, "#c0392b"), ("q50", q50, "#2c3e50"), ("q95", q95, "#c0392b")):
            ax.axvline(value, color=color, linewidth=1.0, label=f"{level} {value:,.0f}")
        ax.set_xlabel(UNITS.get(metric, metric))
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="upper right")
    scatter_ax = flat[len(metrics)] if len(metrics) < len(flat) else None
    if scatter_ax is not None:
        frame = result.scenarios
        points = scatter_ax.scatter(
            100 * (np.exp(frame["log_return"]) - 1), frame["pnl"], c=100 * frame["iv_change"], s=4, cmap="coolwarm"
        )
        scatter_ax.axhline(0.0, color="grey", linewidth=0.8)
        scatter_ax.set_xlabel("move of the underlying (%)")
        scatter_ax.set_ylabel("P&L at t+h")
        fig.colorbar(points, ax=scatter_ax, label="IV change (vol points)")
    for ax in flat[len(metrics) + 1 :]:
        ax.set_visible(False)
    fig.suptitle(title or f"book at t+h, h = {result.horizon} bars ({len(result.scenarios):,} scenarios)")
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
