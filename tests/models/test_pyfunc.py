"""The registered pyfunc (models.pyfunc): raw recent bars in, the same forecast as the batch model out.

The market is simulated without trades and option chain (a request carries bars and an IV only); MLflow writes to
a temporary SQLite store, and the served model is loaded in a fresh Python process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest

from features.pipeline import FeatureSpec
from forecaster.errors import DataValidationError, UsageError
from models.base import FORECAST_COLUMNS, FloatArray, Forecaster, IntArray, ModelData
from models.calibration import ConformalCalibrator
from models.oracle import Oracle
from models.pyfunc import build_bundle, min_rows_needed, request_frame
from training.tracking import register_best, setup_tracking

HORIZONS = (30, 60)
SPEC = FeatureSpec(
    groups=("realized", "implied", "volume", "calendar"), windows=(30, 60, 240), params={"iv_percentile_days": 1}
)
NUMERIC = [c for c in FORECAST_COLUMNS if c not in ("timestamp", "horizon", "model")]


class RvIvBlend(Forecaster):
    """Test model: var_h = c_h · (rv_60 · h/60 + iv² · h · bar_years) / 2, c_h fitted on the training means.
    Reads a feature column and the IV at the origin only."""

    family = "rv_iv_blend"
    history_bars = 0

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.scale_ = {
            h: float(np.nanmean(data.target(h)[rows]) / np.mean(self._base(data, rows, h))) for h in self.horizons_
        }

    def _base(self, data: ModelData, rows: IntArray, h: int) -> FloatArray:
        return 0.5 * data.column("rv_60")[rows] * h / 60 + 0.5 * data.iv[rows] ** 2 * h * data.bar_years

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        return {h: self.scale_[h] * self._base(data, rows, h) for h in self.horizons_}


@pytest.fixture(scope="module")
def served():
    """4 simulated days (bars + IV index): the fitted model, its split-conformal calibrator, the bundle."""
    from forecaster.market.simulator import SimConfig
    from training.data import model_data, simulated_market

    market, truth = simulated_market(SimConfig(days=4, seed=3), with_chain=False, with_trades=False)
    data = model_data(market, SPEC, HORIZONS, truth=truth)
    n = len(data)
    model = RvIvBlend(name="blend").fit(data, np.arange(1440, 4000, 5))
    calib_rows = np.arange(4100, n - max(HORIZONS), 5)
    calib = model.predict(data, calib_rows)
    calib["realized"] = [data.target(h)[i] for h, i in zip(calib["horizon"], np.tile(calib_rows, 2), strict=True)]
    calibrator = ConformalCalibrator(alpha=0.1).fit(calib)
    bundle = build_bundle(
        model, SPEC, calibrator, market=market, feature_columns=data.features.columns, name="blend", data=data
    )
    raw = model.predict(data, [n - 1])
    expected = calibrator.apply(raw.assign(realized=np.nan))[list(FORECAST_COLUMNS)]
    return {"market": market, "data": data, "model": model, "bundle": bundle, "raw": raw, "expected": expected}


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(FORECAST_COLUMNS)
    assert list(got["horizon"]) == list(HORIZONS) and set(got["model"]) == {"blend"}
    assert (pd.to_datetime(got["timestamp"], utc=True) == pd.to_datetime(want["timestamp"], utc=True)).all()
    np.testing.assert_allclose(got[NUMERIC].to_numpy(float), want[NUMERIC].to_numpy(float), rtol=1e-9, atol=0)


def test_min_rows_and_example(served):
    config = served["bundle"].config
    # iv_pct_1 warms up 1,440 one-minute bars; the 240-bar window anchors on hours (60 bars); 2 lag rows; no history
    assert (config["warmup_rows"], config["anchor_rows"], config["history_bars"]) == (1440, 60, 0)
    assert config["min_rows"] == min_rows_needed(1440, 60, 0) == 1502
    assert config["needs_iv"] is True and config["horizons"] == list(HORIZONS)
    assert len(served["bundle"].example) == 1502 and list(served["bundle"].example.columns)[-1] == "iv"


def test_no_input_example_when_a_valid_request_is_too_long(served, monkeypatch, tmp_path):
    """A shorter example would fail MLflow's check of it: none is logged, the signature still states the columns."""
    import models.pyfunc as pyfunc

    monkeypatch.setattr(pyfunc, "EXAMPLE_MAX_ROWS", 1501)
    bundle = build_bundle(
        served["model"],
        SPEC,
        None,
        market=served["market"],
        feature_columns=served["data"].features.columns,
        name="blend",
    )
    assert bundle.example is None and bundle.config["min_rows"] == 1502
    assert bundle.log_model_kwargs(tmp_path)["input_example"] is None
    names = [c.name for c in bundle.signature().inputs.inputs]
    assert names[0] == "timestamp" and names[-1] == "iv"


