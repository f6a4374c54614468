"""MLflow tracking and registry (DESIGN section 8): one experiment per spec, a parent run per command, a nested
child run per model, and the registered pyfunc with its ``champion`` / ``challenger`` aliases.

Where things go
---------------
- Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<cwd>/mlflow.db`` (:func:`tracking_uri`).
  With a local SQLite store, a new experiment keeps its files under ``mlruns/<experiment>/`` next to the database
  file (``./mlruns/sim_intraday`` by default), never wherever MLflow's own default would put them.
- Experiment: named after the spec (``sim_intraday``); created on first use (:func:`setup_tracking`).
- Registered model: ``drift-forecaster-<spec name>`` (:func:`registered_model_name`), e.g.
  ``drift-forecaster-sim_intraday``; aliases ``challenger`` (the latest registration), ``champion`` (set here only
  when none exists yet; the retrain gate moves it) and ``previous_champion`` (kept by the retrain gate).

What :func:`log_evaluation` logs
--------------------------------
Parent run (``<command> <spec>``, tag ``run_type=command``):

- params: the whole resolved spec, flattened (:func:`flatten_spec`);
- tags: ``data_fingerprint``, ``git_commit`` (``unknown`` outside a git checkout), ``git_dirty``, ``command``,
  ``spec``, ``spec_path``, ``models``, plus ``extra_tags``;
- artifacts: ``spec/spec.yaml`` (the resolved spec), ``predictions/predictions.parquet`` (every model),
  ``evaluation/evaluation.json`` (DESIGN section 11), ``evaluation/comparison.csv`` and ``.md`` (one row per
  model), ``evaluation/timings.csv`` (when given), ``plots/qlike_by_horizon.png``;
- inputs: the predictions as a dataset ``<spec>-predictions`` (digest: a hash of its content, tag
  ``data_fingerprint``), and the feature table as ``<spec>-features`` (digest: the data fingerprint) when given.

Child run per model (run name = the model's name, tag ``run_type=model``):

- params: the model's ``get_params()``; tags ``model_name``, ``model_family`` (the Forecaster's ``family``),
  ``data_fingerprint``, ``git_commit``, ``command``, ``spec``;
- metrics, the same names for every model (``training.metrics.mlflow_metric_names``): ``{metric}/rv/h{h}``
  (``qlike``, ``mse``, ``mz_r2``, ``pinball``, ``coverage90``, ``width90``, ``coverage50``, ``n``), ``dm_stat`` and
  ``dm_p/rv/h{h}`` (against HAR), ``oracle_gap/rv/h{h}``, ``{logloss,brier,auc_stressed}/regime/h{h}``; over time,
  with ``step`` = the fold number: ``fold_qlike/rv/h{h}`` and, from the timings, ``fit_seconds`` and
  ``predict_seconds``;
- artifacts: ``predictions/predictions.parquet`` (its rows), ``feature_importance/feature_importance.csv`` (when
  the model has ``feature_importance()``), ``calibration/calibration.json`` (its conformal calibrator),
  ``plots/forecast_vs_realized_h{h}.png``, ``plots/calibration.png``, ``plots/regime_h{h}.png`` (when the
  predictions carry ``realized_class``);
- inputs: the same predictions dataset as the parent.

MLflow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import yaml

from forecaster.config import Spec
from forecaster.errors import UsageError

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
REGISTERED_PREFIX = "drift-forecaster-"
CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous_champion"
MODEL_ARTIFACT = "model"  # log_model(name=...) of the registered pyfunc
# MLflow's limits (mlflow.utils.validation): a param value holds at most 6,000 characters, a key 250.
PARAM_VALUE_LIMIT = 6000
KEY_LIMIT = 250
TRUNCATED = "…[truncated: the full value is in spec/spec.yaml]"
RUN_TYPE_COMMAND, RUN_TYPE_MODEL = "command", "model"


# ---------------------------------------------------------------------------------------------------- setup


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` in the current directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{(Path.cwd() / DEFAULT_DB).as_posix()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative paths from the current directory); None for any other
    store and for an in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``)."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(uri).path)
    if path in ("", "/", "/:memory:"):
        return None
    # sqlite:///rel.db → path "/rel.db" (relative); sqlite:////abs.db → "//abs.db" (absolute)
    if path.startswith("//"):
        return Path(path[1:])
    return Path.cwd() / path.lstrip("/")


def artifact_root(uri: str, experiment: str) -> str | None:
    """Where a new experiment's files go: ``mlruns/<experiment>/`` next to a local SQLite file (characters other
    than letters, digits, ``._-`` become ``_``); None (the server's choice) for any other store."""
    db = sqlite_path(uri)
    if db is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment) or "experiment"
    return (db.resolve().parent / ARTIFACTS_DIR / folder).as_uri()


