"""Optuna tuning (training/tune.py) on the session's small market: exact trial counts on resume, one MLflow parent
for every trial, kill-and-resume of a worker process, pruning of LightGBM and net trials, the purged split, and the
``tuning:`` section's checks.

MLflow writes to a module-scoped temporary SQLite store, Optuna to a SQLite file in each test's temporary folder.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from forecaster.config import Spec
from forecaster.errors import ConfigError, UsageError
from models.base import ModelError
from training.tune import (
    FIXED,
    SPACES,
    Dimension,
    make_storage,
    model_settings,
    resolve_space,
    tune,
    tuning_config_from_spec,
    tuning_split,
)
from training.walkforward import WalkForwardConfig, folds, walkforward_config_from_spec

REPO = Path(__file__).resolve().parents[2]
CHEAP_LGBM = {"family": "lgbm", "n_jobs": 1}  # one thread: faster than two on the loaded 2-core test machine
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MLFLOW_TRACKING_URI → a temporary SQLite store for this module's tests; the URI."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield uri


def spec(name: str, tuning: dict[str, Any], models: dict[str, Any] | None = None, **more: Any) -> Spec:
    """A spec named ``name`` (its own MLflow experiment) with the small market's horizons."""
    values = {"name": name, "horizons": [60, 240], "models": models or {"lgbm": dict(CHEAP_LGBM)}, "tuning": tuning}
    return Spec(name, f"<{name}>", {**values, **more})


def child_runs(parent_run_id: str) -> pd.DataFrame:
    experiment = MlflowClient().get_run(parent_run_id).info.experiment_id
    return mlflow.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------------- resume


