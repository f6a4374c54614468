"""Hyper-parameter tuning with Optuna (DESIGN sections 7 and 8): a resumable study per spec and model, every trial
tracked as a nested MLflow run under one parent run.

The spec's ``tuning:`` section (:func:`tuning_config_from_spec`; absent or empty: every default; an unknown key is a
:class:`~forecaster.errors.ConfigError`)::

    tuning:
      model: lgbm              # the model to tune: a name in the spec's models: section, or a family (lgbm, net)
      trials: 20               # finished trials (complete + pruned) the study should hold
      metric: qlike            # the objective, minimized: mean over horizons of the validation QLIKE (the only one)
      horizons: null           # horizons the model is fitted on and the objective averages; null: the model's
      seed: 7                  # TPE sampler seed (a resumed study continues from seed + its number of trials)
      pruner: median           # median (optuna.pruners.MedianPruner) | none
      startup_trials: 5        # pruner: trials finished before any is pruned
      warmup_steps: null       # pruner: steps run before a trial can be pruned; null: 100 trees (lgbm), 5 epochs (net)
      validation_fraction: 0.25  # share of the tuning window validated on (the objective's split, below)
      space: {}                # overrides of the built-in search space, per parameter (below)

Search space
------------
Built in per family (:data:`SPACES`, :data:`FIXED`); ``tuning.space`` overrides it one parameter at a time:

- **lgbm** (:class:`models.lgbm.LgbmForecaster`): ``learning_rate`` 0.005..0.2 (log), ``num_leaves`` 4..128
  (integer, log), ``min_child_samples`` 5..200 (integer, log), ``subsample`` 0.5..1, ``colsample_bytree`` 0.3..1,
  ``reg_lambda`` 0.001..30 (log). Fixed: ``n_estimators: 2000`` (a cap: the model early-stops on its purged
  validation split, ``validation_fraction`` of its training origins), ``quantile_models: false`` and
  ``regime_classifier: false`` (the objective reads the point forecast only, so trials skip the auxiliary models).
- **net** (:class:`models.net.NetForecaster`): ``hidden`` 16..128 (integer, log), ``layers`` 1..3, ``dropout``
  0..0.3, ``lr`` 1e-4..1e-2 (log), ``weight_decay`` 1e-6..1e-2 (log), ``lookback`` 2..16. Nothing fixed: the
  net early-stops after ``patience`` epochs (at most ``max_epochs``).

A trial's model takes, by increasing precedence: the model's settings in the spec's ``models:`` section, the fixed
values above, the scalars of ``tuning.space``, the sampled values. Forms of a ``tuning.space`` entry:

- ``[low, high]`` (two numbers): a range, integer when both are integers, on a log scale when the built-in range of
  that parameter is (else linear);
- ``{low: L, high: H, log: true|false}``: a range, explicitly;
- ``{choices: [a, b, ...]}``, or a list of other than two numbers (``[31, 63, 127]``, ``[har, none]``): choices;
- a scalar (``n_estimators: 200``): fixed, not searched;
- ``null``: not searched (the model's setting or default applies).

Only parameters of the model's class are allowed (``horizons`` and ``name`` are not tunable).

Objective and split
-------------------
The objective is the mean over the tuned horizons of the out-of-sample QLIKE (``training.metrics.qlike``) of the
model fitted on a **dedicated purged split of the first walk-forward training window** (:func:`tuning_split`; the
spec's ``evaluation:`` section gives ``start``, ``step``, ``embargo`` and ``train_bars``)::

    start ........................ valid_start ...................... end (= the first walk-forward test origin)
    |  training origins         | g |   validation origins          | g |

with ``g = h_max + embargo`` bars: a training origin t is kept only if ``t + g <= valid_start`` and a validation
origin only if ``t + g <= end``, so no validation target (nor any return after ``valid_start``) reaches what the
model learns, and no return of the walk-forward's test period (from ``end`` on) reaches the tuning: the evaluation
of the tuned model stays out of sample. Tuning on the last walk-forward fold instead would select the
hyper-parameters on a block the evaluation then reports, biasing it.

Pruning: **lgbm** reports the validation QLIKE of its early-stopping stage on the first tuned horizon after every
tree (``trial.report(qlike, step=iteration)``) and raises ``optuna.TrialPruned`` when ``trial.should_prune()``
(:meth:`models.lgbm.LgbmForecaster.fit_with_callbacks`); **net** does the same with the validation loss of every
epoch (``NetForecaster.epoch_callback``). A pruned trial is ``PRUNED``, not failed.

Resuming, killing, several workers
----------------------------------
:func:`tune` opens the study with ``load_if_exists=True`` (name ``{spec}-{model}`` by default) and runs only the
trials missing to reach ``trials`` finished (COMPLETE + PRUNED) trials: a finished study runs none and says so; a
study cut short (killed, interrupted, failed trials) is completed by running the same command again.

Storage (:func:`make_storage`): any SQLAlchemy URL (``sqlite:///optuna.db``, ``postgresql://user@host/db``) becomes
an ``optuna.storages.RDBStorage`` with a heartbeat (``heartbeat_interval=60`` s, ``grace_period=120`` s) and
``heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3)``: a trial whose process died (kill,
crash, lost machine) stops beating; once its heartbeat is older than the grace period, the next trial start of any
worker (and :func:`tune` on start) marks it ``FAIL`` (``optuna.storages.fail_stale_trials``) and re-queues its
parameters as a ``WAITING`` trial, which the next ``ask`` runs first; it is never left ``RUNNING``. (Optuna 5
deprecates the ``failed_trial_callback=RetryFailedTrialCallback`` spelling for this.) A study resumed within the
grace period of the kill sees the dead trial as still running until the grace period has passed. The MLflow run of
such a trial is ended ``KILLED`` by the next :func:`tune`. A re-queued trial counts toward ``trials`` once it runs; one
re-queued after the study is already full stays ``WAITING`` until a call with a larger ``trials`` runs it first.
Several workers may run :func:`tune` on the same study and storage at once (PostgreSQL for more than one machine);
each stops when the study holds ``trials`` finished trials. Workers started together draw the same random start-up
configurations (their samplers get the same seed): give each its own ``seed``.

MLflow (DESIGN section 8)
-------------------------
One parent run per study (``tune <spec> <model>``, tag ``run_type=command``), its id kept as the study's user
attribute ``mlflow_parent_run_id``, so a resumed study logs its new trials under the same parent
(``mlflow.start_run(run_id=...)``). The parent's params are the flattened spec (logged when it is created); at the end
of every call it logs the metrics ``best/qlike/rv/mean`` and ``trials/complete``, ``trials/pruned``, ``trials/failed``
(step = finished trials), the tags ``best_trial`` and ``best.<param>``, and the artifacts ``tuning/trials.csv`` (the
study's trial history), ``tuning/best_params.json``, ``tuning/search_space.json`` and
``plots/optimization_history.png``.

One child run per trial (``trial <number>``, tag ``run_type=trial``): params = the trial model's ``get_params()``;
metrics ``qlike/rv/h{h}`` per horizon and ``qlike/rv/mean`` (the objective), ``fit_seconds``, and the pruning curve
(``pruning/valid_qlike_h{h}`` for lgbm, ``pruning/val_loss`` for net, step = tree or epoch); tags
``optuna.trial_number``, ``optuna.study``, ``optuna.state`` (COMPLETE, PRUNED or FAIL), ``pruned`` (true/false),
``optuna.retry_of`` (a re-queued trial), ``model_name``, ``model_family``, ``spec``, ``data_fingerprint``,
``git_commit``. The study's trials carry ``mlflow_run_id`` as a user attribute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forecaster.config import Spec, checked_section
from forecaster.errors import ConfigError, UsageError
from forecaster.progress import progress
from models.base import IntArray, ModelData, ModelError

if TYPE_CHECKING:
    import mlflow
    import optuna
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optuna.db"
HEARTBEAT_INTERVAL = 60  # seconds between a running trial's heartbeats
GRACE_PERIOD = 120  # seconds without a heartbeat after which a running trial is stale (its process is gone)
MAX_RETRY = 3  # a stale trial's parameters are re-queued at most this many times
SQLITE_TIMEOUT = 60  # seconds a SQLite writer waits for the lock (the heartbeat thread and other workers write too)
TUNABLE = ("lgbm", "net")
METRICS = ("qlike",)
PRUNERS = ("median", "none")
PARENT_ATTR = "mlflow_parent_run_id"  # study user attribute: the MLflow parent run of the study
RUN_ATTR = "mlflow_run_id"  # trial user attribute: the trial's MLflow run
UNTUNABLE = ("horizons", "name")
# Steps before a trial can be pruned. Trials are compared at equal steps, and a slow learner (a small learning rate)
# looks worse early on than it ends: pruning from the first trees would select for fast learners, not good ones.
WARMUP_STEPS = {"lgbm": 100, "net": 5}
OBJECTIVE_METRIC = "qlike/rv/mean"
LOG_BATCH = 1000  # MLflow's limit of metrics per log_batch call
RUN_TYPE_TRIAL = "trial"


# ---------------------------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: a range ``[low, high]`` (``integer``, ``log`` scale) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """The trial's value of the parameter ``name``."""
        if self.choices is not None:
            return trial.suggest_categorical(name, list(self.choices))
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``tuning/search_space.json`` artifact)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