def registered_model_name(spec_name: str) -> str:
    """The registered model of a spec: ``drift-forecaster-<spec name>``."""
    return f"{REGISTERED_PREFIX}{spec_name}"


def setup_tracking(spec_name: str) -> str:
    """Point MLflow at :func:`tracking_uri` and return the id of the spec's experiment (created if missing).

    Raises UsageError when an experiment of that name exists but was deleted (restore it, or delete it for good).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(spec_name)
    if experiment is None:
        try:
            experiment_id = mlflow.create_experiment(spec_name, artifact_location=artifact_root(uri, spec_name))
        except MlflowException:  # created meanwhile by another process
            experiment = mlflow.get_experiment_by_name(spec_name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
        else:
            log.info("MLflow experiment %r created (id %s) in %s", spec_name, experiment_id, uri)
            return experiment_id
    if experiment.lifecycle_stage != "active":
        raise UsageError(
            f"the MLflow experiment {spec_name!r} in {uri} was deleted. Fix: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or remove it for good "
            "(mlflow gc), then run again"
        )
    return experiment.experiment_id


# ---------------------------------------------------------------------------------------------------- params


def _text(value: Any) -> str:
    """A param value as text: strings as they are, everything else as JSON (lists, numbers, true/false/null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and not value:
        return "{}"
    return json.dumps(value, default=str, ensure_ascii=False)


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested mappings (``forecaster.config.flatten``), keeping an empty mapping as a value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, dotted))
        else:
            out[dotted] = value
    return out


def flatten_spec(values: Mapping[str, Any]) -> dict[str, str]:
    """The spec as MLflow params: dotted keys (``simulator.regimes.ann_vol``), values as text.

    Rule: strings stay as they are, everything else is JSON (``[0.35, 0.6, 1.2]``, ``true``, ``null``); an empty
    section is ``{}``. A value longer than MLflow's 6,000 characters is cut and ends with :data:`TRUNCATED` (the
    full spec is always logged as ``spec/spec.yaml``). A key longer than 250 characters is a UsageError.
    """
    out: dict[str, str] = {}
    for key, value in _flat(values).items():
        if len(key) > KEY_LIMIT:
            raise UsageError(
                f"spec key {key[:60]!r}... is {len(key)} characters long; MLflow params allow {KEY_LIMIT}. "
                "Fix: shorten the spec's section or key names"
            )
        text = _text(value)
        if len(text) > PARAM_VALUE_LIMIT:
            text = text[: PARAM_VALUE_LIMIT - len(TRUNCATED)] + TRUNCATED
        out[key] = text
    return out


