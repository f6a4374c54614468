"""Forecast metrics, one definition each (DESIGN section 6), and the evaluation report of DESIGN section 11.

Conventions
-----------
- Inputs are array-likes of shape (n,), one value per forecast origin (``Q`` and ``probs`` are (n, k)). Nothing is
  ignored silently: a shape mismatch, an empty input or a non-finite value raises :class:`MetricError` naming the
  argument and the fix. Only :func:`evaluate_predictions` drops rows (those whose ``realized`` value is not known
  yet), and it reports how many under ``"warnings"``.
- Variances are decimal² over the horizon, never annualized. QLIKE floors both rv and the forecast at
  :data:`models.base.VAR_FLOOR` (1e-12), so a zero realized variance (a flat window) has a finite loss.
- A statistic that the data cannot define (R² of a constant rv, the oracle gap when the benchmark ties the oracle,
  a DM test with too few origins) raises :class:`UndefinedMetric`; the frame-level functions turn it into ``None``
  plus a warning, because JSON has no NaN (DESIGN section 11).

The Diebold-Mariano test
------------------------
:func:`diebold_mariano` compares per-origin losses of two models on the same origins, d_t = loss_a,t − loss_b,t:

- long-run variance: Newey-West HAC, ``Ω = γ_0 + 2 Σ_{k=1..L} (1 − k/(L+1)) γ_k`` with γ_k the sample
  autocovariances of d (divided by n) and Bartlett weights, ``L = lag``;
- statistic ``DM = mean(d) / sqrt(Ω / n)``, then the Harvey-Leybourne-Newbold (1997) small-sample factor
  ``sqrt((n + 1 − 2H + H(H − 1)/n) / n)`` with ``H = lag + 1`` (the forecast horizon whose errors are MA(H − 1));
- two-sided p-value from Student-t with n − 1 degrees of freedom. ``stat > 0``: model a has the larger loss.

Lag rule: an h-bar forecast made every s bars overlaps the next m − 1 forecasts (m = ceil(h/s)), so the loss
differentials are MA(m − 1) and need at least ``lag = m − 1`` (:func:`overlap_lag`). That minimum is not enough:
with Bartlett weights and overlapping windows (autocorrelation falling linearly, 1 − k/m) it recovers about 2/3 of
the long-run variance, and the test at nominal 5% rejects about 10% of the time under the null; lag = 0 rejects
35-55% of the time (tests/training/test_metrics.py measures both). The evaluation therefore uses
``lag = 3m − 1`` (:func:`dm_lag`; 0 when s ≥ h, no overlap), which brings the size to about 6%.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from forecaster.errors import ForecasterError
from models.base import QUANTILE_COLUMNS, QUANTILES, REGIME_COLUMNS, qlike_loss

FloatArray = npt.NDArray[np.float64]

HORIZON_KEYS = ("qlike", "mse", "mz_r2", "pinball", "coverage90", "width90", "coverage50", "n")
REGIME_KEYS = ("logloss", "brier", "auc_stressed")
PROB_FLOOR = 1e-15  # log loss clips probabilities here so a confident miss costs ln(1e15) ≈ 34.5, not infinity
STRESSED = 2  # class index of "stressed" (features.targets: 0 calm, 1 normal, 2 stressed)


class MetricError(ForecasterError, ValueError):
    """Inputs a metric cannot use: wrong shape, empty, non-finite, out of range. The text names the fix."""


class UndefinedMetric(MetricError):
    """The data do not define the statistic (e.g. R² of a constant series); reported as ``None`` in JSON."""


class MetricWarning(UserWarning):
    """A metric was left out (``None``) or rows were dropped; emitted when no ``notes`` list is given."""


# ---------------------------------------------------------------- input checks


def _vector(x: npt.ArrayLike, name: str) -> FloatArray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise MetricError(f"{name} must be 1-d, one value per forecast origin; got shape {a.shape}")
    if a.size == 0:
        raise MetricError(f"{name} is empty: a metric needs at least one forecast origin")
    return a


def _finite(a: FloatArray, name: str, fix: str) -> FloatArray:
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricError(
            f"{name} has {int(bad.sum())} non-finite value(s) (first at position {i}: {a.flat[i]}); {fix}"
        )
    return a


_REALIZED_FIX = (
    "drop the origins whose realized value is not known yet (evaluate_predictions does it and reports the count)"
)
_FORECAST_FIX = "every forecast must be a finite number: check the model's output for these origins"


def _realized(x: npt.ArrayLike, name: str = "rv") -> FloatArray:
    return _finite(_vector(x, name), name, _REALIZED_FIX)


def _forecast(x: npt.ArrayLike, name: str, n: int) -> FloatArray:
    a = _vector(x, name)
    if a.shape != (n,):
        raise MetricError(f"{name} has shape {a.shape} but the realized values have shape ({n},): one per origin")
    return _finite(a, name, _FORECAST_FIX)


def _interval(lo: npt.ArrayLike, hi: npt.ArrayLike, n: int | None = None) -> tuple[FloatArray, FloatArray]:
    lo_a = _finite(_vector(lo, "lo"), "lo", _FORECAST_FIX)
    n = lo_a.size if n is None else n
    if lo_a.shape != (n,):
        raise MetricError(f"lo has shape {lo_a.shape}, expected ({n},): one lower bound per origin")
    hi_a = _forecast(hi, "hi", n)
    crossed = lo_a > hi_a
    if crossed.any():
        i = int(np.flatnonzero(crossed)[0])
        raise MetricError(
            f"{int(crossed.sum())} interval(s) have lo > hi (first at position {i}: {lo_a[i]} > {hi_a[i]}); "
            "quantile forecasts must be non-decreasing in the level"
        )
    return lo_a, hi_a


def _note(notes: list[str] | None, text: str) -> None:
    if notes is None:
        warnings.warn(text, MetricWarning, stacklevel=3)
    else:
        notes.append(text)


def _or_none(notes: list[str] | None, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None (with a note) when the data leave the statistic undefined."""
    try:
        return fn(*args)
    except UndefinedMetric as err:
        _note(notes, f"{getattr(fn, '__name__', 'metric')} is null: {err}")
        return None