SPACES: dict[str, dict[str, Dimension]] = {
    "lgbm": {
        "learning_rate": Dimension(0.005, 0.2, log=True),
        "num_leaves": Dimension(4, 128, log=True, integer=True),
        "min_child_samples": Dimension(5, 200, log=True, integer=True),
        "subsample": Dimension(0.5, 1.0),
        "colsample_bytree": Dimension(0.3, 1.0),
        "reg_lambda": Dimension(1e-3, 30.0, log=True),
    },
    "net": {
        "hidden": Dimension(16, 128, log=True, integer=True),
        "layers": Dimension(1, 3, integer=True),
        "dropout": Dimension(0.0, 0.3),
        "lr": Dimension(1e-4, 1e-2, log=True),
        "weight_decay": Dimension(1e-6, 1e-2, log=True),
        "lookback": Dimension(2, 16, integer=True),
    },
}
FIXED: dict[str, dict[str, Any]] = {
    "lgbm": {"n_estimators": 2000, "quantile_models": False, "regime_classifier": False},
    "net": {},
}


@dataclass(frozen=True)
class SearchSpace:
    """The resolved search of one model: ``dimensions`` (searched) and ``fixed`` (set on every trial)."""

    dimensions: dict[str, Dimension]
    fixed: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"search": {k: d.to_dict() for k, d in self.dimensions.items()}, "fixed": dict(self.fixed)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)


def _range(key: str, low: Any, high: Any, log_scale: Any, where: str) -> Dimension:
    if not (_is_number(low) and _is_number(high)) or not low < high:
        raise ConfigError(where, key, f"a range needs two numbers low < high; got [{low!r}, {high!r}]")
    if not isinstance(log_scale, bool):
        raise ConfigError(where, key, f"log must be true or false; got {log_scale!r}")
    if log_scale and low <= 0:
        raise ConfigError(where, key, f"a log-scale range needs low > 0; got {low!r} (use log: false, or low > 0)")
    return Dimension(low, high, log=log_scale, integer=_is_int(low) and _is_int(high))


