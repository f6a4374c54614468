"""``forecaster tune`` workers sharing one Optuna study in the real local PostgreSQL (DESIGN: the multi-worker
path): three processes produce exactly the requested number of finished trials with unique numbers; a worker
killed mid-trial leaves no trial RUNNING (its trial is failed when its heartbeat goes stale and re-run by another
worker). Skipped, saying why, only where no PostgreSQL server answers (``FORECASTER_TEST_POSTGRES_URL``, default
the local one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from forecaster.config import resolve_spec_path

PG = os.environ.get("FORECASTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FORECASTER = str(Path(sys.executable).parent / "forecaster")


def _unreachable() -> str | None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # no server, no driver, no database: the reason goes into the skip message
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


WHY = _unreachable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no PostgreSQL server reachable at {PG} ({WHY})")


@pytest.fixture
def world(tmp_path):
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["name"] = "tune_pg"
    values["horizons"] = [30]
    values["features"] = {"groups": ["realized"], "windows": [30, 120]}
    values["models"] = {"boost": {"family": "lgbm", "n_jobs": 1}}
    values["evaluation"] = {"step": 15}
    values["tuning"] = {"model": "boost", "trials": 6, "startup_trials": 2, "space": {"n_estimators": 100}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(values))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "OMP_WAIT_POLICY": "PASSIVE"}
    study = f"tune-pg-{uuid.uuid4().hex[:10]}"
    yield tmp_path, env, study
    import optuna

    try:
        optuna.delete_study(study_name=study, storage=PG)
    except KeyError:
        pass


def _study(name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=PG)


def _prepare(root: Path, env: dict[str, str], study: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from forecaster.commands.tune import _prepare_shared; "
         "from forecaster.cli import build_parser, _parse; "
         "args, _ = _parse(build_parser(), sys.argv[1:]); _prepare_shared(args)", *_command(study, 1)[1:]],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def _command(study: str, trials: int, *extra: str) -> list[str]:
    return [FORECASTER, "tune", "--config", "spec.yaml", "--days", "3", "--model", "boost", "--trials", str(trials),
            "--storage", PG, "--study", study, *extra]  # fmt: skip


def test_three_workers_run_exactly_the_requested_trials(world):
    from optuna.trial import TrialState

    root, env, study = world
    done = subprocess.run(
        _command(study, 12, "--workers", "3"), cwd=root, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "workers: 3 (this one and 2 more), exit codes of the others: [0, 0]" in done.stdout
    trials = _study(study).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 12 and not [t for t in trials if t.state == TrialState.RUNNING]
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) == len(trials)
    assert len({t.user_attrs["worker"] for t in finished}) >= 2  # the workers did share the work


def test_a_worker_killed_mid_trial_loses_no_trial(world):
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    root, env, study = world
    beat = ["--heartbeat-interval", "1", "--grace-period", "3"]
    _prepare(root, env, study)  # what --workers does before it starts them: nothing left for them to race on
    workers = [
        subprocess.Popen(
            _command(study, 6, *beat, "--worker-index", str(i)),
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(3)
    ]
    victim = workers[1]
    killed_trial = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and killed_trial is None:
            try:
                running = _study(study).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            except KeyError:  # not created yet
                running = []
            mine = [t for t in running if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
            if mine:
                victim.send_signal(signal.SIGKILL)
                killed_trial = mine[0].number
            time.sleep(0.05)
        assert killed_trial is not None, "the victim never ran a trial"
        codes = [w.wait(timeout=900) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert codes[1] == -signal.SIGKILL and codes[0] == codes[2] == 0
    trials = _study(study).get_trials(deepcopy=False)
    states = {t.number: t.state for t in trials}
    assert states[killed_trial] == TrialState.FAIL  # failed once its heartbeat went stale, never left RUNNING
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    retried = [t for t in trials if RetryFailedTrialCallback.retried_trial_number(t) == killed_trial]
    assert retried and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)  # its parameters were re-run