def model_params(model: Any) -> dict[str, str]:
    """A model's ``get_params()`` as MLflow params (same text rule as :func:`flatten_spec`)."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return flatten_spec({str(k): v for k, v in params.items()})


# ---------------------------------------------------------------------------------------------------- logging


@dataclass(frozen=True)
class ParentRun:
    """What :func:`log_evaluation` logged: the parent run, its experiment, and the child run of each model."""

    run_id: str
    experiment_id: str
    run_name: str
    children: dict[str, str] = field(default_factory=dict)


def git_commit() -> tuple[str, str]:
    """(commit, dirty) of the code: ``git rev-parse HEAD``, or ``unknown`` outside a git checkout."""
    from forecaster.provenance import code_version

    version = code_version()
    commit = version.get("git_commit") or "unknown"
    dirty = version.get("git_dirty")
    return commit, "unknown" if dirty is None else str(bool(dirty)).lower()


def predictions_digest(predictions: pd.DataFrame) -> str:
    """A 16-hex-digit hash of a predictions frame's content (values, columns, order)."""
    import hashlib

    digest = hashlib.sha256(",".join(map(str, predictions.columns)).encode())
    digest.update(pd.util.hash_pandas_object(predictions, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _model_names(evaluation: Mapping[str, Any], predictions: pd.DataFrame, fitted: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for name in [*map(str, pd.unique(predictions["model"])), *evaluation.get("models", {}), *fitted]:
        if name not in names:
            names.append(name)
    return names


def log_evaluation(
    *,
    spec: Spec,
    command: str,
    evaluation: Mapping[str, Any],
    predictions: pd.DataFrame,
    fitted: Mapping[str, Any],
    calibrators: Mapping[str, Any] | None,
    data_fingerprint: str,
    timings: pd.DataFrame | Mapping[str, float] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    plots: bool = True,
    features: pd.DataFrame | None = None,
) -> ParentRun:
    """Log one command's evaluation: a parent run and a nested child run per model (module docstring: what goes
    where).

    Parameters
    ----------
    spec
        The resolved spec (flags applied): its name picks the experiment, its values are the params.
    command
        The command that produced the evaluation (``train``, ``evaluate``...): run name ``<command> <spec>``.
    evaluation
        ``training.metrics.evaluate_predictions``'s report (DESIGN section 11).
    predictions
        The walk-forward predictions: forecast columns plus ``realized`` (and ``realized_class``, ``fold``).
    fitted
        name → fitted Forecaster (the last fold's): family, params, feature importance.
    calibrators
        name → fitted ConformalCalibrator (``to_dict()``), or None / empty without calibration.
    data_fingerprint
        The hash of the inputs (``ModelData.info["fingerprint"]``).
    timings
        The walk-forward timings (one row per fold and model: ``fit_seconds``, ``predict_seconds``), logged per
        model with step = fold; or a mapping ``{stage: seconds}`` logged on the parent as ``seconds/<stage>``.
    extra_tags
        More tags for the parent run.
    plots
        False skips the PNG plots (faster).
    features
        The feature table, logged as the dataset ``<spec>-features`` with the data fingerprint as digest.

    Returns
    -------
    ParentRun
        The parent run id, the experiment id and ``children``: model name → child run id.
    """
    import mlflow

    missing = [c for c in ("timestamp", "horizon", "model", "var") if c not in predictions.columns]
    if missing:
        raise UsageError(f"the predictions frame lacks {missing}: pass the walk-forward predictions")
    if not data_fingerprint:
        raise UsageError("log_evaluation needs the data fingerprint (ModelData.info['fingerprint']) to tag the runs")
    experiment_id = setup_tracking(spec.name)
    commit, dirty = git_commit()
    names = _model_names(evaluation, predictions, fitted)
    common = {
        "data_fingerprint": data_fingerprint,
        "git_commit": commit,
        "command": command,
        "spec": spec.name,
    }
    parent_tags = {
        **common,
        "run_type": RUN_TYPE_COMMAND,
        "git_dirty": dirty,
        "spec_path": spec.path,
        "models": ",".join(names),
        **({"mlflow.source.git.commit": commit} if commit != "unknown" else {}),
        **{str(k): str(v) for k, v in (extra_tags or {}).items()},
    }
    metrics_by_model = _metric_names(evaluation)
    digest = predictions_digest(predictions)
    dataset = mlflow.data.from_pandas(predictions, name=f"{spec.name}-predictions", digest=digest)
    run_name = f"{command} {spec.name}"
    children: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="forecaster-mlflow-") as tmp,
        mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, nested=mlflow.active_run() is not None
        ) as parent,
    ):
        folder = Path(tmp)
        mlflow.set_tags(parent_tags)
        mlflow.log_params(flatten_spec(spec.values))
        mlflow.log_input(dataset, context="evaluation", tags={"data_fingerprint": data_fingerprint})
        if features is not None:
            table = mlflow.data.from_pandas(features, name=f"{spec.name}-features", digest=data_fingerprint[:36])
            mlflow.log_input(table, context="training")
        _log_parent_artifacts(folder / "parent", spec, evaluation, predictions, timings, plots)
        for name in names:
            rows = predictions[predictions["model"] == name]
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True) as child:
                model = fitted.get(name)
                mlflow.set_tags(
                    {
                        **common,
                        "run_type": RUN_TYPE_MODEL,
                        "model_name": name,
                        "model_family": str(getattr(model, "family", "unknown")),
                    }
                )
                if model is not None:
                    mlflow.log_params(model_params(model))
                mlflow.log_metrics(metrics_by_model.get(name, {}))
                _log_fold_metrics(rows, timings, name)
                mlflow.log_input(dataset, context="evaluation", tags={"data_fingerprint": data_fingerprint})
                calibrator = (calibrators or {}).get(name)
                _log_model_artifacts(folder / f"model-{len(children)}", name, rows, model, calibrator, plots)
                children[name] = child.info.run_id
    log.info(
        "MLflow: run %r (%s) with %d model runs in experiment %s",
        run_name,
        parent.info.run_id,
        len(children),
        experiment_id,
    )
    return ParentRun(parent.info.run_id, experiment_id, run_name, children)


