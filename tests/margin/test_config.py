"""Margin settings: the shipped specs state every default, and bad values get named errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from forecaster.config import load_spec
from forecaster.errors import ConfigError
from forecaster.margin import (
    MarginConfig,
    RiskMatrixConfig,
    SpanConfig,
    margin_config_from_mapping,
    margin_config_from_spec,
)

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _as_lists(value):
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


@pytest.mark.parametrize("name", ["sim_intraday", "daily_index"])
def test_shipped_specs_state_exactly_the_defaults(name: str) -> None:
    spec = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    assert _as_lists(spec["margin"]) == _as_lists(MarginConfig().to_dict())
    assert margin_config_from_spec(spec) == MarginConfig()
    assert margin_config_from_spec(load_spec(EXPERIMENTS / f"{name}.yaml")) == MarginConfig()


def test_documented_defaults() -> None:
    rm, span = RiskMatrixConfig(), SpanConfig()
    assert rm.price_moves == tuple(round(0.04 * i, 2) for i in range(-4, 5))
    assert (rm.vol_up, rm.vol_down, rm.vol_reference_days, rm.vol_dte_power) == (0.5, 0.25, 30.0, 0.3)
    assert rm.extended_moves == (-0.66, -0.33, 0.5, 1.0) and rm.extended_weight_move == 0.16
    assert (rm.short_option_contingency, rm.maintenance_ratio, rm.min_dte_days) == (0.01, 0.8, 1.0)
    assert (span.extreme_multiple, span.extreme_weight, span.initial_to_maintenance) == (3.0, 0.35, 1.1)


def test_missing_section_gives_defaults_and_partial_sections_override() -> None:
    assert margin_config_from_spec({"name": "x"}) == MarginConfig()
    config = margin_config_from_spec({"margin": {"model": "span", "span": {"price_scan_range": 0.2}}})
    assert config.model == "span" and config.span.price_scan_range == 0.2
    assert config.span == dataclasses.replace(SpanConfig(), price_scan_range=0.2)
    assert config.risk_matrix == RiskMatrixConfig()


@pytest.mark.parametrize(
    ("values", "key", "text"),
    [
        ({"model": "var"}, "margin.model", "must be one of risk_matrix, span; got 'var'"),
        ({"modle": "span"}, "margin.modle", "unknown key; allowed keys: model, risk_matrix, span"),
        ({"risk_matrix": {"vol_upp": 1}}, "margin.risk_matrix.vol_upp", "unknown key; allowed keys: price_moves"),
        ({"risk_matrix": {"vol_up": "high"}}, "margin.risk_matrix.vol_up", "must be a number, got 'high'"),
        ({"risk_matrix": {"vol_down": -0.1}}, "margin.risk_matrix.vol_down", "must be >= 0, got -0.1"),
        ({"risk_matrix": {"min_dte_days": 0}}, "margin.risk_matrix.min_dte_days", "must be > 0, got 0.0"),
        ({"risk_matrix": {"price_moves": [-1.2, 0.1]}}, "margin.risk_matrix.price_moves", "simple returns > -1"),
        ({"risk_matrix": {"price_moves": [0.1, 0.1]}}, "margin.risk_matrix.price_moves", "must be distinct"),
        ({"risk_matrix": {"price_moves": []}}, "margin.risk_matrix.price_moves", "needs at least one price move"),
        ({"risk_matrix": {"extended_moves": [0.0]}}, "margin.risk_matrix.extended_moves", "must be non-zero"),
        ({"risk_matrix": {"extended_moves": 0.5}}, "margin.risk_matrix.extended_moves", "must be a list"),
        ({"risk_matrix": {"maintenance_ratio": 1.5}}, "margin.risk_matrix.maintenance_ratio", "must be in (0, 1]"),
        ({"span": {"price_scan_range": 0.4}}, "margin.span.price_scan_range", "times extreme_multiple must stay"),
        ({"span": {"extreme_weight": 2}}, "margin.span.extreme_weight", "must be in [0, 1], got 2.0"),
        ({"span": {"initial_to_maintenance": 0.9}}, "margin.span.initial_to_maintenance", "must be >= 1"),
        ({"span": {"min_vol": True}}, "margin.span.min_vol", "must be a number, got True"),
        ({"span": [0.1]}, "margin.span", "must be a mapping"),
        ({"model": 3}, "margin.model", "must be a string, got 3"),
    ],
)
def test_bad_settings_name_key_allowed_and_received(values, key, text) -> None:
    with pytest.raises(ConfigError) as info:
        margin_config_from_mapping(values, where="spec.yaml")
    assert info.value.key == key
    assert text in str(info.value) and str(info.value).startswith("spec.yaml: ")


def test_errors_name_the_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nmargin:\n  model: portfolio\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: margin\.model: must be one of risk_matrix, span"):
        margin_config_from_spec(load_spec(path))
    with pytest.raises(ConfigError, match=r"x\.yaml: margin: must be a mapping of settings, got 'span'"):
        margin_config_from_spec({"margin": "span"}, where="x.yaml")
