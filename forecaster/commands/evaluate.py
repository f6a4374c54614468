"""``forecaster evaluate``: walk-forward evaluation of the spec's models (DESIGN sections 5, 6, 8, 11).

Every model of the spec's ``models:`` section (or ``--models``) is refitted on each purged training window and
forecasts the next test block; the forecasts, calibrated by conformal prediction, are scored with every metric of
DESIGN section 6 (Diebold-Mariano against the benchmark, the oracle gap on simulated data), printed side by side,
and logged to MLflow: a parent run with a nested run per model. ``train`` does the same and registers the best.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from forecaster.commands._training import add_data_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_output_arguments(parser)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("outputs")
    out.add_argument("--predictions", type=Path, metavar="PATH", help="forecasts of every model (.parquet or .csv)")
    out.add_argument("--json", type=Path, metavar="PATH", help="metrics per model and horizon (DESIGN section 11)")
    out.add_argument("--no-track", action="store_true", help="do not log to MLflow")


def run(args: argparse.Namespace) -> int:
    run_walk_forward(args, command="evaluate")
    return 0


def run_walk_forward(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """Load the data, walk forward, print and write the metrics, log to MLflow. Returns what ``train`` needs."""
    from forecaster.commands._training import load_training_inputs, print_table, spec_models
    from training.walkforward import walk_forward, walkforward_config_from_spec, write_predictions

    _check_outputs(args)
    inputs = load_training_inputs(args)
    spec, data = inputs.spec, inputs.data
    models = spec_models(spec, args.models, simulated=inputs.origin == "simulated")
    if "harx" in models and data.iv is None:
        print("note: model 'harx' is left out: the data have no implied vol (pass --iv-index or --options)")
        del models["harx"]
    config = walkforward_config_from_spec(spec.values, where=spec.path)
    benchmark = spec.get("training.benchmark", "har")
    print(f"{command}: {len(models)} models ({', '.join(models)}) on {inputs.description}, horizons {data.horizons}")
    started = time.perf_counter()
    result = walk_forward(data, models, config, show_progress=True)
    evaluation = result.evaluate(benchmark=benchmark)
    elapsed = time.perf_counter() - started
    resolved = result.config
    print(
        f"walk-forward: {len(result.folds)} folds, origins every {resolved.step} bars, test "
        f"{evaluation['test_start']} .. {evaluation['test_end']}, {elapsed:.1f} s"
    )
    print_table(evaluation)
    seconds = result.timings.groupby("model")[["fit_seconds", "predict_seconds"]].sum()
    print("seconds per model (all folds): " + ", ".join(f"{m} {row.sum():.1f}" for m, row in seconds.iterrows()))
    if args.predictions:
        write_predictions(result.predictions, args.predictions)
        print(f"predictions written to {args.predictions}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(evaluation, indent=2, allow_nan=False))
        print(f"metrics written to {args.json}")
    parent = None
    if not args.no_track:
        from training.tracking import log_evaluation, setup_tracking, tracking_uri

        setup_tracking(spec.name)
        parent = log_evaluation(
            spec=spec,
            command=command,
            evaluation=evaluation,
            predictions=result.predictions,
            fitted=result.fitted,
            calibrators=result.calibrators,
            data_fingerprint=data.info.get("fingerprint", ""),
            timings=result.timings,
        )
        print(f"MLflow: run {parent.run_id} in experiment {spec.name!r} at {tracking_uri()} (mlflow ui to browse)")
    return {"inputs": inputs, "result": result, "evaluation": evaluation, "parent": parent}


def _check_outputs(args: argparse.Namespace) -> None:
    from forecaster.errors import UsageError

    if args.predictions and not args.predictions.name.lower().endswith((".parquet", ".csv", ".csv.gz")):
        raise UsageError(f"--predictions must name a .parquet or .csv file; got {args.predictions}")
    if args.json and args.json.suffix.lower() != ".json":
        raise UsageError(f"--json must name a .json file; got {args.json}")
