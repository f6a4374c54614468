"""Scheduled retraining (DESIGN section 8): train a challenger on the recent window, evaluate it and the champion
on the same holdout, promote only through the gate.

One run, for a spec and a window ending at ``as_of``:

1. **Lock**: an exclusive ``flock`` on ``<lock dir>/retrain-<spec>.lock`` (:func:`spec_lock`); a second run of the
   same spec exits with :class:`RetrainBusy` naming the holder. The kernel drops the lock when the holder dies, so
   a killed run never blocks the next one.
2. **Idempotency**: the window is a key (spec, model, first and last bar, the data's fingerprint); a finished run
   with that key (tag ``retrain_window``, ``retrain_status = done``) makes this one a no-op ("skipped").
3. **Challenger**: the spec's model fitted as one walk-forward fold whose test block is the holdout (the window's
   last ``holdout_days``, purged by h_max + embargo like every fold), with its conformal calibration.
4. **Champion**: the registered ``@champion`` bundle's own feature pipeline, model and calibrator run on the same
   market; its forecasts at the holdout's origins are what serving would have answered.
5. **Gate** (:class:`Gate`): finite forecasts; QLIKE better by ``min_qlike_improvement`` (relative) at every key
   horizon; 90% interval coverage inside ``coverage90``; the serving path's forecast latency under
   ``max_latency_ms``. With no champion yet, the absolute checks alone.
6. **Promotion**: only a passing challenger is registered and the aliases move, in an order that leaves them
   valid at every instant: the version is registered and READY (``register_best``), then ``previous_champion``
   takes the old champion, then ``champion`` the new version. A crash before the last step leaves ``champion`` on
   the evaluated version it was on.

Every decision, with its reason and both models' metrics, is logged to an MLflow run (``run_type = retrain``) and
returned as DESIGN section 11's ``retrain`` JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster.errors import ConfigError, ForecasterError, UsageError

log = logging.getLogger(__name__)

LATENCY_REPEATS = 7


class RetrainBusy(ForecasterError):
    """Another retrain of the same spec holds the lock."""


@dataclass(frozen=True)
class Gate:
    """When a challenger may replace the champion (spec ``retrain.gate``)."""

    key_horizons: tuple[int, ...] | None = None  # None: every horizon of the spec
    min_qlike_improvement: float = 0.0  # relative: challenger QLIKE ≤ (1 − this) × champion's, each key horizon
    coverage90: tuple[float, float] = (0.8, 0.97)  # the challenger's 90% interval coverage on the holdout
    max_latency_ms: float = 250.0  # the challenger's serving forecast, median of a few, in ms


@dataclass(frozen=True)
class DriftConfig:
    """When the data counts as drifted (spec ``retrain.drift``; :mod:`training.drift`)."""

    recent_days: float = 1.0  # the window's last days, against the rest of the window
    psi_threshold: float = 1.0  # on the median PSI over the features
    bins: int = 10


@dataclass(frozen=True)
class RetrainConfig:
    """The spec's ``retrain`` section."""

    model: str | None = None  # a name of the spec's models; None: the champion's, else the spec's first
    window_days: float = 20.0
    holdout_days: float = 3.0
    gate: Gate = field(default_factory=Gate)
    drift: DriftConfig = field(default_factory=DriftConfig)


