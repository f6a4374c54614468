"""Margin settings: frozen dataclasses with the documented defaults, read from a spec's ``margin`` section.

Two models share one section: ``model`` picks which one computes the requirement.

- ``risk_matrix`` (:class:`RiskMatrixConfig`): crypto-exchange portfolio margin, Deribit-style. Price moves of
  ±16% in 4% steps, each with implied vol shocked up by ``+50% × (30/DTE)^0.3`` (relative), unchanged, and down
  by ``−25% × (30/DTE)^0.3``; extended moves −66%, −33%, +50%, +100% with vol up whose loss counts at
  ``16% / |move|``. Initial = worst weighted loss (≥ 0) + 1% of spot per unit of underlying sold in options;
  maintenance = 80% of initial.
- ``span`` (:class:`SpanConfig`): CME SPAN's 16 scenarios. Price unchanged, ±1/3, ±2/3, ±1 of a 15% price
  scan range, each with vol ±15 vol points; two extreme moves of ±3 scan ranges (vol unchanged) whose loss
  counts at 35%. Maintenance = max(scan risk, short-option minimum of 1% of spot per unit sold); initial =
  110% of maintenance (CME's ratio for most accounts).

Every value is stated in ``experiments/*.yaml``; unknown keys and out-of-range values raise
:class:`~forecaster.errors.ConfigError` naming the key, what is allowed and what was received.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forecaster.config import Spec, dataclass_from_mapping
from forecaster.errors import ConfigError

MODELS: tuple[str, ...] = ("risk_matrix", "span")


@dataclass(frozen=True)
class RiskMatrixConfig:
    """Deribit-style risk matrix: price × vol shock grid plus weighted extended moves.

    Price moves are simple returns of the underlying (``S → S (1 + move)``). Vol shocks are relative and scale
    with days to expiry: ``σ (1 + vol_up (vol_reference_days / DTE)^vol_dte_power)`` up and
    ``σ (1 − vol_down (…)^…)`` down, with DTE floored at ``min_dte_days`` so the shock stays finite near expiry
    and the shocked vol floored at ``min_vol`` (never above the unshocked vol).
    """

    price_moves: tuple[float, ...] = (-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16)
    vol_up: float = 0.5
    vol_down: float = 0.25
    vol_reference_days: float = 30.0
    vol_dte_power: float = 0.3
    min_dte_days: float = 1.0
    min_vol: float = 0.01
    extended_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0)
    extended_weight_move: float = 0.16  # an extended move's loss counts at extended_weight_move / |move|
    short_option_contingency: float = 0.01  # fraction of spot per unit of underlying sold in options, added
    maintenance_ratio: float = 0.8  # maintenance = ratio × initial


@dataclass(frozen=True)
class SpanConfig:
    """CME SPAN-style 16 scenarios with crypto-sized scan ranges.

    ``price_scan_range`` is a simple return; ``vol_scan_range`` is absolute (0.15 = 15 vol points), applied up
    and down with the shocked vol floored at ``min_vol`` (never above the unshocked vol).
    """

    price_scan_range: float = 0.15
    vol_scan_range: float = 0.15
    extreme_multiple: float = 3.0  # extreme moves: ± this many scan ranges, vol unchanged
    extreme_weight: float = 0.35  # share of an extreme move's loss that counts
    short_option_minimum: float = 0.01  # floor: fraction of spot per unit of underlying sold in options
    initial_to_maintenance: float = 1.1  # initial = ratio × maintenance
    min_vol: float = 0.01


@dataclass(frozen=True)
class MarginConfig:
    """Which model computes the requirement, and the settings of each."""

    model: str = "risk_matrix"
    risk_matrix: RiskMatrixConfig = field(default_factory=RiskMatrixConfig)
    span: SpanConfig = field(default_factory=SpanConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def margin_config_from_spec(spec: Spec | Mapping[str, Any], where: str = "<defaults>") -> MarginConfig:
    """The margin settings of a whole experiment spec (its ``margin`` section; missing keys: defaults).

    Parameters
    ----------
    spec
        A loaded :class:`~forecaster.config.Spec` (its path names errors) or the spec's values as a mapping.
    where
        The file named in errors when ``spec`` is a plain mapping.

    Raises
    ------
    ConfigError
        A key is unknown, a value has the wrong type or is out of range.
    """
    if isinstance(spec, Spec):
        spec, where = spec.values, spec.path
    section = spec.get("margin") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(where, "margin", f"must be a mapping of settings, got {section!r}")
    return margin_config_from_mapping(section, where)


def margin_config_from_mapping(values: Mapping[str, Any] | None, where: str = "<defaults>") -> MarginConfig:
    """Build and validate a :class:`MarginConfig` from a ``margin`` mapping (missing keys: defaults)."""
    config = dataclass_from_mapping(MarginConfig, dict(values or {}), where, "margin")
    check_margin_config(config, where)
    return config


def check_margin_config(c: MarginConfig, where: str = "<defaults>") -> None:
    """One validator for every rule; each message names the key, what is allowed and what was received."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(where, f"margin.{key}", message)

    if c.model not in MODELS:
        fail("model", f"must be one of {', '.join(MODELS)}; got {c.model!r}")
    rm, span = c.risk_matrix, c.span
    if not rm.price_moves:
        fail("risk_matrix.price_moves", "needs at least one price move, e.g. [-0.16, ..., 0.16]")
    for key, moves in (("price_moves", rm.price_moves), ("extended_moves", rm.extended_moves)):
        if min(moves, default=0.0) <= -1 or len(set(moves)) != len(moves):
            fail(f"risk_matrix.{key}", f"must be distinct simple returns > -1 (a price stays > 0), got {list(moves)}")
    if 0.0 in rm.extended_moves:
        fail("risk_matrix.extended_moves", f"must be non-zero (the weight divides by |move|), got {rm.extended_moves}")
    _at_least(fail, "risk_matrix", rm, ("vol_up", "vol_down", "vol_dte_power", "short_option_contingency"), 0.0)
    _above(fail, "risk_matrix", rm, ("vol_reference_days", "min_dte_days", "min_vol", "extended_weight_move"))
    if not 0 < rm.maintenance_ratio <= 1:
        fail("risk_matrix.maintenance_ratio", f"must be in (0, 1], got {rm.maintenance_ratio}")
    _above(fail, "span", span, ("price_scan_range", "extreme_multiple", "min_vol"))
    _at_least(fail, "span", span, ("vol_scan_range", "short_option_minimum"), 0.0)
    if span.price_scan_range * max(span.extreme_multiple, 1.0) >= 1:
        fail(
            "span.price_scan_range",
            f"times extreme_multiple must stay below 1 (a price stays > 0), got {span.price_scan_range} × "
            f"{span.extreme_multiple}; lower either",
        )
    if not 0 <= span.extreme_weight <= 1:
        fail("span.extreme_weight", f"must be in [0, 1], got {span.extreme_weight}")
    if span.initial_to_maintenance < 1:
        fail("span.initial_to_maintenance", f"must be >= 1 (initial is never below maintenance), got "
             f"{span.initial_to_maintenance}")  # fmt: skip


def _above(fail, prefix: str, config: Any, names: tuple[str, ...], bound: float = 0.0) -> None:
    for name in names:
        if not getattr(config, name) > bound:
            fail(f"{prefix}.{name}", f"must be > {bound:g}, got {getattr(config, name)}")


def _at_least(fail, prefix: str, config: Any, names: tuple[str, ...], bound: float) -> None:
    for name in names:
        if not getattr(config, name) >= bound:
            fail(f"{prefix}.{name}", f"must be >= {bound:g}, got {getattr(config, name)}")
