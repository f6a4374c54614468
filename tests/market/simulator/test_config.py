"""The simulator's settings: the shipped spec states every default, and bad values get named errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forecaster.errors import ConfigError
from forecaster.market.simulator import SimConfig, sim_config_from_mapping, sim_config_from_spec

SPEC = Path(__file__).resolve().parents[3] / "experiments" / "sim_intraday.yaml"


def _as_lists(value):
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


def test_shipped_spec_states_exactly_the_defaults() -> None:
    """experiments/sim_intraday.yaml documents every setting, with the code's default values."""
    spec = yaml.safe_load(SPEC.read_text())
    stated = {**spec["simulator"], "freq": spec["data"]["freq"], "horizons": spec["horizons"]}
    assert _as_lists(stated) == _as_lists(SimConfig().to_dict())
    assert sim_config_from_spec(spec) == SimConfig()


def test_shared_settings_are_stated_once() -> None:
    spec = {"data": {"freq": "5min"}, "horizons": [12, 48], "simulator": {"days": 2}}
    config = sim_config_from_spec(spec)
    assert (config.freq, config.horizons, config.days) == ("5min", (12, 48), 2.0)
    with pytest.raises(ConfigError, match=r"simulator\.freq: is set by data\.freq for the whole spec; remove it here"):
        sim_config_from_spec({**spec, "simulator": {"freq": "1min"}}, where="x.yaml")


def test_spec_horizons_and_freq_match_design() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["horizons"] == [60, 240, 1440] and spec["data"]["freq"] == "1min"


@pytest.mark.parametrize(
    ("values", "key", "text"),
    [
        ({"dayz": 3}, "simulator.dayz", "unknown key; allowed keys: seed, days"),
        ({"days": -1}, "simulator.days", "must be > 0, got -1"),
        ({"days": "ten"}, "simulator.days", "must be a number, got 'ten'"),
        ({"freq": "7min"}, "simulator.freq", "dividing a day"),
        ({"freq": "fortnightly"}, "simulator.freq", "must be a frequency"),
        ({"regimes": {"ann_vol": [0.3, 0.5]}}, "simulator.regimes.ann_vol", "needs one value per regime"),
        ({"regimes": {"transitions": [[0, 1, 0], [0.5, 0.5, 0], [0, 1, 0]]}},
         "simulator.regimes.transitions[1]", "0 on the diagonal"),
        ({"regimes": {"phases": 0}}, "simulator.regimes.phases", "must be >= 1"),
        ({"logvar": {"leverage": -1.5}}, "simulator.logvar.leverage", "must be in (-1, 1)"),
        ({"flow": {"lead_regime": "panic"}}, "simulator.flow.lead_regime", "must be one of"),
        ({"chain": {"snapshot_every_minutes": 7}, "freq": "5min"},
         "simulator.chain.snapshot_every_minutes", "multiple"),
        ({"regimes": "calm"}, "simulator.regimes", "must be a mapping"),
    ],
)  # fmt: skip
def test_bad_settings_name_key_allowed_and_received(values, key, text) -> None:
    with pytest.raises(ConfigError) as info:
        sim_config_from_mapping(values, where="spec.yaml")
    assert info.value.key == key
    assert text in str(info.value) and "spec.yaml" in str(info.value)