def _entry(name: str, value: Any, builtin: Dimension | None, where: str) -> tuple[str, Any]:
    """One ``tuning.space`` entry as ("search", Dimension), ("fixed", value) or ("drop", None)."""
    key = f"tuning.space.{name}"
    default_log = builtin.log if builtin is not None and builtin.choices is None else False
    if value is None:
        return "drop", None
    if isinstance(value, Mapping):
        if set(value) == {"choices"}:
            choices = value["choices"]
            if not isinstance(choices, list | tuple) or not choices:
                raise ConfigError(where, key, f"choices must be a non-empty list; got {choices!r}")
            return "search", Dimension(choices=tuple(choices))
        allowed = {"low", "high", "log"}
        unknown = sorted(str(k) for k in set(value) - allowed)
        if unknown or not {"low", "high"} <= set(value):
            raise ConfigError(
                where, key, f"a mapping is {{low: L, high: H, log: true|false}} or {{choices: [...]}}; got {value!r}"
            )
        return "search", _range(key, value["low"], value["high"], value.get("log", default_log), where)
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(_is_number(v) for v in value):
            return "search", _range(key, value[0], value[1], default_log, where)
        if not value:
            raise ConfigError(where, key, "an empty list searches nothing; give [low, high], choices, or null")
        return "search", Dimension(choices=tuple(value))
    return "fixed", value


def resolve_space(family: str, overrides: Mapping[str, Any], *, where: str) -> SearchSpace:
    """The built-in space of ``family`` (:data:`SPACES`, :data:`FIXED`) with the ``tuning.space`` overrides (module
    docstring: the forms of an entry). Raises ConfigError for a parameter the model does not take."""
    from models.registry import model_class

    if family not in SPACES:
        raise UsageError(f"no search space for the model family {family!r}; tunable families: {', '.join(TUNABLE)}")
    known = [p for p in model_class(family)._param_names() if p not in UNTUNABLE]
    dimensions = dict(SPACES[family])
    fixed = dict(FIXED[family])
    for name, value in overrides.items():
        if name not in known:
            raise ConfigError(
                where, f"tuning.space.{name}", f"not a tunable parameter of {family}; it takes {', '.join(known)}"
            )
        kind, resolved = _entry(str(name), value, SPACES[family].get(name), where)
        dimensions.pop(name, None)
        fixed.pop(name, None)
        if kind == "search":
            dimensions[name] = resolved
        elif kind == "fixed":
            fixed[name] = resolved
    return SearchSpace(dimensions, fixed)


# ---------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TuningConfig:
    """The spec's ``tuning:`` section (module docstring: keys and defaults). ``source`` names the spec in errors."""

    model: str = "lgbm"
    trials: int = 20
    metric: str = "qlike"
    horizons: tuple[int, ...] | None = None
    seed: int = 7
    pruner: str = "median"
    startup_trials: int = 5
    warmup_steps: int | None = None
    validation_fraction: float = 0.25
    space: Mapping[str, Any] = field(default_factory=dict)
    source: str = field(default="<defaults>", compare=False)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The spec keys of the ``tuning:`` section."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "source")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            self._fail("model", f"must be a model name from the spec's models: section; got {self.model!r}")
        if not _is_int(self.trials) or self.trials < 1:
            self._fail("trials", f"must be a whole number ≥ 1; got {self.trials!r}")
        if self.metric not in METRICS:
            self._fail("metric", f"must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.horizons is not None and (
            not isinstance(self.horizons, tuple) or not self.horizons or not all(_is_int(h) for h in self.horizons)
        ):
            self._fail("horizons", f"must be a non-empty list of horizons in bars, or null; got {self.horizons!r}")
        if not _is_int(self.seed):
            self._fail("seed", f"must be a whole number; got {self.seed!r}")
        if self.pruner not in PRUNERS:
            self._fail("pruner", f"must be one of {', '.join(PRUNERS)}; got {self.pruner!r}")
        if not _is_int(self.startup_trials) or self.startup_trials < 0:
            self._fail("startup_trials", f"must be a whole number ≥ 0; got {self.startup_trials!r}")
        if self.warmup_steps is not None and (not _is_int(self.warmup_steps) or self.warmup_steps < 0):
            self._fail("warmup_steps", f"must be a whole number ≥ 0, or null (the family's); got {self.warmup_steps!r}")
        v = self.validation_fraction
        if not _is_number(v) or not 0 < v < 1:
            self._fail("validation_fraction", f"must be a number in (0, 1), e.g. 0.25; got {v!r}")
        if not isinstance(self.space, Mapping):
            self._fail("space", f"must be a mapping {{parameter: [low, high] | [choices] | value}}; got {self.space!r}")

    def _fail(self, key: str, message: str) -> None:
        raise ConfigError(self.source, f"tuning.{key}", message)

    def make_pruner(self, family: str) -> optuna.pruners.BasePruner:
        """``MedianPruner(n_startup_trials, n_warmup_steps)`` (warm-up: :data:`WARMUP_STEPS` of ``family`` when
        ``warmup_steps`` is null), or ``NopPruner`` for ``pruner: none``."""
        import optuna

        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        warmup = WARMUP_STEPS[family] if self.warmup_steps is None else self.warmup_steps
        return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=warmup)


