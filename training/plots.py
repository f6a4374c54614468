"""Pictures of an evaluation, logged as MLflow artifacts (DESIGN section 8) and embedded by ``forecaster compare``.

Every function takes the walk-forward predictions frame (``training.walkforward.PREDICTION_COLUMNS``: the forecast
columns plus ``realized``, and ``realized_class`` for the regime plot) or the evaluation dict (DESIGN section 11),
and returns a matplotlib :class:`~matplotlib.figure.Figure` built without pyplot (no global state, no display: the
Agg canvas), which :func:`save` writes as a PNG. Figures are never shown.

- :func:`forecast_vs_realized`: the forecast variance of one model and horizon against the realized one over time,
  log scale, with the q05..q95 band (the 90% interval);
- :func:`calibration`: the empirical coverage of each quantile level (share of realized ≤ the forecast quantile)
  against its nominal level, one line per horizon;
- :func:`regime_timeline`: the forecast probability of the stressed regime against the realized stressed class;
- :func:`qlike_by_horizon`: the QLIKE of every model, bars grouped by horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forecaster.errors import UsageError
from models.base import QUANTILE_COLUMNS, QUANTILES

logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notes are not the user's business

STRESSED = 2  # realized_class of the stressed regime (calm 0, normal 1, stressed 2)
DPI = 100


def _figure(width: float, height: float) -> Figure:
    """A figure drawn by the Agg canvas (files only, no display, no pyplot state)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (parent folders created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=DPI)
    return target


def _rows(predictions: pd.DataFrame, model: str, horizon: int, needs: tuple[str, ...]) -> pd.DataFrame:
    """The rows of one model and horizon, in time order; errors name what is missing."""
    missing = [c for c in ("timestamp", "horizon", "model", *needs) if c not in predictions.columns]
    if missing:
        raise UsageError(
            f"the predictions frame lacks the columns {missing}; pass the walk-forward predictions "
            "(forecast columns plus realized and realized_class)"
        )
    rows = predictions[(predictions["model"] == model) & (predictions["horizon"] == horizon)]
    if rows.empty:
        have = sorted(map(str, predictions["model"].unique()))
        raise UsageError(f"no predictions for model {model!r} at horizon {horizon}; models present: {have}")
    return rows.sort_values("timestamp", kind="stable")