# ---------------------------------------------------------------- variance forecasts


def qlike_losses(rv: npt.ArrayLike, f: npt.ArrayLike) -> FloatArray:
    """Per-origin QLIKE loss rv/f − log(rv/f) − 1, rv and f floored at 1e-12. Shape (n,); ≥ 0, 0 iff rv = f.

    Its expectation over rv is minimized by f = E[rv] (Patton 2011), so it ranks forecasts correctly even against a
    noisy variance proxy.
    """
    y = _realized(rv)
    return qlike_loss(y, _forecast(f, "f", y.size))


def qlike(rv: npt.ArrayLike, f: npt.ArrayLike) -> float:
    """Mean QLIKE loss (:func:`qlike_losses`), the headline variance metric."""
    return float(np.mean(qlike_losses(rv, f)))


def mse(rv: npt.ArrayLike, f: npt.ArrayLike) -> float:
    """Mean squared error mean((rv − f)²), in (decimal²)²."""
    y = _realized(rv)
    g = _forecast(f, "f", y.size)
    return float(np.mean((y - g) ** 2))


def mz_r2(rv: npt.ArrayLike, f: npt.ArrayLike) -> float:
    """Mincer-Zarnowitz R²: the R² of the OLS regression rv = a + b·f + e (the squared correlation of rv and f).

    A constant forecast explains nothing: 0. A constant rv (e.g. a single origin) leaves R² undefined and raises
    :class:`UndefinedMetric`.
    """
    y = _realized(rv)
    g = _forecast(f, "f", y.size)
    if np.ptp(y) == 0:
        raise UndefinedMetric(f"rv is constant over its {y.size} origin(s): the Mincer-Zarnowitz R² is undefined")
    if np.ptp(g) == 0:
        return 0.0
    yc, gc = y - y.mean(), g - g.mean()
    return float((gc @ yc) ** 2 / ((gc @ gc) * (yc @ yc)))


