"""The ``drift:`` spec section: both specs state every key (the defaults but for the index spec's two); bad values
name the key; bar length in years."""

from __future__ import annotations

import math
import re

import pytest
import yaml

from forecaster.config import resolve_spec_path
from forecaster.drift.config import DriftConfig, bar_years, drift_config_from_mapping, drift_config_from_spec
from forecaster.errors import ConfigError

# the equity-index spec sets an index's spot-vol correlation and IV-change size (S&P 500 and VIX, 2014-2018)
SPEC_CHANGES = {"sim_intraday": {}, "daily_index": {"spot_vol_corr": -0.7, "iv_change_stdev_daily": 0.013}}


@pytest.mark.parametrize("name", ["sim_intraday", "daily_index"])
def test_both_specs_state_the_code_defaults(name: str) -> None:
    from dataclasses import replace

    values = yaml.safe_load(resolve_spec_path(name).read_text())
    section = values["drift"]
    assert set(section) == {f for f in DriftConfig.__dataclass_fields__}  # every default is stated
    assert drift_config_from_spec(values, where=name) == replace(DriftConfig(), **SPEC_CHANGES[name])


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("n_scenarios", 1, "an integer ≥ 2"),
        ("n_scenarios", 2.5, "an integer ≥ 2"),
        ("sampling", "latin", "one of sobol, antithetic, random"),
        ("quantiles", [0.5, 0.25], "a list of increasing levels in (0, 1)"),
        ("quantiles", [0.0, 0.5], "a list of increasing levels in (0, 1)"),
        ("spot_vol_corr", -1.5, "a number in [-1, 1]"),
        ("vol_floor", 0, "a number > 0"),
        ("iv_change_stdev_daily", -0.01, "a number ≥ 0 (decimal vol per day)"),
        ("bucket_days", [7, 1], "a list of increasing day counts > 0"),
        ("seed", True, "an integer ≥ 0"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"drift\.{key}: must be {re.escape(allowed)}"):
        drift_config_from_mapping({key: value}, where="spec.yaml")


def test_unknown_keys_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"drift\.scenarios.*allowed: bucket_days, iv_change_stdev_daily"):
        drift_config_from_mapping({"scenarios": 100})


def test_iv_change_stdev_scales_with_the_square_root_of_time() -> None:
    config = DriftConfig(iv_change_stdev_daily=0.03)
    assert config.iv_change_stdev(4 / 365) == pytest.approx(0.06, rel=1e-12)


def test_bar_years_follow_freq_and_annualization() -> None:
    assert bar_years({"data": {"freq": "1min", "annualization_days": 365}}) == pytest.approx(1 / 525_600)
    assert bar_years({"data": {"freq": "1D", "annualization_days": 252}}) == pytest.approx(1 / 252)
    with pytest.raises(ConfigError, match=r"data\.freq"):
        bar_years({"data": {"freq": "soon"}})
    with pytest.raises(ConfigError, match=r"data\.annualization_days"):
        bar_years({"data": {"freq": "1D", "annualization_days": 0}})
    assert math.isclose(bar_years({}), 1 / 525_600)  # defaults: 1-minute bars, 365 days