def test_forecast_from_recent_bars_equals_batch(served):
    bundle, market = served["bundle"], served["market"]
    loaded = bundle.loaded()
    # the shortest request, and a longer one (extra history is not read), give the batch forecast
    for rows in (bundle.config["min_rows"], 2600):
        _same(loaded.forecast(request_frame(market, rows)), served["expected"])
    # bars labelled by their open (ccxt): the request's timestamps are one bar earlier, the forecast the same
    data = served["data"]
    opened = build_bundle(
        served["model"], SPEC, bundle.calibrator, market=market, feature_columns=data.features.columns, name="blend",
        bar_label="open", iv_units="pct",
    )  # fmt: skip
    request = request_frame(market, opened.config["min_rows"], bar_label="open", iv_units="pct")
    assert pd.Timestamp(request["timestamp"].iloc[-1]) == market.index[-1] - market.freq
    assert request["iv"].median() > 10  # percent
    _same(opened.loaded().forecast(request), served["expected"])
    # calibration moved the interval (the raw and calibrated q95 differ)
    assert not np.allclose(served["raw"]["q95"], served["expected"]["q95"])


def test_a_model_reading_one_group_computes_only_that_group_and_forecasts_the_same(served, monkeypatch):
    """The bundle's spec has four groups; a model that reads only ``rv_60`` gets its features from the realized
    group alone (the others are never computed) and the same forecast as batch."""
    import features.pipeline as pipeline

    market, data = served["market"], served["data"]
    narrow = build_bundle(
        served["model"], SPEC, served["bundle"].calibrator, market=market, feature_columns=["rv_60"], name="blend"
    )
    built = []
    real = pipeline.build_features

    def spy(window, spec, **kwargs):
        built.append(spec.groups)
        return real(window, spec, **kwargs)

    monkeypatch.setattr("models.pyfunc.build_features", spy)
    _same(narrow.loaded().forecast(request_frame(market, narrow.config["min_rows"])), served["expected"])
    assert built == [("realized",)] and len(data.features.columns) > 20


def test_request_errors_name_the_fix(served):
    bundle, market = served["bundle"], served["market"]
    loaded = bundle.loaded()
    need = bundle.config["min_rows"]
    with pytest.raises(UsageError, match=f"needs at least min_rows = {need} recent bars"):
        loaded.forecast(request_frame(market, need - 1))
    with pytest.raises(UsageError, match=r"lacks the columns \['iv'\]"):
        loaded.forecast(request_frame(market, need).drop(columns="iv"))
    bad = request_frame(market, need)
    bad.loc[need - 5, "high"] = bad.loc[need - 5, "low"] * 0.5
    with pytest.raises(DataValidationError, match=f"<model input>, row {need - 4}, column 'high'"):
        loaded.forecast(bad)
    late = request_frame(market, need)
    late.loc[: need - 10, "iv"] = np.nan  # IV known only at the last 10 bars: the IV features are not defined
    with pytest.raises(UsageError, match="not defined"):
        loaded.forecast(late)


