"""From a request to the model's forecast, and from a forecast and a portfolio to the book's drift.

The steps a route chains (``/v1/portfolio/adjustments`` reuses the first three)::

    forecast = forecast_for(model, body.bars, metrics)             # the forecast frame at the last bar
    outlook = horizon_forecast(forecast, horizon, model, config)    # one horizon as a HorizonForecast
    book = book_for(body.portfolio, as_of=forecast.as_of, ...)      # the portfolio priced at the last bar
    result = drift_distribution(book, outlook, ...)                 # the drift engine

Every check of the data contracts is the one files get (the bars loader inside the model, the portfolio file's
validator): their errors are :class:`~forecaster.errors.ForecasterError` and reach the client as 422.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.drift import HorizonForecast
from forecaster.drift.config import DriftConfig
from forecaster.errors import UsageError
from forecaster.portfolio.book import Book
from models.base import QUANTILE_COLUMNS, REGIME_COLUMNS
from serving.metrics import Metrics
from serving.models import LoadedModel
from serving.schemas import BarTable, HorizonRow, PortfolioIn

BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
AUTO_PCT_ABOVE = 3.0  # as models.pyfunc: an IV whose median is above 3 (300%) can only be in percent


@dataclass(frozen=True)
class Forecast:
    """The model's forecast at the last bar of a request.

    ``frame``: ``models.base.FORECAST_COLUMNS``, one row per horizon; ``rows``: the same as response rows
    (non-finite numbers as None, each named in ``warnings``); ``as_of``: the origin (the last bar, UTC).
    """

    frame: pd.DataFrame
    rows: list[HorizonRow]
    as_of: pd.Timestamp
    warnings: list[str]

    def row(self, horizon: int) -> HorizonRow:
        return next(r for r in self.rows if r.horizon == horizon)


def bars_frame(bars: BarTable) -> pd.DataFrame:
    """The request's bars as the pyfunc's input frame; ``iv`` only when some bar carries one."""
    columns: dict[str, object] = {c: getattr(bars, c) for c in BAR_COLUMNS}
    if bars.iv is not None:
        columns["iv"] = bars.iv
    return pd.DataFrame(columns)


def forecast_for(model: LoadedModel, bars: BarTable, metrics: Metrics) -> Forecast:
    """Run the model on the request's bars (timed as ``forecast``); the forecast rows of every horizon."""
    frame = bars_frame(bars)
    with metrics.timed("forecast"):
        table = model.forecast(frame)
    warnings: list[str] = []
    columns = {c: table[c].to_numpy() for c in ("horizon", "var", *QUANTILE_COLUMNS, *REGIME_COLUMNS)}
    records = [{c: values[i] for c, values in columns.items()} for i in range(len(table))]
    rows = [_row(record, model.bar_years, warnings) for record in records]
    as_of = pd.Timestamp(table["timestamp"].iloc[-1])
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    return Forecast(table, rows, as_of, warnings)


def _row(record: dict, bar_years: float, warnings: list[str]) -> HorizonRow:
    horizon = int(record["horizon"])
    values = {
        c: finite_or_none(record.get(c), f"h{horizon}.{c}", warnings)
        for c in ("var", *QUANTILE_COLUMNS, *REGIME_COLUMNS)
    }
    var = values["var"]
    ann_vol = None
    if var is not None and var >= 0:  # DESIGN section 2: annualized only at the edges, here
        ann_vol = finite_or_none(math.sqrt(var / (horizon * bar_years)), f"h{horizon}.ann_vol", warnings)
    return HorizonRow(horizon=horizon, ann_vol=ann_vol, **values)


def finite_or_none(value: object, name: str, warnings: list[str]) -> float | None:
    """``value`` as a float when it is a finite number; else None, and a ``warnings`` entry naming ``name``
    (DESIGN section 11: no NaN in JSON)."""
    number = float(value) if isinstance(value, int | float | np.number) else math.nan
    if math.isfinite(number):
        return number
    warnings.append(f"{name} is not a finite number ({value!r}): sent as null")
    return None


def pick_horizon(requested: int | None, model: LoadedModel) -> int:
    """``requested`` when the model forecasts it; None: the model's first horizon. Else UsageError (422)."""
    if requested is None:
        return model.horizons[0]
    if requested not in model.horizons:
        raise UsageError(
            f"horizon {requested} is not one the model forecasts; pick one of {model.horizons} (bars), or leave "
            "horizon out for the first"
        )
    return requested


def horizon_forecast(forecast: Forecast, horizon: int, model: LoadedModel, config: DriftConfig) -> HorizonForecast:
    """One horizon of the forecast as the drift engine's input (IV-change spread and spot-vol correlation from
    the spec's ``drift`` section: the model forecasts rv_h only)."""
    from forecaster.drift.sources import forecast_from_predictions

    return forecast_from_predictions(
        forecast.frame,
        horizon=horizon,
        as_of=forecast.as_of,
        bar_years=model.bar_years,
        config=config,
        path="<model forecast>",
    )


def decimal_iv(bars: BarTable, model: LoadedModel) -> np.ndarray:
    """The bars' ``iv`` as decimals (NaN where a bar has none) in the model's ``iv_units`` (``auto``: as the model
    reads it, percent when the median is above 3). Shape (n,)."""
    if bars.iv is None:
        return np.full(len(bars), np.nan)
    known = bars.iv[np.isfinite(bars.iv)]
    units = model.config.get("iv_units", "dec")
    if units == "auto":
        units = "pct" if known.size and float(np.median(known)) > AUTO_PCT_ABOVE else "dec"
    return bars.iv / (100.0 if units == "pct" else 1.0)


def last_iv(bars: BarTable, model: LoadedModel) -> float | None:
    """The last IV the bars carry, as a decimal (:func:`decimal_iv`); None when no bar carries one."""
    known = decimal_iv(bars, model)
    known = known[np.isfinite(known)]
    return float(known[-1]) if known.size else None


def book_for(portfolio: PortfolioIn, *, as_of: pd.Timestamp, spot: float, atm_iv: float | None) -> Book:
    """The portfolio checked by the portfolio file's rules at ``as_of`` and priced: spot ``spot``, options on a
    flat surface at ``atm_iv`` (an IV index carries no skew). One underlying per request."""
    from forecaster.market.portfolio_file import one_underlying, portfolio_from_mapping
    from forecaster.portfolio import book_from_portfolio
    from forecaster.pricing.surface import flat_surface

    document = portfolio.model_dump(mode="json", exclude_none=True)
    checked = portfolio_from_mapping(document, name="portfolio", as_of=as_of).data
    name, has_options = one_underlying(
        checked, "the portfolio", "a request values one underlying against its bars: send one request per underlying"
    )
    if has_options and atm_iv is None:
        raise UsageError("the portfolio holds options: send atm_iv (decimal) or bars with an iv column for their vols")
    vols = {name: flat_surface(atm_iv)} if has_options else None
    return book_from_portfolio(checked, as_of=as_of, spot={name: spot}, vols=vols)
