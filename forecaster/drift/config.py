"""The ``drift:`` section of an experiment spec: scenario count, sampling, and the assumptions used when a
forecast does not carry them (spot-vol correlation, dispersion of rv_h, size of IV changes)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

import pandas as pd

from forecaster.drift.scenarios import METHODS
from forecaster.errors import ConfigError


@dataclass(frozen=True)
class DriftConfig:
    """Defaults of the drift engine (every one stated in ``experiments/*.yaml``)."""

    n_scenarios: int = 2048
    sampling: str = "sobol"
    seed: int = 7
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    vol_floor: float = 0.01
    spot_vol_corr: float = -0.4
    rv_log_stdev: float = 0.5
    iv_change_stdev_daily: float = 0.03
    bucket_days: tuple[float, ...] = (1.0, 7.0, 30.0, 90.0)

    def iv_change_stdev(self, years: float) -> float:
        """Stdev of the IV change over ``years``: the daily figure scaled by the square root of time."""
        return self.iv_change_stdev_daily * math.sqrt(years * 365.0)


_RULES: dict[str, tuple[str, Any]] = {
    "n_scenarios": ("an integer ≥ 2", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2),
    "sampling": (f"one of {', '.join(METHODS)}", lambda v: v in METHODS),
    "seed": ("an integer ≥ 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "quantiles": ("a list of increasing levels in (0, 1)", lambda v: _levels(v)),
    "vol_floor": ("a number > 0", lambda v: _number(v) and v > 0),
    "spot_vol_corr": ("a number in [-1, 1]", lambda v: _number(v) and -1 <= v <= 1),
    "rv_log_stdev": ("a number ≥ 0", lambda v: _number(v) and v >= 0),
    "iv_change_stdev_daily": ("a number ≥ 0 (decimal vol per day)", lambda v: _number(v) and v >= 0),
    "bucket_days": ("a list of increasing day counts > 0", lambda v: _levels(v, upper=math.inf)),
}


def drift_config_from_mapping(values: Mapping[str, Any], *, where: str = "<spec>") -> DriftConfig:
    """Build a :class:`DriftConfig` from a ``drift:`` mapping; unknown keys and bad values are ConfigErrors."""
    known = {f.name for f in fields(DriftConfig)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(where, f"drift.{key}", f"is not a drift setting; allowed: {', '.join(sorted(known))}")
        allowed, ok = _RULES[key]
        if not ok(value):
            raise ConfigError(where, f"drift.{key}", f"must be {allowed}; got {value!r}")
    parsed = {k: tuple(float(x) for x in v) if isinstance(v, list | tuple) else v for k, v in values.items()}
    return DriftConfig(**parsed)


def drift_config_from_spec(spec_values: Mapping[str, Any], *, where: str = "<spec>") -> DriftConfig:
    section = spec_values.get("drift") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(where, "drift", f"must be a mapping of drift settings; got {type(section).__name__}")
    return drift_config_from_mapping(section, where=where)


def bar_years(spec_values: Mapping[str, Any], *, where: str = "<spec>") -> float:
    """Length of one bar in years: ``data.freq`` over ``data.annualization_days`` days (DESIGN section 2).

    A 1-minute bar of a 24/7 market is 1/(365·1440) of a year; a daily bar of an index with 252 trading days
    is 1/252: the options' clock then advances a trading day per bar.
    """
    data = spec_values.get("data") or {}
    freq, days = data.get("freq", "1min"), data.get("annualization_days", 365)
    try:
        length = pd.Timedelta(str(freq))
    except ValueError as exc:
        raise ConfigError(where, "data.freq", f"must be a bar length such as 1min, 1h or 1D; got {freq!r}") from exc
    if length <= pd.Timedelta(0):
        raise ConfigError(where, "data.freq", f"must be a positive bar length; got {freq!r}")
    if not _number(days) or days <= 0:
        raise ConfigError(where, "data.annualization_days", f"must be a number of days > 0; got {days!r}")
    return length / pd.Timedelta(days=1) / float(days)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _levels(value: Any, upper: float = 1.0) -> bool:
    if not isinstance(value, list | tuple) or not value or not all(_number(v) for v in value):
        return False
    return all(0 < v < upper for v in value) and all(b > a for a, b in pairwise(value))
