"""``forecaster train``: the walk-forward evaluation of ``evaluate``, then the best model registered in MLflow.

The registered model is the best one that can be served: models are ranked by mean QLIKE over the horizons, and
the first whose inputs a request can carry (bars and an IV; not the oracle, not order-flow or chain features) is
bundled. What is registered is its last fold's fit (the most recent training window) with that fold's conformal
calibration and the feature pipeline, as one pyfunc (DESIGN section 8): the registered model of the spec gets the
alias ``challenger``, and ``champion`` as well when it has none yet. Skipped better models are listed, with why.
"""

from __future__ import annotations

import argparse

from forecaster.commands._training import add_data_arguments
from forecaster.commands.evaluate import add_output_arguments


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
    from training.tracking import register_best, registered_model_name

    inputs, result, evaluation = out["inputs"], out["result"], out["evaluation"]
    bundle, best = None, None
    for name in ranked_models(evaluation):
        model = result.fitted[name]
        columns = model.input_features()
        try:
            bundle = build_bundle(
                model,
                inputs.feature_spec,
                result.calibrators.get(name),
                market=inputs.market,
                feature_columns=list(inputs.data.features.columns) if columns is None else columns,
                name=name,
                bar_label=inputs.spec.get("data.bar_label", "end"),
                data=inputs.data,
            )
        except UsageError as why:
            print(f"not registered: {name!r} cannot be served from bars and an IV ({str(why).split('. Fix')[0]})")
            continue
        best = name
        break
    if bundle is None:
        raise UsageError("no evaluated model can be served from bars and an IV: add one (e.g. har) to --models")
    version = register_best(run_id=out["parent"].run_id, spec_name=inputs.spec.name, model_name=best, bundle=bundle)
    name = registered_model_name(inputs.spec.name)
    print(f"registered {best!r} as {name} version {version} (alias challenger; champion if there was none)")
    print(f'load it: mlflow.pyfunc.load_model("models:/{name}@challenger")')
    return 0


def ranked_models(evaluation: dict) -> list[str]:
    """Model names by mean QLIKE over the horizons, best first (models lacking a value at a horizon last)."""
    import math

    scores = {}
    for name, per_h in (evaluation.get("models") or {}).items():
        values = [(entry or {}).get("qlike") for entry in per_h.values()]
        scores[name] = sum(values) / len(values) if values and None not in values else math.inf
    return sorted(scores, key=lambda n: scores[n])
