"""A small neural network that corrects a log-HAR forecast, for every horizon at once (family ``net``).

Following HARNet (Reisenhofer, Bayer and Hautsch 2022), the network *starts* at the HAR forecast and learns a
correction, trained on QLIKE: a tuned log-HAR is hard to beat, so the net has to earn every departure from it.

Model
-----
For origin t and horizon h (H horizons, L = ``lookback`` steps of s = ``lookback_step`` bars, p features):

- **Offset** ``f_h(t)``: the log-HAR of :class:`models.baselines.Har` (``log=True``, ``exog_iv`` when the data has
  an IV), fitted on the training rows: OLS of ``log rv_h`` on ``log(rv_W(t)·h/W)`` for every ``rv_W`` column and
  ``log(iv(t)²·h·bar_years)``, back to levels with Duan's smearing. It reads row t only.
- **Input window** ``x(t)`` (L, p + 1): the standardized features at rows t, t−s, …, t−(L−1)s (step k = row t−k·s,
  causal: never a row after t) and, last, the share of that row's features that is missing; rows before the data
  start are missing entirely (all zeros, share 1). Plus the standardized ``log f_h(t)`` of every horizon (H,).
- **Standardization** (:class:`InputScaler`, statistics of the training origins only): a column whose finite
  training values are all > 0 (the variance-like ``rv_*``, ``bv_*``, ``parkinson_*``, ``gk_*``, ``rs_*``, ``yz_*``,
  volumes, counts, ``iv``…) enters as ``log(max(x, training min))``; every other column (signed ones such as
  ``vrp_*``, ``ret_*``, ``imbalance_*``, and ``jump_*`` which can be 0) as is. Then ``(x − mean) / std``, clipped to
  ±10 (heavy tails), and a non-finite value (a warm-up, a row before the data start) becomes 0 = the training mean,
  flagged by the missing share.
- **Network**: an MLP. One linear embedding (p + 1 → e = max(8, ``hidden`` // 4), GELU) shared by the L steps (a
  1×1 temporal convolution: the same map at every lag, so the parameters grow with p + L, not p·L), the L
  embeddings flattened with the H offsets, then ``layers`` blocks Linear → GELU → Dropout of width ``hidden`` (the
  shared trunk, output z), then three heads per horizon, each starting at a HAR-based model:

  (a) ``c_h = 5·tanh(raw/5)``, ``var_h = f_h·exp(c_h)``: a bounded log-variance correction (at most a factor
      e⁵ ≈ 148 from HAR), its layer starting at zero weights and bias: the untrained net forecasts exactly HAR;
  (b) 5 quantiles of ``log rv_h`` at :data:`models.base.QUANTILES`: ``log f_h + sort(b + W z)``, ``b`` starting at
      the quantiles of the training log-ratios ``log(rv_h/f_h)`` and ``W`` at 0 (sorted, so monotone);
  (c) 3 regime logits (calm, normal, stressed by ``thresholds_[h]``): :func:`har_regime_logits` (an ordinal
      logistic model on ``log f_h``) plus a layer starting at 0.

Loss (masked mean over the (origin, horizon) cells with a known target, ``d = log rv − log var``, rv floored at
:data:`models.base.VAR_FLOOR`): ``QLIKE = rv/var − log(rv/var) − 1 = exp(d) − d − 1`` (the same value, no division;
d clamped at 50 so exp stays finite in float32) + ``1.0 ×`` the mean pinball loss of the 5 log quantiles
+ ``0.25 ×`` the regime cross-entropy (:data:`LOSS_WEIGHTS`; at the HAR start the three are of the order 0.1–0.3,
0.15–0.2 and 0.6–0.9: the lower weight keeps the trunk serving the point forecast first).

Training
--------
AdamW (weight decay on the weight matrices only), minibatches of ``batch_size`` in an order drawn by
``numpy.random.Generator(seed)``, gradients clipped at norm 1. The weights evaluated and kept are an exponential
moving average of the trained ones over about :data:`EMA_EPOCHS` epochs (starting at the HAR start, so it also
shrinks the first epochs towards HAR; it steadies the early-stopping choice). Early stopping: the last
``validation_fraction`` of the training origins in time is held out; the fit origins whose (longest) horizon
reaches past the first validation origin are purged; after each epoch the validation loss (the total loss above,
eval mode) is compared with the best so far, training stops after ``patience`` epochs without improvement, and the
best weights are restored (epoch 0, the HAR start, is a candidate: on too little data the net falls back to HAR).
The HAR offset and the standardization are fitted on all training rows. Deterministic: ``torch.manual_seed(seed)``
inside a forked RNG (the global torch RNG is left as it was), ``torch.use_deterministic_algorithms(True)`` during
fit, at most :data:`MAX_THREADS` threads during fit and predict, the previous settings restored after. On CUDA,
``CUBLAS_WORKSPACE_CONFIG`` is set to ``:4096:8`` when unset (cuBLAS needs it for deterministic results).

Pruning hook (for Optuna)
-------------------------
Set ``model.epoch_callback = f`` before ``fit`` (an attribute, not a hyper-parameter: ``clone``, ``get_params`` and
pickling leave it out). ``f(epoch, val_loss)`` is called after every epoch (1, 2, …) with the epoch's validation
loss (the training loss when ``validation_fraction=0``); it may raise (e.g. ``optuna.TrialPruned``) to stop: the
exception propagates out of ``fit`` and the model stays unfitted.

Fitted attributes: ``har_`` (the fitted :class:`models.baselines.Har`), ``scaler_`` (:class:`InputScaler`),
``weights_`` (the state dict as numpy arrays: a fitted model pickles, and predicts the same, on any machine),
``arch_``, ``history_`` (per epoch from 0: ``epoch``, ``train_loss`` (mean minibatch loss, dropout on; at epoch 0
the loss of the start), ``val_loss``, ``val_qlike``, ``val_pinball``, ``val_regime``), ``best_epoch_``,
``fit_rows_``, ``validation_rows_``. :meth:`NetForecaster.offset_var` gives the HAR forecast the net corrects,
:meth:`NetForecaster.evaluate_loss` the loss of the kept weights on any rows.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn
from torch.nn import functional

from models.base import (
    QUANTILES,
    REGIMES,
    VAR_FLOOR,
    FloatArray,
    Forecaster,
    IntArray,
    ModelData,
    ModelError,
    check_rows,
    purged_validation_split,
    select_features,
)
from models.baselines import BASE_MEASURES_RULE, Har

LOSS_WEIGHTS = {"qlike": 1.0, "pinball": 1.0, "regime": 0.25}
MAX_CORRECTION = 5.0  # |log var − log HAR| ≤ 5
CLIP = 10.0  # standardized inputs are clipped to ±CLIP
MAX_THREADS = 2
EMA_EPOCHS = 2.0  # the kept weights are an exponential moving average of the trained ones over ≈ 2 epochs
PREDICT_BATCH = 8192


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputScaler:
    """Per-column transform and standardization fitted on the training origins (module docstring).

    Attributes
    ----------
    columns
        The feature columns, in input order (p,).
    log_floor
        (p,): the training minimum of a column log-transformed (all finite training values > 0), NaN otherwise.
    mean, std
        (p,): of the transformed training values (std 1 for a constant or never-observed column).
    """

    columns: tuple[str, ...]
    log_floor: FloatArray
    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, columns: Sequence[str], values: FloatArray) -> InputScaler:
        """``values``: the raw features at the training origins, (m, p)."""
        finite = np.isfinite(values)
        seen = finite.any(axis=0)
        positive = seen & np.where(finite, values > 0, True).all(axis=0)
        log_floor = np.where(positive, np.nanmin(np.where(finite, values, np.inf), axis=0), np.nan)
        z = cls._transform(values, log_floor)
        count = np.isfinite(z).sum(axis=0)
        mean = np.where(count > 0, np.nansum(np.where(np.isfinite(z), z, 0.0), axis=0) / np.maximum(count, 1), 0.0)
        dev = np.where(np.isfinite(z), z - mean, 0.0)
        std = np.sqrt((dev * dev).sum(axis=0) / np.maximum(count, 1))
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return cls(tuple(columns), log_floor, mean, std)

    @staticmethod
    def _transform(values: FloatArray, log_floor: FloatArray) -> FloatArray:
        logged = ~np.isnan(log_floor)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(logged, np.log(np.maximum(values, np.where(logged, log_floor, 0.0))), values)

    def transform(self, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Raw features (k, p) → (standardized, clipped, non-finite → 0: (k, p); missing share per row: (k,))."""
        z = (self._transform(values, self.log_floor) - self.mean) / self.std
        missing = ~np.isfinite(z)
        return np.where(missing, 0.0, np.clip(z, -CLIP, CLIP)), missing.mean(axis=1)


