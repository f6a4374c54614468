"""Where a :class:`HorizonForecast` comes from: a predictions file, the simulator's oracle, or implied vol.

1. A predictions file (DESIGN section 5: ``timestamp, horizon, model, var, q05 ... q95``; optional
   ``div_mean``, ``div_q05 ... div_q95``): the last row at or before the valuation time for the horizon.
2. The simulator's ``truth``: ``oracle_rv_h{h}`` (exact conditional expectation of rv_h) and ``oracle_div_h{h}``
   (expected change of the 30-day ATM IV) at the valuation time; the dispersion comes from the drift config.
3. Implied vol alone: rv_h ≈ IV² × horizon (implied variance as the forecast; it carries the variance risk
   premium, so it is biased upward), IV change with mean 0; dispersion from the drift config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.drift.config import DriftConfig
from forecaster.drift.forecast import HorizonForecast
from forecaster.errors import DataValidationError, UsageError

RV_QUANTILE_COLUMNS = {"q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95}


def forecast_from_predictions(
    predictions: pd.DataFrame,
    *,
    horizon: int,
    as_of: pd.Timestamp,
    bar_years: float,
    config: DriftConfig,
    model: str | None = None,
    path: str = "<predictions>",
) -> HorizonForecast:
    """The forecast of ``horizon`` made at the last timestamp ≤ ``as_of`` (by ``model`` when several)."""
    rows = predictions
    missing = [c for c in ("timestamp", "horizon", "var") if c not in rows.columns]
    if missing:
        raise DataValidationError(
            path, "a predictions file needs the columns timestamp, horizon, var (DESIGN section 5)", column=missing[0]
        )
    if "model" in rows.columns:
        models = sorted(map(str, rows["model"].dropna().unique()))
        if model is None and len(models) > 1:
            raise UsageError(f"{path} holds forecasts of several models ({', '.join(models)}); pick one with --model")
        if model is not None:
            if model not in models:
                raise UsageError(f"{path} has no forecasts of model {model!r}; it has: {', '.join(models)}")
            rows = rows[rows["model"].astype(str) == model]
    times = pd.to_datetime(rows["timestamp"], utc=True)
    usable = rows[(rows["horizon"].to_numpy() == horizon) & (times <= as_of).to_numpy()]
    if usable.empty:
        raise UsageError(
            f"{path} has no forecast for horizon {horizon} at or before {as_of}; its horizons are "
            f"{sorted(set(rows['horizon'].tolist()))} from {times.min()} to {times.max()}"
        )
    order = np.argsort(pd.to_datetime(usable["timestamp"], utc=True).to_numpy(), kind="stable")
    row = usable.iloc[order[-1]]
    label = usable.index[order[-1]]
    line = int(label) + 1 if isinstance(label, int | np.integer) else None  # 1-based data row of a default index

    def number(column: str) -> float:
        value = float(row[column])
        if not np.isfinite(value):
            raise DataValidationError(
                path,
                "forecast values must be finite numbers",
                row=line,
                column=column,
                value=row[column],
                fix="recompute the forecast or drop the row",
            )
        return value

    rv_q = {level: number(c) for c, level in RV_QUANTILE_COLUMNS.items() if c in row.index and pd.notna(row[c])}
    div_q = {
        level: number(f"div_{c}")
        for c, level in RV_QUANTILE_COLUMNS.items()
        if f"div_{c}" in row.index and pd.notna(row[f"div_{c}"])
    }
    years = horizon * bar_years
    div_mean = number("div_mean") if "div_mean" in row.index and pd.notna(row["div_mean"]) else 0.0
    try:
        return HorizonForecast(
            horizon=horizon,
            bar_years=bar_years,
            var=number("var"),
            rv_quantiles=rv_q,
            div_mean=div_mean,
            div_stdev=config.iv_change_stdev(years),
            div_quantiles=div_q,
            spot_vol_corr=config.spot_vol_corr,
            rv_log_stdev=config.rv_log_stdev,
        )
    except ValueError as exc:
        raise DataValidationError(path, str(exc), row=line, fix="fix the forecast row") from exc


def forecast_from_truth(
    truth: pd.DataFrame, *, horizon: int, as_of: pd.Timestamp, bar_years: float, config: DriftConfig
) -> HorizonForecast:
    """The simulator's oracle at ``as_of`` (the last bar at or before it)."""
    column = f"oracle_rv_h{horizon}"
    if column not in truth.columns:
        have = sorted(
            int(c.split("_h")[-1]) for c in truth.columns if c.startswith("oracle_rv_h") and not c.endswith("_se")
        )
        raise UsageError(
            f"the simulated market has no oracle for horizon {horizon}; it has horizons {have} (--horizons)"
        )
    row = truth.loc[:as_of].iloc[-1]
    years = horizon * bar_years
    return HorizonForecast(
        horizon=horizon,
        bar_years=bar_years,
        var=float(row[column]),
        div_mean=float(row.get(f"oracle_div_h{horizon}", 0.0)),
        div_stdev=config.iv_change_stdev(years),
        spot_vol_corr=config.spot_vol_corr,
        rv_log_stdev=config.rv_log_stdev,
    )


def forecast_from_implied_vol(atm_iv: float, *, horizon: int, bar_years: float, config: DriftConfig) -> HorizonForecast:
    """Implied variance over the horizon as the forecast of rv_h (biased up by the variance risk premium)."""
    years = horizon * bar_years
    return HorizonForecast(
        horizon=horizon,
        bar_years=bar_years,
        var=float(atm_iv) ** 2 * years,
        div_stdev=config.iv_change_stdev(years),
        spot_vol_corr=config.spot_vol_corr,
        rv_log_stdev=config.rv_log_stdev,
    )


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions file (Parquet, CSV or CSV.gz)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"predictions file {p} does not exist; write one with `forecaster evaluate --predictions`")
    name = p.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(p)
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(p)
    raise UsageError(f"predictions file {p}: expected .parquet, .csv or .csv.gz")
