"""``forecaster schedule`` and the scheduling recipes of ``docs/scheduling/``: the cron line run as cron runs it
(twice at once: ``flock -n`` lets one through), the Kubernetes CronJob's fields and arguments, the systemd units
checked by ``systemd-analyze verify``, and the built-in loop running two retrains (promoted, then the same window
skipped). A small spec: windows of 30 and 60 bars, horizons 30 and 60, 5 simulated days."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forecaster.commands.schedule import next_tick, parse_every
from forecaster.config import resolve_spec_path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "scheduling"
FORECASTER = str(Path(sys.executable).parent / "forecaster")


@pytest.fixture
def home(tmp_path):
    """A FORECASTER_HOME: the small spec (training.days 5), the project's venv linked as .venv, MLflow in it."""
    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = "schedule_test"
    values["horizons"] = [30, 60]
    values["features"].update({"groups": ["realized"], "windows": [30, 60]})
    values["models"] = {"har": {"family": "har", "log": True, "windows": [30, 60]}}
    values["training"]["days"] = 5
    values["evaluation"].update({"embargo": 60})
    values["retrain"] = {"model": "har", "window_days": 3, "holdout_days": 1, "gate": {"coverage90": [0.3, 1.0]}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {
        **os.environ,
        "FORECASTER_HOME": str(tmp_path),
        "FORECASTER_SPEC": "spec.yaml",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "FORECASTER_LOCK_DIR": str(tmp_path),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    return tmp_path, env


def test_periods_and_ticks():
    assert [parse_every(t) for t in ("30s", "15m", "1h", "1d", "90")] == [30, 900, 3600, 86400, 90]
    for bad in ("0s", "1w", "soon", "-1h"):
        with pytest.raises(Exception, match="--every takes a period"):
            parse_every(bad)
    assert next_tick(3600 * 5 + 10, 3600) == 3600 * 6 and next_tick(3600 * 6, 3600) == 3600 * 7


def test_the_cron_recipe_runs_and_flock_lets_one_of_two_through(home):
    root, env = home
    lines = [line for line in (RECIPES / "retrain.cron").read_text().splitlines() if line and not line[0] == "#"]
    assignments = dict(line.split("=", 1) for line in lines if "=" in line.split()[0])
    assert set(assignments) == {"SHELL", "FORECASTER_HOME", "FORECASTER_SPEC", "MLFLOW_TRACKING_URI"}
    jobs = [line for line in lines if "=" not in line.split()[0]]
    assert len(jobs) == 1
    fields = jobs[0].split(maxsplit=5)
    assert fields[:5] == ["0", "*", "*", "*", "*"]  # hourly, on the hour
    command = fields[5]
    assert 'flock -n "$FORECASTER_HOME/retrain-$FORECASTER_SPEC.cron.lock"' in command
    runs = [subprocess.Popen(["/bin/sh", "-c", command], env=env) for _ in range(2)]
    codes = sorted(run.wait(timeout=600) for run in runs)
    assert codes == [0, 1]  # one ran the retrain; flock -n turned the overlapping one away at once
    log = (root / "retrain.log").read_text()
    assert "decision: promoted" in log, log[-3000:]
    assert '"decision": "promoted"' in (root / "retrain-last.json").read_text()


def test_the_kubernetes_cronjob_forbids_overlap_and_runs_a_valid_retrain():
    from forecaster.cli import _parse, build_parser

    job = yaml.safe_load((RECIPES / "retrain-cronjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["schedule"] == "0 * * * *"
    assert spec["startingDeadlineSeconds"] > 0
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 3600  # never into the next hour's run
    (container,) = pod["containers"]
    assert container["command"][0].endswith("/bin/forecaster")
    assert {e["name"] for e in container["env"]} >= {"MLFLOW_TRACKING_URI"}
    args, code = _parse(build_parser(), list(container["args"]))
    assert code == 0 and args.command == "retrain" and args.if_drift


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_units_verify(tmp_path):
    service = (RECIPES / "forecaster-retrain.service").read_text()
    local = service.replace("/srv/drift-forecaster/.venv/bin/forecaster", FORECASTER)
    local = "\n".join(line for line in local.splitlines() if not line.startswith("User="))  # no such user here
    (tmp_path / "forecaster-retrain.service").write_text(local)
    shutil.copy(RECIPES / "forecaster-retrain.timer", tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "./forecaster-retrain.timer", "./forecaster-retrain.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Failed" not in done.stderr and "Unknown" not in done.stderr, done.stderr
    units = configparser.ConfigParser(strict=False, interpolation=None)
    units.optionxform = str  # systemd keys are case-sensitive
    units.read_string(service)
    assert units["Service"]["Type"] == "oneshot" and "retrain" in units["Service"]["ExecStart"]
    assert units["Service"]["SuccessExitStatus"] == "75"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.optionxform = str
    timer.read_string((RECIPES / "forecaster-retrain.timer").read_text())
    assert timer["Timer"]["OnCalendar"] == "hourly" and timer["Timer"]["Persistent"] == "true"


def test_the_built_in_loop_runs_retrain_on_its_clock(home):
    root, env = home
    done = subprocess.run(
        [FORECASTER, "schedule", "--every", "1s", "--now", "--max-runs", "2", "--", "--config", "spec.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run 1 at" in done.stdout and "decision: promoted" in done.stdout, done.stdout
    assert "run 2 at" in done.stdout and "decision: skipped: this window was already retrained" in done.stdout
