"""Walk-forward fit and evaluation (DESIGN sections 5, 6 and 11): purged folds, refits, conformal calibration.

The bars after the features' warm-up are cut into a first training window and, after it, **test blocks** of
``refit_every`` bars. Each block is a fold: every model is cloned, fitted on the fold's training origins, and
forecasts the block's origins; the forecasts of all folds, put together, cover the evaluation period once.

Layout of one fold (row positions of :class:`models.base.ModelData`, ``g = h_max + embargo``)::

    window_start ........ calib_start ........ test_start ........ test_end
    |  training origins  | g |  calibration  | g |   test origins   |
                               origins

- **Purging.** A training origin t is kept only if t + h_max + embargo ≤ calib_start (its whole target window,
  plus the embargo, ends before the calibration block starts); a calibration origin only if
  t + h_max + embargo ≤ test_start. No return inside the calibration or test block reaches what a model learns.
- **Test origins**: the block's origins with a known target, t + h_max < n.
- **Origins** lie on one grid, ``start + k · step``, for training, calibration and test alike, so every fold's
  forecasts share timestamps with the others and every model forecasts the same origins.
- **Windows.** Expanding: from ``start`` to the test block; rolling: the last ``train_bars`` bars before it. The
  calibration block is the last ``calibration_fraction`` of that window (0: no calibration block).

The spec's ``evaluation:`` section (:func:`walkforward_config_from_spec`; every value in bars of the base
frequency unless said; ``null`` or absent takes the default)::

    evaluation:
      window: expanding        # expanding | rolling
      train_bars: null         # first training window (every window when rolling); null: 60% of the usable bars
      refit_every: null        # bars per test block (one refit each); null: the evaluation period in 5 blocks
      step: null               # bars between forecast origins (train, calibration, test); null: 15 minutes of bars
      embargo: null            # bars added to h_max between blocks; null: h_max; smaller than h_max: an error
      calibration_fraction: 0.2  # share of each training window, at its end, held out to calibrate; 0: none
      calibration: split       # conformal method: split | adaptive
      alpha: 0.1               # miscoverage of the calibrated central interval (q05..q95 is the 90% one)
      gamma: 0.005             # step size of the adaptive method
      start: null              # first usable row; null: the longest feature warm-up (data.info["warmup"])
      max_folds: null          # keep only the last max_folds test blocks (the most recent); null: all

``train_bars`` and ``refit_every`` are rounded up to whole ``step`` s, so every block starts on an origin.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from forecaster.config import checked_section
from forecaster.errors import ConfigError, UsageError
from forecaster.progress import progress
from models.base import FORECAST_COLUMNS, Forecaster, IntArray, ModelData, ModelError

WINDOWS = ("expanding", "rolling")
CALIBRATION_METHODS = ("split", "adaptive")
ON_ERROR = ("raise", "skip")
DEFAULT_TRAIN_SHARE = 0.6  # train_bars: null → this share of the usable bars
DEFAULT_BLOCKS = 5  # refit_every: null → the evaluation period in this many test blocks
DEFAULT_STEP_TIME = pd.Timedelta(minutes=15)  # step: null → this much time between origins (at least one bar)
PREDICTION_COLUMNS = (*FORECAST_COLUMNS, "realized", "realized_class", "fold")
PREDICTIONS_FILE_COLUMNS = (*FORECAST_COLUMNS, "realized")  # DESIGN section 5
TIMING_COLUMNS = ("fold", "model", "n_train", "n_calib", "n_test", "fit_seconds", "predict_seconds")


# ---------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class WalkForwardConfig:
    """The walk-forward plan (module docstring: keys, defaults, purging). ``None`` means "the default, resolved
    from the data" (:meth:`resolve`). ``source`` is the spec file named in errors; it is not a spec key."""

    window: str = "expanding"
    train_bars: int | None = None
    refit_every: int | None = None
    step: int | None = None
    embargo: int | None = None
    calibration_fraction: float = 0.2
    calibration: str = "split"
    alpha: float = 0.1
    gamma: float = 0.005
    start: int | None = None
    max_folds: int | None = None
    source: str = field(default="<defaults>", compare=False)

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            self._fail("window", f"must be one of {', '.join(WINDOWS)}; got {self.window!r}")
        if self.calibration not in CALIBRATION_METHODS:
            self._fail("calibration", f"must be one of {', '.join(CALIBRATION_METHODS)}; got {self.calibration!r}")
        for key, minimum in (("train_bars", 1), ("refit_every", 1), ("step", 1), ("embargo", 0), ("start", 0)):
            self._check_int(key, minimum)
        self._check_int("max_folds", 1)
        self._check_number("calibration_fraction", 0.0, 1.0, "in [0, 1): 0 disables the calibration block")
        self._check_number("alpha", 0.0, 1.0, "in (0, 1), e.g. 0.1 for a 90% interval", open_low=True)
        self._check_number("gamma", 0.0, 1.0, "in (0, 1), e.g. 0.005", open_low=True)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The spec keys of the ``evaluation:`` section."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "source")

    def resolve(self, data: ModelData) -> WalkForwardConfig:
        """A copy with every default filled in from ``data`` (idempotent): start, step, embargo, train_bars and
        refit_every as whole numbers of bars. Raises ConfigError (embargo < h_max, start past the data) or
        ModelError (data too short for one fold, with the number of bars needed)."""
        n, h_max = len(data), max(data.horizons)
        warmup = data.info.get("warmup", {})
        start = max(warmup.values(), default=0) if self.start is None else self.start
        if start >= n and self.start is None:
            longest = max(warmup, key=warmup.get)
            raise ModelError(
                f"the longest feature warm-up ({start} bars, {longest!r}) leaves none of the data's {n} bars usable. "
                "Fix: longer data, shorter feature windows, or evaluation.start"
            )
        if start >= n:
            self._fail("start", f"row {start} is past the data's {n} bars; lower it, or use longer data")
        step = self.step if self.step is not None else default_step(data.index)
        embargo = h_max if self.embargo is None else self.embargo
        if embargo < h_max:
            self._fail(
                "embargo",
                f"{embargo} bars is shorter than the longest horizon ({h_max} bars): targets of the last training "
                f"origins would overlap the next block. Fix: set embargo ≥ {h_max}, or null for {h_max}",
            )
        gap = h_max + embargo
        least = min_train_bars(gap, step, self.calibration_fraction)
        if self.train_bars is not None:
            train = round_up(self.train_bars, step)
            if train < least:
                self._fail(
                    "train_bars",
                    f"{self.train_bars} bars leave no training or calibration origin once purged ({gap} bars of "
                    f"h_max + embargo before each block). Fix: train_bars ≥ {least}",
                )
        else:
            train = default_train_bars(n - start, step)
        evaluation = (n - h_max) - (start + train)  # test origins t in [start + train, n − h_max)
        if evaluation < 1 or train < least:
            raise ModelError(
                f"the data is too short for one walk-forward fold: {n} bars; it needs at least "
                f"{bars_needed(self, start=start, step=step, gap=gap, h_max=h_max)} (warm-up/start {start}, a "
                f"training window of ≥ {least} bars: {gap} bars of h_max + embargo before each block, "
                f"calibration_fraction {self.calibration_fraction}; then ≥ {h_max + 1} bars to test h={h_max}). "
                "Fix: longer data, a shorter horizon or embargo, or a smaller train_bars"
            )
        refit = round_up(self.refit_every or math.ceil(evaluation / DEFAULT_BLOCKS), step)
        return dataclasses.replace(self, start=start, step=step, embargo=embargo, train_bars=train, refit_every=refit)

    def _fail(self, key: str, message: str) -> None:
        raise ConfigError(self.source, f"evaluation.{key}", message)

    def _check_int(self, key: str, minimum: int) -> None:
        value = getattr(self, key)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            self._fail(key, f"must be a whole number of bars ≥ {minimum}, or null for the default; got {value!r}")

    def _check_number(self, key: str, low: float, high: float, allowed: str, *, open_low: bool = False) -> None:
        value = getattr(self, key)
        ok = not isinstance(value, bool) and isinstance(value, int | float) and low <= value < high
        if not ok or (open_low and value == low):
            self._fail(key, f"must be a number {allowed}; got {value!r}")