def _metric_names(evaluation: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    from training.metrics import mlflow_metric_names

    return mlflow_metric_names(evaluation)


def _log_parent_artifacts(
    folder: Path,
    spec: Spec,
    evaluation: Mapping[str, Any],
    predictions: pd.DataFrame,
    timings: pd.DataFrame | Mapping[str, float] | None,
    plots: bool,
) -> None:
    import mlflow

    from training.metrics import metrics_table

    folder.mkdir(parents=True)
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.values, sort_keys=False, allow_unicode=True))
    mlflow.log_artifact(str(spec_file), "spec")
    pred_file = folder / "predictions.parquet"
    predictions.to_parquet(pred_file, index=False)
    mlflow.log_artifact(str(pred_file), "predictions")
    eval_file = folder / "evaluation.json"
    eval_file.write_text(json.dumps(evaluation, indent=2, allow_nan=False))
    mlflow.log_artifact(str(eval_file), "evaluation")
    if evaluation.get("models"):
        table = metrics_table(evaluation)
        table.to_csv(folder / "comparison.csv")
        (folder / "comparison.md").write_text(markdown_table(table.reset_index(), float_format="{:.6g}") + "\n")
        mlflow.log_artifact(str(folder / "comparison.csv"), "evaluation")
        mlflow.log_artifact(str(folder / "comparison.md"), "evaluation")
    if isinstance(timings, pd.DataFrame):
        timings.to_csv(folder / "timings.csv", index=False)
        mlflow.log_artifact(str(folder / "timings.csv"), "evaluation")
    elif timings:
        mlflow.log_metrics({f"seconds/{stage}": float(seconds) for stage, seconds in timings.items()})
    if plots and evaluation.get("models"):
        from training import plots as charts

        mlflow.log_artifact(
            str(charts.save(charts.qlike_by_horizon(evaluation), folder / "qlike_by_horizon.png")), "plots"
        )