def test_a_study_runs_exactly_the_missing_trials_under_one_parent_run(small_data, tracking, tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    s = spec("tune-resume", {"trials": 3, "pruner": "none", "space": {"n_estimators": 60}})

    first = tune(small_data, s, storage=storage)
    assert (first.n_new, first.n_complete, first.n_pruned, first.n_failed) == (3, 3, 0, 0)
    assert first.study.study_name == "tune-resume-lgbm" and len(first.study.trials) == 3
    assert isinstance(first.study.sampler, optuna.samplers.TPESampler)

    again = tune(small_data, s, storage=storage)  # complete: runs nothing
    assert again.n_new == 0 and len(again.study.trials) == 3 and again.parent_run_id == first.parent_run_id

    more = tune(small_data, s, storage=storage, trials=6)
    assert more.n_new == 3 and len(more.study.trials) == 6 and more.n_complete == 6
    assert more.parent_run_id == first.parent_run_id

    trials = more.study.trials
    # the resumed sampler is seeded past the trials already drawn: no configuration is drawn twice
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    runs = child_runs(first.parent_run_id)
    assert len(runs) == 6
    assert sorted(runs["tags.optuna.trial_number"].astype(int)) == list(range(6))
    assert set(runs["tags.optuna.state"]) == {"COMPLETE"} and set(runs["status"]) == {"FINISHED"}
    metric_sets = {
        frozenset(c for c in runs.columns if c.startswith("metrics.") and pd.notna(row[c]))
        for _, row in runs.iterrows()
    }
    assert len(metric_sets) == 1
    assert {"metrics.qlike/rv/h60", "metrics.qlike/rv/h240", "metrics.qlike/rv/mean"} <= next(iter(metric_sets))
    by_run = runs.set_index("run_id")
    for t in trials:  # each run's objective is its trial's value, the mean of the horizons' QLIKE
        row = by_run.loc[t.user_attrs["mlflow_run_id"]]
        assert row["metrics.qlike/rv/mean"] == pytest.approx(t.value)
        assert t.value == pytest.approx((row["metrics.qlike/rv/h60"] + row["metrics.qlike/rv/h240"]) / 2)
        assert row["params.learning_rate"] == str(t.params["learning_rate"])
        assert row["params.n_estimators"] == "60"  # the spec's space fixes it
    parent = MlflowClient().get_run(first.parent_run_id)
    assert parent.data.metrics["best/qlike/rv/mean"] == pytest.approx(min(t.value for t in trials))
    assert parent.data.tags["best_trial"] == str(more.best_trial) and parent.data.params["name"] == "tune-resume"
    history = MlflowClient().get_metric_history(first.parent_run_id, "trials/complete")
    assert sorted((m.step, m.value) for m in history) == [(3, 3.0), (3, 3.0), (6, 6.0)]
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=first.parent_run_id, dst_path=str(tmp_path / "a")))
    assert len(pd.read_csv(artifacts / "tuning" / "trials.csv")) == 6
    assert (artifacts / "plots" / "optimization_history.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------------- kill


WORKER = textwrap.dedent(
    """
    import pickle, sys, time
    from pathlib import Path
    from forecaster.config import Spec
    from models.lgbm import LgbmForecaster
    from training.tune import tune

    if sys.argv[3] == "slow":  # every fit starts with a second's pause: a kill lands inside a trial's fit
        fit = LgbmForecaster.fit_with_callbacks
        def slow_fit(self, *args):
            time.sleep(1.0)
            return fit(self, *args)
        LgbmForecaster.fit_with_callbacks = slow_fit
    data = pickle.loads(Path(sys.argv[1]).read_bytes())
    values = {"horizons": [60, 240], "models": {"lgbm": {"family": "lgbm", "n_jobs": 1}},
              "tuning": {"trials": 20, "pruner": "none", "horizons": [60], "space": {"n_estimators": 40}}}
    result = tune(data, Spec("tune-kill", "<tune-kill>", values), storage=sys.argv[2], heartbeat_interval=1,
                  grace_period=2)
    print("RESULT", result.n_new, result.parent_run_id)
    """
)


def _running_fit(study: optuna.Study) -> bool:
    """At least 3 trials complete and one running with its MLflow run started (so inside its fit)."""
    seen = states(study)
    running = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    return seen.get("COMPLETE", 0) >= 3 and len(running) == 1 and "mlflow_run_id" in running[0].user_attrs


def test_a_killed_worker_is_resumed_to_exactly_the_trials_asked(small_data, tracking, tmp_path):
    data_file, script = tmp_path / "data.pkl", tmp_path / "worker.py"
    data_file.write_bytes(pickle.dumps(small_data))
    script.write_text(WORKER)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(script), str(data_file), storage]

    worker = subprocess.Popen(
        [*command, "slow"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 90
    study = None
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            study = optuna.load_study(study_name="tune-kill-lgbm", storage=storage)
            if _running_fit(study):
                break
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    output = worker.communicate()[0].decode()
    assert worker.returncode == -signal.SIGKILL, f"the worker ended before the kill:\n{output[-3000:]}"
    killed = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    complete_at_kill = states(study)["COMPLETE"]
    assert len(killed) == 1 and 3 <= complete_at_kill < 20
    time.sleep(3)  # past the 2 s grace period: the dead trial's heartbeat is stale

    done = subprocess.run([*command, "fast"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="tune-kill-lgbm", storage=storage)
    assert states(study) == {"COMPLETE": 20, "FAIL": 1}  # nothing RUNNING or WAITING is left
    dead = study.trials[killed[0].number]
    assert dead.state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == dead.params and len(dead.params) == 6  # the dead trial's parameters, re-run

    parent = study.user_attrs["mlflow_parent_run_id"]
    assert f"RESULT {20 - complete_at_kill} {parent}" in done.stdout  # the missing trials, under the same parent
    runs = child_runs(parent).set_index("tags.optuna.trial_number")
    assert len(runs) == 21  # 20 finished trials and the killed one, all under the one parent
    assert (
        runs.loc[str(dead.number), "status"] == "KILLED" and runs.loc[str(dead.number), "tags.optuna.state"] == "FAIL"
    )
    assert runs.loc[str(retries[0].number), "tags.optuna.retry_of"] == str(dead.number)
    finished = [str(t.number) for t in study.trials if t.state in FINISHED]
    assert set(runs.loc[finished, "status"]) == {"FINISHED"}


# ---------------------------------------------------------------------------------------------------- pruning


def _enqueued_study(storage: str, name: str, *params: dict[str, Any]) -> None:
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    for p in params:
        study.enqueue_trial(p)


def _assert_pruned_run(result, family_metric: str) -> None:
    pruned = [t for t in result.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == 1 and result.n_pruned == 1 and result.n_failed == 0
    run = MlflowClient().get_run(pruned[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["optuna.state"] == "PRUNED" and run.data.tags["pruned"] == "true"
    assert "qlike/rv/mean" not in run.data.metrics
    curve = MlflowClient().get_metric_history(run.info.run_id, family_metric)
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == sorted(pruned[0].intermediate_values)
    assert run.data.metrics["pruned_at_step"] == max(pruned[0].intermediate_values)


def test_lgbm_trials_are_pruned_on_the_early_stopping_qlike(small_data, tracking, tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = {
        "n_estimators": 150,
        "learning_rate": {"choices": [0.01, 1.0]},
        "num_leaves": {"choices": [4, 64]},
        "min_child_samples": {"choices": [100, 2]},
        "reg_lambda": 0.0,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
    }
    good = {"learning_rate": 0.01, "num_leaves": 4, "min_child_samples": 100}
    bad = {"learning_rate": 1.0, "num_leaves": 64, "min_child_samples": 2}  # one full step of deep trees: overfit
    _enqueued_study(storage, "tune-prune-lgbm-lgbm", good, bad)
    s = spec("tune-prune-lgbm", {"trials": 2, "space": space})
    result = tune(small_data, s, storage=storage, pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "PRUNED"]
    _assert_pruned_run(result, "pruning/valid_qlike_h60")


def test_net_trials_are_pruned_on_the_epoch_validation_loss(small_data, tracking, tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    models = {"net": {"family": "net", "max_epochs": 3, "device": "cpu", "batch_size": 128}}
    space = {"lr": {"choices": [1e-3, 0.1]}, "hidden": 8, "layers": 1, "lookback": 2, "dropout": 0.0,
             "weight_decay": 0.0}  # fmt: skip
    # lr 0.1 overshoots from the first epoch (validation loss 0.5368 against 0.5327 at lr 0.001); the median pruner
    # compares a trial's best value so far with the others' at the same epoch, so the bad trial must be bad at once
    _enqueued_study(storage, "tune-prune-net-net", {"lr": 1e-3}, {"lr": 0.1})
    s = spec("tune-prune-net", {"model": "net", "trials": 2, "space": space}, models)
    result = tune(small_data, s, storage=storage, pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "PRUNED"]
    _assert_pruned_run(result, "pruning/val_loss")


# ---------------------------------------------------------------------------------------------------- the split


def test_the_split_is_purged_and_ends_where_the_walk_forward_tests_begin(small_data):
    cfg = WalkForwardConfig(embargo=300)
    split = tuning_split(small_data, cfg, 0.25)
    resolved = cfg.resolve(small_data)
    assert split.gap == max(small_data.horizons) + 300 == 540
    assert split.start == resolved.start and split.end == folds(small_data, cfg)[0].test_start
    train, valid = split.train_rows, split.valid_rows
    assert train.size > 100 and valid.size > 50
    assert np.all(np.diff(train) == resolved.step) and np.all(np.diff(valid) == resolved.step)
    assert np.all((np.concatenate([train, valid]) - resolved.start) % resolved.step == 0)  # the walk-forward grid
    # the last training target (t, t + h_max] plus the embargo ends before the first validation origin
    assert train[-1] + split.gap <= split.valid_start <= valid[0]
    assert valid[-1] + split.gap <= split.end  # and no validation target reaches the walk-forward's test period
    assert train[-1] + split.gap + resolved.step > split.valid_start  # purged no more than needed
    assert split.end - split.valid_start == pytest.approx(0.25 * (split.end - split.start), abs=resolved.step)
    with pytest.raises(ModelError, match="validation_fraction"):
        tuning_split(small_data, WalkForwardConfig(train_bars=1200, calibration_fraction=0.0), 0.25)


def test_the_objective_fits_on_the_training_origins_and_scores_the_validation_ones(
    small_data, tracking, tmp_path, monkeypatch
):
    from models.lgbm import LgbmForecaster

    seen: dict[str, Any] = {}
    fit, predict = LgbmForecaster.fit_with_callbacks, LgbmForecaster.predict

    def spy_fit(self, data, rows, callbacks):
        seen["fit"] = np.asarray(rows).copy()
        return fit(self, data, rows, callbacks)

    def spy_predict(self, data, rows):
        seen["predict"] = np.asarray(rows).copy()
        return predict(self, data, rows)

    monkeypatch.setattr(LgbmForecaster, "fit_with_callbacks", spy_fit)
    monkeypatch.setattr(LgbmForecaster, "predict", spy_predict)
    s = spec("tune-split", {"trials": 1, "space": {"n_estimators": 30}}, evaluation={"embargo": 300})
    tune(small_data, s, storage=f"sqlite:///{tmp_path}/optuna.db")
    split = tuning_split(small_data, walkforward_config_from_spec(s.values, where=s.path), 0.25)
    np.testing.assert_array_equal(seen["fit"], split.train_rows)
    np.testing.assert_array_equal(seen["predict"], split.valid_rows)
    assert seen["fit"][-1] + 240 + 300 <= seen["predict"][0]


# ---------------------------------------------------------------------------------------------------- config


def test_the_search_space_overrides_each_form():
    space = resolve_space(
        "lgbm",
        {
            "learning_rate": [0.01, 0.1],  # inherits the built-in log scale
            "num_leaves": [8, 16],  # two integers: an integer range
            "subsample": {"low": 0.6, "high": 0.9, "log": True},
            "min_child_samples": {"choices": [20, 40]},
            "base": ["har", "none"],
            "n_estimators": 300,
            "reg_lambda": None,
        },
        where="s.yaml",
    )
    d = space.dimensions
    assert d["learning_rate"] == Dimension(0.01, 0.1, log=True)
    assert d["num_leaves"] == Dimension(8, 16, log=True, integer=True)
    assert d["subsample"] == Dimension(0.6, 0.9, log=True)
    assert d["min_child_samples"].choices == (20, 40) and d["base"].choices == ("har", "none")
    assert "reg_lambda" not in d and "reg_lambda" not in space.fixed
    assert space.fixed == {**FIXED["lgbm"], "n_estimators": 300}
    assert set(resolve_space("net", {}, where="s.yaml").dimensions) == set(SPACES["net"])


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [
        ({"trails": 5}, "tuning.trails", "unknown key"),
        ({"trials": 0}, "tuning.trials", "≥ 1"),
        ({"metric": "mse"}, "tuning.metric", "qlike"),
        ({"pruner": "hyperband"}, "tuning.pruner", "median"),
        ({"validation_fraction": 1.0}, "tuning.validation_fraction", "(0, 1)"),
        ({"horizons": [60, "x"]}, "tuning.horizons", "list of horizons"),
    ],
)
def test_bad_tuning_values_are_config_errors_naming_the_key(section, key, text):
    with pytest.raises(ConfigError) as err:
        tuning_config_from_spec({"tuning": section}, where="s.yaml")
    assert err.value.key == key and text in str(err.value) and "s.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("space", "key", "text"),
    [
        ({"leaves": [2, 8]}, "tuning.space.leaves", "num_leaves"),
        ({"horizons": [1, 2]}, "tuning.space.horizons", "not a tunable parameter"),
        ({"learning_rate": [0.1, 0.01]}, "tuning.space.learning_rate", "low < high"),
        ({"reg_lambda": [0.0, 1.0]}, "tuning.space.reg_lambda", "log-scale range needs low > 0"),
        ({"num_leaves": {"low": 2}}, "tuning.space.num_leaves", "{low: L, high: H"),
        ({"num_leaves": []}, "tuning.space.num_leaves", "empty list"),
    ],
)
def test_bad_space_entries_are_config_errors(space, key, text):
    with pytest.raises(ConfigError) as err:
        resolve_space("lgbm", space, where="s.yaml")
    assert err.value.key == key and text in str(err.value)


def test_the_model_to_tune_must_be_named_in_the_spec_or_a_tunable_family():
    s = spec("names", {}, {"boost": {"family": "lgbm", "num_leaves": 15}, "har": {"family": "har"}})
    assert model_settings(s, "boost") == ("lgbm", {"num_leaves": 15})
    assert model_settings(s, "net") == ("net", {})  # a tunable family absent from models:, with its defaults
    with pytest.raises(UsageError, match=r"'xgb' is not in the spec's models: section \(boost, har\)"):
        model_settings(s, "xgb")
    with pytest.raises(UsageError, match="family 'har', which has no search space"):
        model_settings(s, "har")


def test_a_study_refuses_other_data_and_says_how_to_start_another(small_data, tracking, tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="tune-other-lgbm", storage=storage, direction="minimize")
    study.set_user_attr("model_family", "lgbm")
    study.set_user_attr("model_name", "lgbm")
    study.set_user_attr("horizons", [60, 240])
    study.set_user_attr("data_fingerprint", "another-market")
    with pytest.raises(UsageError, match=r"data_fingerprint 'another-market'.*--study NEW_NAME"):
        tune(small_data, spec("tune-other", {"trials": 1}), storage=storage)
    assert len(study.trials) == 0


def test_storage_urls_are_checked_and_passwords_never_shown(tmp_path):
    with pytest.raises(UsageError, match="not a database URL"):
        make_storage("optuna.db")
    with pytest.raises(UsageError, match="does not exist"):
        make_storage(f"sqlite:///{tmp_path}/missing/optuna.db")
    with pytest.raises(UsageError) as err:
        make_storage("postgresql://tuner:s3cret@db.invalid/optuna")
    assert "s3cret" not in str(err.value) and "postgresql://tuner:***@db.invalid/optuna" in str(err.value)
    storage = make_storage(f"sqlite:///{tmp_path}/ok.db", heartbeat_interval=5, grace_period=9)
    assert (storage.heartbeat_interval, storage.grace_period) == (5, 9)
    assert isinstance(storage.heartbeat_stale_trial_callback, optuna.storages.RetryHeartbeatStaleTrialCallback)
