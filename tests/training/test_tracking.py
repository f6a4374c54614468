"""MLflow tracking and registry (training.tracking): what a command logs where, and the registry aliases.

Every test writes to a temporary SQLite store (``MLFLOW_TRACKING_URI``) and runs in a temporary directory, so no
``mlflow.db`` or ``mlruns`` lands in the repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from forecaster.config import load_spec
from forecaster.errors import UsageError
from models.base import FloatArray, Forecaster, IntArray, ModelData
from models.oracle import Oracle
from training.tracking import (
    CHALLENGER,
    CHAMPION,
    PARAM_VALUE_LIMIT,
    TRUNCATED,
    best_model_name,
    flatten_spec,
    log_evaluation,
    register_best,
    registered_model_name,
    sqlite_path,
    tracking_uri,
)

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ScaledRv(Forecaster):
    """Test model: var_h = c_h · rv_60 · h/60, c_h the ratio of the training means."""

    family = "scaled_rv"

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        base = data.column("rv_60")[rows]
        self.scale_ = {h: float(np.nanmean(data.target(h)[rows]) / np.mean(base * h / 60)) for h in self.horizons_}

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        base = data.column("rv_60")[rows]
        return {h: self.scale_[h] * base * h / 60 for h in self.horizons_}

    def feature_importance(self) -> pd.DataFrame:
        return pd.DataFrame({"feature": "rv_60", "horizon": list(self.horizons_), "gain": 1.0})


class FakeCalibrator:
    """Stands in for ConformalCalibrator: only ``to_dict`` is read when logging."""

    def to_dict(self) -> dict:
        return {"format": "test", "outer": 0.1}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store in tmp_path (also the working directory); MLflow's global URI restored after."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    return tmp_path


@pytest.fixture(scope="module")
def evaluated(small_data, small_split):
    """Two fitted models, their test predictions (realized, realized_class, two folds) and a hand-made evaluation."""
    data = small_data
    train, test = small_split
    fitted = {"oracle": Oracle(name="oracle").fit(data, train), "scaled": ScaledRv(name="scaled").fit(data, train)}
    parts = []
    for name, model in fitted.items():
        frame = model.predict(data, test)
        frame["realized"] = [data.target(h)[i] for h, i in zip(frame["horizon"], np.tile(test, 2), strict=True)]
        levels = [model.thresholds_[h] for h in frame["horizon"]]
        frame["realized_class"] = [
            float(t.classify(np.array([r]))[0]) for t, r in zip(levels, frame["realized"], strict=True)
        ]
        frame["fold"] = np.where(frame["timestamp"] < data.index[test[len(test) // 2]], 0, 1)
        parts.append(frame.assign(model=name))
    predictions = pd.concat(parts, ignore_index=True)
    per_h = {
        "qlike": 0.0,
        "mse": 1e-9,
        "mz_r2": 0.5,
        "pinball": 1e-5,
        "coverage90": 0.9,
        "width90": 1e-4,
        "coverage50": 0.5,
        "n": len(test),
    }
    evaluation = {
        "horizons": [60, 240],
        "test_start": str(data.index[test[0]]),
        "test_end": str(data.index[test[-1]]),
        "benchmark": "scaled",
        "models": {
            "oracle": {"h60": {**per_h, "qlike": 0.11}, "h240": {**per_h, "qlike": 0.12}},
            "scaled": {"h60": {**per_h, "qlike": 0.31}, "h240": {**per_h, "qlike": 0.32, "mz_r2": None}},
        },
        "dm_vs_har": {
            "oracle": {"h60": {"stat": -3.0, "p": 0.004}, "h240": {"stat": -2.5, "p": 0.02}},
            "scaled": {"h60": {"stat": 0.0, "p": 1.0}, "h240": {"stat": 0.0, "p": 1.0}},
        },
        "regime": {
            name: {f"h{h}": {"logloss": 0.8, "brier": 0.3, "auc_stressed": 0.7} for h in (60, 240)} for name in fitted
        },
        "oracle_gap": {"scaled": {"h60": 1.0, "h240": 1.0}},
        "warnings": ["scaled h240: mz_r2 is undefined, written as null"],
    }
    return {"data": data, "fitted": fitted, "predictions": predictions, "evaluation": evaluation}


def _qlike(rv: np.ndarray, f: np.ndarray) -> float:
    ratio = np.maximum(rv, 1e-12) / f
    return float(np.mean(ratio - np.log(ratio) - 1))


def test_flatten_spec_text_rule():
    long = "x" * (PARAM_VALUE_LIMIT + 50)
    flat = flatten_spec({"a": {"b": [1, 2.5], "c": True, "d": None, "e": {}, "s": "text"}, "long": long})
    assert flat["a.b"] == "[1, 2.5]"
    assert flat["a.c"] == "true" and flat["a.d"] == "null" and flat["a.e"] == "{}" and flat["a.s"] == "text"
    assert len(flat["long"]) == PARAM_VALUE_LIMIT and flat["long"].endswith(TRUNCATED)
    with pytest.raises(UsageError, match="250"):
        flatten_spec({"k" * 251: 1})


def test_best_model_name_leaves_out_the_oracle(evaluated):
    evaluation = evaluated["evaluation"]
    assert best_model_name(evaluation, fitted=evaluated["fitted"]) == "scaled"  # the oracle's QLIKE is lower
    assert best_model_name(evaluation, exclude_families=()) == "oracle"
    assert best_model_name(evaluation, metric="pinball", exclude_families=()) == "oracle"  # ties: the first
    with pytest.raises(UsageError, match="no model has a mz_r2 at every horizon"):
        best_model_name(evaluation, fitted=evaluated["fitted"], metric="mz_r2")


def test_tracking_uri_default_is_sqlite_in_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert tracking_uri() == "http://example:5000"
    assert sqlite_path("http://example:5000") is None and sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:///rel/m.db") == tmp_path / "rel" / "m.db"
    assert sqlite_path("sqlite:////abs/m.db") == Path("/abs/m.db")


def test_log_evaluation_parent_children_metrics_artifacts(store, evaluated):
    spec = load_spec("sim_intraday")
    data, predictions = evaluated["data"], evaluated["predictions"]
    fingerprint = data.info["fingerprint"]
    timings = pd.DataFrame(
        {
            "fold": [0, 1, 0, 1],
            "model": ["oracle", "oracle", "scaled", "scaled"],
            "n_train": 10,
            "n_calib": 0,
            "n_test": 5,
            "fit_seconds": [0.1, 0.2, 0.3, 0.4],
            "predict_seconds": 0.01,
        }
    )
    result = log_evaluation(
        spec=spec,
        command="train",
        evaluation=evaluated["evaluation"],
        predictions=predictions,
        fitted=evaluated["fitted"],
        calibrators={"scaled": FakeCalibrator()},
        data_fingerprint=fingerprint,
        timings=timings,
        features=data.features.iloc[:500],
    )
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    # params: the whole spec flattened; tags: fingerprint, git commit, command
    assert parent.data.params["simulator.days"] == "30"
    assert parent.data.params["horizons"] == "[60, 240, 1440]"
    assert parent.data.params["features.groups"] == json.dumps(spec.values["features"]["groups"])
    assert parent.info.run_name == "train sim_intraday"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert parent.data.tags["git_commit"] == head.stdout.strip()
    assert parent.data.tags["data_fingerprint"] == fingerprint
    assert parent.data.tags["command"] == "train"
    # files under the store's folder, never in the repository
    assert parent.info.artifact_uri.startswith((store / "mlruns").as_uri())

    experiment = mlflow.get_experiment_by_name("sim_intraday")
    children = mlflow.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert sorted(children["tags.model_name"]) == ["oracle", "scaled"]
    assert dict(zip(children["tags.model_name"], children["tags.model_family"], strict=True)) == {
        "oracle": "oracle",
        "scaled": "scaled_rv",
    }
    assert set(children["run_id"]) == set(result.children.values())
    runs = {name: client.get_run(run_id) for name, run_id in result.children.items()}
    rv_names = {
        name: {k for k in run.data.metrics if "/rv/h" in k and not k.startswith(("dm_", "oracle_gap", "fold_"))}
        for name, run in runs.items()
    }
    assert "qlike/rv/h60" in rv_names["oracle"] and "qlike/rv/h240" in rv_names["oracle"]
    assert rv_names["oracle"] - {"mz_r2/rv/h240"} == rv_names["scaled"]  # the null metric is left out
    assert runs["scaled"].data.metrics["qlike/rv/h60"] == pytest.approx(0.31)
    assert runs["oracle"].data.metrics["dm_p/rv/h60"] == pytest.approx(0.004)
    assert runs["scaled"].data.metrics["oracle_gap/rv/h240"] == pytest.approx(1.0)
    assert runs["scaled"].data.metrics["logloss/regime/h60"] == pytest.approx(0.8)
    assert runs["scaled"].data.params["name"] == "scaled"
    # per-fold QLIKE over time (step = fold), recomputed here
    history = client.get_metric_history(result.children["scaled"], "fold_qlike/rv/h60")
    assert [m.step for m in history] == [0, 1]
    rows = predictions[(predictions["model"] == "scaled") & (predictions["horizon"] == 60)]
    for m in history:
        fold = rows[rows["fold"] == m.step]
        assert m.value == pytest.approx(_qlike(fold["realized"].to_numpy(), fold["var"].to_numpy()), rel=1e-12)
    fit_steps = client.get_metric_history(result.children["scaled"], "fit_seconds")
    assert [(m.step, m.value) for m in fit_steps] == [(0, pytest.approx(0.3)), (1, pytest.approx(0.4))]

    # artifacts: the parent's
    folder = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(store / "parent")))
    assert yaml.safe_load((folder / "spec" / "spec.yaml").read_text()) == spec.values
    assert len(pd.read_parquet(folder / "predictions" / "predictions.parquet")) == len(predictions)
    assert json.loads((folder / "evaluation" / "evaluation.json").read_text()) == evaluated["evaluation"]
    assert "| scaled |" in (folder / "evaluation" / "comparison.md").read_text()
    assert (folder / "plots" / "qlike_by_horizon.png").read_bytes()[:8] == PNG_MAGIC
    # a child's
    child = Path(mlflow.artifacts.download_artifacts(run_id=result.children["scaled"], dst_path=str(store / "c")))
    child_rows = pd.read_parquet(child / "predictions" / "predictions.parquet")
    assert set(child_rows["model"]) == {"scaled"} and len(child_rows) == (predictions["model"] == "scaled").sum()
    for name in ("forecast_vs_realized_h60", "forecast_vs_realized_h240", "calibration", "regime_h60"):
        assert (child / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name
    assert list(pd.read_csv(child / "feature_importance" / "feature_importance.csv")["horizon"]) == [60, 240]
    assert json.loads((child / "calibration" / "calibration.json").read_text()) == FakeCalibrator().to_dict()
    oracle_files = {a.path for a in client.list_artifacts(result.children["oracle"])}
    assert "feature_importance" not in oracle_files and "calibration" not in oracle_files

    # dataset inputs: the predictions (content digest, fingerprint tag) and the features (fingerprint digest)
    inputs = {d.dataset.name: d for d in parent.inputs.dataset_inputs}
    assert set(inputs) == {"sim_intraday-predictions", "sim_intraday-features"}
    assert inputs["sim_intraday-features"].dataset.digest == fingerprint
    tags = {t.key: t.value for t in inputs["sim_intraday-predictions"].tags}
    assert tags["data_fingerprint"] == fingerprint
    assert json.loads(inputs["sim_intraday-predictions"].dataset.profile)["num_rows"] == len(predictions)
    assert [d.dataset.name for d in runs["scaled"].inputs.dataset_inputs] == ["sim_intraday-predictions"]


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"var": [1.0] * len(model_input)})


class _TinyBundle:
    """Stands in for models.pyfunc.Bundle: what register_best reads (config, log_model_kwargs)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.config = {"model_name": "scaled", "model_family": "scaled_rv", "min_rows": 3}

    def log_model_kwargs(self, folder) -> dict:
        if self.fail:
            raise RuntimeError("simulated failure while writing the bundle")
        return {"python_model": _Constant(), "pip_requirements": ["pandas"]}