def _log_fold_metrics(rows: pd.DataFrame, timings: pd.DataFrame | Mapping[str, float] | None, name: str) -> None:
    """Per-fold QLIKE (``fold_qlike/rv/h{h}``) and timings, with step = the fold number."""
    import mlflow

    from training.metrics import qlike

    if {"fold", "realized"}.issubset(rows.columns):
        known = rows[np.isfinite(rows["realized"].to_numpy(dtype=float))]
        for (h, fold), group in known.groupby(["horizon", "fold"], sort=True):
            loss = qlike(group["realized"].to_numpy(dtype=float), group["var"].to_numpy(dtype=float))
            mlflow.log_metric(f"fold_qlike/rv/h{int(h)}", loss, step=int(fold))
    if isinstance(timings, pd.DataFrame) and {"model", "fold"}.issubset(timings.columns):
        for record in timings[timings["model"] == name].to_dict("records"):
            for key in ("fit_seconds", "predict_seconds"):
                value = record.get(key)
                if value is not None and math.isfinite(float(value)):
                    mlflow.log_metric(key, float(value), step=int(record["fold"]))


def _log_model_artifacts(folder: Path, name: str, rows: pd.DataFrame, model: Any, calibrator: Any, plots: bool) -> None:
    import mlflow

    folder.mkdir(parents=True)
    pred_file = folder / "predictions.parquet"
    rows.to_parquet(pred_file, index=False)
    mlflow.log_artifact(str(pred_file), "predictions")
    if model is not None and callable(getattr(model, "feature_importance", None)):
        importance = model.feature_importance()
        importance.to_csv(folder / "feature_importance.csv", index=False)
        mlflow.log_artifact(str(folder / "feature_importance.csv"), "feature_importance")
    if calibrator is not None and callable(getattr(calibrator, "to_dict", None)):
        (folder / "calibration.json").write_text(json.dumps(calibrator.to_dict(), indent=2, allow_nan=False))
        mlflow.log_artifact(str(folder / "calibration.json"), "calibration")
    if not plots or rows.empty:
        return
    from training import plots as charts

    written = []
    horizons = sorted(int(h) for h in rows["horizon"].unique())
    if "realized" in rows.columns:
        for h in horizons:
            figure = charts.forecast_vs_realized(rows, name, h)
            written.append(charts.save(figure, folder / f"forecast_vs_realized_h{h}.png"))
        if np.isfinite(rows["realized"].to_numpy(dtype=float)).any():
            written.append(charts.save(charts.calibration(rows, name), folder / "calibration.png"))
    else:
        log.warning("%s: the predictions have no realized column, so no forecast-vs-realized or calibration plot", name)
    if "realized_class" in rows.columns:
        for h in horizons:
            written.append(charts.save(charts.regime_timeline(rows, name, h), folder / f"regime_h{h}.png"))
    else:
        log.warning("%s: the predictions have no realized_class column, so no regime timeline plot", name)
    for path in written:
        mlflow.log_artifact(str(path), "plots")


