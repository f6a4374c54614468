"""``forecaster tune`` end to end on a 3-day simulated market: the summary and ``--json``, a second run that has
nothing left to do, and usage errors (exit 2) that name the problem before any data is built.

The command is registered here with ``monkeypatch`` (forecaster/cli.py lists it once the command ships).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from forecaster import cli
from forecaster.config import resolve_spec_path

JSON_KEYS = {"study", "storage", "trials", "complete", "pruned", "failed", "best_value", "best_params", "parent_run_id"}


@pytest.fixture(autouse=True)
def tune_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``tune`` among the CLI's commands; MLflow in this test's temporary folder."""
    monkeypatch.setitem(cli.COMMANDS, "tune", ("tune", "tune a model's hyper-parameters with Optuna"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")


@pytest.fixture(scope="module")
def small_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sim_intraday with short realized windows, one 30-bar horizon, the default walk-forward plan, a cheap LightGBM
    and a tuning: section."""
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["name"] = "tune_cli"
    values["horizons"] = [30]
    values["features"] = {"groups": ["realized"], "windows": [30, 120]}
    values["models"] = {"boost": {"family": "lgbm", "n_jobs": 1}, "har": {"family": "har"}}
    values["evaluation"] = {"step": 15}  # embargo null: the 30-bar horizon
    values["tuning"] = {"model": "boost", "trials": 5, "space": {"n_estimators": 40}}
    path = tmp_path_factory.mktemp("tune_cli") / "tune_cli.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_tune_reports_the_study_and_a_second_run_has_nothing_to_do(small_spec, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    out = tmp_path / "out" / "tune.json"
    args = ["tune", "--config", str(small_spec), "--days", "3", "--model", "boost", "--trials", "3",
            "--storage", storage, "--json", str(out)]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    info = json.loads(out.read_text())
    assert JSON_KEYS <= set(info)
    assert info["study"] == "tune_cli-boost" and info["storage"] == storage and info["trials"] == 3
    assert info["complete"] + info["pruned"] == 3 and info["failed"] == 0 and info["new_trials"] == 3
    assert info["best_value"] > 0 and set(info["best_params"]) == {
        "learning_rate", "num_leaves", "min_child_samples", "subsample", "colsample_bytree", "reg_lambda"
    }  # fmt: skip
    assert info["fixed_params"]["n_estimators"] == 40 and info["horizons"] == [30]
    assert f"parent run {info['parent_run_id']}" in printed and "best params:" in printed
    resume = f"forecaster tune --config {small_spec} --days 3 --model boost --trials 3 --storage {storage} --study "
    assert resume + "tune_cli-boost" in printed
    parent = mlflow.MlflowClient().get_run(info["parent_run_id"])
    assert parent.data.tags["optuna.study"] == "tune_cli-boost" and parent.data.tags["model_family"] == "lgbm"

    assert cli.main(args) == 0  # the study holds its 3 trials: nothing runs
    printed = capsys.readouterr().out
    again = json.loads(out.read_text())
    assert "nothing to run" in printed and again["new_trials"] == 0
    assert again["parent_run_id"] == info["parent_run_id"] and again["best_value"] == info["best_value"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "xgb"], "model 'xgb' is not in the spec's models: section (boost, har)"),
        (["--model", "har"], "family 'har', which has no search space"),
        (["--models", "boost"], "tune tunes one model: pass --model NAME"),
        (["--storage", "optuna.db"], "is not a database URL"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem_before_building_data(small_spec, tmp_path, capsys, extra, message):
    args = ["tune", "--config", str(small_spec), "--days", "3", *extra]
    if "--storage" not in extra:
        args += ["--storage", f"sqlite:///{tmp_path}/optuna.db"]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.startswith("forecaster tune: error:")
    assert "simulating" not in captured.out  # refused before the slow part


def test_trials_must_be_a_positive_whole_number(small_spec, capsys):
    assert cli.main(["tune", "--config", str(small_spec), "--trials", "0"]) == 2
    assert "expected a whole number of trials ≥ 1; got '0'" in capsys.readouterr().err
