"""``forecaster tune``: tune one model's hyper-parameters with Optuna on a market (files or the spec's simulated one).

The study lives in ``--storage`` (default ``sqlite:///optuna.db`` in the current folder) under ``--study`` (default
``{spec}-{model}``) and is resumed when it exists: the command runs only the trials missing to reach ``--trials``
finished ones, so running it again after a kill or an interruption completes the study, and on a complete study it
runs nothing and says so. Each trial is a nested MLflow run under the study's parent run (``training.tune``).

Prints a progress bar (on a terminal), one line per trial, then a summary: trials complete/pruned/failed, the best
value and parameters, the MLflow parent run, and the command that resumes or extends the study. ``--json PATH``
writes ``study``, ``storage``, ``trials`` (the target), ``complete``, ``pruned``, ``failed``, ``best_value``,
``best_params``, ``parent_run_id``, and also ``new_trials``, ``best_trial``, ``model``, ``horizons``,
``fixed_params``, ``tracking_uri``.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from forecaster.commands._training import INTRADAY_SPEC, add_data_arguments, load_training_inputs
from forecaster.errors import UsageError

DEFAULT_STORAGE = "sqlite:///optuna.db"  # = training.tune.DEFAULT_STORAGE (not imported: --help stays light)
# data flags repeated in the resume command: (attribute, flag)
_DATA_FLAGS = (
    ("config", "--config"),
    ("bars", "--bars"),
    ("trades", "--trades"),
    ("iv_index", "--iv-index"),
    ("options", "--options"),
    ("iv_units", "--iv-units"),
    ("freq", "--freq"),
    ("bar_label", "--bar-label"),
    ("horizons", "--horizons"),
    ("days", "--days"),
    ("seed", "--seed"),
)


def _trials(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of trials ≥ 1; got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    group = parser.add_argument_group("tuning (defaults: the spec's tuning: section)")
    group.add_argument(
        "--model", metavar="NAME", help="the model to tune: a name in the spec's models: section, or lgbm / net"
    )
    group.add_argument(
        "--trials", type=_trials, metavar="N", help="finished trials the study should hold; only the missing ones run"
    )
    group.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"Optuna storage, a SQLAlchemy URL (default {DEFAULT_STORAGE}; postgresql://... for several machines)",
    )
    group.add_argument("--study", metavar="NAME", help="study name (default {spec}-{model}); an existing one resumes")
    group.add_argument(
        "--workers",
        type=_trials,
        default=1,
        metavar="N",
        help="worker processes on this machine sharing the study (others may run the same command elsewhere)",
    )
    group.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)  # set for spawned workers
    group.add_argument(
        "--heartbeat-interval", type=_trials, default=60, metavar="S", help="seconds between a trial's heartbeats"
    )
    group.add_argument(
        "--grace-period",
        type=_trials,
        default=120,
        metavar="S",
        help="seconds without a heartbeat after which a running trial's worker counts as dead (failed, re-queued)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from forecaster.config import load_spec
    from training.tracking import tracking_uri
    from training.tune import check_storage_url, model_settings, tune, tuning_config_from_spec

    if args.models:
        raise UsageError(f"tune tunes one model: pass --model NAME (got --models {args.models})")
    check_storage_url(args.storage)
    if args.config is not None or args.bars is None:  # check the model before building the data (the slow part)
        spec = load_spec(args.config or INTRADAY_SPEC)
        model_settings(spec, args.model or tuning_config_from_spec(spec.values, where=spec.path).model)
    if args.grace_period <= args.heartbeat_interval:
        raise UsageError("--grace-period must be longer than --heartbeat-interval (a live trial beats within it)")
    workers = []
    if args.workers > 1:
        _prepare_shared(args)  # the tracking store, Optuna's tables and the study: made once, not raced by N workers
        workers = _spawn_workers(args)
    inputs = load_training_inputs(args)
    base_seed = tuning_config_from_spec(inputs.spec.values, where=inputs.spec.path).seed
    result = tune(
        inputs.data,
        inputs.spec,
        model_name=args.model,
        trials=args.trials,
        storage=args.storage,
        study_name=args.study,
        seed=base_seed + 7919 * args.worker_index,  # each worker its own TPE start-up draws
        show_progress=args.workers == 1 and args.worker_index == 0,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )
    if workers:
        codes = [worker.wait() for worker in workers]
        print(f"workers: {len(codes) + 1} (this one and {len(codes)} more), exit codes of the others: {codes}")
        result = _reloaded(result, args.storage)
    target = args.trials or tuning_config_from_spec(inputs.spec.values, where=inputs.spec.path).trials
    print(format_summary(result, target, inputs.spec.name, tracking_uri(), resume_command(args, result, target)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary_json(result, target, tracking_uri()), indent=2, default=str))
    return 0


def format_summary(result: Any, target: int, spec_name: str, uri: str, resume: str) -> str:
    """The text summary of a :class:`training.tune.TuneResult`."""
    horizons = ", ".join(str(h) for h in result.horizons)
    lines = [
        f"study {result.study_name} ({result.storage}), model {result.model_name} ({result.family}): "
        f"{result.n_finished} finished trials for {target} ({result.n_complete} complete, {result.n_pruned} pruned), "
        f"{result.n_failed} failed; {result.n_new} run now"
    ]
    if result.n_new == 0 and result.n_finished >= target:
        lines.append(
            f"nothing to run: the study already holds {result.n_finished} finished trials (≥ {target}); "
            "pass a larger --trials to add more"
        )
    if result.best_value is None:
        lines.append("no complete trial yet: no best value")
    else:
        lines.append(
            f"best qlike/rv/mean {result.best_value:.6g} (trial {result.best_trial}): the mean over horizons "
            f"{horizons} of the validation QLIKE"
        )
        lines.append("best params:")
        width = max(len(k) for k in result.best_params) if result.best_params else 0
        lines += [f"  {k:<{width}}  {_value(v)}" for k, v in result.best_params.items()]
    if result.fixed_params:
        lines.append("fixed while tuning: " + ", ".join(f"{k}={v}" for k, v in result.fixed_params.items()))
    if result.n_failed:
        lines.append(
            f"{result.n_failed} trial(s) failed (MLflow runs tagged optuna.state=FAIL; a killed worker's trial is "
            "re-queued); run the command again to complete the study"
        )
    lines.append(f"MLflow: parent run {result.parent_run_id} in experiment {spec_name} ({uri})")
    lines.append(f"resume or extend: {resume}")
    return "\n".join(lines)


def _value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def summary_json(result: Any, target: int, uri: str) -> dict[str, Any]:
    """The ``--json`` document (module docstring)."""
    return {
        "study": result.study_name,
        "storage": result.storage,
        "trials": target,
        "complete": result.n_complete,
        "pruned": result.n_pruned,
        "failed": result.n_failed,
        "best_value": result.best_value,
        "best_params": result.best_params,
        "parent_run_id": result.parent_run_id,
        "new_trials": result.n_new,
        "best_trial": result.best_trial,
        "model": result.model_name,
        "horizons": list(result.horizons),
        "fixed_params": result.fixed_params,
        "tracking_uri": uri,
    }


def resume_command(args: argparse.Namespace, result: Any, target: int) -> str:
    """The command line that resumes (or, with a larger --trials, extends) the study on the same data."""
    parts = ["forecaster", "tune"]
    for attr, flag in _DATA_FLAGS:
        value = getattr(args, attr, None)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = str(value)
        parts += [flag, text]
    # the storage as shown everywhere: a password in the URL is hidden (***), so retype it or use a .pgpass
    parts += ["--model", result.model_name, "--trials", str(target), "--storage", result.storage]
    parts += ["--study", result.study_name]
    return " ".join(shlex.quote(p) for p in parts)


def _spawn_workers(args: argparse.Namespace) -> list[Any]:
    """``--workers N``: N − 1 more processes running this command on the same study (``--worker-index`` 1..N−1)."""
    import subprocess
    import sys

    argv = [a for a in sys.argv[1:]]
    cleaned: list[str] = []
    skip = False
    for word in argv:  # drop --workers N / --workers=N / --json PATH: the extra workers only run trials
        if skip:
            skip = False
            continue
        if word in ("--workers", "--json"):
            skip = True
            continue
        if word.startswith(("--workers=", "--json=")):
            continue
        cleaned.append(word)
    base = [sys.executable, "-m", "forecaster.cli", *cleaned]
    return [subprocess.Popen([*base, "--worker-index", str(i)]) for i in range(1, args.workers)]


def _reloaded(result: Any, storage: str) -> Any:
    """``result`` with the study's counts read again once every worker is done."""
    import dataclasses

    import optuna

    from training.tune import make_storage, trial_counts

    study = optuna.load_study(study_name=result.study_name, storage=make_storage(storage))
    counts = trial_counts(study)
    changes: dict[str, Any] = {
        "n_complete": counts["COMPLETE"],
        "n_pruned": counts["PRUNED"],
        "n_failed": counts["FAIL"],
    }
    if counts["COMPLETE"]:
        best = study.best_trial
        changes |= {"best_value": best.value, "best_params": dict(best.params), "best_trial": best.number}
    return dataclasses.replace(result, study=study, **changes)


def _prepare_shared(args: argparse.Namespace) -> None:
    """Create what every worker opens (the MLflow experiment, Optuna's tables, the study) before they start."""
    import optuna

    from forecaster.config import load_spec
    from training.tracking import setup_tracking
    from training.tune import make_storage, tuning_config_from_spec

    spec = load_spec(args.config or INTRADAY_SPEC)
    model = args.model or tuning_config_from_spec(spec.values, where=spec.path).model
    setup_tracking(spec.name)
    optuna.create_study(
        study_name=args.study or f"{spec.name}-{model}",
        storage=make_storage(args.storage, heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period),
        direction="minimize",
        load_if_exists=True,
    )