def test_bundle_refuses_what_a_request_cannot_serve(served):
    data, market = served["data"], served["market"]
    oracle = Oracle(name="oracle", horizons=[60]).fit(data, np.arange(1440, 4000, 5))
    with pytest.raises(UsageError, match="latent state"):
        build_bundle(oracle, SPEC, market=market, feature_columns=data.features.columns)
    columns = [*data.features.columns, "ofi_60"]
    with pytest.raises(UsageError, match="cannot carry"):
        build_bundle(served["model"], SPEC, market=market, feature_columns=columns)

    class AllColumns(RvIvBlend):  # reads every column it is given (as LightGBM with features=None does)
        family = "all_columns"

        def _base(self, data: ModelData, rows: IntArray, h: int) -> FloatArray:
            width = data.features.shape[1]
            return super()._base(data, rows, h) * (1 + width / 1000)

    wide = AllColumns().fit(data, np.arange(1440, 4000, 5))
    fewer = [c for c in data.features.columns if c != "dow_cos"]
    build_bundle(wide, SPEC, market=market, feature_columns=data.features.columns, data=data)  # all columns: fine
    with pytest.raises(UsageError, match="does not reproduce the batch forecast"):
        build_bundle(wide, SPEC, market=market, feature_columns=fewer, data=data)
    with pytest.raises(UsageError, match="fails with"):  # the model reads rv_60, left out of feature_columns
        build_bundle(wide, SPEC, market=market, feature_columns=[c for c in fewer if c != "rv_60"], data=data)

    class Recursive(RvIvBlend):  # an infinite-memory recursion (EWMA-like) that does not state its history
        family = "recursive"
        history_bars = None

    recursive = Recursive().fit(data, np.arange(1440, 4000, 5))
    with pytest.raises(UsageError, match="history_bars"):
        build_bundle(recursive, SPEC, market=market, feature_columns=data.features.columns)


def test_registered_model_serves_in_a_fresh_process(served, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    # the test model's class lives in this test module, which a fresh process cannot import: pickle it by value
    cloudpickle.register_pickle_by_value(sys.modules[RvIvBlend.__module__])
    try:
        experiment = setup_tracking("pyfunc_test")
        with mlflow.start_run(experiment_id=experiment, run_name="train pyfunc_test") as parent:
            mlflow.set_tags({"run_type": "command", "data_fingerprint": "fp"})
            with mlflow.start_run(experiment_id=experiment, run_name="blend", nested=True):
                mlflow.set_tags({"run_type": "model", "model_name": "blend"})
        version = register_best(
            run_id=parent.info.run_id, spec_name="pyfunc_test", model_name="blend", bundle=served["bundle"]
        )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[RvIvBlend.__module__])
    assert version == 1
    info = mlflow.models.get_model_info("models:/drift-forecaster-pyfunc_test@champion")
    assert [c.name for c in info.signature.inputs.inputs] == [
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "iv",
    ]
    assert [c.name for c in info.signature.outputs.inputs] == list(FORECAST_COLUMNS)

    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/drift-forecaster-pyfunc_test/1")).read_text()
    assert "mlflow==" in requirements and "cloudpickle==" in requirements and "+" not in requirements

    need = served["bundle"].config["min_rows"]
    request = request_frame(served["market"], need + 100)
    request["timestamp"] = pd.to_datetime(request["timestamp"]).astype("int64") // 10**6  # epoch milliseconds
    request.to_parquet(tmp_path / "request.parquet")
    script = textwrap.dedent(
        f"""
        import json, mlflow, pandas as pd
        model = mlflow.pyfunc.load_model("models:/drift-forecaster-pyfunc_test@champion")
        request = pd.read_parquet("request.parquet")
        model.predict(request).to_parquet("forecast.parquet")
        try:
            model.predict(request.tail({need - 1}).reset_index(drop=True))
            message = "no error"
        except Exception as exc:
            message = str(exc)
        open("short.json", "w").write(json.dumps(message))
        """
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _same(pd.read_parquet(tmp_path / "forecast.parquet"), served["expected"])
    message = json.loads((tmp_path / "short.json").read_text())
    assert f"min_rows = {need}" in message and f"holds {need - 1} bars" in message
