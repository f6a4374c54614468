"""The forecaster contract every model follows (DESIGN section 5), and the inputs they share.

A **forecaster** is scikit-learn-like: ``__init__(self, *, ...)`` only stores hyper-parameters (no work, no data),
``fit(data, rows)`` learns from the training origins ``rows`` and returns ``self``, ``predict(data, rows)`` returns
the forecast frame at the origins ``rows``. Origins are row positions of :class:`ModelData` (bars); a forecast at
origin t may use data at or before t only (features row t, returns up to t), never targets: only ``fit`` reads
them, and the caller passes training rows whose targets are fully known (purged, see ``training.walkforward``).

The forecast frame (one row per origin and horizon, long format; :data:`FORECAST_COLUMNS`):

- ``timestamp`` (the origin's bar end time, UTC), ``horizon`` (bars), ``model`` (the forecaster's name);
- ``var``: point forecast of ``rv_h`` (> 0, decimal², over the h bars, never annualized);
- ``q05 .. q95``: quantiles of ``rv_h``, non-decreasing;
- ``p_calm, p_normal, p_stressed``: probabilities of the regime classes of ``rv_h`` (thresholds fitted by ``fit``
  on the training rows, DESIGN section 5), summing to 1.

A model supplies what it knows (:meth:`Forecaster._fit`, :meth:`Forecaster._predict_var`, optionally
:meth:`Forecaster._predict_quantiles` and :meth:`Forecaster._predict_regimes`); the base class fills the rest the
same way for every model: quantiles and regime probabilities from the empirical distribution of the training
log-ratio residuals ``log(rv_h / var)`` (a multiplicative error model), so no column is ever NaN. Calibrated
intervals come on top (``models.calibration``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.targets import RegimeThresholds
from forecaster.errors import ForecasterError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = ("q05", "q25", "q50", "q75", "q95")
REGIMES = ("calm", "normal", "stressed")
REGIME_COLUMNS = ("p_calm", "p_normal", "p_stressed")
REGIME_LEVELS = (0.5, 0.9)  # DESIGN section 5: calm below the median of the training rv_h, stressed above the 90th
FORECAST_COLUMNS = ("timestamp", "horizon", "model", "var", *QUANTILE_COLUMNS, *REGIME_COLUMNS)
VAR_FLOOR = 1e-12  # DESIGN section 6: rv floored at 1e-12 in QLIKE; forecasts are floored the same way


def qlike_loss(rv: npt.ArrayLike, var: npt.ArrayLike) -> FloatArray:
    """The QLIKE loss rv/var − log(rv/var) − 1, both floored at :data:`VAR_FLOOR` (DESIGN section 6), elementwise.

    The one definition: models fit on it (λ of EWMA, early stopping) and ``training.metrics`` scores with it.
    Its expectation over rv is minimized by var = E[rv] (Patton 2011).
    """
    ratio = np.maximum(np.asarray(rv, dtype=float), VAR_FLOOR) / np.maximum(np.asarray(var, dtype=float), VAR_FLOOR)
    return ratio - np.log(ratio) - 1.0


class ModelError(ForecasterError):
    """A model cannot be fitted or used as asked (too little data, missing input, not fitted)."""


@dataclass(frozen=True)
class ModelData:
    """Everything a forecaster may read, aligned on the bars (n rows, index = bar end times, UTC).

    Attributes
    ----------
    features
        The feature table (``features.pipeline``), (n, p); NaN only inside each column's warm-up.
    log_return
        ln(close_t / close_{t−1}), (n,); NaN on the first bar.
    bar_years
        One bar in years (the market's annualization).
    horizons
        Forecast horizons in bars.
    targets
        ``rv_h{h}`` (and ``div_h{h}`` when an IV exists) per horizon, (n, ·); NaN where not yet known. Read by
        ``fit`` (and the evaluation) only.
    iv
        Annualized decimal IV known at each bar (the IV index, else the chain's 30-day ATM IV), (n,), or None.
    truth
        The simulator's ``truth`` frame (oracle forecasts, latent regime), or None; only the oracle reads it.
    """

    features: pd.DataFrame
    log_return: FloatArray
    bar_years: float
    horizons: tuple[int, ...]
    targets: pd.DataFrame | None = None
    iv: FloatArray | None = None
    truth: pd.DataFrame | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.features.index

    def __len__(self) -> int:
        return len(self.features)

    def target(self, h: int) -> FloatArray:
        """``rv_h{h}`` as an array (n,)."""
        if self.targets is None or f"rv_h{h}" not in self.targets:
            raise ModelError(f"no rv_h{h} target in the data: build it with horizons including {h}")
        return self.targets[f"rv_h{h}"].to_numpy(dtype=float)

    def column(self, name: str) -> FloatArray:
        """A feature column as an array (n,), with an error naming what exists when it is missing."""
        if name not in self.features.columns:
            raise ModelError(
                f"feature {name!r} is not in the feature table (it has {len(self.features.columns)} columns, e.g. "
                f"{list(self.features.columns[:5])}). Fix: add its group/window to the spec's features section"
            )
        return self.features[name].to_numpy(dtype=float)


def select_features(columns: Sequence[str], patterns: Sequence[str] | None, what: str) -> list[str]:
    """The feature columns a model reads, in table order: all when ``patterns`` is None, else the columns that
    match a pattern (exact name or ``fnmatch`` glob such as ``rv_*``) and no ``!``-prefixed exclusion
    (``["*", "!chain_*"]``: everything but the chain features).

    Raises
    ------
    ModelError
        A pattern (not an exclusion) that matches no column, or nothing selected; the message lists examples.
    """
    from fnmatch import fnmatchcase

    names = [str(c) for c in columns]
    if patterns is None:
        return names
    if isinstance(patterns, str) or not all(isinstance(p, str) and p.strip("!") for p in patterns):
        raise ModelError(f"{what}: features must be a list of column names or glob patterns; got {patterns!r}")
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    unmatched = [p for p in include if not any(fnmatchcase(c, p) for c in names)]
    if unmatched:
        raise ModelError(
            f"{what}: features {unmatched} match no column of the feature table ({len(names)} columns, e.g. "
            f"{names[:5]}). Fix: add their group/window to the spec's features, or drop them from features"
        )
    chosen = [
        c for c in names if any(fnmatchcase(c, p) for p in include) and not any(fnmatchcase(c, p) for p in exclude)
    ]
    if not chosen:
        raise ModelError(f"{what}: the features patterns {list(patterns)} leave no column")
    return chosen


def purged_validation_split(rows: IntArray, horizon: int, fraction: float) -> tuple[IntArray, IntArray]:
    """Split increasing training origins into (fit, validation) in time, purged of overlapping targets.

    The validation part is the last ``round(fraction · m)`` origins (at least 1). The target of origin t covers
    bars (t, t + h]; a fit origin with ``t + h > v0`` (v0 the first validation origin) would share returns with a
    validation target and with the validation features, so it is dropped.

    Parameters
    ----------
    rows
        Increasing origins (row positions), (m,).
    horizon
        h in bars (≥ 1).
    fraction
        Share of the origins to validate on, in (0, 1).

    Returns
    -------
    fit, valid
        Origins, (m_fit,) and (m_valid,); ``fit[-1] + horizon <= valid[0]``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not 0.0 < fraction < 1.0:
        raise ModelError(f"validation fraction must be in (0, 1); got {fraction!r}")
    n_valid = max(1, round(fraction * rows.size))
    if n_valid >= rows.size:
        raise ModelError(
            f"a validation fraction of {fraction} leaves no fit rows out of {rows.size}. Fix: train on more origins "
            "or lower validation_fraction (0 turns early stopping off)"
        )
    valid = rows[rows.size - n_valid :]
    head = rows[: rows.size - n_valid]
    fit = head[head + horizon <= valid[0]]
    if fit.size == 0:
        raise ModelError(
            f"purging h={horizon} bars before the validation part (from row {valid[0]}) leaves no fit rows out of "
            f"{rows.size}. Fix: train on a longer window or lower validation_fraction (0 turns early stopping off)"
        )
    return fit, valid


def check_rows(data: ModelData, rows: npt.ArrayLike, what: str) -> IntArray:
    """Row positions as int64, checked: 1-d, inside the data, increasing, not empty."""
    out = np.asarray(rows)
    if out.dtype == bool:
        out = np.flatnonzero(out)
    out = out.astype(np.int64, copy=False)
    if out.ndim != 1 or out.size == 0:
        raise ModelError(f"{what}: rows must be a non-empty 1-d array of row positions; got shape {out.shape}")
    if out[0] < 0 or out[-1] >= len(data) or np.any(np.diff(out) <= 0):
        raise ModelError(f"{what}: rows must be increasing positions in [0, {len(data)}); got {out[0]}..{out[-1]}")
    return out


class Forecaster(ABC):
    """Base class of every model (module docstring). Subclasses define ``family`` and the ``_`` methods.

    Hyper-parameters shared by all: ``horizons`` (None: the data's), ``seed``. Fitted attributes end with ``_``.
    """

    family: ClassVar[str] = "base"

    def __init__(self, *, horizons: Sequence[int] | None = None, seed: int = 0, name: str | None = None) -> None:
        self.horizons = horizons
        self.seed = seed
        self.name = name

    # ---------------------------------------------------------------- scikit-learn-like parameters

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is object or "__init__" not in klass.__dict__:
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind == p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        known = self._param_names()
        for key, value in params.items():
            if key not in known:
                raise ModelError(f"{type(self).__name__} has no parameter {key!r}; it takes {', '.join(known)}")
            setattr(self, key, value)
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same hyper-parameters."""
        return type(self)(**self.get_params())

    @property
    def label(self) -> str:
        """The model's name in forecast frames and MLflow (``name`` when given, else the family)."""
        return self.name or self.family

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- the contract

    def fit(self, data: ModelData, rows: npt.ArrayLike) -> Self:
        """Learn from the origins ``rows`` (positions whose targets are all known). Returns ``self``."""
        rows = check_rows(data, rows, f"{self.label}.fit")
        self.horizons_ = tuple(int(h) for h in (self.horizons or data.horizons))
        missing = [h for h in self.horizons_ if h not in data.horizons]
        if missing:
            raise ModelError(f"{self.label}: horizons {missing} are not among the data's {list(data.horizons)}")
        self.thresholds_ = {}
        for h in self.horizons_:
            rv = data.target(h)[rows]
            if not np.isfinite(rv).any():
                raise ModelError(f"{self.label}: no known rv_h{h} on the training rows; train on a longer window")
            self.thresholds_[h] = RegimeThresholds.fit(rv, REGIME_LEVELS)
        self._fit(data, rows)
        self.residuals_ = {}
        for h in self.horizons_:
            rv = data.target(h)[rows]
            var = self._checked_var(self._predict_var(data, rows)[h], h, rows)
            ok = np.isfinite(rv)
            self.residuals_[h] = np.sort(np.log(np.maximum(rv[ok], VAR_FLOOR) / var[ok]))
        return self

    def predict(self, data: ModelData, rows: npt.ArrayLike) -> pd.DataFrame:
        """The forecast frame at the origins ``rows`` (:data:`FORECAST_COLUMNS`), horizon-major."""
        if not hasattr(self, "residuals_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        rows = check_rows(data, rows, f"{self.label}.predict")
        var = self._predict_var(data, rows)
        quantiles = self._predict_quantiles(data, rows, var) or {}
        regimes = self._predict_regimes(data, rows, var) or {}
        vs, qs, ps = [], [], []
        for h in self.horizons_:
            v = self._checked_var(var[h], h, rows)
            q = quantiles.get(h)
            q = self.residual_quantiles(h, v) if q is None else np.maximum.accumulate(np.asarray(q, float), axis=1)
            p = regimes.get(h)
            p = self.residual_regimes(h, v) if p is None else np.asarray(p, float)
            vs.append(v)
            qs.append(np.maximum(q, VAR_FLOOR))
            ps.append(p / p.sum(axis=1, keepdims=True))
        q_all, p_all = np.concatenate(qs), np.concatenate(ps)  # (H·m, 5), (H·m, 3): horizon-major
        columns: dict[str, Any] = {
            "timestamp": data.index[np.tile(rows, len(self.horizons_))],
            "horizon": np.repeat(np.asarray(self.horizons_, dtype=np.int64), len(rows)),
            "model": self.label,
            "var": np.concatenate(vs),
        }
        columns.update({c: q_all[:, i] for i, c in enumerate(QUANTILE_COLUMNS)})
        columns.update({c: p_all[:, i] for i, c in enumerate(REGIME_COLUMNS)})
        return pd.DataFrame(columns)  # one frame: concat of per-horizon frames cost 4 ms per call in pandas 3

    def input_features(self) -> list[str] | None:
        """The feature columns the fitted model reads (serving computes only these); None: it does not say, so
        every column counts. Models that read none (returns only) return []."""
        return None

    # ---------------------------------------------------------------- what a model supplies

    @abstractmethod
    def _fit(self, data: ModelData, rows: IntArray) -> None:
        """Learn from the training origins (``self.horizons_`` and ``self.thresholds_`` are set)."""

    @abstractmethod
    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        """Point forecast of rv_h at each origin, per horizon: {h: (m,)}."""

    def _predict_quantiles(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        """Native quantiles of rv_h, {h: (m, 5)} at :data:`QUANTILES`; None: from the residuals."""
        return None

    def _predict_regimes(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        """Native regime probabilities, {h: (m, 3)}; None: from the residuals and the thresholds."""
        return None

    # ---------------------------------------------------------------- shared helpers

    def residual_quantiles(self, h: int, var: FloatArray) -> FloatArray:
        """Quantiles of rv_h = var · exp(e), e the training log-ratio residuals. Shape (m, 5)."""
        e = self.residuals_[h]
        return var[:, None] * np.exp(np.quantile(e, QUANTILES))[None, :]

    def residual_regimes(self, h: int, var: FloatArray) -> FloatArray:
        """P(rv_h in each class) with rv_h = var · exp(e), e drawn from the training residuals. Shape (m, 3)."""
        e = self.residuals_[h]
        edges = np.log(np.asarray(self.thresholds_[h].thresholds)[None, :] / var[:, None])  # (m, 2)
        below = np.searchsorted(e, edges.ravel(), side="right").reshape(edges.shape) / e.size  # P(e ≤ edge)
        p = np.column_stack([below[:, 0], below[:, 1] - below[:, 0], 1.0 - below[:, 1]])
        return np.clip(p, 0.0, 1.0)

    def _checked_var(self, var: FloatArray, h: int, rows: IntArray) -> FloatArray:
        v = np.asarray(var, dtype=float)
        if v.shape != rows.shape:
            raise ModelError(f"{self.label}: var forecast for h={h} has shape {v.shape}, expected {rows.shape}")
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(
                f"{self.label}: non-finite variance forecast at h={h}, origin {rows[i]} ({v[i]}); its inputs are "
                "probably inside a feature's warm-up. Fix: start the origins after the warm-up"
            )
        return np.maximum(v, VAR_FLOOR)
