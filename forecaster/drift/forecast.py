"""What the drift engine needs to know about the market over the next horizon: one :class:`HorizonForecast`.

A forecast at origin t and horizon h (DESIGN section 5) carries the point forecast ``var`` of the realized
variance rv_h, optionally its quantiles, and, when an implied-vol source exists, the distribution of the
30-day ATM IV change div_h; plus the correlation between the return and the IV change (spot-vol correlation,
negative in equity-like and crypto markets).

Distributions are rebuilt from their quantiles by a quantile function that is linear in the normal score
between the given levels (log-linear for rv_h, so it stays positive) and extends the outermost segments into
the tails: a log-normal tail for rv_h and a normal tail for div_h. Without quantiles, rv_h is log-normal with
mean ``var`` and log-stdev ``rv_log_stdev``, and div_h is normal with mean ``div_mean`` and stdev ``div_stdev``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class HorizonForecast:
    """The forecast of one horizon.

    Attributes
    ----------
    horizon
        h, in bars of the base frequency.
    bar_years
        Calendar length of one bar in years (1-minute bars of a 24/7 market: 1/525,600).
    var
        Point forecast of rv_h (decimal², over the horizon, not annualized), ≥ 0.
    rv_quantiles
        Optional {level: value} quantiles of rv_h, levels in (0, 1), values non-decreasing in the level.
    div_mean, div_stdev, div_quantiles
        The IV change over the horizon (decimal vol, +0.02 = +2 vol points): mean and stdev, or quantiles.
    spot_vol_corr
        Correlation of the horizon's return with its IV change, in [-1, 1].
    rv_log_stdev
        Log-stdev of rv_h when no quantiles are given.
    """

    horizon: int
    bar_years: float
    var: float
    rv_quantiles: Mapping[float, float] = field(default_factory=dict)
    div_mean: float = 0.0
    div_stdev: float = 0.0
    div_quantiles: Mapping[float, float] = field(default_factory=dict)
    spot_vol_corr: float = 0.0
    rv_log_stdev: float = 0.0

    def __post_init__(self) -> None:
        _check(self.horizon >= 1, "horizon", "an integer number of bars ≥ 1", self.horizon)
        _check(self.bar_years > 0, "bar_years", "> 0 (one bar in years)", self.bar_years)
        _check(np.isfinite(self.var) and self.var >= 0, "var", "a finite variance ≥ 0", self.var)
        _check(-1 <= self.spot_vol_corr <= 1, "spot_vol_corr", "in [-1, 1]", self.spot_vol_corr)
        _check(self.div_stdev >= 0, "div_stdev", "≥ 0", self.div_stdev)
        _check(self.rv_log_stdev >= 0, "rv_log_stdev", "≥ 0", self.rv_log_stdev)
        _check_quantiles("rv_quantiles", self.rv_quantiles, positive=True)
        _check_quantiles("div_quantiles", self.div_quantiles, positive=False)

    @property
    def years(self) -> float:
        """The horizon's calendar length in years: options age by this much."""
        return self.horizon * self.bar_years

    def rv_at(self, u: FloatArray) -> FloatArray:
        """rv_h at probability levels ``u`` in (0, 1). Shape: that of ``u``."""
        if self.rv_quantiles:
            levels, values = _sorted(self.rv_quantiles)
            if np.all(values == 0):
                return np.zeros_like(u)
            return np.exp(_normal_score_interp(u, levels, np.log(values)))
        if self.var == 0:
            return np.zeros_like(u)
        s = self.rv_log_stdev
        return self.var * np.exp(s * ndtri(u) - 0.5 * s * s)  # log-normal with mean var

    def div_at(self, u: FloatArray) -> FloatArray:
        """The IV change at probability levels ``u`` in (0, 1). Shape: that of ``u``."""
        if self.div_quantiles:
            levels, values = _sorted(self.div_quantiles)
            return _normal_score_interp(u, levels, values)
        return self.div_mean + self.div_stdev * ndtri(u)


def _normal_score_interp(u: FloatArray, levels: FloatArray, values: FloatArray) -> FloatArray:
    """Piecewise-linear in the normal score z = Φ⁻¹(u) through (Φ⁻¹(levels), values), linear tails beyond."""
    z, knots = ndtri(u), ndtri(levels)
    if len(knots) == 1:
        return np.full_like(z, values[0])
    inside = np.interp(z, knots, values)
    lo_slope = (values[1] - values[0]) / (knots[1] - knots[0])
    hi_slope = (values[-1] - values[-2]) / (knots[-1] - knots[-2])
    return np.where(
        z < knots[0],
        values[0] + lo_slope * (z - knots[0]),
        np.where(z > knots[-1], values[-1] + hi_slope * (z - knots[-1]), inside),
    )


def _sorted(quantiles: Mapping[float, float]) -> tuple[FloatArray, FloatArray]:
    levels = np.array(sorted(quantiles), dtype=float)
    return levels, np.array([quantiles[q] for q in sorted(quantiles)], dtype=float)


def _check_quantiles(name: str, quantiles: Mapping[float, float], *, positive: bool) -> None:
    if not quantiles:
        return
    levels, values = _sorted(quantiles)
    _check(bool(np.all((levels > 0) & (levels < 1))), name, "levels strictly between 0 and 1", list(levels))
    _check(bool(np.all(np.isfinite(values))), name, "finite values", list(values))
    _check(bool(np.all(np.diff(values) >= 0)), name, "values non-decreasing in the level", list(values))
    if positive:
        zero = values == 0
        _check(bool(zero.all() or (values > 0).all()), name, "all > 0 (or all 0: no movement)", list(values))


def _check(ok: bool, name: str, allowed: str, got: object) -> None:
    if not ok:
        raise ValueError(f"HorizonForecast.{name} must be {allowed}; got {got!r}")