def window_inputs(
    data: ModelData, rows: IntArray, scaler: InputScaler, lookback: int, step: int, column_index: IntArray
) -> FloatArray:
    """The input windows at the origins ``rows``: shape (m, L, p + 1), float32; ``[:, k]`` is row t − k·step
    (standardized features, then the missing share); rows before the data start are all-missing (0…0, 1)."""
    lags = rows[:, None] - step * np.arange(lookback)[None, :]  # (m, L)
    valid = lags >= 0
    unique, inverse = np.unique(lags[valid], return_inverse=True)
    raw = data.features.iloc[unique, column_index].to_numpy(dtype=float)  # (u, p), only the rows needed
    z, missing = scaler.transform(raw)
    p = len(scaler.columns)
    out = np.zeros((rows.size, lookback, p + 1), dtype=np.float32)
    out[..., p] = 1.0
    out[valid] = np.column_stack([z, missing])[inverse]
    return out


# ---------------------------------------------------------------------------------------------- the network


class _Net(nn.Module):
    """Shared step embedding → MLP trunk → per-horizon heads (module docstring).

    ``forward(x (B, L, p+1), offset (B, H), base_logits (B, H, 3))`` → correction (B, H), log quantiles relative
    to the offset (B, H, 5) sorted, regime logits (B, H, 3) = base_logits + head.
    """

    def __init__(
        self, n_inputs: int, lookback: int, n_horizons: int, embed: int, hidden: int, layers: int, dropout: float
    ):
        super().__init__()
        self.n_horizons = n_horizons
        self.embed = nn.Linear(n_inputs, embed)
        blocks: list[nn.Module] = []
        width = lookback * embed + n_horizons
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.trunk = nn.Sequential(*blocks)
        self.correction = nn.Linear(hidden, n_horizons)
        self.quantile = nn.Linear(hidden, n_horizons * len(QUANTILES))
        self.regime = nn.Linear(hidden, n_horizons * len(REGIMES))

    def forward(
        self, x: torch.Tensor, offset: torch.Tensor, base_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = functional.gelu(self.embed(x)).flatten(1)  # (B, L·embed)
        z = self.trunk(torch.cat([e, offset], dim=1))  # (B, hidden)
        correction = MAX_CORRECTION * torch.tanh(self.correction(z) / MAX_CORRECTION)  # (B, H)
        quantiles = self.quantile(z).view(-1, self.n_horizons, len(QUANTILES)).sort(dim=-1).values  # (B, H, 5)
        logits = base_logits + self.regime(z).view(-1, self.n_horizons, len(REGIMES))  # (B, H, 3)
        return correction, quantiles, logits


@dataclass
class _Batch:
    """Tensors of m origins: x (m, L, p+1), offset_std (m, H) standardized log f, log_offset (m, H) log f,
    log_rv (m, H) (0 where unknown), regime (m, H) class (0 where unknown), known (m, H) bool, base_logits
    (m, H, 3) the HAR-implied regime logits (:func:`har_regime_logits`)."""

    x: torch.Tensor
    offset_std: torch.Tensor
    log_offset: torch.Tensor
    log_rv: torch.Tensor
    regime: torch.Tensor
    known: torch.Tensor
    base_logits: torch.Tensor

    def take(self, index: torch.Tensor) -> _Batch:
        return _Batch(*(getattr(self, k)[index] for k in self.__dataclass_fields__))


def net_losses(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: _Batch, quantiles: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The three losses and their weighted total (:data:`LOSS_WEIGHTS`), masked means over known cells (scalars)."""
    correction, rel_quantiles, logits = outputs
    known = batch.known.to(correction.dtype)  # (B, H)
    cells = known.sum().clamp_min(1.0)
    d = (batch.log_rv - batch.log_offset - correction).clamp(max=50.0)  # log(rv / var), (B, H)
    qlike = ((torch.exp(d) - d - 1.0) * known).sum() / cells
    u = (batch.log_rv - batch.log_offset)[..., None] - rel_quantiles  # (B, H, 5)
    pinball = (torch.maximum(quantiles * u, (quantiles - 1.0) * u).mean(dim=-1) * known).sum() / cells
    ce = functional.cross_entropy(logits.flatten(0, 1), batch.regime.flatten(), reduction="none").view_as(known)
    regime = (ce * known).sum() / cells
    w = LOSS_WEIGHTS
    total = w["qlike"] * qlike + w["pinball"] * pinball + w["regime"] * regime
    return {"total": total, "qlike": qlike, "pinball": pinball, "regime": regime}


def har_regime_logits(
    log_offset: FloatArray, log_thresholds: FloatArray, ratio_mean: FloatArray, ratio_std: FloatArray
) -> FloatArray:
    """Regime logits of the HAR forecast, the start of the regime head: an ordinal logistic model
    ``P(rv_h ≤ thr) = σ((log thr − log f_h − μ_h) / s_h)`` with μ_h, σ_h the mean and std of the training log-ratios
    ``log(rv_h / f_h)`` and ``s_h = σ_h·√3/π`` (a logistic with that std).

    Shapes: log_offset (m, H), log_thresholds (H, 2), ratio_mean and ratio_std (H,);
    returns (m, H, 3) = log of the class probabilities (floored at 1e-6).
    """
    scale = ratio_std * math.sqrt(3.0) / math.pi  # (H,)
    u = (log_thresholds[None] - log_offset[..., None] - ratio_mean[None, :, None]) / scale[None, :, None]  # (m, H, 2)
    below = 0.5 * (1.0 + np.tanh(0.5 * u))  # σ(u), no overflow
    probs = np.concatenate([below[..., :1], np.diff(below, axis=-1), 1.0 - below[..., -1:]], axis=-1)
    return np.log(np.maximum(probs, 1e-6))


@contextmanager
def _torch_settings(deterministic: bool) -> Iterator[None]:
    """At most :data:`MAX_THREADS` threads and (optionally) deterministic algorithms; the previous settings after."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(min(threads, MAX_THREADS))
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if deterministic:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)


# ---------------------------------------------------------------------------------------------- the forecaster

_PARAMETER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lookback": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "lookback_step": (lambda v: _is_int(v) and v >= 1, "a whole number of bars ≥ 1"),
    "hidden": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "layers": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "dropout": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "lr": (lambda v: _is_real(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: _is_real(v) and v >= 0, "a number ≥ 0"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "max_epochs": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0 (0: the untrained net, i.e. HAR)"),
    "patience": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "validation_fraction": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1) (0: no early stopping)"),
    "features": (
        lambda v: v is None or (not isinstance(v, str) and len(v) > 0 and all(isinstance(c, str) for c in v)),
        "None (every feature column) or a non-empty list of column names",
    ),
    "device": (lambda v: v in ("auto", "cpu", "cuda"), "'auto', 'cpu' or 'cuda'"),
    "base": (lambda v: v == "har", "'har' (the log-HAR offset the network corrects)"),
    "seasonal": (lambda v: isinstance(v, bool), "True or False (a seasonal HAR offset)"),
    "base_measures": BASE_MEASURES_RULE,
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)


class NetForecaster(Forecaster):
    """Multi-horizon MLP correcting a log-HAR forecast, with native quantiles and regimes (module docstring).

    Parameters
    ----------
    lookback, lookback_step
        Input window: the features at L = ``lookback`` origins, ``lookback_step`` bars apart, ending at t.
    hidden, layers, dropout
        Width of the trunk (the shared step embedding has max(8, hidden // 4)); number of trunk blocks; dropout
        in the trunk.
    lr, weight_decay, batch_size, max_epochs, patience, validation_fraction
        AdamW and early stopping (module docstring).
    features
        The feature columns the network reads (None: all). The HAR offset always reads the ``rv_W`` columns.
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    base
        The offset the network corrects: ``"har"`` (:class:`models.baselines.Har`, log, with the IV when present).
    seasonal
        True: the HAR offset models the intraday seasonality (``Har(seasonal=True)``, :mod:`models.seasonal`): its
        regressors are deseasonalized and its forecast carries the calendar factor ``s_h(t)`` of the next h bars,
        so the net corrects a forecast that already knows the time of day. False: the plain log-HAR offset.
    base_measures
        The realized measures of the HAR offset (:class:`models.baselines.Har` ``measures``): None is ``rv`` only;
        e.g. ``["rv", "gk"]`` adds Garman-Klass range variances at every window.
    """

    family = "net"
    epoch_callback: Callable[[int, float], None] | None = None  # set on the instance before fit (pruning hook)

    def __init__(
        self,
        *,
        lookback: int = 8,
        lookback_step: int = 60,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 60,
        patience: int = 8,
        validation_fraction: float = 0.2,
        features: list[str] | None = None,
        device: str = "auto",
        base: str = "har",
        seasonal: bool = False,
        base_measures: list[str] | None = None,
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.lookback = lookback
        self.lookback_step = lookback_step
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.features = features
        self.device = device
        self.base = base
        self.seasonal = seasonal
        self.base_measures = base_measures

    # ------------------------------------------------------------------ checks and settings

    def _check_params(self) -> None:
        for key, (ok, allowed) in _PARAMETER_RULES.items():
            value = getattr(self, key)
            if not ok(value):
                raise ModelError(f"{self.label}: parameter {key} must be {allowed}; got {value!r}")

    def _device(self) -> torch.device:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ModelError(
                f"{self.label}: device='cuda' but CUDA is not available to torch {torch.__version__} (no GPU, or a "
                "CPU-only build). Fix: device='auto' (CUDA when present, else CPU) or device='cpu'"
            )
        if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available()):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
            return torch.device("cuda")
        return torch.device("cpu")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("epoch_callback", None)  # a closure over an Optuna trial: not part of the model
        state.pop("_outputs", None)
        return state

    # ------------------------------------------------------------------ inputs

    def _column_index(self, data: ModelData, columns: Sequence[str]) -> IntArray:
        index = data.features.columns.get_indexer(list(columns))
        if (index < 0).any():
            missing = [c for c, i in zip(columns, index, strict=True) if i < 0]
            raise ModelError(
                f"{self.label}: feature columns {missing[:5]} are not in the feature table (it has "
                f"{len(data.features.columns)} columns, e.g. {list(data.features.columns[:5])}). Fix: add their "
                "group/window to the spec's features section, or drop them from the net's features"
            )
        return index.astype(np.int64)

    def _offset(self, data: ModelData, rows: IntArray) -> FloatArray:
        """The HAR forecast f_h at the origins, (m, H) float64 (> 0; an error where its inputs are unknown)."""
        var = self.har_._predict_var(data, rows)
        return np.column_stack([var[h] for h in self.horizons_])

    def _batch(
        self, data: ModelData, rows: IntArray, offset: FloatArray, device: torch.device, *, targets: bool
    ) -> _Batch:
        """The tensors at ``rows`` (:class:`_Batch`), given the HAR forecast there, ``offset`` (m, H)."""
        log_offset = np.log(offset)  # (m, H)
        x = window_inputs(
            data, rows, self.scaler_, self.lookback, self.lookback_step, self._column_index(data, self.scaler_.columns)
        )
        offset_std = (log_offset - self.offset_mean_) / self.offset_std_
        shape = log_offset.shape
        log_rv, regime, known = np.zeros(shape), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=bool)
        if targets:
            for j, h in enumerate(self.horizons_):
                rv = data.target(h)[rows]
                known[:, j] = np.isfinite(rv)
                log_rv[:, j] = np.where(known[:, j], np.log(np.maximum(np.where(known[:, j], rv, 1.0), VAR_FLOOR)), 0.0)
                regime[:, j] = np.where(known[:, j], np.nan_to_num(self.thresholds_[h].classify(rv)), 0).astype(int)

        def tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(a).to(device=device, dtype=dtype)

        return _Batch(
            tensor(x),
            tensor(offset_std),
            tensor(log_offset),
            tensor(log_rv),
            tensor(regime, torch.int64),
            tensor(known, torch.bool),
            tensor(self._base_logits(log_offset)),
        )

    def _base_logits(self, log_offset: FloatArray) -> FloatArray:
        log_thresholds = np.log([self.thresholds_[h].thresholds for h in self.horizons_])  # (H, 2)
        return har_regime_logits(log_offset, log_thresholds, self.ratio_mean_, self.ratio_std_)

    # ------------------------------------------------------------------ fit

    def input_features(self) -> list[str]:
        return list(dict.fromkeys([*self.scaler_.columns, *self.har_.input_features()]))

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self._check_params()
        device = self._device()
        columns = select_features(data.features.columns, self.features, self.label)
        column_index = self._column_index(data, columns)
        self.har_ = Har(
            log=True,
            exog_iv=data.iv is not None,
            seasonal=self.seasonal,
            measures=None if self.base_measures is None else list(self.base_measures),
            horizons=self.horizons_,
            seed=self.seed,
        )
        self.har_.fit(data, rows)  # an error naming the row when an rv_W or the IV is unknown (a warm-up)
        offset = self._offset(data, rows)  # (m, H)
        log_offset = np.log(offset)
        self.offset_mean_ = log_offset.mean(axis=0)  # (H,)
        self.offset_std_ = np.maximum(log_offset.std(axis=0), 1e-6)
        ratio = np.log(np.maximum(np.column_stack([data.target(h)[rows] for h in self.horizons_]), VAR_FLOOR))
        ratio = ratio - log_offset  # log(rv_h / f_h), (m, H); NaN where rv_h is unknown
        self.ratio_mean_ = np.nanmean(ratio, axis=0)
        self.ratio_std_ = np.maximum(np.nanstd(ratio, axis=0), 1e-3)
        self.scaler_ = InputScaler.fit(columns, data.features.iloc[rows, column_index].to_numpy(dtype=float))
        fit, held = self._split(rows)  # positions in rows
        self.fit_rows_, self.validation_rows_ = rows[fit], rows[held]
        self.arch_ = {
            "n_inputs": len(columns) + 1,
            "lookback": self.lookback,
            "n_horizons": len(self.horizons_),
            "embed": max(8, self.hidden // 4),
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout,
        }
        fork = [device.index or 0] if device.type == "cuda" else []
        with _torch_settings(deterministic=True), torch.random.fork_rng(devices=fork, device_type=device.type):
            torch.manual_seed(self.seed)
            train = self._batch(data, rows[fit], offset[fit], device, targets=True)
            valid = self._batch(data, rows[held], offset[held], device, targets=True) if held.size else None
            net = _Net(**self.arch_).to(device)
            self._initialize_heads(net, train)
            self._train(net, train, valid, device)
            self.weights_ = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}

    def _split(self, rows: IntArray) -> tuple[IntArray, IntArray]:
        """Positions in ``rows`` (fit, validation): the last ``validation_fraction`` of the origins in time for
        validation, the fit origins purged of those whose longest horizon reaches past the first validation one."""
        positions = np.arange(rows.size)
        if round(self.validation_fraction * rows.size) == 0:
            return positions, positions[:0]
        fit_rows, valid_rows = purged_validation_split(rows, max(self.horizons_), self.validation_fraction)
        fit, valid = np.searchsorted(rows, fit_rows), np.searchsorted(rows, valid_rows)
        if fit.size < 2 * len(QUANTILES) or valid.size < 2:
            raise ModelError(
                f"{self.label}: validation_fraction={self.validation_fraction} of {rows.size} training origins "
                f"leaves {fit.size} to fit (after purging the horizon {max(self.horizons_)}) and {valid.size} to "
                "validate. Fix: train on more origins, or set validation_fraction=0 (no early stopping)"
            )
        return fit, valid

    def _initialize_heads(self, net: _Net, train: _Batch) -> None:
        """Correction and regime heads at 0 (the net starts at HAR and its ordinal regime model), quantile weights at
        0 and biases at the training log-ratio quantiles (the HAR residual quantiles)."""
        levels = torch.tensor(QUANTILES, dtype=torch.float32, device=train.x.device)
        with torch.no_grad():
            nn.init.zeros_(net.correction.weight)
            nn.init.zeros_(net.correction.bias)
            nn.init.zeros_(net.quantile.weight)
            nn.init.zeros_(net.regime.weight)
            nn.init.zeros_(net.regime.bias)
            ratio = train.log_rv - train.log_offset  # (m, H)
            for j in range(len(self.horizons_)):
                r = ratio[train.known[:, j], j]
                q = torch.quantile(r, levels) if r.numel() else torch.zeros_like(levels)
                net.quantile.bias[j * len(QUANTILES) : (j + 1) * len(QUANTILES)] = q

    def _train(self, net: _Net, train: _Batch, valid: _Batch | None, device: torch.device) -> None:
        levels = torch.tensor(QUANTILES, dtype=torch.float32, device=device)
        decay = [p for p in net.parameters() if p.ndim >= 2]
        no_decay = [p for p in net.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        rng = np.random.default_rng(self.seed)
        callback = self.__dict__.get("epoch_callback")

        ema = copy.deepcopy(net)  # the weights evaluated, kept and restored: an EMA of the trained ones

        def evaluate(batch: _Batch | None) -> dict[str, float]:
            if batch is None:
                return dict.fromkeys(("total", "qlike", "pinball", "regime"), math.nan)
            ema.eval()
            with torch.no_grad():
                return {
                    k: float(v)
                    for k, v in net_losses(ema(batch.x, batch.offset_std, batch.base_logits), batch, levels).items()
                }

        def record(epoch: int, train_loss: float, val: dict[str, float]) -> float:
            self.history_.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val["total"]})
            self.history_[-1] |= {f"val_{k}": val[k] for k in ("qlike", "pinball", "regime")}
            return train_loss if valid is None else val["total"]  # the early-stopping score

        self.history_: list[dict[str, float]] = []
        best = record(0, evaluate(train)["total"], evaluate(valid))
        best_epoch, best_state, stale = 0, _copy_state(ema), 0
        m = train.x.shape[0]
        ema_decay = 1.0 - 1.0 / (EMA_EPOCHS * math.ceil(m / self.batch_size))  # per step
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            order = torch.as_tensor(rng.permutation(m), device=device)
            total = 0.0
            for start in range(0, m, self.batch_size):
                batch = train.take(order[start : start + self.batch_size])
                loss = net_losses(net(batch.x, batch.offset_std, batch.base_logits), batch, levels)["total"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                with torch.no_grad():
                    for average, weight in zip(ema.parameters(), net.parameters(), strict=True):
                        average.lerp_(weight, 1.0 - ema_decay)
                total += float(loss.detach()) * batch.x.shape[0]
            score = record(epoch, total / m, evaluate(valid))
            if callback is not None:
                callback(epoch, score)
            if valid is None or score < best:
                best, best_epoch, best_state, stale = score, epoch, _copy_state(ema), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        net.load_state_dict(best_state)
        self.best_epoch_ = best_epoch

    # ------------------------------------------------------------------ predict

    def _network(self, device: torch.device) -> _Net:
        """The fitted network on ``device``, in eval mode (built on the meta device: no random init, the global RNG
        is left alone)."""
        with torch.device("meta"):
            net = _Net(**self.arch_)
        net.load_state_dict({k: torch.from_numpy(v).to(device) for k, v in self.weights_.items()}, assign=True)
        return net.eval()

    def _forward(self, data: ModelData, rows: IntArray) -> dict[str, FloatArray]:
        """The network at ``rows``: ``offset`` (m, H) the HAR forecast, ``correction`` (m, H) of its log,
        ``quantiles`` (m, H, 5) of log rv_h relative to log offset, ``logits`` (m, H, 3); all float64 numpy. Cached
        for the duration of one ``predict``."""
        cached = self.__dict__.get("_outputs")
        if cached is not None and np.array_equal(cached[0], rows):
            return cached[1]
        device = self._device()
        offset = self._offset(data, rows)  # (m, H)
        parts: list[tuple[torch.Tensor, ...]] = []
        with _torch_settings(deterministic=False), torch.no_grad():
            net = self._network(device)
            for start in range(0, rows.size, PREDICT_BATCH):
                chunk = slice(start, start + PREDICT_BATCH)
                batch = self._batch(data, rows[chunk], offset[chunk], device, targets=False)
                parts.append(net(batch.x, batch.offset_std, batch.base_logits))
        correction, quantiles, logits = (torch.cat(p).double().cpu().numpy() for p in zip(*parts, strict=True))
        out = {"offset": offset, "correction": correction, "quantiles": quantiles, "logits": logits}
        if "_outputs" in self.__dict__:
            self._outputs = (rows.copy(), out)
        return out

    def predict(self, data: ModelData, rows: npt.ArrayLike) -> pd.DataFrame:
        self._outputs = None  # one network pass serves var, quantiles and regimes
        try:
            return super().predict(data, rows)
        finally:
            del self._outputs

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        out = self._forward(data, rows)
        var = out["offset"] * np.exp(out["correction"])  # exp(0) = 1: exactly HAR when untrained
        return {h: var[:, j] for j, h in enumerate(self.horizons_)}

    def _predict_quantiles(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        out = self._forward(data, rows)
        q = out["offset"][..., None] * np.exp(out["quantiles"])  # (m, H, 5), sorted
        return {h: q[:, j] for j, h in enumerate(self.horizons_)}

    def _predict_regimes(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        logits = self._forward(data, rows)["logits"]
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)  # (m, H, 3)
        return {h: p[:, j] for j, h in enumerate(self.horizons_)}

    # ------------------------------------------------------------------ diagnostics

    def offset_var(self, data: ModelData, rows: npt.ArrayLike) -> dict[int, FloatArray]:
        """The HAR forecast the network corrects, {h: (m,)} (the var of the untrained net)."""
        if not hasattr(self, "har_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        rows = check_rows(data, rows, f"{self.label}.offset_var")
        return self.har_._predict_var(data, rows)

    def evaluate_loss(self, data: ModelData, rows: npt.ArrayLike) -> dict[str, float]:
        """The training loss of the fitted weights (eval mode) at ``rows`` (their targets known): ``total``,
        ``qlike``, ``pinball``, ``regime``."""
        if not hasattr(self, "weights_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        rows = check_rows(data, rows, f"{self.label}.evaluate_loss")
        device = self._device()
        with _torch_settings(deterministic=False), torch.no_grad():
            batch = self._batch(data, rows, self._offset(data, rows), device, targets=True)
            levels = torch.tensor(QUANTILES, dtype=torch.float32, device=device)
            losses = net_losses(self._network(device)(batch.x, batch.offset_std, batch.base_logits), batch, levels)
        return {k: float(v) for k, v in losses.items()}


def _copy_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