def test_register_best_aliases(store, evaluated):
    spec = load_spec("sim_intraday")
    result = log_evaluation(
        spec=spec,
        command="train",
        evaluation=evaluated["evaluation"],
        predictions=evaluated["predictions"],
        fitted=evaluated["fitted"],
        calibrators=None,
        data_fingerprint="abc123",
        plots=False,
    )
    client = MlflowClient()
    name = registered_model_name("sim_intraday")
    assert name == "drift-forecaster-sim_intraday"
    first = register_best(run_id=result.run_id, spec_name="sim_intraday", model_name="scaled", bundle=_TinyBundle())
    assert first == 1
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == 1
    assert int(client.get_model_version_by_alias(name, CHALLENGER).version) == 1
    version = client.get_model_version(name, "1")
    assert version.tags["model_name"] == "scaled" and version.tags["run_id"] == result.children["scaled"]
    assert version.tags["data_fingerprint"] == "abc123"
    # the model files live under the child run of the chosen model
    logged = client.search_logged_models([result.experiment_id])
    assert [m.source_run_id for m in logged] == [result.children["scaled"]]

    second = register_best(run_id=result.run_id, spec_name="sim_intraday", model_name="scaled", bundle=_TinyBundle())
    assert second == 2
    assert int(client.get_model_version_by_alias(name, CHALLENGER).version) == 2
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == 1

    with pytest.raises(RuntimeError, match="simulated failure"):
        register_best(run_id=result.run_id, spec_name="sim_intraday", model_name="scaled", bundle=_TinyBundle(True))
    aliases = client.get_registered_model(name).aliases
    assert {alias: int(v) for alias, v in aliases.items()} == {CHAMPION: 1, CHALLENGER: 2}
    assert len(client.search_model_versions(f"name = '{name}'")) == 2

    with pytest.raises(UsageError, match="holds model 'scaled' but model_name is 'oracle'"):
        register_best(run_id=result.run_id, spec_name="sim_intraday", model_name="oracle", bundle=_TinyBundle())
    with pytest.raises(UsageError, match="not in the tracking store"):
        register_best(run_id="0" * 32, spec_name="sim_intraday", model_name="scaled", bundle=_TinyBundle())