def tuning_config_from_spec(spec_values: Mapping[str, Any], *, where: str) -> TuningConfig:
    """The :class:`TuningConfig` of a spec's values: its ``tuning:`` section (absent, empty or null: defaults).

    Raises ConfigError naming ``where`` and ``tuning.<key>`` for an unknown key or a bad value.
    """
    section = checked_section(spec_values, "tuning", TuningConfig.keys(), where)
    values = {k: v for k, v in section.items() if v is not None or k == "horizons"}
    if isinstance(values.get("horizons"), list):
        values["horizons"] = tuple(values["horizons"])
    return TuningConfig(**values, source=where)


def model_settings(spec: Spec, model_name: str) -> tuple[str, dict[str, Any]]:
    """(family, settings without ``family``) of the model to tune: its entry in the spec's ``models:`` section, or,
    for a tunable family name absent from that section, the family's defaults. Raises UsageError otherwise."""
    from models.registry import FAMILIES

    section = spec.section("models")
    if model_name in section:
        settings = dict(section[model_name] or {})
        family = str(settings.pop("family", model_name))
        if family not in FAMILIES:
            raise ConfigError(spec.path, f"models.{model_name}.family", f"unknown family {family!r}")
    elif model_name in TUNABLE:
        family, settings = model_name, {}
    else:
        listed = ", ".join(section) or "none"
        raise UsageError(
            f"model {model_name!r} is not in the spec's models: section ({listed}) nor a tunable family "
            f"({', '.join(TUNABLE)}). Fix: pass --model with one of those names, or add it to {spec.path}"
        )
    if family not in TUNABLE:
        raise UsageError(
            f"model {model_name!r} is of family {family!r}, which has no search space; tunable families: "
            f"{', '.join(TUNABLE)}. Fix: pick a model of one of those families"
        )
    return family, settings


# ---------------------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class TuningSplit:
    """The objective's purged split (module docstring: layout).

    Attributes
    ----------
    train_rows, valid_rows
        Origins (row positions, increasing) to fit on and to score.
    start, valid_start, end
        The tuning window is [start, end), its validation block [valid_start, end); ``end`` is the walk-forward's
        first test origin.
    gap
        h_max + embargo bars: ``train_rows[-1] + gap <= valid_start`` and ``valid_rows[-1] + gap <= end``.
    """

    train_rows: IntArray
    valid_rows: IntArray
    start: int
    valid_start: int
    end: int
    gap: int


def tuning_split(data: ModelData, config: Any, validation_fraction: float) -> TuningSplit:
    """The purged train/validation split of the first walk-forward training window of ``config`` (a
    ``training.walkforward.WalkForwardConfig``, resolved on ``data`` here), origins every ``step`` bars.

    Raises ModelError when purging leaves no training or validation origin (with the window's numbers and a fix).
    """
    from training.walkforward import round_up

    cfg = config.resolve(data)
    gap = max(data.horizons) + cfg.embargo
    start, end = cfg.start, cfg.start + cfg.train_bars
    valid_start = end - round_up(math.ceil(validation_fraction * (end - start)), cfg.step)
    grid = np.arange(start, end, cfg.step, dtype=np.int64)  # (m,), the walk-forward's origins
    train = grid[grid + gap <= valid_start]
    valid = grid[(grid >= valid_start) & (grid + gap <= end)]
    if train.size == 0 or valid.size == 0:
        raise ModelError(
            f"the tuning window (rows {start}..{end - 1}, the first walk-forward training window) leaves "
            f"{train.size} training and {valid.size} validation origins once purged by {gap} bars (h_max + embargo) "
            f"with tuning.validation_fraction {validation_fraction}. Fix: longer data, a larger evaluation.train_bars, "
            "or a validation_fraction nearer 0.5"
        )
    return TuningSplit(train, valid, start, valid_start, end, gap)


# ---------------------------------------------------------------------------------------------------- storage


def _mask(url: str) -> str:
    """The URL with its password hidden (for logs, MLflow tags and messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: shown as given, without anything after '@'
        return url.split("@")[-1] if "@" in url else url


def _scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's password hidden wherever it appears."""
    text = text.replace(url, _mask(url))
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy can read: nothing more to find
        password = None
    return text.replace(str(password), "***") if password else text


def check_storage_url(url: str) -> None:
    """Cheap checks of a storage URL before any work: a SQLAlchemy URL, and for SQLite an existing folder.

    Raises UsageError naming the problem and the fix."""
    if "://" not in url:
        raise UsageError(
            f"--storage {url!r} is not a database URL. Fix: a SQLAlchemy URL such as sqlite:///optuna.db (a file in "
            "the current folder), sqlite:////abs/path/optuna.db or postgresql://user@host/db"
        )
    if url.startswith("sqlite"):
        from training.tracking import sqlite_path

        path = sqlite_path(url)
        if path is not None and path.name not in ("", ":memory:") and not path.parent.is_dir():
            raise UsageError(f"--storage {url}: the folder {path.parent} does not exist. Fix: create it first")


def make_storage(
    url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL, grace_period: int = GRACE_PERIOD
) -> optuna.storages.RDBStorage:
    """An ``optuna.storages.RDBStorage`` on the SQLAlchemy ``url`` with a heartbeat and the re-queueing of stale
    trials (module docstring). SQLite writers wait up to :data:`SQLITE_TIMEOUT` s for the lock.

    Raises UsageError for something that is not a SQLAlchemy URL, a missing SQLite folder, a missing database
    driver or a database that cannot be reached.
    """
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    check_storage_url(url)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat API: experimental
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except (ArgumentError, ImportError) as exc:
        raise UsageError(
            f"--storage {_mask(url)}: {_scrub(str(exc), url)}. Fix: a SQLAlchemy URL whose driver is installed "
            "(sqlite:///optuna.db works everywhere; postgresql:// needs psycopg2)"
        ) from None
    except SQLAlchemyError as exc:
        raise UsageError(
            f"--storage {_mask(url)}: cannot open the database ({exc.__class__.__name__}: {_scrub(str(exc), url)})"
        ) from None