def walkforward_config_from_spec(spec_values: Mapping[str, Any], *, where: str) -> WalkForwardConfig:
    """The :class:`WalkForwardConfig` of a whole spec's values (``Spec.values``): its ``evaluation:`` section
    (absent or empty: every default), checked against its ``horizons`` (embargo ≥ the longest).

    Raises ConfigError naming ``where`` and the dotted key for an unknown key or a bad value.
    """
    section = checked_section(spec_values, "evaluation", WalkForwardConfig.keys(), where)
    config = WalkForwardConfig(**section, source=where)
    horizons = spec_values.get("horizons")
    if config.embargo is not None and isinstance(horizons, list | tuple) and all(isinstance(h, int) for h in horizons):
        h_max = max(horizons, default=0)
        if config.embargo < h_max:
            config._fail(
                "embargo", f"{config.embargo} bars is shorter than the longest horizon ({h_max}); set ≥ {h_max}"
            )
    return config


def round_up(bars: int, step: int) -> int:
    """``bars`` rounded up to a whole number of ``step`` s."""
    return -(-int(bars) // step) * step


def bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The base bar length: the median spacing of ``index`` (robust to weekends and gaps)."""
    if len(index) < 2:
        raise ModelError(f"the data has {len(index)} bar(s): at least 2 are needed to know the bar length")
    return (index[1:] - index[:-1]).median()  # in the index's own unit (ns, us, ms or s)


def default_step(index: pd.DatetimeIndex) -> int:
    """Bars in 15 minutes (15 on 1-minute bars), at least one (1 on daily bars)."""
    return max(1, round(DEFAULT_STEP_TIME / bar_length(index)))


def default_train_bars(usable: int, step: int) -> int:
    """60% of the usable bars, rounded down to whole steps (at least one step)."""
    return max(step, int(DEFAULT_TRAIN_SHARE * usable) // step * step)


def calibration_bars(window: int, step: int, fraction: float) -> int:
    """The calibration block of a ``window``-bar training window: its last ``fraction``, in whole steps."""
    return round_up(math.ceil(fraction * window), step) if fraction > 0 else 0


def min_train_bars(gap: int, step: int, fraction: float) -> int:
    """The shortest training window (whole steps) that keeps one training origin (and one calibration origin when
    ``fraction`` > 0) once purged by ``gap`` = h_max + embargo bars before each block."""
    if fraction == 0:
        return round_up(gap, step)
    # candidate windows up to one that surely fits: both parts ≥ gap + step
    top = round_up(math.ceil((gap + 2 * step) / min(fraction, 1 - fraction)) + 2 * step, step)
    windows = np.arange(step, top + 1, step)  # (k,)
    calib = -(-np.ceil(fraction * windows).astype(np.int64) // step) * step
    ok = (calib >= gap) & (windows - calib >= gap)
    return int(windows[np.argmax(ok)])


def bars_needed(config: WalkForwardConfig, *, start: int, step: int, gap: int, h_max: int) -> int:
    """The fewest bars with which ``config`` makes one fold (the message of the too-short error)."""
    least = min_train_bars(gap, step, config.calibration_fraction)
    if config.train_bars is not None:
        return start + round_up(config.train_bars, step) + h_max + 1
    # default window: 60% of the usable bars u must reach `least`, the rest must hold one test origin
    top = math.ceil((least + step) / DEFAULT_TRAIN_SHARE) + math.ceil((h_max + 1) / (1 - DEFAULT_TRAIN_SHARE)) + 1
    usable = np.arange(1, top + 1)  # (k,), the last one surely fits
    train = np.maximum(step, (DEFAULT_TRAIN_SHARE * usable).astype(np.int64) // step * step)
    ok = (train >= least) & (usable - h_max - train >= 1)
    return start + int(usable[np.argmax(ok)])


# ---------------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True, eq=False)
class Fold:
    """One refit: row positions (int64, increasing) and the bounds of its blocks (bars).

    Attributes
    ----------
    number
        0, 1, ... in time order.
    train_rows, calib_rows, test_rows
        Training origins (purged), calibration origins (purged; empty without calibration), test origins.
    train_start, calib_start, test_start, test_end
        The training window is [train_start, test_start), its calibration block [calib_start, test_start)
        (calib_start = test_start without calibration), the test block [test_start, test_end).
    """

    number: int
    train_rows: IntArray
    calib_rows: IntArray
    test_rows: IntArray
    train_start: int
    calib_start: int
    test_start: int
    test_end: int


def folds(data: ModelData, config: WalkForwardConfig) -> list[Fold]:
    """The folds of ``config`` (resolved on ``data`` first) in time order; module docstring for the layout.

    Raises ModelError when the data is too short for one fold (with the number of bars it needs).
    """
    cfg = config.resolve(data)
    n, h_max = len(data), max(data.horizons)
    gap = h_max + cfg.embargo
    grid = np.arange(cfg.start, n, cfg.step, dtype=np.int64)  # every origin, (m,)
    eval_start, eval_end = cfg.start + cfg.train_bars, n - h_max  # test origins t in [eval_start, eval_end)
    starts = np.arange(eval_start, eval_end, cfg.refit_every, dtype=np.int64)  # (k,)
    if cfg.max_folds is not None:
        starts = starts[-cfg.max_folds :]
    out = []
    for number, test_start in enumerate(starts.tolist()):
        test_end = min(test_start + cfg.refit_every, eval_end)
        train_start = cfg.start if cfg.window == "expanding" else test_start - cfg.train_bars
        calib_start = test_start - calibration_bars(test_start - train_start, cfg.step, cfg.calibration_fraction)
        fold = Fold(
            number=number,
            train_rows=_between(grid, train_start, calib_start - gap),  # calib_start: the next block
            calib_rows=_between(grid, calib_start, test_start - gap) if calib_start < test_start else grid[:0],
            test_rows=_between(grid, test_start, test_end - 1),
            train_start=train_start,
            calib_start=calib_start,
            test_start=test_start,
            test_end=test_end,
        )
        if (
            fold.train_rows.size == 0
            or fold.test_rows.size == 0
            or (calib_start < test_start) != bool(fold.calib_rows.size)
        ):
            raise ModelError(
                f"fold {number} (test rows {test_start}..{test_end - 1}) has {fold.train_rows.size} training, "
                f"{fold.calib_rows.size} calibration and {fold.test_rows.size} test origins after purging by "
                f"{gap} bars: widen train_bars (≥ {min_train_bars(gap, cfg.step, cfg.calibration_fraction)}) or "
                "lower step"
            )
        out.append(fold)
    return out


def _between(grid: IntArray, first: int, last: int) -> IntArray:
    """The grid origins t with first ≤ t ≤ last, (k,)."""
    return grid[np.searchsorted(grid, first, side="left") : np.searchsorted(grid, last, side="right")]


# ---------------------------------------------------------------------------------------------------- walk forward


@dataclass
class WalkForwardResult:
    """What :func:`walk_forward` returns.

    Attributes
    ----------
    predictions
        Test forecasts of every fold and model, one row per (model, horizon, timestamp), sorted so:
        :data:`PREDICTION_COLUMNS` = FORECAST_COLUMNS + ``realized`` (rv_h at the origin, decimal²),
        ``realized_class`` (its regime class 0/1/2 by the fold's fitted thresholds, float) and ``fold``.
    folds
        The folds (row positions and block bounds).
    fitted
        The last fold's fitted models, name → Forecaster (for registration).
    calibrators
        The last fold's fitted conformal calibrators, name → ConformalCalibrator (empty without calibration);
        adaptive ones advanced through that fold's test block (:meth:`ConformalCalibrator.advance`), so a
        registered model's intervals at the last test origin are the walk-forward's.
    timings
        One row per (fold, model): :data:`TIMING_COLUMNS` (seconds; predict covers calibration and test rows).
    config
        The resolved config (every default filled in).
    failures
        name → message of the models that failed with ``on_error="skip"``; they are absent from every other field.
    """

    predictions: pd.DataFrame
    folds: list[Fold]
    fitted: dict[str, Forecaster]
    calibrators: dict[str, Any]
    timings: pd.DataFrame
    config: WalkForwardConfig
    failures: dict[str, str] = field(default_factory=dict)

    def evaluate(self, benchmark: str = "har", oracle: str | None = "auto") -> dict[str, Any]:
        """The metrics of the predictions (``training.metrics.evaluate_predictions``, DESIGN section 11 layout).

        ``oracle="auto"``: the model named ``oracle`` when there is one, else none; None: no oracle gap. A
        benchmark or oracle that is not among the models is reported under ``warnings`` (no DM test, no gap).
        The DM lag follows the origins' spacing, ``config.step``.
        """
        from training.metrics import evaluate_predictions

        if oracle == "auto":
            oracle = "oracle" if (self.predictions["model"] == "oracle").any() else None
        return evaluate_predictions(self.predictions, benchmark=benchmark, oracle=oracle, step=self.config.step)


def walk_forward(
    data: ModelData,
    models: Mapping[str, Forecaster],
    config: WalkForwardConfig,
    *,
    calibrate: bool = True,
    on_error: Literal["raise", "skip"] = "raise",
    show_progress: bool = False,
) -> WalkForwardResult:
    """Fit and forecast every model on every fold of ``config``; the forecasts of all folds in one frame.

    Parameters
    ----------
    data
        The bars' features and targets (``training.data.model_data``).
    models
        name → unfitted model; each fold fits a clone. The ``model`` column of the predictions holds the name.
    config
        The plan (resolved on ``data`` here).
    calibrate
        Conformal calibration of the quantiles (``models.calibration.ConformalCalibrator``, method
        ``config.calibration``, ``config.alpha``): fitted per model and fold on the calibration rows, applied to
        the test rows. False leaves the forecasts raw; the calibration rows stay out of training either way (the
        folds depend on the config only), ``calibration_fraction: 0`` gives them to training.
    on_error
        What a model that fails to fit or forecast does. ``"raise"``: a ModelError naming the model and the fold.
        ``"skip"``: the model is dropped from the whole result (its earlier folds too, so every remaining model
        covers the same origins) and its message kept under ``failures``; if every model fails, a ModelError.
    show_progress
        A bar over the folds (on a terminal only).
    """
    if not models:
        raise ModelError("walk_forward needs at least one model: pass {name: Forecaster}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
    cfg = config.resolve(data)
    plan = folds(data, cfg)
    calibrating = calibrate and cfg.calibration_fraction > 0
    freq = bar_length(data.index)
    active = dict(models)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in active}
    timings: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    fitted: dict[str, Forecaster] = {}
    calibrators: dict[str, Any] = {}
    steps = progress(plan, desc="walk-forward", total=len(plan), unit="fold") if show_progress else plan
    for fold in steps:
        fitted, calibrators = {}, {}
        for name, prototype in list(active.items()):
            try:
                model, calib, test, timing = _fit_predict(prototype, name, data, fold)
            except Exception as exc:
                message = (
                    f"model {name!r} failed on fold {fold.number} (training rows {fold.train_rows[0]}.."
                    f"{fold.train_rows[-1]}, test rows {fold.test_rows[0]}..{fold.test_rows[-1]}): "
                    f"{type(exc).__name__}: {exc}"
                )
                if on_error == "raise":
                    raise ModelError(f"{message}. Fix the model or its data, or pass on_error='skip'") from exc
                failures[name] = message
                del active[name], parts[name]
                continue
            test = _with_realized(test, data)
            if calibrating:
                calibrators[name], test = _calibrate(calib, test, data, cfg, freq)
            test["realized_class"] = _realized_class(model, test)
            test["fold"] = fold.number
            parts[name].append(test)
            fitted[name] = model
            timings.append({"fold": fold.number, "model": name, **timing})
        if not active:
            raise ModelError("every model failed:\n" + "\n".join(failures.values()))
    predictions = pd.concat([frame for name in active for frame in parts[name]], ignore_index=True)
    predictions = predictions.sort_values(["model", "horizon", "timestamp"], kind="stable", ignore_index=True)
    predictions = predictions[list(PREDICTION_COLUMNS)]
    _check_same_origins(predictions, data, plan)
    return WalkForwardResult(
        predictions=predictions,
        folds=plan,
        fitted=fitted,
        calibrators=calibrators,
        timings=pd.DataFrame([t for t in timings if t["model"] in active], columns=list(TIMING_COLUMNS)),
        config=cfg,
        failures=failures,
    )


def _fit_predict(
    prototype: Forecaster, name: str, data: ModelData, fold: Fold
) -> tuple[Forecaster, pd.DataFrame | None, pd.DataFrame, dict[str, Any]]:
    """Clone, fit on the training rows, forecast the calibration and test rows (timed, in seconds)."""
    model = prototype.clone()
    began = time.perf_counter()
    model.fit(data, fold.train_rows)
    fitted = time.perf_counter()
    calib = _named(model.predict(data, fold.calib_rows), name) if fold.calib_rows.size else None
    test = _named(model.predict(data, fold.test_rows), name)
    done = time.perf_counter()
    sizes = {"n_train": fold.train_rows.size, "n_calib": fold.calib_rows.size, "n_test": fold.test_rows.size}
    return model, calib, test, {**sizes, "fit_seconds": fitted - began, "predict_seconds": done - fitted}


def _named(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = [c for c in FORECAST_COLUMNS if c not in frame.columns]
    if missing:
        raise ModelError(f"the forecast frame lacks {missing}: predict must return FORECAST_COLUMNS")
    out = frame[list(FORECAST_COLUMNS)].copy()
    out["model"] = name
    return out


def _with_realized(frame: pd.DataFrame, data: ModelData) -> pd.DataFrame:
    """``frame`` plus ``realized``: rv_h at each row's origin and horizon (NaN only where the data has a gap)."""
    positions = data.index.get_indexer(pd.DatetimeIndex(frame["timestamp"]))  # (m,)
    if (positions < 0).any():
        bad = frame["timestamp"].to_numpy()[positions < 0][0]
        raise ModelError(f"a forecast's timestamp {bad} is not a bar of the data: predict must keep the origins")
    realized = np.full(len(frame), np.nan)
    horizons = frame["horizon"].to_numpy()
    for h in np.unique(horizons).tolist():
        mask = horizons == h
        realized[mask] = data.target(int(h))[positions[mask]]
    out = frame.copy()
    out["realized"] = realized
    return out


def _realized_class(model: Forecaster, frame: pd.DataFrame) -> np.ndarray:
    """The regime class (0 calm, 1 normal, 2 stressed; float, NaN where realized is) of each row's realized
    rv_h, by the thresholds the model fitted on its training rows. Shape (m,)."""
    out = np.full(len(frame), np.nan)
    horizons = frame["horizon"].to_numpy()
    realized = frame["realized"].to_numpy(dtype=float)
    for h in np.unique(horizons).tolist():
        mask = horizons == h
        out[mask] = model.thresholds_[int(h)].classify(realized[mask])
    return out


def _calibrate(
    calib: pd.DataFrame | None, test: pd.DataFrame, data: ModelData, cfg: WalkForwardConfig, freq: pd.Timedelta
) -> tuple[Any, pd.DataFrame]:
    """Fit a conformal calibrator on the calibration forecasts (with realized), apply it to the test forecasts."""
    from models.calibration import ConformalCalibrator

    if calib is None:  # folds() guarantees calibration rows whenever calibration_fraction > 0
        raise ModelError("calibration asked for but the fold has no calibration rows: set calibration_fraction > 0")
    calibrator = ConformalCalibrator(alpha=cfg.alpha, method=cfg.calibration, gamma=cfg.gamma)
    calibrator.fit(_with_realized(calib, data))
    applied = calibrator.apply(test, freq=freq if cfg.calibration == "adaptive" else None)
    if cfg.calibration == "adaptive":  # the state after this block: what a registered model continues from
        calibrator = calibrator.advance(test, freq=freq)
    if len(applied) != len(test) or not set(FORECAST_COLUMNS).issubset(applied.columns):
        raise ModelError(
            f"ConformalCalibrator.apply returned {len(applied)} rows and columns {list(applied.columns)}; expected "
            f"{len(test)} rows with FORECAST_COLUMNS: fix models.calibration"
        )
    out = applied[list(FORECAST_COLUMNS)].copy()
    out["realized"] = test["realized"].to_numpy()  # realized is data, whatever the calibrator does with it
    return calibrator, out


def _check_same_origins(predictions: pd.DataFrame, data: ModelData, plan: list[Fold]) -> None:
    """Every (model, horizon) forecasts exactly the test origins of the folds, in time order."""
    expected = data.index[np.concatenate([fold.test_rows for fold in plan])]  # (m,)
    for (name, h), group in predictions.groupby(["model", "horizon"], sort=False):
        stamps = pd.DatetimeIndex(group["timestamp"])
        if not stamps.equals(expected):
            raise ModelError(
                f"model {name!r}, h={h}: {len(stamps)} forecasts whose timestamps differ from the {len(expected)} "
                "test origins every model shares; predict must return one row per requested origin and horizon"
            )


# ---------------------------------------------------------------------------------------------------- output


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Write the predictions file of DESIGN section 5: :data:`PREDICTIONS_FILE_COLUMNS`, one row per (timestamp,
    horizon, model); ``realized`` empty (CSV) or null (Parquet) where unknown, and where the frame has no
    ``realized`` column (live forecasts). The format follows the suffix: ``.parquet``, ``.csv`` or ``.csv.gz``.
    Parent folders are created. Returns the path."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".parquet", ".csv", ".csv.gz")):
        raise UsageError(
            f"--predictions {path}: unknown file type {''.join(path.suffixes) or '(no suffix)'!r}; "
            "name the file .parquet, .csv or .csv.gz"
        )
    missing = [c for c in FORECAST_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack the columns {missing}: write a walk_forward or predict frame")
    frame = predictions.reindex(columns=list(PREDICTIONS_FILE_COLUMNS))  # realized: NaN when absent
    frame["realized"] = frame["realized"].astype(float)
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