# ---------------------------------------------------------------- quantile forecasts


def _level(level: float) -> float:
    tau = float(level)
    if not 0.0 < tau < 1.0:
        raise MetricError(f"quantile level must be strictly between 0 and 1; got {level}")
    return tau


def pinball(y: npt.ArrayLike, q: npt.ArrayLike, level: float) -> float:
    """Mean pinball loss of the quantile forecasts q at ``level`` τ: mean(max(τ(y − q), (τ − 1)(y − q)))."""
    tau = _level(level)
    yy = _realized(y, "y")
    u = yy - _forecast(q, "q", yy.size)
    return float(np.mean(np.maximum(tau * u, (tau - 1.0) * u)))


def pinball_all(y: npt.ArrayLike, Q: npt.ArrayLike, levels: Sequence[float] = QUANTILES) -> float:
    """Mean over the levels of :func:`pinball`. ``Q`` has shape (n, k), column j the quantile at ``levels[j]``."""
    yy = _realized(y, "y")
    qq = np.asarray(Q, dtype=float)
    taus = [_level(t) for t in levels]
    if qq.shape != (yy.size, len(taus)):
        raise MetricError(
            f"Q has shape {qq.shape}, expected ({yy.size}, {len(taus)}): one row per origin, one column per level "
            f"{list(levels)}"
        )
    return float(np.mean([pinball(yy, qq[:, j], tau) for j, tau in enumerate(taus)]))