# ---------------------------------------------------------------------------------------------------- result


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    study
        The Optuna study (every trial of every call).
    best_params, best_value
        The sampled parameters and objective of the best COMPLETE trial ({} and None when there is none).
    n_complete, n_pruned, n_failed
        Trials of the study in each state (failed: FAIL, including the stale ones of killed workers).
    parent_run_id
        The study's MLflow parent run.
    n_new
        Trials this call ran (0 when the study already held ``trials`` finished trials).
    study_name, storage
        The study and its storage URL (password hidden).
    model_name, family
        The tuned model (its name in the spec) and its family.
    fixed_params
        The values set on every trial besides the model's settings (:data:`FIXED` and ``tuning.space`` scalars).
    best_trial
        The number of the best trial, or None.
    horizons
        The horizons the objective averages.
    """

    study: optuna.Study
    best_params: dict[str, Any]
    best_value: float | None
    n_complete: int
    n_pruned: int
    parent_run_id: str
    n_failed: int = 0
    n_new: int = 0
    study_name: str = ""
    storage: str = ""
    model_name: str = ""
    family: str = ""
    fixed_params: dict[str, Any] = field(default_factory=dict)
    best_trial: int | None = None
    horizons: tuple[int, ...] = ()

    @property
    def n_finished(self) -> int:
        return self.n_complete + self.n_pruned


# ---------------------------------------------------------------------------------------------------- objective


@dataclass
class _Objective:
    """Fit one trial's model on the split's training origins, score it on the validation origins (module docstring),
    inside a nested MLflow run."""

    data: ModelData
    split: TuningSplit
    model_name: str
    family: str
    settings: dict[str, Any]
    space: SearchSpace
    horizons: tuple[int, ...]
    where: str
    tags: dict[str, str]
    experiment_id: str

    def params(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial model's parameters: settings < fixed < sampled."""
        sampled = {name: dim.suggest(trial, name) for name, dim in self.space.dimensions.items()}
        return {**self.settings, **self.space.fixed, **sampled, "horizons": self.horizons}

    def __call__(self, trial: optuna.Trial) -> float:
        import os
        import socket

        import mlflow
        import optuna

        from models.registry import make_model
        from training.tracking import model_params

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process runs it

        params = self.params(trial)
        model = make_model(self.model_name, {"family": self.family, **params}, where=self.where)
        retry_of = _retry_of(trial)
        tags = {
            **self.tags,
            "run_type": RUN_TYPE_TRIAL,
            "optuna.trial_number": str(trial.number),
            "optuna.state": "RUNNING",
        }
        if retry_of is not None:
            tags["optuna.retry_of"] = str(retry_of)
        curve: list[tuple[int, float]] = []
        with mlflow.start_run(
            experiment_id=self.experiment_id, run_name=f"trial {trial.number}", nested=True, tags=tags
        ) as run:
            trial.set_user_attr(RUN_ATTR, run.info.run_id)
            mlflow.log_params(model_params(model))
            began = time.perf_counter()
            try:
                self._fit(model, trial, curve)
                scores = self._score(model)
            except optuna.TrialPruned:
                self._log_curve(run.info.run_id, curve)
                mlflow.log_metric("fit_seconds", time.perf_counter() - began)
                mlflow.set_tags({"optuna.state": "PRUNED", "pruned": "true"})
                if curve:
                    mlflow.log_metric("pruned_at_step", curve[-1][0])
                mlflow.end_run(status="FINISHED")  # pruning is a normal end, not a failure
                raise
            except Exception as exc:  # the run ends FAILED as the exception leaves the block
                self._log_curve(run.info.run_id, curve)
                error = f"{type(exc).__name__}: {exc}"
                mlflow.set_tags({"optuna.state": "FAIL", "pruned": "false", "error": error[:5000]})
                raise
            objective = float(np.mean(list(scores.values())))
            self._log_curve(run.info.run_id, curve)
            mlflow.log_metrics(
                {
                    **{f"qlike/rv/h{h}": v for h, v in scores.items()},
                    OBJECTIVE_METRIC: objective,
                    "fit_seconds": time.perf_counter() - began,
                }
            )
            mlflow.set_tags({"optuna.state": "COMPLETE", "pruned": "false"})
        return objective

    def _fit(self, model: Any, trial: optuna.Trial, curve: list[tuple[int, float]]) -> None:
        """Fit on the training origins with the family's pruning hook; ``curve`` collects the reported values."""
        import optuna

        rows = self.split.train_rows

        def report(step: int, value: float) -> None:
            curve.append((step, value))
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")

        if self.family == "lgbm":
            from models.lgbm import METRIC_NAME, VALID_NAME

            def callback(env: Any) -> None:
                for name, metric, value, _ in env.evaluation_result_list:
                    if name == VALID_NAME and metric == METRIC_NAME:
                        report(int(env.iteration), float(value))

            model.fit_with_callbacks(self.data, rows, {self.horizons[0]: [callback]})
        elif self.family == "net":
            model.epoch_callback = lambda epoch, loss: report(int(epoch), float(loss))
            model.fit(self.data, rows)
        else:  # resolve_space refuses other families
            raise UsageError(f"no pruning hook for the family {self.family!r}; tunable: {', '.join(TUNABLE)}")

    def _score(self, model: Any) -> dict[int, float]:
        """Validation QLIKE per horizon: {h: qlike}."""
        from training.metrics import qlike

        rows = self.split.valid_rows
        frame = model.predict(self.data, rows)
        out = {}
        for h in self.horizons:
            rv = self.data.target(h)[rows]
            var = frame.loc[frame["horizon"] == h, "var"].to_numpy(dtype=float)
            known = np.isfinite(rv)
            if not known.any():
                raise ModelError(f"no known rv_h{h} at the {rows.size} validation origins: the data has a gap there")
            out[h] = qlike(rv[known], var[known])
        return out

    def _log_curve(self, run_id: str, curve: Sequence[tuple[int, float]]) -> None:
        """The reported (step, value) pairs as the metric ``pruning/...`` with their steps, in batches."""
        if not curve:
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        name = f"pruning/valid_qlike_h{self.horizons[0]}" if self.family == "lgbm" else "pruning/val_loss"
        now = int(time.time() * 1000)
        metrics = [Metric(name, v, now, s) for s, v in curve if math.isfinite(v)]
        client = MlflowClient()
        for i in range(0, len(metrics), LOG_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + LOG_BATCH])


