"""The contract's shared helpers: the one QLIKE definition and the feature selection of models."""

from __future__ import annotations

import numpy as np
import pytest

from models.base import VAR_FLOOR, ModelError, qlike_loss, select_features


def test_qlike_loss_matches_a_loop_and_floors_both_sides() -> None:
    rng = np.random.default_rng(0)
    rv, var = rng.exponential(1e-4, 50), rng.exponential(1e-4, 50)
    rv[3], var[7] = 0.0, 0.0
    expected = []
    for y, f in zip(rv, var, strict=True):
        y, f = max(y, VAR_FLOOR), max(f, VAR_FLOOR)
        expected.append(y / f - np.log(y / f) - 1.0)
    np.testing.assert_allclose(qlike_loss(rv, var), expected, rtol=1e-12)
    assert qlike_loss([2e-4], [2e-4])[0] == 0.0


COLUMNS = ["rv_60", "rv_1440", "bv_60", "imbalance_60", "imbalance_chg_60", "chain_atm_iv_7d", "iv", "hour_sin"]


def test_select_features_by_names_globs_and_exclusions_in_table_order() -> None:
    assert select_features(COLUMNS, None, "m") == COLUMNS
    assert select_features(COLUMNS, ["iv", "rv_*"], "m") == ["rv_60", "rv_1440", "iv"]
    servable = select_features(COLUMNS, ["*", "!imbalance_*", "!chain_*"], "m")
    assert servable == ["rv_60", "rv_1440", "bv_60", "iv", "hour_sin"]


@pytest.mark.parametrize(
    ("patterns", "match"),
    [(["vpin_*"], r"\['vpin_\*'\] match no column"), (["rv_*", "!rv_*"], "leave no column"), ("rv_60", "a list")],
)
def test_select_features_refuses_what_selects_nothing(patterns, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        select_features(COLUMNS, patterns, "lgbm")