def retrain_config_from_spec(values: Mapping[str, Any], *, where: str) -> RetrainConfig:
    """The ``retrain`` section of a spec, checked (ConfigError names the key)."""
    section = dict(values.get("retrain") or {})
    gate_values = dict(section.pop("gate", None) or {})
    drift_values = dict(section.pop("drift", None) or {})
    unknown = sorted(set(drift_values) - {f.name for f in dataclasses.fields(DriftConfig)})
    if unknown:
        raise ConfigError(
            where, f"retrain.drift.{unknown[0]}", "unknown key; drift takes recent_days, psi_threshold, bins"
        )
    bins = drift_values.get("bins", 10)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ConfigError(where, "retrain.drift.bins", f"must be a whole number ≥ 2; got {bins!r}")
    drift = DriftConfig(
        recent_days=_positive(drift_values.get("recent_days", 1.0), where, "retrain.drift.recent_days"),
        psi_threshold=_positive(drift_values.get("psi_threshold", 1.0), where, "retrain.drift.psi_threshold"),
        bins=bins,
    )
    known = {"model", "window_days", "holdout_days"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(where, f"retrain.{unknown[0]}", f"unknown key; the retrain section takes {sorted(known)}")
    unknown = sorted(set(gate_values) - {f.name for f in dataclasses.fields(Gate)})
    if unknown:
        raise ConfigError(
            where,
            f"retrain.gate.{unknown[0]}",
            f"unknown key; the gate takes {[f.name for f in dataclasses.fields(Gate)]}",
        )
    window = _positive(section.get("window_days", 20.0), where, "retrain.window_days")
    holdout = _positive(section.get("holdout_days", 3.0), where, "retrain.holdout_days")
    if holdout >= window:
        raise ConfigError(
            where, "retrain.holdout_days", f"must be shorter than window_days ({window:g}); got {holdout:g}"
        )
    keys = gate_values.get("key_horizons")
    band = gate_values.get("coverage90", (0.8, 0.97))
    if not (isinstance(band, list | tuple) and len(band) == 2 and 0 <= float(band[0]) < float(band[1]) <= 1):
        raise ConfigError(
            where, "retrain.gate.coverage90", f"must be [low, high] with 0 ≤ low < high ≤ 1; got {band!r}"
        )
    gate = Gate(
        key_horizons=None if keys is None else tuple(int(h) for h in keys),
        min_qlike_improvement=float(gate_values.get("min_qlike_improvement", 0.0)),
        coverage90=(float(band[0]), float(band[1])),
        max_latency_ms=_positive(gate_values.get("max_latency_ms", 250.0), where, "retrain.gate.max_latency_ms"),
    )
    if not 0 <= gate.min_qlike_improvement < 1:
        raise ConfigError(
            where,
            "retrain.gate.min_qlike_improvement",
            f"must be in [0, 1), e.g. 0.01; got {gate.min_qlike_improvement}",
        )
    model = section.get("model")
    if drift.recent_days >= window:
        raise ConfigError(where, "retrain.drift.recent_days", f"must be shorter than window_days ({window:g})")
    return RetrainConfig(
        model=None if model is None else str(model), window_days=window, holdout_days=holdout, gate=gate, drift=drift
    )


def _positive(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(where, key, f"must be a number > 0; got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------------- the lock


def lock_dir() -> Path:
    """Where retrain locks live: ``FORECASTER_LOCK_DIR``, else beside a SQLite tracking store, else the temp dir."""
    from training.tracking import sqlite_path, tracking_uri

    chosen = os.environ.get("FORECASTER_LOCK_DIR")
    if chosen:
        return Path(chosen)
    db = sqlite_path(tracking_uri())
    return db.parent if db is not None else Path(tempfile.gettempdir())


@contextlib.contextmanager
def spec_lock(spec_name: str, folder: Path | None = None) -> Iterator[Path]:
    """Hold ``retrain-<spec>.lock`` exclusively for the block; :class:`RetrainBusy` when another process holds it."""
    folder = folder or lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"retrain-{spec_name}.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            raise RetrainBusy(
                f"another retrain of spec {spec_name!r} is running ({holder}; lock {path}): this one exits without "
                "training. Wait for it, or schedule runs further apart"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing releases the flock


# ---------------------------------------------------------------------------------------------------- the run


@dataclass
class Scores:
    """One model on the holdout: per horizon ``{"qlike", "coverage90", "n"}``, finiteness, serving latency."""

    per_h: dict[int, dict[str, float | int | None]]
    finite: bool
    latency_ms: float | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"h{h}": dict(v) for h, v in self.per_h.items()}
        out["finite"] = self.finite
        out["latency_ms"] = self.latency_ms
        return out


@dataclass
class RetrainResult:
    decision: str  # promoted | kept | skipped
    reason: str
    champion_version: str | None
    challenger_version: str | None
    metrics: dict[str, Any]
    window: dict[str, Any]
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "metrics": self.metrics,
            "window": self.window,
            "run_id": self.run_id,
        }


def scores(frame: pd.DataFrame, horizons: list[int]) -> dict[int, dict[str, float | int | None]]:
    """QLIKE and 90% coverage per horizon of a forecast frame with ``realized`` (rows with a known target)."""
    from training.metrics import coverage, qlike

    out: dict[int, dict[str, float | int | None]] = {}
    for h in horizons:
        rows = frame[(frame["horizon"] == h) & np.isfinite(frame["realized"].to_numpy(dtype=float))]
        rv, var = rows["realized"].to_numpy(float), rows["var"].to_numpy(float)
        ok = np.isfinite(var) & (var > 0)
        out[h] = {
            "qlike": float(qlike(rv[ok], var[ok])) if ok.any() else None,
            "coverage90": float(coverage(rv, rows["q05"].to_numpy(float), rows["q95"].to_numpy(float)))
            if len(rows)
            else None,
            "n": len(rows),
        }
    return out


def finite_forecasts(frame: pd.DataFrame) -> bool:
    from models.base import QUANTILE_COLUMNS, REGIME_COLUMNS

    values = frame[["var", *QUANTILE_COLUMNS, *REGIME_COLUMNS]].to_numpy(dtype=float)
    return bool(np.isfinite(values).all())


def judge(gate: Gate, challenger: Scores, champion: Scores | None, horizons: list[int]) -> tuple[bool, str]:
    """(promote?, why): the gate's checks in order; the first failing one is the reason."""
    keys = list(gate.key_horizons or horizons)
    missing = [h for h in keys if h not in challenger.per_h]
    if missing:
        return False, f"the key horizons {missing} are not forecast by the challenger (it has {horizons})"
    if not challenger.finite:
        return False, "the challenger forecasts NaN or inf on the holdout"
    low, high = gate.coverage90
    for h in keys:
        cov = challenger.per_h[h]["coverage90"]
        if cov is None or not low <= float(cov) <= high:
            return False, f"the challenger's 90% coverage at h{h} is {cov}, outside [{low:g}, {high:g}]"
    if challenger.latency_ms is None or challenger.latency_ms > gate.max_latency_ms:
        return False, f"the challenger's forecast takes {challenger.latency_ms} ms, over {gate.max_latency_ms:g} ms"
    if champion is None:
        return True, "no champion yet: the challenger passes the absolute checks (finite, coverage, latency)"
    parts = []
    for h in keys:
        new, old = challenger.per_h[h]["qlike"], (champion.per_h.get(h) or {}).get("qlike")
        if new is None:
            return False, f"the challenger has no QLIKE at h{h}"
        if old is None or not math.isfinite(float(old)):
            parts.append(f"h{h}: champion has no finite QLIKE")
            continue
        bound = (1.0 - gate.min_qlike_improvement) * float(old)
        if float(new) > bound:
            return False, (
                f"QLIKE at h{h} is {float(new):.5g} against the champion's {float(old):.5g}: not better by "
                f"{gate.min_qlike_improvement:.1%} (needs ≤ {bound:.5g})"
            )
        parts.append(f"h{h} {float(new):.5g} vs {float(old):.5g}")
    return True, "QLIKE better at every key horizon (" + "; ".join(parts) + ")"


def serving_latency_ms(bundle: Any, market: Any, min_rows: int, bar_label: str, iv_units: str) -> float:
    """Median wall time of the bundle's serving forecast on the market's last ``min_rows`` bars, in ms."""
    from models.pyfunc import request_frame

    frame = request_frame(market, min_rows, bar_label=bar_label, iv_units=iv_units, with_iv=market.iv is not None)
    bundle.forecast(frame)  # warm
    times = []
    for _ in range(LATENCY_REPEATS):
        began = time.perf_counter()
        bundle.forecast(frame)
        times.append((time.perf_counter() - began) * 1000.0)
    return float(np.median(times))


def window_key(spec_name: str, model: str, market: Any, fingerprint: str) -> str:
    return f"{spec_name}|{model}|{market.index[0].isoformat()}|{market.index[-1].isoformat()}|{fingerprint}"


def done_run(client: Any, experiment_id: str, key: str) -> Any | None:
    """The finished retrain run of this window, if any."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.retrain_window = '{key}' and tags.retrain_status = 'done'",
        max_results=1,
    )
    return found[0] if found else None


@dataclass
class Window:
    """The retrain's data: the spec, the market cut to the window, its model data, the holdout fold."""

    spec: Any
    feature_spec: Any
    market: Any
    data: Any
    fold: Any
    walkforward: Any


def cut_window(market: Any, config: RetrainConfig, as_of: pd.Timestamp | None) -> Any:
    """The market's bars in (as_of − window_days, as_of] (as_of: its last bar)."""
    end = market.index[-1] if as_of is None else as_of
    if end < market.index[0]:
        raise UsageError(f"--as-of {end} is before the data's first bar {market.index[0]}")
    start = end - pd.Timedelta(days=config.window_days)
    cut = market.until(end)
    return cut.tail_from(cut.index[int(cut.index.searchsorted(start, side="right"))])


def holdout_fold(data: Any, spec: Any, config: RetrainConfig) -> tuple[Any, Any]:
    """One walk-forward fold whose test block is the window's last ``holdout_days`` (the spec's evaluation
    settings: step, embargo, calibration)."""
    from training.walkforward import folds, walkforward_config_from_spec

    base = walkforward_config_from_spec(spec.values, where=spec.path)
    n, h_max = len(data), max(data.horizons)
    holdout = max(1, int((data.index > data.index[-1] - pd.Timedelta(days=config.holdout_days)).sum()))  # by time
    warmup = data.info.get("warmup", {})
    start = base.start if base.start is not None else max(warmup.values(), default=0)
    train = n - h_max - holdout - int(start)
    if train < 1:
        raise UsageError(
            f"the retrain window holds {n} bars: after the feature warm-up ({start}), the holdout ({holdout}) and "
            f"h_max ({h_max}) none is left to train on. Lengthen retrain.window_days or shorten holdout_days"
        )
    cfg = dataclasses.replace(base, window="expanding", train_bars=train, refit_every=holdout, max_folds=1, start=start)
    plan = folds(data, cfg)
    return plan[-1], cfg.resolve(data)


def retrain(
    spec: Any,
    market: Any,
    *,
    as_of: pd.Timestamp | None = None,
    challenger_hook: Any = None,
    lock_folder: Path | None = None,
    lock: bool = True,
    if_drift: bool = False,
) -> RetrainResult:
    """One scheduled retrain of ``spec`` on ``market`` (module docstring). ``lock=False``: the caller holds
    :func:`spec_lock` already (the CLI takes it before loading data). ``challenger_hook(data, rows)``, for tests,
    may alter the challenger's training data (e.g. shuffle its targets) before it is fitted. ``if_drift``: train
    only when the window's recent days drifted from the rest (:mod:`training.drift`); else "skipped"."""
    if not lock:
        return _retrain_locked(spec, market, as_of=as_of, challenger_hook=challenger_hook, if_drift=if_drift)
    with spec_lock(spec.name, lock_folder) as path:
        stage(spec.name, "locked", str(path))
        return _retrain_locked(spec, market, as_of=as_of, challenger_hook=challenger_hook, if_drift=if_drift)


def stage(spec_name: str, name: str, detail: str = "") -> None:
    """Log where a retrain is (``retrain <spec>: stage <name>``): the operator's progress line, and what the
    crash tests wait for before they kill the process."""
    log.info("retrain %s: stage %s%s", spec_name, name, f" ({detail})" if detail else "")


def _retrain_locked(
    spec: Any, market: Any, *, as_of: pd.Timestamp | None, challenger_hook: Any, if_drift: bool
) -> RetrainResult:
    import mlflow
    from mlflow import MlflowClient

    from features.pipeline import feature_spec_from_spec, fingerprint
    from forecaster.commands._training import spec_models
    from models.pyfunc import build_bundle
    from training.data import model_data
    from training.tracking import (
        CHAMPION,
        PREVIOUS_CHAMPION,
        git_commit,
        register_best,
        registered_model_name,
        setup_tracking,
    )
    from training.walkforward import _calibrate, _fit_predict, _with_realized

    config = retrain_config_from_spec(spec.values, where=spec.path)
    horizons = [int(h) for h in spec.get("horizons")]
    fspec = feature_spec_from_spec(spec.values, where=spec.path)
    experiment = setup_tracking(spec.name)  # first: it points MLflow at this process's tracking URI
    client = MlflowClient()
    name = registered_model_name(spec.name)
    champion_version = _alias(client, name, CHAMPION)
    champion_model = (
        client.get_model_version(name, champion_version).tags.get("model_name") if champion_version else None
    )
    model_name = config.model or champion_model
    prototypes = spec_models(spec, model_name, simulated=False)
    model_name = model_name or next(iter(prototypes))
    prototype = prototypes[model_name]

    window = cut_window(market, config, as_of)
    key = window_key(spec.name, model_name, window, fingerprint(fspec, window))
    described = {"start": window.index[0].isoformat(), "end": window.index[-1].isoformat(), "bars": len(window.index)}
    earlier = done_run(client, experiment, key)
    if earlier is not None:
        why = (
            f"this window was already retrained by run {earlier.info.run_id} (decision "
            f"{earlier.data.tags.get('retrain_decision', '?')}): nothing to do"
        )
        return RetrainResult(
            "skipped", why, champion_version, earlier.data.tags.get("challenger_version"), {}, described
        )

    stage(spec.name, "features", f"{described['bars']} bars from {described['start']}")
    data = model_data(window, fspec, horizons)
    fold, wf = holdout_fold(data, spec, config)
    described |= {
        "holdout_start": data.index[int(fold.test_rows[0])].isoformat(),
        "holdout_origins": int(fold.test_rows.size),
        "train_origins": int(fold.train_rows.size),
    }
    commit, dirty = git_commit()
    nested = mlflow.active_run() is not None  # a day of --simulate-days: a child of the replay's run
    title = f"retrain {model_name} to {described['end']}"
    with mlflow.start_run(experiment_id=experiment, run_name=title, nested=nested) as run:
        mlflow.set_tags(
            {"run_type": "retrain", "retrain_window": key, "retrain_status": "started", "model_name": model_name,
             "git_commit": commit, "git_dirty": str(dirty), "data_fingerprint": key.rsplit("|", 1)[-1]}
        )  # fmt: skip
        mlflow.log_params(
            {f"window.{k}": v for k, v in described.items()} | {"gate": json.dumps(dataclasses.asdict(config.gate))}
        )
        drift = log_drift(data, config.drift)
        if if_drift and not drift.drifted:
            reason = f"no drift: {drift.summary()}"
            mlflow.set_tags(
                {"retrain_decision": "skipped", "retrain_reason": reason[:4000], "retrain_status": "no_drift"}
            )
            stage(spec.name, "finished", "skipped: no drift")
            return RetrainResult(
                "skipped", reason, champion_version, None, {"drift": drift_json(drift)}, described, run.info.run_id
            )
        stage(spec.name, "fitting", model_name)
        trained_on = challenger_hook(data, fold.train_rows) if challenger_hook else data
        model, calib, test, _ = _fit_predict(prototype, model_name, trained_on, fold)
        test = _with_realized(test, data)
        calibrator, test = (
            _calibrate(calib, test, data, wf, window.freq) if wf.calibration_fraction > 0 else (None, test)
        )
        bundle = build_bundle(
            model, fspec, calibrator, market=window, feature_columns=_columns(model, data), name=model_name,
            bar_label=spec.get("data.bar_label", "end"), iv_units=spec.get("data.iv_units", "dec"), data=data,
        )  # fmt: skip
        loaded = bundle.loaded()
        challenger = Scores(
            scores(test, horizons),
            finite_forecasts(test),
            serving_latency_ms(loaded, window, int(bundle.config["min_rows"]), *_request_units(bundle)),
        )
        champion = None
        stage(spec.name, "evaluating", f"champion version {champion_version}" if champion_version else "no champion")
        if champion_version is not None:  # loaded only now: a skipped window never pays for it
            champion_bundle = _load_bundle(f"models:/{name}/{champion_version}")
            champion = _champion_scores(champion_bundle, window, data, fold, horizons)
        promote, reason = judge(config.gate, challenger, champion, horizons)
        metrics = {
            "challenger": challenger.to_json(),
            "champion": champion.to_json() if champion else None,
            "drift": drift_json(drift),
        }
        for who, result in (("challenger", challenger), ("champion", champion)):
            if result is None:
                continue
            for h, values in result.per_h.items():
                for metric in ("qlike", "coverage90"):
                    if values.get(metric) is not None:
                        mlflow.log_metric(f"{who}/{metric}/rv/h{h}", float(values[metric]))
            if result.latency_ms is not None:
                mlflow.log_metric(f"{who}/latency_ms", result.latency_ms)
        new_version = None
        stage(spec.name, "gate", f"{'pass' if promote else 'fail'}: {reason}")
        if promote:
            stage(spec.name, "registering")
            evaluated = {"retrain_window": key, "gate": "passed", "retrain_run_id": run.info.run_id}
            new_version = str(
                register_best(
                    run_id=run.info.run_id, spec_name=spec.name, model_name=model_name, bundle=bundle,
                    extra_tags=evaluated,
                )
            )  # fmt: skip
            current = _alias(client, name, CHAMPION)
            stage(spec.name, "aliases", f"champion {current} -> {new_version}")
            if current is not None and current != new_version:
                client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
                client.set_registered_model_alias(name, CHAMPION, new_version)
        decision = "promoted" if promote else "kept"
        mlflow.set_tags(
            {"retrain_decision": decision, "retrain_reason": reason[:4000], "challenger_version": new_version or "",
             "champion_version": champion_version or ""}
        )  # fmt: skip
        result = RetrainResult(
            decision,
            reason,
            new_version if promote else champion_version,
            new_version,
            metrics,
            described,
            run.info.run_id,
        )
        mlflow.log_dict(result.to_json(), "retrain.json")
        mlflow.set_tag("retrain_status", "done")  # last: a run killed before this is redone by the next one
    stage(spec.name, "finished", result.decision)
    return result


def _columns(model: Any, data: Any) -> list[str]:
    columns = model.input_features()
    return list(data.features.columns) if columns is None else list(columns)


def _request_units(bundle: Any) -> tuple[str, str]:
    return str(bundle.config.get("bar_label", "end")), str(bundle.config.get("iv_units", "dec"))


def _alias(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _load_bundle(uri: str) -> Any:
    import mlflow

    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def _champion_scores(bundle: Any, window: Any, data: Any, fold: Any, horizons: list[int]) -> Scores:
    """The champion's forecasts at the holdout's origins, computed as serving computes them (its own features,
    model and calibrator on the same market), and their scores."""
    from training.data import model_data
    from training.walkforward import _with_realized

    own = [int(h) for h in bundle.config["horizons"]]
    champion_data = model_data(window, bundle.feature_spec, own)
    origins = data.index[fold.test_rows]
    rows = champion_data.index.get_indexer(origins)
    if (rows < 0).any():
        raise UsageError("the champion's features do not cover the holdout's bars: retrain with a longer window")
    frame = bundle.model.predict(champion_data, rows)
    frame["model"] = bundle.config["model_name"]
    frame = _with_realized(frame, data if set(own) <= set(data.horizons) else champion_data)
    if bundle.calibrator is not None:
        realized = frame["realized"].to_numpy()
        frame = bundle.calibrator.apply(frame, freq=pd.Timedelta(bundle.config["bar_length"]))
        frame["realized"] = realized
    return Scores(
        scores(frame, [h for h in horizons if h in own]),
        finite_forecasts(frame),
        serving_latency_ms(bundle, window, int(bundle.config["min_rows"]), *_request_units(bundle)),
    )


def rollback(spec_name: str) -> tuple[str, str]:
    """Point ``champion`` back at ``previous_champion`` (and ``previous_champion`` at the one it replaces).
    Returns (new champion, new previous champion)."""
    from mlflow import MlflowClient

    from training.tracking import CHAMPION, PREVIOUS_CHAMPION, registered_model_name, setup_tracking

    setup_tracking(spec_name)
    client = MlflowClient()
    name = registered_model_name(spec_name)
    previous, current = _alias(client, name, PREVIOUS_CHAMPION), _alias(client, name, CHAMPION)
    if previous is None or current is None:
        raise UsageError(
            f"{name} has no {'previous_champion' if previous is None else 'champion'} alias: nothing to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
    return previous, current


def log_drift(data: Any, config: DriftConfig) -> Any:
    """PSI and KS of the window's features, recent days against the rest, logged to the active MLflow run
    (``drift/psi/<feature>``, ``drift/ks/<feature>``, ``drift/psi_median``, ``drift.csv``, ``drift_psi.png``)."""
    import mlflow

    from training.drift import drift_plot, drift_report

    report = drift_report(data.features, config.recent_days, config.psi_threshold, config.bins)
    finite = {name: row for name, row in report.table.iterrows() if math.isfinite(row["psi"])}
    mlflow.log_metrics({f"drift/psi/{name}": float(row["psi"]) for name, row in finite.items()})
    mlflow.log_metrics(
        {f"drift/ks/{name}": float(row["ks"]) for name, row in finite.items() if math.isfinite(row["ks"])}
    )
    if math.isfinite(report.median_psi):
        mlflow.log_metric("drift/psi_median", report.median_psi)
    mlflow.set_tag("drift", "drifted" if report.drifted else "stable")
    with tempfile.TemporaryDirectory(prefix="forecaster-drift-") as tmp:
        table = Path(tmp) / "drift.csv"
        report.table.to_csv(table)
        mlflow.log_artifact(str(table))
        mlflow.log_artifact(str(drift_plot(report, Path(tmp) / "drift_psi.png")))
    stage_note = report.summary()
    log.info("drift: %s", stage_note)
    return report


def drift_json(report: Any) -> dict[str, Any]:
    """The drift summary for the JSON output: the median PSI, the verdict, the five most drifted features."""

    def number(value: float) -> float | None:  # DESIGN section 11: no NaN in JSON
        return float(value) if math.isfinite(value) else None

    top = report.table.head(5)
    return {
        "median_psi": number(report.median_psi),
        "threshold": report.threshold,
        "drifted": report.drifted,
        "top": [{"feature": name, "psi": number(row["psi"]), "ks": number(row["ks"])} for name, row in top.iterrows()],
    }


DECISION_CODES = {"kept": 0, "promoted": 1, "skipped": -1}


def simulate_days(
    spec: Any, market: Any, days: int, *, challenger_hook: Any = None, lock: bool = True
) -> list[RetrainResult]:
    """Replay production on ``market``: one retrain a day for ``days`` days, the first window ending
    ``retrain.window_days`` after the market's first bar. The replay is one MLflow run (``run_type =
    simulate_retrain``) whose metrics have ``step`` = day, so the UI charts the champion over time:
    ``champion/qlike/rv/h*`` and ``champion/coverage90/rv/h*`` (on each day's holdout), ``champion/version``,
    ``decision`` (1 promoted, 0 kept, -1 skipped) and ``drift/psi_median``; each day's retrain is a child run.
    ``lock=False``: the caller holds :func:`spec_lock` already."""
    import mlflow

    from training.tracking import setup_tracking

    config = retrain_config_from_spec(spec.values, where=spec.path)
    first = market.index[0] + pd.Timedelta(days=config.window_days)
    last = first + pd.Timedelta(days=days - 1)
    if days < 1 or last > market.index[-1]:
        span = (market.index[-1] - market.index[0]) / pd.Timedelta(days=1)
        raise UsageError(
            f"--simulate-days {days} needs {config.window_days:g} + {days} days of data; the market spans {span:.2f} "
            "days: simulate more (--days) or replay fewer days"
        )
    experiment = setup_tracking(spec.name)
    results: list[RetrainResult] = []
    held = spec_lock(spec.name) if lock else contextlib.nullcontext()
    with held, mlflow.start_run(experiment_id=experiment, run_name=f"simulate {days} days") as run:
        mlflow.set_tags({"run_type": "simulate_retrain", "days": str(days)})
        for day in range(1, days + 1):
            as_of = first + pd.Timedelta(days=day - 1)
            stage(spec.name, "day", f"{day}/{days}, window to {as_of.isoformat()}")
            result = _retrain_locked(spec, market, as_of=as_of, challenger_hook=challenger_hook, if_drift=False)
            results.append(result)
            mlflow.log_metric("decision", DECISION_CODES[result.decision], step=day)
            metrics = result.metrics or {}
            now = metrics.get("challenger") if result.decision == "promoted" else metrics.get("champion")
            for key, values in (now or {}).items():
                if key.startswith("h") and isinstance(values, dict):
                    for metric in ("qlike", "coverage90"):
                        if values.get(metric) is not None:
                            mlflow.log_metric(f"champion/{metric}/rv/{key}", float(values[metric]), step=day)
            if result.champion_version is not None:
                mlflow.log_metric("champion/version", float(result.champion_version), step=day)
            drift = metrics.get("drift") or {}
            if drift.get("median_psi") is not None:
                mlflow.log_metric("drift/psi_median", float(drift["median_psi"]), step=day)
        mlflow.log_dict([r.to_json() for r in results], "simulate_retrain.json")
    for result in results:
        result.run_id = result.run_id or run.info.run_id
    return results