# ---------------------------------------------------------------------------------------------------- tune


def tune(
    data: ModelData,
    spec: Spec,
    *,
    model_name: str | None = None,
    trials: int | None = None,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    seed: int | None = None,
    show_progress: bool = False,
    pruner: optuna.pruners.BasePruner | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> TuneResult:
    """Tune one model of ``spec`` on ``data``: open (or resume) the study, run the missing trials, log to MLflow.

    Parameters
    ----------
    data
        The market's ModelData (``training.data.model_data``); its horizons set the purge gap.
    spec
        The resolved spec: ``tuning:`` (module docstring), ``models:``, ``evaluation:`` (the split), its name (the
        MLflow experiment and the default study name).
    model_name, trials, seed
        Override ``tuning.model``, ``tuning.trials`` (finished trials the study should hold) and ``tuning.seed``.
    storage
        SQLAlchemy URL of the Optuna storage (:func:`make_storage`).
    study_name
        Default ``{spec name}-{model name}``.
    show_progress
        A progress bar over the trials (on a terminal only).
    pruner
        Replaces the pruner of ``tuning.pruner`` (e.g. a stricter one).
    heartbeat_interval, grace_period
        Seconds between heartbeats of a running trial, and without one before it counts as dead.

    Returns
    -------
    TuneResult

    Raises
    ------
    UsageError, ConfigError
        A model that is not tunable, a bad ``tuning:`` value, a bad storage URL, or a study that was tuned on other
        data or another model (the message says how to start a new one).
    """
    import optuna

    from training.tracking import setup_tracking
    from training.walkforward import walkforward_config_from_spec

    config = tuning_config_from_spec(spec.values, where=spec.path)
    model_name = model_name or config.model
    trials = config.trials if trials is None else trials
    if not _is_int(trials) or trials < 1:
        raise UsageError(f"trials must be a whole number ≥ 1; got {trials!r}")
    seed = config.seed if seed is None else seed
    family, settings = model_settings(spec, model_name)
    space = resolve_space(family, config.space, where=spec.path)
    horizons = _horizons(config, settings, data, spec.path)
    split = tuning_split(data, walkforward_config_from_spec(spec.values, where=spec.path), config.validation_fraction)
    study_name = study_name or f"{spec.name}-{model_name}"
    fingerprint = str(data.info.get("fingerprint") or "unknown")
    shown = _mask(storage)

    with _quiet_optuna():
        study = optuna.create_study(
            study_name=study_name,
            storage=make_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period),
            direction="minimize",
            pruner=pruner or config.make_pruner(family),
            load_if_exists=True,
        )
        _check_study(study, fingerprint, data.horizons, model_name, family, storage)
        # a fresh sampler per call, seeded past the trials already drawn: a resumed study does not replay its draws
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
        optuna.storages.fail_stale_trials(study)  # dead workers' trials → FAIL, re-queued as WAITING
        experiment_id = setup_tracking(spec.name)
        commit = _git_commit()
        common = {
            "command": "tune",
            "spec": spec.name,
            "model_name": model_name,
            "model_family": family,
            "data_fingerprint": fingerprint,
            "git_commit": commit,
            "optuna.study": study_name,
        }
        objective = _Objective(
            data, split, model_name, family, settings, space, horizons, spec.path, common, experiment_id
        )
        finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        with _open_parent(study, experiment_id, spec, common, shown) as parent:
            parent_id = parent.info.run_id
            _close_dead_runs(study)
            before = len(study.get_trials(deepcopy=False, states=finished_states))
            missing = max(0, trials - before)
            if missing == 0:
                log.info("study %s already holds %d finished trials (≥ %d): nothing to run", study_name, before, trials)
            else:
                log.info(
                    "study %s (%s): %d finished trials, running %d more for %d (model %s, %d training and %d "
                    "validation origins)", study_name, shown, before, missing, trials, model_name,
                    split.train_rows.size, split.valid_rows.size,
                )  # fmt: skip
            n_new = 0
            steps = range(missing)
            slots = SlotLock(storage, study_name)
            try:
                for _ in (
                    progress(steps, desc=f"tune {model_name}", total=missing, unit="trial") if show_progress else steps
                ):
                    if not _run_one(study, objective, slots, trials, heartbeat_interval):
                        break  # the study holds its trials (this worker's or others')
                    n_new += 1
            finally:
                slots.close()
            _close_dead_runs(study)
            result = _result(study, parent_id, n_new, study_name, shown, model_name, family, space, horizons)
            _log_parent_summary(study, result, space)
    return result