def coverage(y: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> float:
    """Share of origins with lo ≤ y ≤ hi (bounds included)."""
    yy = _realized(y, "y")
    lo_a, hi_a = _interval(lo, hi, yy.size)
    return float(np.mean((lo_a <= yy) & (yy <= hi_a)))


def interval_width(lo: npt.ArrayLike, hi: npt.ArrayLike) -> float:
    """Mean width mean(hi − lo) of the intervals, in the forecast's units."""
    lo_a, hi_a = _interval(lo, hi)
    return float(np.mean(hi_a - lo_a))


# ---------------------------------------------------------------- forecast comparison


@dataclass(frozen=True)
class DMResult:
    """A Diebold-Mariano test (module docstring). ``stat > 0``: model a has the larger mean loss.

    Attributes
    ----------
    stat
        The HLN-corrected statistic; ±inf when the loss differential is a non-zero constant (zero variance).
    p
        Two-sided p-value from Student-t(n − 1); 1.0 when the losses are identical, 0.0 when ``stat`` is ±inf.
    n
        Number of paired origins.
    mean_diff
        mean(loss_a − loss_b).
    """

    stat: float
    p: float
    n: int
    mean_diff: float


def overlap_lag(horizon: int, step: int = 1) -> int:
    """The MA order of the loss differentials of h-bar forecasts made every ``step`` bars: ceil(h/step) − 1."""
    if int(horizon) < 1 or int(step) < 1:
        raise MetricError(f"horizon and step must be whole numbers of bars ≥ 1; got horizon={horizon}, step={step}")
    return math.ceil(int(horizon) / int(step)) - 1


def dm_lag(horizon: int, step: int = 1) -> int:
    """The HAC lag the evaluation uses: 3·ceil(h/step) − 1, 0 without overlap (module docstring)."""
    m = overlap_lag(horizon, step) + 1
    return 0 if m == 1 else 3 * m - 1


def hac_variance(d: FloatArray, lag: int) -> float:
    """Newey-West long-run variance of d (shape (n,)): γ_0 + 2 Σ_{k=1..lag} (1 − k/(lag+1)) γ_k, γ_k divided by n."""
    e = d - d.mean()
    n = e.size
    out = float(e @ e) / n
    for k in range(1, lag + 1):
        out += 2.0 * (1.0 - k / (lag + 1)) * float(e[k:] @ e[:-k]) / n
    return out


def diebold_mariano(loss_a: npt.ArrayLike, loss_b: npt.ArrayLike, lag: int) -> DMResult:
    """Diebold-Mariano test of equal mean loss, HAC variance with Bartlett weights and the HLN correction.

    Parameters
    ----------
    loss_a, loss_b
        Per-origin losses of the two models on the same origins, in time order, shape (n,).
    lag
        HAC lags, ≥ ceil(h/s) − 1 for h-bar forecasts made every s bars (:func:`overlap_lag`; the evaluation
        uses :func:`dm_lag`); < n.

    Zero variance: when the differential d is constant (Ω = 0), there is no sampling noise to test against: identical
    losses (d = 0) give stat 0 and p 1; a constant non-zero d gives stat ±inf and p 0.

    Raises
    ------
    UndefinedMetric
        Fewer than 2 origins, or too few for the lag (the HLN factor needs n + 1 − 2H + H(H − 1)/n > 0, H = lag + 1).
    """
    a = _finite(_vector(loss_a, "loss_a"), "loss_a", _FORECAST_FIX)
    b = _forecast(loss_b, "loss_b", a.size)
    if int(lag) != lag or lag < 0:
        raise MetricError(f"lag must be a whole number ≥ 0; got {lag}")
    lag = int(lag)
    n = a.size
    if n < 2 or lag >= n:
        raise UndefinedMetric(f"the DM test needs at least 2 origins and more origins than lags; got n={n}, lag={lag}")
    horizon = lag + 1
    hln = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    if hln <= 0:
        raise UndefinedMetric(f"n={n} origins are too few for lag={lag}: the HLN correction needs more origins")
    d = a - b
    mean_diff = float(d.mean())
    omega = hac_variance(d, lag)
    tiny = 64 * np.finfo(float).eps * float(np.max(np.abs(d)))  # rounding noise at the scale of d
    if omega <= tiny**2:  # d is constant: no sampling noise to test against
        if abs(mean_diff) <= tiny:
            return DMResult(0.0, 1.0, n, 0.0)
        return DMResult(math.copysign(math.inf, mean_diff), 0.0, n, mean_diff)
    stat = mean_diff / math.sqrt(omega / n) * math.sqrt(hln)
    p = float(2.0 * stats.t.sf(abs(stat), df=n - 1))
    return DMResult(float(stat), p, n, mean_diff)


def oracle_gap(loss_model: float, loss_oracle: float, loss_benchmark: float) -> float:
    """(L_model − L_oracle) / (L_bench − L_oracle): the share of the benchmark's excess loss left (0: the limit).

    Raises :class:`UndefinedMetric` when the benchmark's loss equals the oracle's (no excess loss to share).
    """
    values = np.array([loss_model, loss_oracle, loss_benchmark], dtype=float)
    _finite(values, "losses (model, oracle, benchmark)", "mean losses must be finite numbers")
    lm, lo, lb = values
    if lb == lo:
        raise UndefinedMetric(f"the benchmark's loss equals the oracle's ({lb}): the oracle gap is undefined")
    return float((lm - lo) / (lb - lo))


# ---------------------------------------------------------------- regime probabilities


def _classes(classes: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    c = _finite(_vector(classes, "classes"), "classes", _REALIZED_FIX)
    if np.any(c != np.round(c)) or c.min() < 0 or c.max() >= k:
        raise MetricError(f"classes must be whole numbers in 0..{k - 1} (0 calm, 1 normal, 2 stressed); got {set(c)}")
    return c.astype(np.int64)


def _probs(probs: npt.ArrayLike, n: int) -> FloatArray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 2:
        raise MetricError(
            f"probs must have shape ({n}, k ≥ 2): one row of class probabilities per origin; got {p.shape}"
        )
    _finite(p, "probs", _FORECAST_FIX)
    sums = p.sum(axis=1)
    bad = (p.min(axis=1) < -1e-9) | (np.abs(sums - 1.0) > 1e-6)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricError(
            f"{int(bad.sum())} row(s) of probs are not probabilities (≥ 0, summing to 1); first at row {i}: {p[i]}"
        )
    return p


def log_loss(classes: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Mean negative log-likelihood −mean(log p_{i, y_i}); p floored at 1e-15. ``probs`` (n, k), classes (n,)."""
    c = _vector(classes, "classes")
    p = _probs(probs, c.size)
    y = _classes(c, p.shape[1])
    return float(-np.mean(np.log(np.maximum(p[np.arange(y.size), y], PROB_FLOOR))))


def brier(classes: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Multi-class Brier score: mean over rows of Σ_k (p_k − 1{y = k})², in [0, 2]. ``probs`` (n, k)."""
    c = _vector(classes, "classes")
    p = _probs(probs, c.size)
    y = _classes(c, p.shape[1])
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def auc(binary: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """ROC AUC of ``score`` for the 0/1 outcome ``binary`` (sklearn's ``roc_auc_score``), shapes (n,).

    None when only one class is present (AUC is undefined, and JSON has no NaN); the caller reports it.
    """
    from sklearn.metrics import roc_auc_score

    y = _finite(_vector(binary, "binary"), "binary", _REALIZED_FIX)
    if not np.isin(y, (0.0, 1.0)).all():
        raise MetricError(f"binary must hold 0/1 outcomes only; got values {sorted(set(y.tolist()))[:5]}")
    s = _forecast(score, "score", y.size)
    if np.ptp(y) == 0:
        return None
    return float(roc_auc_score(y.astype(np.int64), s))


# ---------------------------------------------------------------- one model, one horizon


def _columns(frame: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MetricError(f"{what}: the frame lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise MetricError(f"{what}: the frame has no rows")
    for key in ("model", "horizon"):
        if key in frame.columns and frame[key].nunique() > 1:
            raise MetricError(
                f"{what}: the frame mixes {key}s {list(pd.unique(frame[key]))}; pass one model and one horizon "
                "(evaluate_predictions splits a whole predictions frame)"
            )


def horizon_metrics(frame: pd.DataFrame, *, notes: list[str] | None = None) -> dict[str, float | int | None]:
    """Variance and quantile metrics of one model at one horizon.

    Parameters
    ----------
    frame
        Rows = origins, columns ``var, q05, q25, q50, q75, q95, realized`` (realized all known).
    notes
        Where to append why a metric is None; without it a :class:`MetricWarning` is emitted.

    Returns
    -------
    dict
        ``qlike, mse, mz_r2, pinball`` (mean over the 5 levels), ``coverage90`` (q05 ≤ rv ≤ q95), ``width90``,
        ``coverage50`` (q25 ≤ rv ≤ q75), ``n``; ``mz_r2`` is None when rv is constant.
    """
    _columns(frame, ("var", *QUANTILE_COLUMNS, "realized"), "horizon_metrics")
    y = _realized(frame["realized"].to_numpy(dtype=float), "realized")
    var = frame["var"].to_numpy(dtype=float)
    q = frame[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)  # (n, 5)
    return {
        "qlike": qlike(y, var),
        "mse": mse(y, var),
        "mz_r2": _or_none(notes, mz_r2, y, var),
        "pinball": pinball_all(y, q, QUANTILES),
        "coverage90": coverage(y, q[:, 0], q[:, 4]),
        "width90": interval_width(q[:, 0], q[:, 4]),
        "coverage50": coverage(y, q[:, 1], q[:, 3]),
        "n": int(y.size),
    }


def regime_metrics(frame: pd.DataFrame, *, notes: list[str] | None = None) -> dict[str, float | None]:
    """Regime metrics of one model at one horizon: ``logloss``, ``brier`` (3 classes), ``auc_stressed``.

    ``frame`` has ``p_calm, p_normal, p_stressed`` and ``realized_class`` (0 calm, 1 normal, 2 stressed, all known).
    ``auc_stressed`` (p_stressed against realized_class == 2) is None when the sample has no stressed origin or only
    stressed ones.
    """
    _columns(frame, (*REGIME_COLUMNS, "realized_class"), "regime_metrics")
    y = frame["realized_class"].to_numpy(dtype=float)
    p = frame[list(REGIME_COLUMNS)].to_numpy(dtype=float)  # (n, 3)
    stressed = _classes(y, p.shape[1]) == STRESSED
    area = auc(stressed.astype(float), p[:, STRESSED])
    if area is None:
        _note(notes, f"auc_stressed is null: all {y.size} origins are {'' if stressed[0] else 'not '}stressed")
    return {"logloss": log_loss(y, p), "brier": brier(y, p), "auc_stressed": area}


# ---------------------------------------------------------------- a whole predictions frame


def _predictions_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    needed = ("timestamp", "horizon", "model", "var", *QUANTILE_COLUMNS, "realized")
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise MetricError(
            f"the predictions lack column(s) {missing}; DESIGN section 5 lists {list(needed)} (+ p_calm, p_normal, "
            "p_stressed and realized_class for regime metrics)"
        )
    if predictions.empty:
        raise MetricError("the predictions frame has no rows")
    for key in ("timestamp", "horizon", "model"):
        if predictions[key].isna().any():
            raise MetricError(f"the predictions have {int(predictions[key].isna().sum())} row(s) without a {key}")
    frame = predictions.copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["horizon"] = frame["horizon"].astype(np.int64)
    frame["model"] = frame["model"].astype(str)
    dup = frame.duplicated(["timestamp", "horizon", "model"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise MetricError(
            f"{int(dup.sum())} duplicate (timestamp, horizon, model) rows, e.g. {row['timestamp']}, h={row['horizon']},"
            f" {row['model']!r}: keep one forecast per origin"
        )
    return frame


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def _known_rows(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    unknown = frame["realized"].isna()
    if unknown.any():
        counts = frame[unknown].groupby(["model", "horizon"], sort=False).size()
        detail = ", ".join(f"{m} h{h}: {k}" for (m, h), k in counts.items())
        notes.append(f"dropped {int(unknown.sum())} row(s) whose realized value is not known (NaN) ({detail})")
    known = frame[~unknown]
    if known.empty:
        raise MetricError(
            "no prediction has a known realized value: evaluate origins whose horizon ended inside the data"
        )
    _finite(known["realized"].to_numpy(dtype=float), "realized", "realized variance must be finite")
    return known


def _paired(a: pd.DataFrame, b: pd.DataFrame, what: str) -> pd.DataFrame:
    """Rows of a and b at their common origins, in time order, columns ``var_a, var_b, realized``."""
    both = a[["timestamp", "var", "realized"]].merge(
        b[["timestamp", "var", "realized"]], on="timestamp", suffixes=("_a", "_b")
    )
    both = both.sort_values("timestamp", kind="stable")
    ya, yb = both["realized_a"].to_numpy(dtype=float), both["realized_b"].to_numpy(dtype=float)
    if not np.allclose(ya, yb, rtol=1e-9, atol=0.0):
        i = int(np.flatnonzero(~np.isclose(ya, yb, rtol=1e-9, atol=0.0))[0])
        raise MetricError(
            f"{what}: the realized values differ between the models at the same origin "
            f"({both['timestamp'].iloc[i]}: {ya[i]} vs {yb[i]}); build every model's predictions from one target"
        )
    return both.rename(columns={"realized_a": "realized"})


def _dm_entry(a: pd.DataFrame, b: pd.DataFrame, lag: int, what: str, notes: list[str]) -> dict[str, float] | None:
    both = _paired(a, b, what)
    if both.empty:
        notes.append(f"{what}: no common origin with the benchmark, no DM test")
        return None
    y = both["realized"].to_numpy(dtype=float)
    la = qlike_losses(y, both["var_a"].to_numpy(dtype=float))
    lb = qlike_losses(y, both["var_b"].to_numpy(dtype=float))
    try:
        res = diebold_mariano(la, lb, lag)
    except UndefinedMetric as err:
        notes.append(f"{what}: DM test is null: {err}")
        return None
    return {"stat": res.stat, "p": res.p}


def _gap_entry(
    model: pd.DataFrame, orac: pd.DataFrame, bench: pd.DataFrame, what: str, notes: list[str]
) -> float | None:
    """Oracle gap on the origins the model, the oracle and the benchmark share (mean QLIKE)."""
    common = set(model["timestamp"]) & set(orac["timestamp"]) & set(bench["timestamp"])
    if not common:
        notes.append(f"{what}: no origin common to the model, the oracle and the benchmark; oracle gap is null")
        return None
    losses = []
    for g in (model, orac, bench):
        rows = g[g["timestamp"].isin(common)]
        losses.append(qlike(rows["realized"].to_numpy(dtype=float), rows["var"].to_numpy(dtype=float)))
    try:
        return oracle_gap(*losses)
    except UndefinedMetric as err:
        notes.append(f"{what}: oracle gap is null: {err}")
        return None


def _jsonable(value: Any, path: str, notes: list[str]) -> Any:
    """Plain Python numbers and containers; NaN and ±inf become None with a note naming where."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}", notes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            notes.append(f"{path} is {float(value)}, written as null")
            return None
        return float(value)
    return value


def evaluate_predictions(
    predictions: pd.DataFrame, *, benchmark: str = "har", oracle: str | None = None, step: int = 1
) -> dict[str, Any]:
    """The evaluation report of DESIGN section 11 from a predictions frame (DESIGN section 5).

    Parameters
    ----------
    predictions
        One row per (timestamp, horizon, model): ``var, q05..q95, realized`` (NaN where not known yet), and
        optionally ``p_calm, p_normal, p_stressed`` with ``realized_class`` (0/1/2) for the regime metrics.
    benchmark
        The model the DM tests and the oracle gap compare against (HAR by default).
    oracle
        The oracle model's name (simulated data), or None.
    step
        Bars between consecutive origins; the DM lag at horizon h is 3·ceil(h/step) − 1 (:func:`dm_lag`).

    Returns
    -------
    dict
        ``horizons, test_start, test_end`` (ISO, of the evaluated rows), ``benchmark``, ``models: {name: {"h60":
        horizon_metrics}}``, ``dm_vs_har: {name: {"h60": {"stat", "p"}}}`` for every model but the benchmark (per-origin
        QLIKE on the origins both share; the key keeps its name whatever the benchmark), ``regime`` (when
        ``realized_class`` is present), ``oracle_gap: {name: {"h60": gap}}`` (when ``oracle`` is in the frame; every
        model but the oracle, on the origins shared with the oracle and the benchmark), ``warnings``. Every number is
        a plain float/int or None, so ``json.dumps(result, allow_nan=False)`` works.
    """
    if int(step) != step or step < 1:
        raise MetricError(f"step must be the whole number of bars between origins (≥ 1); got {step}")
    notes: list[str] = []
    frame = _known_rows(_predictions_frame(predictions), notes)
    horizons = sorted(int(h) for h in frame["horizon"].unique())
    models = [str(m) for m in pd.unique(frame["model"])]
    groups = {
        (str(m), int(h)): g.sort_values("timestamp", kind="stable")
        for (m, h), g in frame.groupby(["model", "horizon"], sort=False)
    }
    keys = [(m, h) for m in models for h in horizons if (m, h) in groups]

    def collect(fn: Callable[..., Any], m: str, h: int, g: pd.DataFrame) -> Any:
        local: list[str] = []
        out = fn(g, notes=local)
        notes.extend(f"{m} h{h}: {text}" for text in local)
        return out

    result: dict[str, Any] = {
        "horizons": horizons,
        "test_start": _iso(frame["timestamp"].min()),
        "test_end": _iso(frame["timestamp"].max()),
        "benchmark": benchmark,
        "models": {m: {} for m in models},
        "dm_vs_har": {},
    }
    for m, h in keys:
        result["models"][m][f"h{h}"] = collect(horizon_metrics, m, h, groups[m, h])

    if benchmark not in models:
        notes.append(f"the benchmark {benchmark!r} is not among the models {models}: no DM test, no oracle gap")
    else:
        for m, h in keys:
            if m == benchmark:
                continue
            if (benchmark, h) not in groups:
                notes.append(f"{m} h{h}: the benchmark {benchmark!r} has no forecast at h{h}, no DM test")
            else:
                entry = _dm_entry(groups[m, h], groups[benchmark, h], dm_lag(h, step), f"{m} h{h}", notes)
                result["dm_vs_har"].setdefault(m, {})[f"h{h}"] = entry

    if "realized_class" in frame.columns:
        result["regime"] = {}
        for m, h in keys:
            g = groups[m, h]
            unknown = g["realized_class"].isna()
            if unknown.any():
                notes.append(f"{m} h{h}: {int(unknown.sum())} row(s) without realized_class left out of regime metrics")
                g = g[~unknown]
            if not g.empty:
                result["regime"].setdefault(m, {})[f"h{h}"] = collect(regime_metrics, m, h, g)

    if oracle is not None:
        if oracle not in models:
            notes.append(f"the oracle {oracle!r} is not among the models {models}: no oracle gap")
        elif benchmark in models:
            result["oracle_gap"] = {}
            for m, h in keys:
                if m != oracle and (oracle, h) in groups and (benchmark, h) in groups:
                    gap = _gap_entry(groups[m, h], groups[oracle, h], groups[benchmark, h], f"{m} h{h}", notes)
                    result["oracle_gap"].setdefault(m, {})[f"h{h}"] = gap

    result = _jsonable(result, "result", notes)
    result["warnings"] = notes
    return result


# ---------------------------------------------------------------- views of a report


def _sections() -> list[tuple[str, str, Callable[[Any], dict[str, Any]]]]:
    """(section key, target, how to read the metrics of one entry) for every metric section of a report."""
    return [
        ("models", "rv", lambda e: dict(e)),
        ("regime", "regime", lambda e: dict(e)),
        ("dm_vs_har", "rv", lambda e: {"dm_stat": e["stat"], "dm_p": e["p"]} if e else {}),
        ("oracle_gap", "rv", lambda e: {"oracle_gap": e}),
    ]


def metrics_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """A side-by-side table of an :func:`evaluate_predictions` report: one row per model (index ``model``), columns
    ``{metric}/h{h}`` metric-major (``qlike/h60, qlike/h240, mse/h60, ...``), then regime metrics, ``dm_stat``,
    ``dm_p`` and ``oracle_gap``; NaN where a model lacks a value (display only: the report itself holds None)."""
    horizons = [int(h) for h in result["horizons"]]
    rows: dict[str, dict[str, float]] = {m: {} for m in result["models"]}
    order: list[str] = []
    for section, _target, read in _sections():
        for m, per_h in result.get(section, {}).items():
            for hkey, entry in per_h.items():
                for metric, value in read(entry).items():
                    rows.setdefault(m, {})[f"{metric}/{hkey}"] = np.nan if value is None else float(value)
                    if metric not in order:
                        order.append(metric)
    columns = [f"{metric}/h{h}" for metric in order for h in horizons]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)
    table.index.name = "model"
    return table.dropna(axis=1, how="all")


def mlflow_metric_names(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per model, the report's numbers under DESIGN section 8 names ``{metric}/{target}/h{h}``: variance and quantile
    metrics, ``dm_stat``, ``dm_p`` and ``oracle_gap`` under target ``rv`` (``qlike/rv/h60``, ``coverage90/rv/h60``),
    regime metrics under ``regime`` (``logloss/regime/h60``). None values are skipped."""
    out: dict[str, dict[str, float]] = {m: {} for m in result["models"]}
    for section, target, read in _sections():
        for m, per_h in result.get(section, {}).items():
            for hkey, entry in per_h.items():
                for metric, value in read(entry).items():
                    if value is not None:
                        out.setdefault(m, {})[f"{metric}/{target}/{hkey}"] = float(value)
    return out
