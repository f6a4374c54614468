"""``forecaster train``: the walk-forward evaluation of ``evaluate``, then the best model registered in MLflow.

The best model is the one with the lowest mean QLIKE over the horizons (the oracle excluded: it reads the
simulator's latent state). What is registered is its last fold's fit (the most recent training window) with that
fold's conformal calibration and the feature pipeline, as one pyfunc (DESIGN section 8): the registered model of
the spec gets the alias ``challenger``, and ``champion`` as well when it has none yet.
"""

from __future__ import annotations

import argparse

from forecaster.commands.evaluate import add_output_arguments
from forecaster.commands._training import add_data_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_output_arguments(parser)
    parser.add_argument("--no-register", action="store_true", help="evaluate and log, but register no model")


def run(args: argparse.Namespace) -> int:
    from forecaster.commands.evaluate import run_walk_forward
    from forecaster.errors import UsageError

    if args.no_track and not args.no_register:
        raise UsageError("--no-track leaves nothing to register in: add --no-register, or drop --no-track")
    out = run_walk_forward(args, command="train")
    if args.no_register:
        return 0
    from models.pyfunc import build_bundle
    from training.tracking import best_model_name, register_best, registered_model_name

    inputs, result, evaluation = out["inputs"], out["result"], out["evaluation"]
    best = best_model_name(evaluation, fitted=result.fitted)
    bundle = build_bundle(
        result.fitted[best],
        inputs.feature_spec,
        result.calibrators.get(best),
        market=inputs.market,
        feature_columns=list(inputs.data.features.columns),
        name=best,
        bar_label=inputs.spec.get("data.bar_label", "end"),
    )
    version = register_best(run_id=out["parent"].run_id, spec_name=inputs.spec.name, model_name=best, bundle=bundle)
    name = registered_model_name(inputs.spec.name)
    print(f"registered {best!r} as {name} version {version} (alias challenger; champion if there was none)")
    print(f'load it: mlflow.pyfunc.load_model("models:/{name}@challenger")')
    return 0
