"""The pipeline's contract: spec resolution and order, fingerprint, bar labels, input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.market import infer_freq, market_data
from features.pipeline import FeatureSpec, build_features, feature_spec_from_spec, last_row
from forecaster.errors import ConfigError, UsageError


def _bars(n: int = 600, seed: int = 0, freq: str = "1min") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-05 00:01", periods=n, freq=freq, tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0 + rng.random(n)}, index)


def test_groups_resolve_in_a_stable_order_whatever_the_spec_order() -> None:
    a = feature_spec_from_spec({"features": {"groups": ["calendar", "realized"], "windows": [5, 60]}})
    b = feature_spec_from_spec({"features": {"groups": ["realized", "calendar"], "windows": [5, 60]}})
    assert a == b and a.groups == ("realized", "calendar")
    table = build_features(market_data(_bars()), a)
    assert table.names[:2] == ["rv_5", "rv_60"] and table.names[-4:] == ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    assert table.names == build_features(market_data(_bars()), b).names


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"groups": ["realized", "gamma"]}, "features.groups"),
        ({"groups": []}, "features.groups"),
        ({"windows": [60, 5]}, "features.windows"),
        ({"windows": [0, 5]}, "features.windows"),
        ({"windows": "60"}, "features.windows"),
        ({"iv_percentile_days": 0}, "features.iv_percentile_days"),
        ({"chain_tenors_days": [30, 7]}, "features.chain_tenors_days"),
        ({"chain_tenor_days": [7]}, "features.chain_tenor_days"),
    ],
)
def test_bad_feature_sections_are_config_errors(section: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        feature_spec_from_spec({"features": section}, where="spec.yaml")


def test_fingerprint_follows_the_spec_and_every_input_value() -> None:
    spec = FeatureSpec(groups=("realized",), windows=(5,))
    bars = _bars()
    base = build_features(market_data(bars), spec).fingerprint
    assert base == build_features(market_data(bars.copy()), spec).fingerprint and len(base) == 16
    changed = bars.copy()
    changed.iloc[300, 3] *= 1.0000001
    assert build_features(market_data(changed), spec).fingerprint != base
    assert build_features(market_data(bars), FeatureSpec(groups=("realized",), windows=(6,))).fingerprint != base


def test_open_labelled_bars_move_to_their_end() -> None:
    bars = _bars(10)
    opened = bars.set_axis(bars.index - pd.Timedelta("1min"))
    data = market_data(opened, bar_label="open")
    assert data.index.equals(bars.index) and data.freq == pd.Timedelta("1min")
    with pytest.raises(UsageError, match="bar_label must be one of"):
        market_data(bars, bar_label="middle")


def test_the_bar_length_is_the_most_common_spacing() -> None:
    days = pd.bdate_range("2026-01-05", periods=30, tz="UTC")  # weekdays: 3-day gaps over weekends
    assert infer_freq(days) == pd.Timedelta(days=1)
    with pytest.raises(UsageError, match="at least 2 bars"):
        infer_freq(days[:1])


def test_unsorted_bars_and_short_serving_windows_are_refused() -> None:
    spec = FeatureSpec(groups=("realized",), windows=(5, 60))
    bars = _bars()
    with pytest.raises(UsageError, match="strictly increasing"):
        build_features(market_data(bars.iloc[::-1], freq="1min"), spec)
    with pytest.raises(UsageError, match="send more history"):
        last_row(market_data(bars.iloc[:30]), spec)
    served = last_row(market_data(bars), spec)
    assert np.array_equal(served.to_numpy(), build_features(market_data(bars), spec).frame.iloc[-1].to_numpy())
