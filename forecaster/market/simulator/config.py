"""Simulator settings: dataclasses with the defaults of DESIGN section 4, read from the ``simulator`` section.

Every value is overridable from ``experiments/sim_intraday.yaml``; unknown keys and out-of-range values raise
:class:`~forecaster.errors.ConfigError` naming the key, what is allowed and what was received.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forecaster.config import dataclass_from_mapping
from forecaster.errors import ConfigError

REGIMES: tuple[str, ...] = ("calm", "normal", "stressed")


@dataclass(frozen=True)
class RegimeConfig:
    """Latent regimes: a Markov chain on (regime, destination, build-up phase).

    Each stay in a regime passes through ``phases`` latent build-up phases of geometric length, so its duration
    has mean ``mean_duration_hours`` and coefficient of variation ``1/sqrt(phases)``: the hazard of leaving rises
    as the build-up advances. Where a stay ends is drawn at entry from ``transitions``.
    """

    ann_vol: tuple[float, ...] = (0.35, 0.60, 1.20)
    mean_duration_hours: tuple[float, ...] = (120.0, 72.0, 12.0)
    phases: int = 8
    # transitions[i][j]: probability that a stay in regime i ends in regime j (rows sum to 1, zero diagonal).
    transitions: tuple[tuple[float, ...], ...] = (
        (0.0, 0.6, 0.4),
        (0.3, 0.0, 0.7),
        (0.3, 0.7, 0.0),
    )


@dataclass(frozen=True)
class LogVarConfig:
    """Mean-reverting log-variance (AR(1) at the bar frequency), independent of the regime chain."""

    half_life_minutes: float = 120.0
    stationary_stdev: float = 0.8  # sd of log variance: 1-hour vol moves by a factor exp(±0.4) ≈ ±50%
    leverage: float = -0.4  # corr(return shock, log-variance shock)
    student_t_dof: float = 5.0  # Student-t return shocks, scaled to unit variance


@dataclass(frozen=True)
class JumpConfig:
    """Compound-Poisson jumps in the log price, by regime; sizes normal with the given mean and stdev."""

    per_day: tuple[float, ...] = (0.5, 1.5, 6.0)
    mean: tuple[float, ...] = (-0.0015, -0.003, -0.006)
    stdev: tuple[float, ...] = (0.003, 0.006, 0.012)


@dataclass(frozen=True)
class SeasonalityConfig:
    """Intraday variance multiplier (mean 1 over a day): a peak at the expiry hour plus a diurnal wave."""

    peak_hour_utc: float = 8.0
    peak_amplitude: float = 1.0
    peak_width_hours: float = 1.0
    diurnal_amplitude: float = 0.25
    diurnal_peak_hour_utc: float = 15.0


@dataclass(frozen=True)
class FlowConfig:
    """Trades: a Cox process whose intensity and sign imbalance carry the latent stress build-up."""

    trades_per_minute: tuple[float, ...] = (25.0, 55.0, 140.0)
    lead_regime: str = "stressed"
    # At full build-up before a switch into lead_regime, intensity is multiplied by exp(stress_intensity_gain)
    # and the buy-minus-sell share shifts by -stress_sell_imbalance.
    stress_intensity_gain: float = 0.6
    stress_sell_imbalance: float = 0.09
    intensity_noise_stdev: float = 0.35
    intensity_noise_half_life_minutes: float = 240.0
    imbalance_noise_stdev: float = 0.12
    imbalance_noise_half_life_minutes: float = 60.0
    return_imbalance: float = 0.1  # contemporaneous link between return shock and signed flow
    vol_intensity_elasticity: float = 0.5  # intensity ∝ (variance / its mean) ** elasticity
    size_median: float = 0.05  # coins per trade
    size_log_stdev: float = 1.2
    latency_ms: float = 5.0  # mean local_timestamp - timestamp


@dataclass(frozen=True)
class ImpliedVolConfig:
    """Implied vol: expected integrated variance under the model, times a variance risk premium, plus noise."""

    variance_risk_premium: tuple[float, ...] = (0.12, 0.18, 0.30)  # relative, on variance
    noise_stdev: float = 0.03  # log-IV noise
    noise_half_life_minutes: float = 1440.0
    skew: tuple[float, ...] = (-0.04, -0.06, -0.12)  # d(IV/ATM)/dz, z = log-moneyness / (ATM vol sqrt(T))
    curvature: float = 0.02
    index_tenor_days: float = 30.0


@dataclass(frozen=True)
class ChainConfig:
    """Option chain snapshots in Tardis ``options_chain`` columns (Deribit-like: premiums in coin)."""

    snapshot_every_minutes: int = 60
    expiry_hour_utc: int = 8
    daily_expiries: int = 2
    weekly_expiries: int = 2
    monthly_expiries: int = 2
    quarterly_expiries: int = 2
    strikes_per_side: int = 5
    spread_iv_points: float = 1.0  # full bid-ask spread in vol points at the money, widening in the wings
    price_tick: float = 0.0001  # coin


@dataclass(frozen=True)
class SimConfig:
    """All simulator settings. ``freq`` is the bar length; the simulator supports whole minutes."""

    seed: int = 7
    days: float = 30.0
    start: str = "2026-01-01T00:00:00Z"
    freq: str = "1min"
    spot0: float = 60000.0
    base: str = "BTC"
    exchange: str = "sim"
    horizons: tuple[int, ...] = (60, 240, 1440)
    regimes: RegimeConfig = field(default_factory=RegimeConfig)
    logvar: LogVarConfig = field(default_factory=LogVarConfig)
    jumps: JumpConfig = field(default_factory=JumpConfig)
    seasonality: SeasonalityConfig = field(default_factory=SeasonalityConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    implied_vol: ImpliedVolConfig = field(default_factory=ImpliedVolConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)

    @property
    def bar_minutes(self) -> int:
        return bar_minutes(self.freq)

    @property
    def n_bars(self) -> int:
        return round(self.days * 1440 / self.bar_minutes)

    @property
    def start_ts(self) -> pd.Timestamp:
        ts = pd.Timestamp(self.start)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bar_minutes(freq: str, where: str = "<defaults>") -> int:
    """Bar length in whole minutes from a pandas frequency string (``1min``, ``5min``, ``1h``)."""
    try:
        delta = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError) as exc:
        raise ConfigError(where, "simulator.freq", f"must be a frequency like '1min' or '5min', got {freq!r}") from exc
    minutes = delta / pd.Timedelta(minutes=1)
    if minutes < 1 or minutes != int(minutes) or 1440 % int(minutes):
        message = f"must be a whole number of minutes dividing a day (1min, 5min, 1h), got {freq!r}"
        raise ConfigError(where, "simulator.freq", message)
    return int(minutes)


def sim_config_from_mapping(values: Mapping[str, Any] | None, where: str = "<defaults>") -> SimConfig:
    """Build and validate a :class:`SimConfig` from a ``simulator`` mapping (missing keys: defaults)."""
    config = dataclass_from_mapping(SimConfig, dict(values or {}), where, "simulator")
    check_sim_config(config, where)
    return config


# Settings the simulator shares with the rest of the spec: (simulator key, where the spec states it).
SHARED_KEYS = (("freq", ("data", "freq")), ("horizons", ("horizons",)))


def sim_config_from_spec(spec: Mapping[str, Any], where: str = "<defaults>") -> SimConfig:
    """The simulator settings of a whole experiment spec.

    The bar length and the horizons are stated once for the whole spec (``data.freq``, ``horizons``) and the
    simulator takes them from there; stating them again under ``simulator`` is an error, so they cannot disagree.
    """
    section = spec.get("simulator") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(where, "simulator", f"must be a mapping, got {section!r}")
    values = dict(section)
    for key, path in SHARED_KEYS:
        node: Any = spec
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            continue
        if key in values:
            raise ConfigError(
                where, f"simulator.{key}", f"is set by {'.'.join(path)} for the whole spec; remove it here"
            )
        values[key] = node
    return sim_config_from_mapping(values, where)


def check_sim_config(c: SimConfig, where: str = "<defaults>") -> None:
    """One validator for every rule; each message names the key, what is allowed and what was received."""
    n = len(REGIMES)

    def fail(key: str, message: str) -> None:
        raise ConfigError(where, f"simulator.{key}", message)

    if c.days <= 0:
        fail("days", f"must be > 0, got {c.days}")
    if c.spot0 <= 0:
        fail("spot0", f"must be > 0, got {c.spot0}")
    try:
        pd.Timestamp(c.start)
    except ValueError:
        fail("start", f"must be an ISO date-time such as 2026-01-01T00:00:00Z, got {c.start!r}")
    bar_minutes(c.freq, where)
    per_regime = {
        "regimes.ann_vol": c.regimes.ann_vol,
        "regimes.mean_duration_hours": c.regimes.mean_duration_hours,
        "jumps.per_day": c.jumps.per_day,
        "jumps.mean": c.jumps.mean,
        "jumps.stdev": c.jumps.stdev,
        "flow.trades_per_minute": c.flow.trades_per_minute,
        "implied_vol.variance_risk_premium": c.implied_vol.variance_risk_premium,
        "implied_vol.skew": c.implied_vol.skew,
    }
    for key, values in per_regime.items():
        if len(values) != n:
            fail(key, f"needs one value per regime {list(REGIMES)}, got {len(values)}: {list(values)}")
    for key in ("regimes.ann_vol", "regimes.mean_duration_hours", "flow.trades_per_minute"):
        if min(per_regime[key]) <= 0:
            fail(key, f"must be > 0 for every regime, got {list(per_regime[key])}")
    if min(c.jumps.per_day) < 0 or min(c.jumps.stdev) < 0:
        fail("jumps", "per_day and stdev must be >= 0")
    if c.regimes.phases < 1:
        fail("regimes.phases", f"must be >= 1, got {c.regimes.phases}")
    shortest = min(c.regimes.mean_duration_hours) * 60 / c.bar_minutes
    if c.regimes.phases > shortest:
        fail(
            "regimes.phases",
            f"must be <= the shortest mean duration in bars ({shortest:.0f}), got {c.regimes.phases}",
        )
    t = c.regimes.transitions
    if len(t) != n or any(len(row) != n for row in t):
        fail("regimes.transitions", f"must be a {n}x{n} matrix (rows: from {list(REGIMES)}), got {t}")
    for i, row in enumerate(t):
        if row[i] != 0 or min(row) < 0 or abs(sum(row) - 1) > 1e-9:
            fail(
                f"regimes.transitions[{i}]",
                f"row of {REGIMES[i]!r} must be >= 0, 0 on the diagonal and sum to 1, got {list(row)}",
            )
    if not -1 < c.logvar.leverage < 1:
        fail("logvar.leverage", f"must be in (-1, 1), got {c.logvar.leverage}")
    if c.logvar.student_t_dof <= 2:
        fail("logvar.student_t_dof", f"must be > 2 (finite variance), got {c.logvar.student_t_dof}")
    if c.logvar.half_life_minutes <= 0 or c.logvar.stationary_stdev < 0:
        fail("logvar", "half_life_minutes must be > 0 and stationary_stdev >= 0")
    if c.flow.lead_regime not in REGIMES:
        fail("flow.lead_regime", f"must be one of {list(REGIMES)}, got {c.flow.lead_regime!r}")
    if sorted(set(c.horizons)) != list(c.horizons) or min(c.horizons) < 1:
        fail("horizons", f"must be increasing positive bar counts, got {list(c.horizons)}")
    if c.chain.snapshot_every_minutes % c.bar_minutes:
        fail("chain.snapshot_every_minutes", f"must be a multiple of the bar length ({c.bar_minutes} min)")
    if not 0 <= c.chain.expiry_hour_utc < 24:
        fail("chain.expiry_hour_utc", f"must be in [0, 24), got {c.chain.expiry_hour_utc}")
    if c.chain.daily_expiries + c.chain.weekly_expiries + c.chain.monthly_expiries + c.chain.quarterly_expiries < 1:
        fail("chain", "needs at least one expiry (daily/weekly/monthly/quarterly_expiries)")
