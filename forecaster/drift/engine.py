"""The drift engine: the distribution of a book's Greeks, P&L and margin at t+h by full revaluation.

For every scenario of :mod:`forecaster.drift.scenarios` the book is moved to t+h: every spot moves by the
scenario's log return (one market factor: books on several underlyings move together), every option ages by
the horizon and its implied vol moves by the scenario's IV change (sticky strike, a parallel shift of the
surface; vols floored at ``vol_floor``), and the whole book is repriced with Black-76 (:func:`revalue`). An
option that expires inside the horizon settles at its intrinsic value at the horizon's price (the expiry
price is not simulated separately) and has no Greeks afterwards.

Units are those of :mod:`forecaster.portfolio.greeks`: cash delta (quote currency per 100% move), gamma per
1% move, vega per vol point, P&L in quote currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.drift.forecast import HorizonForecast
from forecaster.drift.scenarios import Scenarios, draw_scenarios
from forecaster.portfolio.book import Book
from forecaster.pricing.revalue import revalue

if TYPE_CHECKING:
    from forecaster.margin import MarginConfig

FloatArray = npt.NDArray[np.float64]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
METRICS = ("delta", "gamma", "vega", "pnl", "margin_initial")
DEFAULT_VOL_FLOOR = 0.01


@dataclass(frozen=True)
class DriftResult:
    """The drift distribution of one book at one horizon.

    ``scenarios``: one row per scenario with rv, log_return, iv_change, spot_ratio and the book's delta, gamma,
    vega, pnl (and margin_initial when margin was asked for) at t+h. ``now``: today's values of the same.
    """

    horizon: int
    years: float
    quantiles: tuple[float, ...]
    now: dict[str, float]
    scenarios: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if m in self.scenarios]

    def summary(self, metric: str) -> dict[str, float]:
        """``now``, ``mean`` and the quantiles (``q05``...) of the metric at t+h."""
        values = self.scenarios[metric].to_numpy()
        out = {"now": self.now[metric], "mean": float(values.mean())}
        out.update(
            {_qname(q): float(v) for q, v in zip(self.quantiles, np.quantile(values, self.quantiles), strict=True)}
        )
        return out

    def drift(self, metric: str) -> dict[str, float]:
        """Mean and quantiles of the change from now to t+h (``value at t+h − now``)."""
        change = self.scenarios[metric].to_numpy() - self.now[metric]
        out = {"mean": float(change.mean())}
        out.update(
            {_qname(q): float(v) for q, v in zip(self.quantiles, np.quantile(change, self.quantiles), strict=True)}
        )
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``drift`` JSON of DESIGN section 11 (plus ``drift`` per metric and the scenario count)."""
        out: dict[str, Any] = {"horizon": self.horizon, "quantiles": list(self.quantiles)}
        for metric in self.metrics:
            out[metric] = {**self.summary(metric), "drift": self.drift(metric)}
        out["n_scenarios"] = len(self.scenarios)
        return out


def drift_distribution(
    book: Book,
    forecast: HorizonForecast,
    *,
    n_scenarios: int = 2048,
    seed: int = 0,
    method: str = "sobol",
    quantiles: Sequence[float] = QUANTILES,
    vol_floor: float = DEFAULT_VOL_FLOOR,
    margin: MarginConfig | None = None,
    scenarios: Scenarios | None = None,
) -> DriftResult:
    """Revalue ``book`` at t + h under scenarios drawn from ``forecast``.

    Parameters
    ----------
    book
        Priced at t (:func:`forecaster.portfolio.book_from_portfolio`).
    forecast
        The horizon's forecast; the book ages by ``forecast.years``.
    n_scenarios, seed, method
        Scenario count, seed and sampling (``sobol``, ``antithetic`` or ``random``).
    quantiles
        Levels reported by :meth:`DriftResult.summary`.
    vol_floor
        Lowest implied vol after the IV change (decimal).
    margin
        When given, also the initial margin at t+h in every scenario (:mod:`forecaster.margin`), of the positions
        still open then (an option expiring within the horizon has settled into cash).
    scenarios
        Use these instead of drawing (the tests' brute-force reference).
    """
    scen = scenarios if scenarios is not None else draw_scenarios(forecast, n_scenarios, seed, method)
    later = book.aged(forecast.years)
    now = _now(book)
    at_h = _at_horizon(later, scen, vol_floor)
    at_h["pnl"] = at_h.pop("value") - now.pop("value")
    now["pnl"] = 0.0
    notes: list[str] = []
    expiring = book.is_option & (later.tau <= 0)
    if expiring.any():
        notes.append(f"{int(expiring.sum())} option(s) expire within the horizon: settled at intrinsic at t+h")
    if margin is not None:
        from forecaster.margin import initial_margin_under_states

        now["margin_initial"] = float(initial_margin_under_states(book, np.zeros(1), np.zeros(1), book.tau, margin)[0])
        held = later.select(~expiring)  # an option that expired within the horizon settled into cash: no margin
        at_h["margin_initial"] = (
            initial_margin_under_states(held, scen.log_return, scen.iv_change, held.tau, margin)
            if len(held)
            else np.zeros(scen.log_return.size)
        )
    table = pd.DataFrame(
        {
            "rv": scen.rv,
            "log_return": scen.log_return,
            "iv_change": scen.iv_change,
            "spot_ratio": np.exp(scen.log_return),
            **at_h,
        }
    )
    return DriftResult(forecast.horizon, forecast.years, tuple(quantiles), now, table, tuple(notes))


def _now(book: Book) -> dict[str, float]:
    totals = _book_totals(book, np.zeros(1), np.zeros(1), vol_floor=0.0)
    return {name: float(value[0]) for name, value in totals.items()}


def _at_horizon(book: Book, scen: Scenarios, vol_floor: float) -> dict[str, FloatArray]:
    return _book_totals(book, scen.log_return, scen.iv_change, vol_floor=vol_floor)


def _book_totals(
    book: Book, log_return: FloatArray, iv_change: FloatArray, *, vol_floor: float
) -> dict[str, FloatArray]:
    """Value, cash delta, gamma (per 1%) and vega (per vol point) of the book in each scenario. Shape (S,) each."""
    growth = np.exp(log_return)  # (S,)
    live = book.is_option & (book.tau > 0)
    expired = book.is_option & ~live
    linear = ~book.is_option
    out = {name: np.zeros(log_return.size) for name in ("value", "delta", "gamma", "vega")}
    if live.any():
        zero_shift = not np.any(iv_change)
        totals = revalue(
            log_return,
            book.spot[live],
            book.strike[live],
            book.tau[live],
            book.iv[live],
            book.is_call[live],
            book.weight[live],
            vol_shift=None if zero_shift else iv_change,
            vol_floor=vol_floor,
        )
        out["value"] += totals["value"]
        out["delta"] += totals["delta"]
        out["gamma"] += totals["gamma"] * 0.01
        out["vega"] += totals["vega"] * 0.01
    if expired.any():
        spot_h = book.spot[expired] * growth[:, None]  # (S, E)
        strike = book.strike[expired]
        payoff = np.where(book.is_call[expired], np.maximum(spot_h - strike, 0.0), np.maximum(strike - spot_h, 0.0))
        out["value"] += payoff @ book.weight[expired]
    if linear.any():
        notional = book.weight[linear] * book.spot[linear]  # today's cash delta of the linear positions
        out["value"] += growth * notional.sum()
        out["delta"] += growth * notional.sum()
    return out


def _qname(level: float) -> str:
    return f"q{round(level * 100):02d}"