def _run_one(study: optuna.Study, objective: Any, slots: SlotLock, trials: int, heartbeat_interval: int) -> bool:
    """Start one trial if the study still lacks one, holding ``slots`` from the count to the trial's creation, so
    that workers together never run more than ``trials`` (finished ones plus those running count). While the only
    missing trials are running elsewhere, wait: a dead worker's trial turns stale, is failed and re-queued
    (``fail_stale_trials``), and this worker runs it. Returns False when the study is full."""
    import optuna

    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    while True:
        slots.acquire()
        try:
            optuna.storages.fail_stale_trials(study)
            finished = len(study.get_trials(deepcopy=False, states=finished_states))
            running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
            if finished >= trials:
                return False
            if finished + running < trials:

                def released_first(trial: optuna.Trial) -> float:
                    slots.release()  # the trial exists (RUNNING): the next worker may count it
                    return objective(trial)

                study.optimize(released_first, n_trials=1, catch=_catchable(), callbacks=[_log_trial])
                return True
        finally:
            slots.release()
        time.sleep(min(2.0, heartbeat_interval / 2))  # the missing trials run elsewhere: look again shortly


class SlotLock:
    """A lock on one study across processes and machines, held from counting its trials to creating the next:
    a PostgreSQL session advisory lock (released by the server if the worker dies), or ``flock`` on a file beside a
    SQLite database. Other databases: no lock (workers may then overshoot by up to their number), said once."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        self._held = False
        self._conn: Any = None
        self._file: Any = None
        key = int.from_bytes(hashlib.sha256(f"optuna-study:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._key = key
        if url.startswith(("postgresql", "postgres")):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()
        elif url.startswith("sqlite"):
            import fcntl  # noqa: F401  (POSIX only, like the flock the lock takes)

            path = sqlite_path_of(url)
            self._file = open(f"{path}.{re.sub(r'[^A-Za-z0-9_.-]', '_', study_name)}.lock", "a+")
        else:
            log.warning("no cross-worker lock for %s: concurrent workers may run a few trials more than asked", url)

    def acquire(self) -> None:
        if self._held:
            return
        if self._conn is not None:
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            self._conn.commit()
        elif self._file is not None:
            import fcntl

            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        if self._conn is not None:
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._conn.commit()
        elif self._file is not None:
            import fcntl

            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._held = False

    def close(self) -> None:
        self.release()
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()
        if self._file is not None:
            self._file.close()


def sqlite_path_of(url: str) -> str:
    """The database file of a ``sqlite:///`` URL (``:memory:`` for an in-memory one)."""
    path = url.split("sqlite:///", 1)[-1] if "sqlite:///" in url else ":memory:"
    return path or ":memory:"


def _retry_of(trial: optuna.Trial) -> int | None:
    """The number of the stale trial whose parameters ``trial`` re-runs (``RetryHeartbeatStaleTrialCallback`` keeps
    it in the system attribute ``failed_trial``), or None."""
    from optuna.trial import TrialState

    for frozen in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.number == trial.number:
            return frozen.system_attrs.get("failed_trial")
    return None


def _horizons(config: TuningConfig, settings: Mapping[str, Any], data: ModelData, where: str) -> tuple[int, ...]:
    wanted = config.horizons or settings.get("horizons") or data.horizons
    horizons = tuple(int(h) for h in wanted)
    missing = [h for h in horizons if h not in data.horizons]
    if missing:
        raise ConfigError(
            where, "tuning.horizons", f"{missing} are not among the data's horizons {list(data.horizons)}; pick from "
            "those, or build the data with them (--horizons)"
        )  # fmt: skip
    return horizons


def _catchable() -> tuple[type[Exception], ...]:
    """Errors that fail one trial (a configuration the model cannot fit) without stopping the study."""
    from training.metrics import MetricError

    return (ModelError, MetricError)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own INFO lines off (:func:`_log_trial` says the same once), its experimental-API warnings muted."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _git_commit() -> str:
    from training.tracking import git_commit

    return git_commit()[0]


def _check_study(
    study: optuna.Study, fingerprint: str, horizons: Sequence[int], model_name: str, family: str, storage: str
) -> None:
    """Record what the study tunes on its first use; refuse to mix other data or another model into it later."""
    attrs = study.user_attrs
    mine = {"data_fingerprint": fingerprint, "horizons": [int(h) for h in horizons], "model_name": model_name,
            "model_family": family}  # fmt: skip
    if not attrs.get("model_family"):
        for key, value in mine.items():
            study.set_user_attr(key, value)
        return
    for key, value in mine.items():
        if attrs.get(key) != value:
            raise UsageError(
                f"study {study.study_name!r} in {_mask(storage)} was tuned with {key} {attrs.get(key)!r}; this run "
                f"has {value!r}, and mixing them would compare trials on different problems. Fix: the same data flags "
                "and --model as before to resume it, or --study NEW_NAME to start another study"
            )


