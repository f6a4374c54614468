"""The forecaster contract (models/base.py, DESIGN section 5), checked on every model: add a model with one line in
:data:`MODELS`.

Each model is fitted on ``small_split``'s training origins of ``small_data`` three times: once, once more as a
clone (determinism), and once on a copy of the data whose every feature, return, IV and truth value after the
last test origin is garbage (shuffled and ×10) and whose targets after the last training origin are garbage
(causality: a forecast at t may use data ≤ t only, and predict never reads targets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from models.base import FORECAST_COLUMNS, QUANTILE_COLUMNS, REGIME_COLUMNS, Forecaster, ModelData, ModelError
from models.baselines import Ewma, Har, Persistence, qlike
from models.garch import Garch
from models.lgbm import LgbmForecaster
from models.net import NetForecaster
from models.oracle import Oracle
from models.regime import HmmRegime

MODELS: list[tuple[str, Callable[[], Forecaster]]] = [
    ("persistence", lambda: Persistence()),
    ("ewma", lambda: Ewma()),
    ("ewma-fit", lambda: Ewma(lam="fit")),
    ("har-log", lambda: Har()),
    ("har-levels", lambda: Har(log=False)),
    ("har-x", lambda: Har(exog_iv=True)),
    ("har-seasonal", lambda: Har(seasonal=True)),
    ("har-x-seasonal", lambda: Har(exog_iv=True, seasonal=True)),
    ("garch", lambda: Garch()),
    ("gjr", lambda: Garch(kind="gjr")),
    ("hmm", lambda: HmmRegime()),
    ("oracle", lambda: Oracle()),
    ("lgbm", lambda: LgbmForecaster(n_estimators=60, n_jobs=1)),
    ("lgbm-bars", lambda: LgbmForecaster(n_estimators=60, n_jobs=1, features=["*", "!imbalance_*", "!chain_*"])),
    (
        "lgbm-seasonal-lags",
        lambda: LgbmForecaster(
            n_estimators=60, n_jobs=1, seasonal=True, lags=[60, 240], lag_features=["rv_60", "gk_60"]
        ),
    ),
    ("lgbm-seasonal-none", lambda: LgbmForecaster(n_estimators=60, n_jobs=1, seasonal=True, base="none")),
    ("net", lambda: NetForecaster(max_epochs=3)),
    ("net-seasonal", lambda: NetForecaster(max_epochs=3, seasonal=True)),
]


def _garbage(data: ModelData, train: np.ndarray, test: np.ndarray, seed: int = 0) -> ModelData:
    """``data`` with everything after the last test origin shuffled and ×10, targets after training garbage."""
    rng = np.random.default_rng(seed)
    cut = int(test[-1]) + 1
    tail = rng.permutation(len(data) - cut)

    def spoil(values: np.ndarray, start: int = cut) -> np.ndarray:
        out = np.array(values, dtype=float, copy=True)
        out[start:] = 10.0 * out[start:][tail if start == cut else rng.permutation(len(out) - start)]
        return out

    features = pd.DataFrame(spoil(data.features.to_numpy(dtype=float)), data.index, data.features.columns)
    targets = pd.DataFrame(spoil(data.targets.to_numpy(dtype=float), int(train[-1]) + 1), data.index,
                           data.targets.columns)  # fmt: skip
    truth = data.truth.copy()
    numeric = truth.select_dtypes("number").columns
    truth[numeric] = spoil(truth[numeric].to_numpy(dtype=float))
    iv = None if data.iv is None else spoil(data.iv)
    return dataclasses.replace(
        data, features=features, log_return=spoil(data.log_return), targets=targets, iv=iv, truth=truth
    )


@dataclasses.dataclass
class Run:
    """One model through the contract: its factory, the fitted model, and the three prediction frames."""

    factory: Callable[[], Forecaster]
    model: Forecaster
    fit_returned: Forecaster
    out: pd.DataFrame
    again: pd.DataFrame
    spoiled: pd.DataFrame


@pytest.fixture(scope="module", params=[factory for _, factory in MODELS], ids=[name for name, _ in MODELS])
def run(request, small_data, small_split) -> Run:
    train, test = small_split
    model = request.param()
    fit_returned = model.fit(small_data, train)
    out = model.predict(small_data, test)
    again = request.param().fit(small_data, train).predict(small_data, test)
    spoiled_data = _garbage(small_data, train, test)
    spoiled = request.param().fit(spoiled_data, train).predict(spoiled_data, test)
    return Run(request.param, model, fit_returned, out, again, spoiled)


@pytest.mark.parametrize("factory", [factory for _, factory in MODELS], ids=[name for name, _ in MODELS])
def test_init_stores_parameters_only(factory, small_data, small_split):
    model = factory()
    params = model.get_params()
    assert set(vars(model)) == set(params)  # nothing but the hyper-parameters
    assert type(model)(**params).get_params() == params
    clone = model.clone()
    assert clone is not model and clone.get_params() == params
    assert not [k for k in vars(clone) if k.endswith("_")]
    with pytest.raises(ModelError, match="is not fitted: call fit"):
        model.predict(small_data, small_split[1])
    model.fit(small_data, small_split[0])
    assert not [k for k in vars(model.clone()) if k.endswith("_")]  # a clone of a fitted model is unfitted
    assert model.clone().get_params() == params


def test_fit_returns_self(run):
    assert run.fit_returned is run.model


def test_forecast_frame_has_the_contract_columns_and_values(run, small_data, small_split):
    _, test = small_split
    out = run.out
    assert tuple(out.columns) == FORECAST_COLUMNS
    assert len(out) == len(test) * len(small_data.horizons)
    assert list(out["horizon"].unique()) == list(small_data.horizons)  # horizon-major
    for h in small_data.horizons:
        assert list(out.loc[out["horizon"] == h, "timestamp"]) == list(small_data.index[test])
    assert (out["model"] == run.model.label).all()
    numbers = out[["var", *QUANTILE_COLUMNS, *REGIME_COLUMNS]].to_numpy()
    assert np.isfinite(numbers).all()
    assert (out["var"] > 0).all()
    q = out[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    p = out[list(REGIME_COLUMNS)].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_fixed_seed_gives_identical_forecasts(run):
    pd.testing.assert_frame_equal(run.out, run.again, check_exact=True)


def test_forecasts_do_not_look_ahead(run):
    pd.testing.assert_frame_equal(run.out, run.spoiled, check_exact=True)


def test_out_of_sample_qlike_is_finite(run, small_data, small_split):
    _, test = small_split
    for h in small_data.horizons:
        loss = qlike(small_data.target(h)[test], run.out.loc[run.out["horizon"] == h, "var"].to_numpy())
        assert np.isfinite(loss) and loss > 0


def test_har_beats_persistence_at_the_longer_horizon(small_data, small_split):
    train, test = small_split
    h = max(small_data.horizons)
    rv = small_data.target(h)[test]
    losses = {}
    for name, model in (("har", Har()), ("persistence", Persistence())):
        out = model.fit(small_data, train).predict(small_data, test)
        losses[name] = qlike(rv, out.loc[out["horizon"] == h, "var"].to_numpy())
    assert losses["har"] < losses["persistence"], losses
