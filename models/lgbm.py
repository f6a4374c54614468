"""LightGBM forecaster: gradient-boosted trees that learn what a log-HAR misses, on a QLIKE-consistent loss.

A tuned log-HAR with an implied-vol regressor is very hard to beat on realized variance; Carr, Wu & Zhang (2020)
model the residual of realized over implied variance and HARNet starts at HAR and trains on QLIKE. This model
does the same with trees: per horizon h,

- **point forecast**: LightGBM with ``objective="gamma"`` (log link), boosted from the offset
  ``init_score = log(base forecast)``, so ``var = base · exp(F(x))`` and the trees only learn the log-correction.
  The gamma deviance of a forecast f for an outcome y is ``2·(y/f − log(y/f) − 1)``: exactly twice QLIKE. The
  loss is minimized in f by ``f = E[y | x]`` (QLIKE is a Bregman loss, consistent for the mean, Patton 2011), so
  the trees target the conditional mean of rv_h, not exp(E[log rv_h]) (a fit of log rv_h in L2 is biased low
  by the factor exp(E[log ε]) < 1 of the multiplicative noise ε).
- **base** (``base="har"``): a log-HAR fitted inside the model on the same training rows, per horizon
  (:class:`models.baselines.Har` with ``log=True``, ``exog_iv`` when the data has an IV): OLS of ``log rv_h`` on
  ``log(rv_W · h/W)`` for each ``rv_W`` feature column, plus ``log(iv² · h · bar_years)``, with Duan's smearing
  factor ``mean(exp(residual))`` so the base is a mean forecast too. Its log forecast is also given to the trees
  as the input ``base_log_var`` (they may correct it non-linearly). ``base="none"`` boosts from the constant log
  of the training mean of rv_h (the gamma fit of a constant).
- **early stopping** on the last ``validation_fraction`` of the training rows in time, purged
  (:func:`models.base.purged_validation_split`), on the validation QLIKE (custom metric ``"qlike"``, the base
  included). The base of that stage is fitted on the purged fit part only, so the validation rows are unseen by
  all of it.
  Then the model is **refit on all training rows** with the best number of trees (unscaled): the validation part
  is the most recent stretch of the window, the most relevant to the next forecasts, so it is not left out.
- **quantiles** (``quantile_models=True``): LightGBM ``objective="quantile"`` at each level of
  :data:`models.base.QUANTILES` on ``log rv_h − log base`` (quantiles commute with the increasing log, so
  ``q_rv = base · exp(q_log)``); the five predictions are sorted per row (no crossing). They are cheaper than
  the point model and not early-stopped: ``ceil(n_estimators / AUX_TREE_DIVISOR)`` trees at
  ``AUX_RATE_FACTOR × learning_rate`` (capped at 1).
- **regimes** (``regime_classifier=True``): LightGBM multiclass on the class of rv_h by ``thresholds_[h]``
  (0 calm, 1 normal, 2 stressed), same cheaper budget. A class absent from the training rows gets probability 0
  (the classifier is trained on the present classes only; with one present class it is a constant 1).

Rows with NaN features are allowed in the trees (LightGBM sends missing values down a learned side of each
split); the log-HAR base needs finite ``rv_W`` (and IV) at every origin it forecasts, i.e. origins after the
realized warm-up (it raises a :class:`ModelError` saying so otherwise). Rows with a non-finite target are left
out of fitting. Fits are deterministic given ``seed`` (``deterministic=True``,
``force_row_wise=True``, fixed thread count ``n_jobs``).

Shapes: ``m`` origins, ``p`` input columns (the selected features, plus ``base_log_var`` when ``base="har"``).
Variances are decimal² over the h bars, never annualized.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.base import (
    QUANTILES,
    VAR_FLOOR,
    FloatArray,
    Forecaster,
    IntArray,
    ModelData,
    ModelError,
    purged_validation_split,
    qlike_loss,
    select_features,
)
from models.baselines import BASE_MEASURES_RULE, Har
from models.seasonal import SeasonalProfile

BASES = ("har", "none")
BASE_FEATURE = "base_log_var"  # the log-HAR's log forecast, an input of the trees when base="har"
SEASON_FEATURES = ("season_log_ahead", "season_log_past")  # log s_h(t) and log s_h^past(t), when seasonal
AUX_TREE_DIVISOR = 4  # quantile and regime models train ceil(n_estimators / 4) trees ...
AUX_RATE_FACTOR = 2.0  # ... at twice the learning rate (capped at 1): about half the point model's total step
MIN_FIT_ROWS = 20  # fewer training origins with a known target cannot fit anything sensible
VALID_NAME = "valid"  # the validation set's name in LightGBM's evaluation results (and Optuna's pruning callback)
METRIC_NAME = "qlike"  # the early-stopping metric: mean(y/f − log(y/f) − 1), y floored at VAR_FLOOR

LgbCallback = Callable[[lgb.callback.CallbackEnv], None]


# ---------------------------------------------------------------- pure functions


def qlike(rv: FloatArray, var: FloatArray) -> float:
    """Mean QLIKE (:func:`models.base.qlike_loss`). (m,) → ()."""
    return float(np.mean(qlike_loss(rv, var)))


# ---------------------------------------------------------------- the forecaster


@dataclass(frozen=True)
class _Base:
    """The offset of one horizon h: a fitted log-HAR (:class:`models.baselines.Har`), or the constant log of the
    training mean of rv_h (``har is None``); with ``seasonal``, the intraday profile fitted with it (the seasonal
    HAR's own, or fitted alone for ``base="none"``), else None."""

    har: Har | None
    log_mean: float
    season: SeasonalProfile | None = None

    def log_forecast(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        """log of the base variance forecast at ``rows``, (m,)."""
        if self.har is None:
            return np.full(rows.size, self.log_mean)
        return np.log(self.har._predict_var(data, rows)[horizon])

    def season_inputs(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        """``[log s_h(t), log s_h^past(t)]`` at ``rows`` (:mod:`models.seasonal`): the calendar factor of the next
        h bars and of the last h bars, (m, 2)."""
        if self.season is None:
            raise ModelError("the base has no seasonal profile: fit the model with seasonal=True")
        return np.log(np.column_stack([self.season.ahead(data, rows, horizon), self.season.past(data, rows, horizon)]))


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


# parameter -> (check, what is allowed): one validator, one message shape
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_estimators": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "learning_rate": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "num_leaves": (lambda v: _is_int(v) and v >= 2, "an integer ≥ 2"),
    "min_child_samples": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "subsample": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "subsample_freq": (lambda v: _is_int(v) and v >= 0, "an integer ≥ 0 (0: no bagging)"),
    "colsample_bytree": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "reg_lambda": (lambda v: _is_number(v) and v >= 0, "a number ≥ 0"),
    "early_stopping_rounds": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "validation_fraction": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1) (0: off)"),
    "features": (
        lambda v: v is None or (isinstance(v, list | tuple) and len(v) > 0 and all(isinstance(c, str) for c in v)),
        "None (every feature column) or a non-empty list of column names",
    ),
    "base": (lambda v: v in BASES, f"one of {BASES}"),
    "seasonal": (lambda v: isinstance(v, bool), "True or False"),
    "base_measures": BASE_MEASURES_RULE,
    "lags": (
        lambda v: isinstance(v, list | tuple) and all(_is_int(x) and x >= 1 for x in v) and len(set(v)) == len(v),
        "a list of distinct bar counts ≥ 1 (empty: no lagged inputs)",
    ),
    "lag_features": (
        lambda v: v is None or (isinstance(v, list | tuple) and len(v) > 0 and all(isinstance(c, str) for c in v)),
        "None (the shortest-window rv_W column) or a non-empty list of column names or patterns",
    ),
    "quantile_models": (lambda v: isinstance(v, bool), "True or False"),
    "regime_classifier": (lambda v: isinstance(v, bool), "True or False"),
    "n_jobs": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1 (threads)"),
}


class LgbmForecaster(Forecaster):
    """Gradient-boosted log-corrections of a log-HAR per horizon (module docstring).

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, subsample_freq, colsample_bytree,
    reg_lambda
        LightGBM's tree budget and regularization of the point models (``subsample`` is the bagging fraction
        redrawn every ``subsample_freq`` trees, ``colsample_bytree`` the feature fraction per tree).
    early_stopping_rounds, validation_fraction
        Stop when the validation QLIKE has not improved for this many trees; validate on this last share of the
        training origins (purged). ``validation_fraction=0`` trains ``n_estimators`` trees without validation.
    features
        Feature columns the trees read; None: all of them.
    base
        ``"har"``: boost from the internal log-HAR; ``"none"``: from the training mean.
    seasonal
        Intraday seasonality (:mod:`models.seasonal`): the log-HAR base is ``Har(seasonal=True)`` (deseasonalized
        regressors, forecast × the calendar factor ``s_h(t)`` of the next h bars), and the trees get two more
        inputs, ``season_log_ahead = log s_h(t)`` and ``season_log_past = log s_h^past(t)`` (the factor of the last
        h bars). The profile is fitted on the training rows (with ``base="none"``, alone). False: no seasonality.
    base_measures
        The realized measures of the log-HAR base (:class:`models.baselines.Har` ``measures``): None is ``rv``
        only; e.g. ``["rv", "gk"]`` adds Garman-Klass range variances at every window, a stronger start when the
        bars carry informative highs and lows.
    lags, lag_features
        A longer memory than the origin's row: for each lag L in ``lags`` (bars), the ``lag_features`` columns
        at row t − L, as inputs ``{column}_lag{L}`` (NaN before the first bar; causal: t − L < t). ``lag_features``
        None: the ``rv_W`` column of the shortest window. ``lags`` empty (default): none.
    quantile_models, regime_classifier
        Fit native quantile models / a regime classifier; False: the base class derives them from the residuals.
    n_jobs
        LightGBM threads.

    Fitted attributes (per horizon h): ``boosters_[h]`` (point model), ``best_iteration_[h]`` (its number of
    trees), ``valid_qlike_[h]`` (best validation QLIKE, NaN without validation), ``quantile_boosters_[h]`` (five
    models, at :data:`QUANTILES`), ``regime_boosters_[h]`` and ``regime_classes_[h]`` (classes present in
    training), ``feature_names_`` (the trees' input columns).

    Optuna pruning: :meth:`fit_with_callbacks` passes LightGBM callbacks to the point models' training.
    """

    family: ClassVar[str] = "lgbm"

    def __init__(
        self,
        *,
        n_estimators: int = 400,
        learning_rate: float = 0.03,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        subsample_freq: int = 1,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 50,
        validation_fraction: float = 0.2,
        features: list[str] | None = None,
        base: str = "har",
        seasonal: bool = False,
        base_measures: list[str] | None = None,
        lags: Sequence[int] = (),
        lag_features: list[str] | None = None,
        quantile_models: bool = True,
        regime_classifier: bool = True,
        n_jobs: int = 2,
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.features = features
        self.base = base
        self.seasonal = seasonal
        self.base_measures = base_measures
        self.lags = lags
        self.lag_features = lag_features
        self.quantile_models = quantile_models
        self.regime_classifier = regime_classifier
        self.n_jobs = n_jobs

    # ---------------------------------------------------------------- public extras

    def fit_with_callbacks(
        self, data: ModelData, rows: IntArray, callbacks: Mapping[int, Sequence[LgbCallback]]
    ) -> LgbmForecaster:
        """:meth:`fit`, passing ``callbacks[h]`` to the training of the point model of horizon h.

        With validation (``validation_fraction > 0``) they run in the early-stopping stage: each iteration,
        ``env.evaluation_result_list`` holds ``(VALID_NAME, METRIC_NAME, qlike, False)``, i.e. the validation QLIKE
        of the forecasts so far (base included). An Optuna pruning callback reports it with
        ``trial.report(qlike, env.iteration)`` and raises ``optuna.TrialPruned()`` when ``trial.should_prune()``;
        the exception leaves ``fit`` (optuna-integration's ``LightGBMPruningCallback(trial, "qlike",
        valid_name="valid")`` does the same). A trial reports each step once, so give a pruning callback to one
        horizon only. Without validation they run in the only training stage (no evaluation results).

        Parameters
        ----------
        callbacks
            {h: [callback(env: lightgbm.callback.CallbackEnv) -> None]}; horizons left out get none.
        """
        unknown = [h for h in callbacks if h not in (self.horizons or data.horizons)]
        if unknown:
            raise ModelError(f"{self.label}: callbacks for horizons {unknown} the model does not forecast")
        self._callbacks = {int(h): list(cbs) for h, cbs in callbacks.items()}
        try:
            return self.fit(data, rows)
        finally:
            del self._callbacks

    def base_forecast(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        """The offset alone (the internal log-HAR, or the training mean): {h: (m,)} variance forecasts."""
        if not hasattr(self, "bases_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        rows = np.asarray(rows, dtype=np.int64)
        return {h: np.exp(self.bases_[h].log_forecast(data, rows, h)) for h in self.horizons_}

    def feature_importance(self) -> pd.DataFrame:
        """Total split gain of each input column in the point model of each horizon, for MLflow.

        Returns
        -------
        pd.DataFrame
            Columns ``feature``, ``horizon``, ``gain``; one row per (horizon, input column), by horizon then
            decreasing gain.
        """
        if not hasattr(self, "boosters_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        parts = [
            pd.DataFrame(
                {"feature": self.feature_names_, "horizon": h, "gain": b.feature_importance(importance_type="gain")}
            )
            for h, b in self.boosters_.items()
        ]
        frame = pd.concat(parts, ignore_index=True)
        return frame.sort_values(["horizon", "gain"], ascending=[True, False], ignore_index=True)

    # ---------------------------------------------------------------- the contract

    def input_features(self) -> list[str]:
        base = [c for b in self.bases_.values() if b.har is not None for c in b.har.input_features()]
        return list(dict.fromkeys(self.own_features_ + self.lag_columns_ + base))

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self._check_params()
        self.own_features_ = self._feature_columns(data)
        self.lags_ = tuple(int(lag) for lag in self.lags)
        self.lag_columns_ = self._lag_columns(data) if self.lags_ else []
        lagged = [f"{c}_lag{lag}" for lag in self.lags_ for c in self.lag_columns_]
        self.feature_names_ = (
            self.own_features_
            + lagged
            + ([BASE_FEATURE] if self.base == "har" else [])
            + (list(SEASON_FEATURES) if self.seasonal else [])
        )
        callbacks = getattr(self, "_callbacks", {})
        self.bases_, self.boosters_, self.best_iteration_, self.valid_qlike_ = {}, {}, {}, {}
        self.quantile_boosters_, self.regime_boosters_, self.regime_classes_ = {}, {}, {}
        for h in self.horizons_:
            rv = data.target(h)
            known = rows[np.isfinite(rv[rows])]
            if known.size < MIN_FIT_ROWS:
                raise ModelError(
                    f"{self.label}: only {known.size} training origins have a known rv_h{h} (at least "
                    f"{MIN_FIT_ROWS} needed). Fix: train on a longer window"
                )
            y = np.maximum(rv[known], VAR_FLOOR)  # (m,), floored as in QLIKE
            rounds = self.n_estimators
            if self.validation_fraction > 0:
                rounds, self.valid_qlike_[h] = self._early_stop(data, known, y, h, callbacks.get(h, []))
                callbacks_final: list[LgbCallback] = []
            else:
                self.valid_qlike_[h] = math.nan
                callbacks_final = callbacks.get(h, [])
            self.bases_[h] = self._fit_base(data, known, y, h)
            x, offset = self._inputs(data, known, h, self.bases_[h])
            train = self._dataset(x, y, offset)
            self.boosters_[h] = lgb.train(self._params("gamma"), train, rounds, callbacks=callbacks_final)
            self.best_iteration_[h] = rounds
            if self.quantile_models:
                self.quantile_boosters_[h] = self._fit_quantiles(x, np.log(y) - offset)
            if self.regime_classifier:
                labels = self.thresholds_[h].classify(y).astype(np.int64)  # (m,), 0/1/2
                self.regime_classes_[h], self.regime_boosters_[h] = self._fit_regimes(x, labels)

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        out = {}
        for h in self.horizons_:
            x, offset = self._inputs(data, rows, h, self.bases_[h])
            out[h] = np.exp(offset + self.boosters_[h].predict(x, raw_score=True))
        return out

    def _predict_quantiles(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        if not self.quantile_models:
            return None
        out = {}
        for h in self.horizons_:
            x, offset = self._inputs(data, rows, h, self.bases_[h])
            z = np.column_stack([b.predict(x) for b in self.quantile_boosters_[h]])  # (m, 5), log rv − log base
            out[h] = np.exp(offset[:, None] + np.sort(z, axis=1))
        return out

    def _predict_regimes(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        if not self.regime_classifier:
            return None
        out = {}
        for h in self.horizons_:
            classes, booster = self.regime_classes_[h], self.regime_boosters_[h]
            p = np.zeros((rows.size, 3))  # (m, 3); a class absent from training keeps probability 0
            if booster is None:
                p[:, classes[0]] = 1.0
            else:
                x, _ = self._inputs(data, rows, h, self.bases_[h])
                p[:, classes] = booster.predict(x).reshape(rows.size, classes.size)
            out[h] = p
        return out

    # ---------------------------------------------------------------- stages

    def _early_stop(
        self, data: ModelData, known: IntArray, y: FloatArray, h: int, callbacks: Sequence[LgbCallback]
    ) -> tuple[int, float]:
        """The number of trees by early stopping on the purged validation split, and its validation QLIKE."""
        fit_rows, valid_rows = purged_validation_split(known, h, self.validation_fraction)
        fit_mask = np.isin(known, fit_rows)
        valid_mask = np.isin(known, valid_rows)
        base = self._fit_base(data, fit_rows, y[fit_mask], h)  # unseen by the validation rows
        x_fit, off_fit = self._inputs(data, fit_rows, h, base)
        x_valid, off_valid = self._inputs(data, valid_rows, h, base)
        train = self._dataset(x_fit, y[fit_mask], off_fit)
        valid = self._dataset(x_valid, y[valid_mask], off_valid, reference=train)
        booster = lgb.train(
            self._params("gamma"),
            train,
            self.n_estimators,
            valid_sets=[valid],
            valid_names=[VALID_NAME],
            feval=_qlike_eval,
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False), *callbacks],
        )
        return int(booster.best_iteration), float(booster.best_score[VALID_NAME][METRIC_NAME])

    def _fit_base(self, data: ModelData, rows: IntArray, y: FloatArray, h: int) -> _Base:
        """The offset of horizon h fitted on ``rows`` (targets ``y``, (m,), positive)."""
        log_mean = float(np.log(np.mean(y)))
        if self.base == "none":
            return _Base(None, log_mean, SeasonalProfile.fit(data, rows) if self.seasonal else None)
        har = Har(
            log=True,
            exog_iv=data.iv is not None,
            seasonal=self.seasonal,
            measures=None if self.base_measures is None else list(self.base_measures),
            horizons=(h,),
            seed=self.seed,
            name=f"{self.label}-base",
        )
        har.fit(data, rows)
        return _Base(har, log_mean, har.season_)

    def _fit_quantiles(self, x: FloatArray, z: FloatArray) -> list[lgb.Booster]:
        """One quantile model per level of QUANTILES on the log-ratio ``z = log rv − log base`` (m,)."""
        rounds, params = self._aux_params("quantile")
        return [lgb.train({**params, "alpha": q}, self._dataset(x, z), rounds) for q in QUANTILES]

    def _fit_regimes(self, x: FloatArray, labels: IntArray) -> tuple[IntArray, lgb.Booster | None]:
        """(classes present in training, multiclass model over them; None when only one class is present)."""
        classes = np.unique(labels)
        if classes.size == 1:
            return classes, None
        rounds, params = self._aux_params("multiclass")
        params["num_class"] = int(classes.size)
        codes = np.searchsorted(classes, labels)  # present classes renumbered 0..k−1
        return classes, lgb.train(params, self._dataset(x, codes.astype(float)), rounds)

    # ---------------------------------------------------------------- helpers

    def _check_params(self) -> None:
        for name, (ok, allowed) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise ModelError(f"{self.label}: parameter {name} must be {allowed}; got {value!r}")

    def _feature_columns(self, data: ModelData) -> list[str]:
        return select_features(data.features.columns, self.features, self.label)

    def _lag_columns(self, data: ModelData) -> list[str]:
        if self.lag_features is not None:
            return select_features(data.features.columns, self.lag_features, f"{self.label} lag_features")
        windows = sorted(int(str(c)[3:]) for c in data.features.columns if re.fullmatch(r"rv_\d+", str(c)))
        if not windows:
            raise ModelError(
                f"{self.label}: lags need an rv_W feature column (lag_features=None) and the table has none. Fix: add "
                "the 'realized' group to the spec's features, or name lag_features"
            )
        return [f"rv_{windows[0]}"]

    def _columns(self, data: ModelData, names: Sequence[str]) -> IntArray:
        where = data.features.columns.get_indexer(list(names))
        if np.any(where < 0):
            missing = [n for n, i in zip(names, where, strict=True) if i < 0]
            raise ModelError(
                f"{self.label}: the data lacks the feature columns {missing[:5]} the model was fitted on. Fix: build "
                "the features with the spec the model was trained with"
            )
        return where

    def _inputs(self, data: ModelData, rows: IntArray, h: int, base: _Base) -> tuple[FloatArray, FloatArray]:
        """(tree inputs (m, p), log offset (m,)) at ``rows``, columns in ``feature_names_`` order: own features,
        lagged features, the base's log forecast, the seasonal factors."""
        parts = [data.features.iloc[rows, self._columns(data, self.own_features_)].to_numpy(dtype=float)]
        if self.lags_:
            values = data.features.iloc[:, self._columns(data, self.lag_columns_)].to_numpy(dtype=float)  # (n, q)
            for lag in self.lags_:
                past = rows - lag  # (m,), strictly before the origin
                block = values[np.maximum(past, 0)]  # (m, q)
                block[past < 0] = np.nan
                parts.append(block)
        offset = base.log_forecast(data, rows, h)
        if self.base == "har":
            parts.append(offset[:, None])
        if self.seasonal:
            parts.append(base.season_inputs(data, rows, h))
        return np.column_stack(parts), offset

    def _dataset(
        self, x: FloatArray, y: FloatArray, init: FloatArray | None = None, reference: lgb.Dataset | None = None
    ) -> lgb.Dataset:
        return lgb.Dataset(
            x,
            label=y,
            init_score=init,
            feature_name=self.feature_names_,
            reference=reference,
            params={"verbosity": -1, "min_data_in_leaf": self.min_child_samples},
            free_raw_data=True,
        )

    def _params(self, objective: str) -> dict[str, Any]:
        return {
            "objective": objective,
            "metric": "None",  # the point model's early stopping uses the custom QLIKE metric only
            "learning_rate": float(self.learning_rate),
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": float(self.subsample),
            "bagging_freq": self.subsample_freq,
            "feature_fraction": float(self.colsample_bytree),
            "lambda_l2": float(self.reg_lambda),
            "num_threads": self.n_jobs,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def _aux_params(self, objective: str) -> tuple[int, dict[str, Any]]:
        """(trees, parameters) of the quantile and regime models: a quarter of the trees at twice the rate."""
        params = self._params(objective)
        params["learning_rate"] = min(AUX_RATE_FACTOR * params["learning_rate"], 1.0)
        return math.ceil(self.n_estimators / AUX_TREE_DIVISOR), params


def _qlike_eval(preds: FloatArray, dataset: lgb.Dataset) -> tuple[str, float, bool]:
    """LightGBM custom metric: QLIKE of the forecasts ``preds`` = exp(init_score + raw score) (the gamma
    objective's output, offset included), lower is better."""
    return METRIC_NAME, qlike(dataset.get_label(), preds), False