def forecast_vs_realized(predictions: pd.DataFrame, model: str, horizon: int) -> Figure:
    """The forecast ``var`` and its q05..q95 band against ``realized`` over time (log scale), one model and horizon.

    Rows whose realized value is missing or not positive are left out of the realized series (a log axis cannot show
    them); the title says how many.
    """
    rows = _rows(predictions, model, horizon, ("var", "q05", "q95", "realized"))
    stamps = pd.DatetimeIndex(rows["timestamp"])
    realized = rows["realized"].to_numpy(dtype=float)
    shown = np.isfinite(realized) & (realized > 0)
    figure = _figure(11, 4.2)
    ax = figure.add_subplot()
    ax.fill_between(stamps, rows["q05"], rows["q95"], color="#8fb3d9", alpha=0.45, linewidth=0, label="q05..q95")
    ax.plot(stamps[shown], realized[shown], color="#444444", linewidth=0.7, label="realized rv")
    ax.plot(stamps, rows["var"], color="#c0392b", linewidth=1.1, label="forecast var")
    ax.set_yscale("log")
    ax.set_ylabel(f"variance over {horizon} bars (decimal²)")
    left_out = int((~shown).sum())
    note = f"; {left_out} rows without a positive realized value not drawn" if left_out else ""
    ax.set_title(f"{model}: forecast vs realized, h = {horizon}{note}")
    ax.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def coverage_table(predictions: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """Empirical coverage of each quantile level: the share of rows whose realized value is at or below the
    forecast quantile, by (model, horizon) and level. Rows without a realized value are left out.

    Returns a frame with columns ``model, horizon, level, coverage, n``.
    """
    missing = [c for c in ("model", "horizon", "realized", *QUANTILE_COLUMNS) if c not in predictions.columns]
    if missing:
        raise UsageError(f"the predictions frame lacks the columns {missing} needed for coverage")
    frame = predictions if model is None else predictions[predictions["model"] == model]
    frame = frame[np.isfinite(frame["realized"].to_numpy(dtype=float))]
    out = []
    for (name, h), group in frame.groupby(["model", "horizon"], sort=True):
        realized = group["realized"].to_numpy(dtype=float)
        for level, column in zip(QUANTILES, QUANTILE_COLUMNS, strict=True):
            below = realized <= group[column].to_numpy(dtype=float)
            out.append({"model": name, "horizon": int(h), "level": level, "coverage": below.mean(), "n": below.size})
    return pd.DataFrame(out, columns=["model", "horizon", "level", "coverage", "n"])


def calibration(predictions: pd.DataFrame, model: str) -> Figure:
    """Empirical coverage of each forecast quantile against its nominal level (the diagonal is perfect), one line
    per horizon, for one model."""
    table = coverage_table(predictions, model)
    if table.empty:
        raise UsageError(f"no predictions with a realized value for model {model!r}: nothing to calibrate against")
    figure = _figure(5.2, 5)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="perfect")
    for h, group in table.groupby("horizon", sort=True):
        ax.plot(group["level"], group["coverage"], marker="o", label=f"h = {h} (n = {int(group['n'].iloc[0])})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal quantile level")
    ax.set_ylabel("share of realized ≤ forecast quantile")
    ax.set_title(f"{model}: quantile calibration")
    ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def regime_timeline(predictions: pd.DataFrame, model: str, horizon: int) -> Figure:
    """The forecast ``p_stressed`` over time, with the origins whose realized class is stressed shaded."""
    rows = _rows(predictions, model, horizon, ("p_stressed", "realized_class"))
    stamps = pd.DatetimeIndex(rows["timestamp"])
    realized = rows["realized_class"].to_numpy(dtype=float)
    figure = _figure(11, 3.6)
    ax = figure.add_subplot()
    stressed = np.where(np.isfinite(realized), realized == STRESSED, False)
    ax.fill_between(stamps, 0, 1, where=stressed, step="post", color="#f5b7b1", alpha=0.7, label="realized stressed")
    ax.plot(stamps, rows["p_stressed"], color="#922b21", linewidth=1.0, label="forecast p_stressed")
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f"{model}: stressed regime, h = {horizon} ({int(stressed.sum())} of {stressed.size} origins stressed)")
    ax.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def qlike_by_horizon(evaluation: Mapping[str, Any]) -> Figure:
    """QLIKE of every model (bars) grouped by horizon, from the evaluation dict (``models.NAME.hH.qlike``).

    A missing or null QLIKE leaves its bar out (the evaluation's ``warnings`` say why).
    """
    models = evaluation.get("models") or {}
    if not models:
        raise UsageError("the evaluation has no models: nothing to plot (evaluate the predictions first)")
    keys = sorted({key for scores in models.values() for key in scores}, key=lambda k: int(str(k).lstrip("h")))
    names = list(models)
    width = 0.8 / len(names)
    figure = _figure(min(14.0, max(6.0, 0.8 * len(keys) * max(2, len(names)))), 4.2)
    ax = figure.add_subplot()
    positions = np.arange(len(keys), dtype=float)
    for i, name in enumerate(names):
        values = [(models[name].get(key) or {}).get("qlike") for key in keys]
        heights = np.array([np.nan if v is None else float(v) for v in values])
        shown = np.isfinite(heights)
        ax.bar(positions[shown] + i * width, heights[shown], width=width, label=name)
    ax.set_xticks(positions + width * (len(names) - 1) / 2, [str(k) for k in keys])
    ax.set_xlabel("horizon (bars)")
    ax.set_ylabel("QLIKE (lower is better)")
    ax.set_title("QLIKE by model and horizon")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