def markdown_table(frame: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (no index); NaN shows as an empty cell."""

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return "" if not math.isfinite(float(value)) else float_format.format(float(value))
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# ---------------------------------------------------------------------------------------------------- registry


def best_model_name(
    evaluation: Mapping[str, Any],
    *,
    fitted: Mapping[str, Any] | None = None,
    metric: str = "qlike",
    exclude_families: Sequence[str] = ("oracle",),
) -> str:
    """The model with the lowest mean ``metric`` over the evaluation's horizons (a value at every horizon needed),
    leaving out the families in ``exclude_families`` (the oracle reads the simulator's latent state: it cannot be
    served). A model's family is ``fitted[name].family``; without ``fitted``, its name.
    """
    scores: dict[str, float] = {}
    for name, per_h in (evaluation.get("models") or {}).items():
        family = getattr((fitted or {}).get(name), "family", name)
        if family in exclude_families:
            continue
        values = [(entry or {}).get(metric) for entry in per_h.values()]
        if values and all(v is not None for v in values):
            scores[name] = float(np.mean(values))
    if not scores:
        raise UsageError(
            f"no model has a {metric} at every horizon (leaving out the families {list(exclude_families)}): nothing "
            "to register; see the evaluation's warnings"
        )
    return min(scores, key=scores.__getitem__)


def _child_run(client: Any, run_id: str, model_name: str) -> str | None:
    """The child run of ``model_name`` under the parent ``run_id``, or None."""
    parent = client.get_run(run_id)
    found = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.model_name = '{model_name}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def register_best(
    *, run_id: str, spec_name: str, model_name: str, bundle: Any, extra_tags: Mapping[str, str] | None = None
) -> int:
    """Log ``bundle`` (``models.pyfunc.Bundle``) as a pyfunc under ``model_name``'s child run of the parent
    ``run_id`` (under the parent itself when no such child exists), register it as a new version of
    :func:`registered_model_name` (``drift-forecaster-<spec>``), point ``challenger`` at it, and ``champion`` too
    when the registered model has no champion yet. Returns the version number.

    Aliases move only after the version is READY: a failed registration raises and leaves every alias where it was.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    bundled = bundle.config.get("model_name")
    if bundled is not None and bundled != model_name:
        raise UsageError(
            f"the bundle holds model {bundled!r} but model_name is {model_name!r}: build the bundle of that model"
        )
    setup_tracking(spec_name)
    client = MlflowClient()
    try:
        child = _child_run(client, run_id, model_name)
    except MlflowException as exc:
        raise UsageError(f"run {run_id!r} is not in the tracking store {tracking_uri()}: {exc.message}") from None
    target = child or run_id
    if child is None:
        log.warning(
            "run %s has no child run of model %r: the pyfunc is logged under the parent run", run_id, model_name
        )
    name = registered_model_name(spec_name)
    with tempfile.TemporaryDirectory(prefix="forecaster-bundle-") as tmp:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == target:
            info = mlflow.pyfunc.log_model(name=MODEL_ARTIFACT, **bundle.log_model_kwargs(tmp))
        else:
            with mlflow.start_run(run_id=target, nested=active is not None):
                info = mlflow.pyfunc.log_model(name=MODEL_ARTIFACT, **bundle.log_model_kwargs(tmp))
    run_tags = client.get_run(target).data.tags
    tags = {
        "model_name": model_name,
        "model_family": str(bundle.config.get("model_family", "unknown")),
        "spec": spec_name,
        "run_id": target,
        "parent_run_id": run_id,
        "min_rows": str(bundle.config.get("min_rows")),
        "data_fingerprint": run_tags.get("data_fingerprint", "unknown"),
        "git_commit": run_tags.get("git_commit", "unknown"),
        **(extra_tags or {}),  # set with the version itself: no alias can see it without them
    }
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    if not client.get_registered_model(name).description:
        client.update_registered_model(
            name,
            description=(
                f"drift-forecaster pyfunc of spec {spec_name!r}: takes recent bars (timestamp, open, high, low, "
                "close, volume, optional iv), returns the forecast frame at the last bar (one row per horizon)."
            ),
        )
    version = _await_ready(client, name, version.version)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    if CHAMPION not in client.get_registered_model(name).aliases:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        log.info("%s version %s registered: challenger and champion (the first)", name, version.version)
    else:
        log.info("%s version %s registered as challenger", name, version.version)
    return int(version.version)


def _await_ready(client: Any, name: str, version: str, timeout_s: float = 300.0) -> Any:
    """The model version once READY; raises when registration fails or times out (no alias is touched)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        current = client.get_model_version(name, version)
        if current.status == "READY":
            return current
        if current.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise UsageError(
                f"registration of {name} version {version} did not complete (status {current.status}: "
                f"{current.status_message or 'no message'}); no alias was moved. Fix the tracking store and register "
                "again"
            )
        time.sleep(0.5)
