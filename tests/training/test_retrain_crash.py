"""``forecaster retrain`` as a scheduler runs it (a subprocess), killed with SIGKILL at five points, and two of
them started at once. After every kill, each alias of the registered model points at a READY version that passed
the gate (tag ``gate = passed``, set with the version itself); the next run completes; of two concurrent runs,
exactly one trains and the other exits 75.

A small spec (windows of 30 and 60 bars, horizons 30 and 60, a 5-day simulated market); MLflow in a temporary
SQLite store. The runs print their stages (``retrain <spec>: stage <name>``) on stderr; the test waits for a stage,
waits a random fraction of a second more, and kills."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from forecaster.config import resolve_spec_path

FORECASTER = str(Path(sys.executable).parent / "forecaster")
SPEC = "retrain_crash_test"
NAME = f"drift-forecaster-{SPEC}"
KILL_AT = [  # (stage to wait for, the most extra seconds after it)
    ("features", 0.5),
    ("fitting", 0.3),
    ("evaluating", 0.2),
    ("registering", 1.0),  # inside register_best: the model's files, the version, READY, the challenger alias
    ("aliases", 0.0),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain-crash")
    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = SPEC
    values["horizons"] = [30, 60]
    values["features"].update({"groups": ["realized"], "windows": [30, 60]})
    values["models"] = {"har": {"family": "har", "log": True, "windows": [30, 60]}}
    values["evaluation"].update({"embargo": 60})
    values["retrain"] = {
        "model": "har",
        "window_days": 3,
        "holdout_days": 1,
        "gate": {"min_qlike_improvement": 0.0, "coverage90": [0.3, 1.0], "max_latency_ms": 5000},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "FORECASTER_LOCK_DIR": str(root / "locks"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    return root, env


def _command(as_of_day: int) -> list[str]:
    as_of = f"2026-01-0{1 + as_of_day}T00:00:00Z"  # the simulator starts 2026-01-01
    return [FORECASTER, "retrain", "--config", "spec.yaml", "--days", "5", "--as-of", as_of]


def _aliases_valid(env: dict[str, str]) -> dict[str, str]:
    """Every alias on a READY version that passed the gate; returns {alias: version}."""
    script = (
        "import json, mlflow\nfrom mlflow import MlflowClient\nc = MlflowClient()\n"
        f"rm = c.get_registered_model('{NAME}')\n"
        "out = {a: [str(v), c.get_model_version(rm.name, v).status, c.get_model_version(rm.name, v).tags.get('gate')]"
        " for a, v in rm.aliases.items()}\nprint(json.dumps(out))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    aliases = json.loads(done.stdout.strip().splitlines()[-1])
    for alias, (version, status, gate) in aliases.items():
        assert status == "READY" and gate == "passed", (alias, version, status, gate)
    return {alias: version for alias, (version, _, _) in aliases.items()}


def _bad_champion(root: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, shuffled_targets) -> None:
    """Version 1, in process: a challenger trained on shuffled targets, promoted because there is no champion, so
    that every properly trained challenger after it passes the gate and is registered."""
    from forecaster.config import load_spec
    from forecaster.market.simulator import sim_config_from_spec
    from training.data import simulated_market
    from training.retrain import retrain

    for key in ("MLFLOW_TRACKING_URI", "FORECASTER_LOCK_DIR"):
        monkeypatch.setenv(key, env[key])
    spec = load_spec(str(root / "spec.yaml"))
    spec.override("simulator.days", 5)
    config = sim_config_from_spec(spec.values, where=spec.path)
    market, _ = simulated_market(config, with_chain=False, with_trades=False)
    first = retrain(spec, market, as_of=market.index[0] + pd.Timedelta(days=3), challenger_hook=shuffled_targets)
    assert first.decision == "promoted"


def test_kill_9_at_five_points_then_the_next_run_completes(world, monkeypatch, shuffled_targets):
    root, env = world
    _bad_champion(root, env, monkeypatch, shuffled_targets)
    before = _aliases_valid(env)
    assert before["champion"] == "1"
    rng = random.Random(7)
    for stage_name, extra in KILL_AT:  # each run on the next window: it would register a new version
        process = subprocess.Popen(
            _command(4), cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        seen = []
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if f"stage {stage_name}" in line:
                time.sleep(rng.uniform(0.0, extra))
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=120)
        assert process.returncode == -signal.SIGKILL, (stage_name, process.returncode, "".join(seen)[-3000:])
        after = _aliases_valid(env)
        assert after["champion"] in {before["champion"], *after.values()}
    last = subprocess.run(_command(4), cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr[-3000:]
    assert "decision: " in last.stdout
    final = _aliases_valid(env)
    assert "champion" in final and "challenger" in final


def test_two_concurrent_retrains_exactly_one_trains(world):
    root, env = world
    runs = [
        subprocess.Popen(_command(2), cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 75], [(run.returncode, err[-1500:]) for run, (_, err) in zip(runs, outputs, strict=True)]
    busy = next(out for run, (out, _) in zip(runs, outputs, strict=True) if run.returncode == 75)
    assert "another retrain of spec 'retrain_crash_test' is running" in busy