def _open_parent(
    study: optuna.Study, experiment_id: str, spec: Spec, common: Mapping[str, str], storage: str
) -> mlflow.ActiveRun:
    """Start the study's MLflow parent run: reopen the one recorded in the study when the tracking store still has
    it, else start a new one (params: the flattened spec) and record it in the study."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.tracking import flatten_spec

    nested = mlflow.active_run() is not None
    recorded = study.user_attrs.get(PARENT_ATTR)
    if recorded:
        try:
            run = MlflowClient().get_run(recorded)
            if run.info.lifecycle_stage == "active" and run.info.experiment_id == experiment_id:
                return mlflow.start_run(run_id=recorded, nested=nested)
        except MlflowException:
            pass
        log.warning(
            "the study's MLflow parent run %s is not in experiment %s of the tracking store (another "
            "MLFLOW_TRACKING_URI, or deleted): a new parent run takes the study's next trials", recorded, experiment_id
        )  # fmt: skip
    tags = {**common, "run_type": "command", "optuna.storage": storage}
    name = f"tune {spec.name} {common['model_name']}"
    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags, nested=nested)
    mlflow.log_params(flatten_spec(spec.values))
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run


def _close_dead_runs(study: optuna.Study) -> None:
    """End ``KILLED`` the MLflow runs still RUNNING of FAIL trials (their worker died; the heartbeat failed them)."""
    import optuna
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_id = trial.user_attrs.get(RUN_ATTR)
        if not run_id:
            continue
        try:
            run = client.get_run(run_id)
        except MlflowException:
            continue
        if run.info.status == "RUNNING":
            client.set_tag(run_id, "optuna.state", "FAIL")
            client.set_tag(run_id, "error", "the worker died (no heartbeat): Optuna failed the trial and re-queued it")
            client.set_terminated(run_id, "KILLED")


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial."""
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        outcome = f"{OBJECTIVE_METRIC} {trial.value:.6g}"
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        step = max(trial.intermediate_values)
        outcome = f"pruned at step {step} (reported {trial.intermediate_values[step]:.6g})"
    else:
        outcome = trial.state.name.lower()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = min(complete, key=lambda t: t.value) if complete else None
    shown = f"{best.value:.6g} (trial {best.number})" if best else "none yet"
    log.info("trial %d %s: %s; best %s", trial.number, trial.state.name, outcome, shown)


def _result(
    study: optuna.Study,
    parent_id: str,
    n_new: int,
    study_name: str,
    storage: str,
    model_name: str,
    family: str,
    space: SearchSpace,
    horizons: tuple[int, ...],
) -> TuneResult:
    from optuna.trial import TrialState

    counts = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = min(complete, key=lambda t: t.value) if complete else None
    return TuneResult(
        study=study,
        best_params=dict(best.params) if best else {},
        best_value=float(best.value) if best else None,
        n_complete=counts[TrialState.COMPLETE],
        n_pruned=counts[TrialState.PRUNED],
        parent_run_id=parent_id,
        n_failed=counts[TrialState.FAIL],
        n_new=n_new,
        study_name=study_name,
        storage=storage,
        model_name=model_name,
        family=family,
        fixed_params=dict(space.fixed),
        best_trial=best.number if best else None,
        horizons=horizons,
    )


def _log_parent_summary(study: optuna.Study, result: TuneResult, space: SearchSpace) -> None:
    """Best value and params, trial counts, the trial history and its plot, on the active (parent) run."""
    import mlflow

    step = result.n_finished
    metrics = {"trials/complete": result.n_complete, "trials/pruned": result.n_pruned, "trials/failed": result.n_failed}
    if result.best_value is not None:
        metrics["best/" + OBJECTIVE_METRIC] = result.best_value
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
    tags = {f"best.{k}": str(v) for k, v in result.best_params.items()}
    tags["best_trial"] = "none" if result.best_trial is None else str(result.best_trial)
    mlflow.set_tags(tags)
    with tempfile.TemporaryDirectory(prefix="forecaster-tune-") as tmp:
        folder = Path(tmp)
        study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
        best = {"best_trial": result.best_trial, "best_value": result.best_value, "best_params": result.best_params,
                "fixed_params": result.fixed_params}  # fmt: skip
        (folder / "best_params.json").write_text(json.dumps(best, indent=2, default=str))
        (folder / "search_space.json").write_text(json.dumps(space.to_dict(), indent=2, default=str))
        for name in ("trials.csv", "best_params.json", "search_space.json"):
            mlflow.log_artifact(str(folder / name), "tuning")
        from training import plots

        mlflow.log_artifact(str(plots.save(history_figure(study), folder / "optimization_history.png")), "plots")


def history_figure(study: optuna.Study) -> Figure:
    """The optimization history: the objective of each COMPLETE trial by trial number, the best so far, and the
    pruned trials marked along the bottom. A matplotlib Figure on the Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    complete = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    pruned = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))]
    if complete:
        x = np.array([t.number for t in complete])
        y = np.array([t.value for t in complete], dtype=float)
        ax.plot(x, y, "o", color="C0", label=f"complete ({len(complete)})")
        ax.step(x, np.minimum.accumulate(y), where="post", color="C1", label="best so far")
    if pruned:
        ax.plot(pruned, np.zeros(len(pruned)), "x", color="0.5", transform=ax.get_xaxis_transform(),
                label=f"pruned ({len(pruned)})", clip_on=False)  # fmt: skip
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{OBJECTIVE_METRIC} (validation, lower is better)")
    ax.set_title(f"optimization history of {study.study_name}")
    if complete or pruned:
        ax.legend(loc="upper right")
    figure.tight_layout()
    return figure


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    from optuna.trial import TrialState

    return {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}


__all__ = [
    "DEFAULT_STORAGE",
    "FIXED",
    "SPACES",
    "Dimension",
    "SearchSpace",
    "TuneResult",
    "TuningConfig",
    "TuningSplit",
    "history_figure",
    "make_storage",
    "model_settings",
    "resolve_space",
    "tune",
    "tuning_config_from_spec",
    "tuning_split",
]
