"""Conformal intervals on top of any model's quantiles, so the 90% interval covers about 90% out of sample.

Two intervals of the forecast frame (:mod:`models.base`) are calibrated, per (model, horizon):

- the outer one [q05, q95] to cover 1 − α (``alpha``, default 0.1: the 90% interval of the column names);
- the inner one [q25, q75] to cover 50% (its own α of 0.5).

``q50``, ``var`` and the regime probabilities are left as they are.

Split conformal (``method="split"``)
------------------------------------
Conformalized quantile regression (Romano, Patterson and Candès 2019) on the log scale, where rv is roughly
symmetric and a multiplicative correction keeps the bounds positive. On n held-out calibration origins with outcome
y (floored at 1e-12 like the forecasts):

- score s_i = max(log lo_i − log y_i, log y_i − log hi_i) (negative inside the interval, positive outside);
- correction c = the k-th smallest score with k = ⌈(1 − α)(n + 1)⌉ (:func:`conformal_rank`), which needs
  n ≥ 1/α − 1 (9 rows at α = 0.1);
- calibrated interval [lo·e^{−c}, hi·e^{c}] (c < 0 narrows an interval that was too wide).

If the calibration and test origins are exchangeable, P(y ∈ calibrated interval) ≥ 1 − α (and < 1 − α + 1/(n+1)
without ties). Overlapping rv windows make neighbouring origins dependent; the guarantee then holds approximately.

Afterwards the quantiles are made non-decreasing again without moving q50: q25 ≤ q50 ≤ q75, then q05 ≤ q25 and
q95 ≥ q75 (each fix only widens an interval, so coverage never drops).

Adaptive conformal (``method="adaptive"``)
------------------------------------------
Adaptive conformal inference (Gibbs and Candès 2021) tracks a drifting distribution. Per (model, horizon), walking
the test origins t in time order, with α_t starting at α (so the first intervals are the split ones):

- origin s is *known* at t when its outcome is: s + h·freq ≤ t (``freq`` the bar length) and its ``realized`` is
  not NaN. Each origin that becomes known updates, once and in time order, α_t ← α_t + γ(α − err_s), with
  err_s = 1{s_s > c_s} the miss of the conformal interval issued at s (before the monotone fix, which only widens);
- the correction at t is the ⌈(1 − α_t)(N_t + 1)⌉-th smallest of the N_t pooled scores: the calibration scores
  plus the scores of the test origins known at t. The rank is clipped to [1, N_t], so α_t ≤ 1/(N_t + 1) gives the
  largest score (a finite interval instead of ACI's infinite one) and α_t ≥ 1 the smallest.

Only outcomes known at t enter the interval at t: changing any later outcome leaves it unchanged (strictly causal).
Each ``apply`` call starts again from the calibrator's state at its first origin: α for a fitted calibrator; to
continue online, pass the whole test history, or :meth:`ConformalCalibrator.advance` the calibrator through it
(a new calibrator carrying α_t and the pooled scores as of the history's last origin: what a registered model
serves with).

Shapes: n calibration origins, m test origins per (model, horizon); quantile blocks (m, 5) in :data:`QUANTILES` order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.base import QUANTILE_COLUMNS, VAR_FLOOR, FloatArray, IntArray, ModelError

METHODS = ("split", "adaptive")
INNER_ALPHA = 0.5  # the [q25, q75] interval covers 50%
FORMAT = "conformal-v1"
_RANK_FUZZ = 1e-9  # (1 − α)(n + 1) computed in floating point: 0.9 · 100 = 90.00000000000001 must give rank 90

# one validator for every parameter: name -> (rule, what is allowed)
_PARAM_RULES: dict[str, tuple[Any, str]] = {
    "alpha": (lambda v: isinstance(v, (int, float)) and 0.0 < v < 1.0, "a miscoverage level strictly in (0, 1)"),
    "method": (lambda v: v in METHODS, f"one of {list(METHODS)}"),
    "gamma": (lambda v: isinstance(v, (int, float)) and 0.0 < v < 1.0, "an ACI step size strictly in (0, 1)"),
}


class CalibrationError(ModelError, ValueError):
    """A calibrator cannot be fitted or applied as asked; the text names the fix."""


# ---------------------------------------------------------------- the functional core


def conformity_scores(y: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> FloatArray:
    """Log-scale CQR scores max(log lo − log y, log y − log hi), everything floored at 1e-12. Shape (n,)."""
    log_y = np.log(np.maximum(np.asarray(y, dtype=float), VAR_FLOOR))
    log_lo = np.log(np.maximum(np.asarray(lo, dtype=float), VAR_FLOOR))
    log_hi = np.log(np.maximum(np.asarray(hi, dtype=float), VAR_FLOOR))
    return np.maximum(log_lo - log_y, log_y - log_hi)


def min_calibration_size(alpha: float) -> int:
    """The fewest calibration scores for which the conformal rank exists: ⌈1/α − 1⌉ (9 at α = 0.1)."""
    return max(math.ceil((1.0 - alpha) / alpha - _RANK_FUZZ), 1)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ⌈(1 − α)(n + 1)⌉, the rank of the score used as correction; raises when k > n (too few scores)."""
    k = math.ceil((1.0 - alpha) * (n + 1) - _RANK_FUZZ)
    if k > n:
        raise CalibrationError(
            f"{n} calibration row(s) are too few for a {1 - alpha:.0%} interval: split conformal needs at least "
            f"{min_calibration_size(alpha)} (n ≥ 1/α − 1). Fix: calibrate on more origins or raise alpha"
        )
    return max(k, 1)


def split_correction(scores: npt.ArrayLike, alpha: float) -> float:
    """The split-conformal correction: the ⌈(1 − α)(n + 1)⌉-th smallest of the n scores."""
    s = np.sort(np.asarray(scores, dtype=float))
    return float(s[conformal_rank(s.size, alpha) - 1])


def known_counts(timestamps: pd.DatetimeIndex | npt.ArrayLike, horizon: int, freq: pd.Timedelta) -> IntArray:
    """For each origin t (increasing timestamps, shape (m,)), how many origins s have s + horizon·freq ≤ t: their
    outcome is known at t. Non-decreasing; entry i ≤ i since horizon ≥ 1."""
    ts = pd.DatetimeIndex(timestamps)
    return np.asarray((ts + horizon * freq).searchsorted(ts, side="right"), dtype=np.int64)


def adaptive_corrections(
    calibration_scores: npt.ArrayLike,
    test_scores: npt.ArrayLike,
    n_known: npt.ArrayLike,
    alpha: float,
    gamma: float,
    *,
    alpha_start: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """ACI corrections at m test origins in time order (module docstring).

    Parameters
    ----------
    calibration_scores
        Scores of the calibration origins, (n,).
    test_scores
        Scores of the test origins from their outcomes, (m,); NaN where the outcome is missing (never known).
    n_known
        (m,): at origin i, test origins 0 .. n_known[i] − 1 have their outcome known (:func:`known_counts`).
    alpha, gamma
        Target miscoverage and step size.
    alpha_start
        α_t before the first update (None: ``alpha``): the level an advanced calibrator carries
        (:meth:`ConformalCalibrator.advance`).

    Returns
    -------
    (corrections, alpha_t)
        Both (m,): the correction used at each origin and the α_t it came from.
    """
    pool = sorted(np.asarray(calibration_scores, dtype=float).tolist())
    scores = np.asarray(test_scores, dtype=float)
    known = np.asarray(n_known, dtype=np.int64)
    m = scores.size
    out, levels = np.empty(m), np.empty(m)
    a, j = float(alpha if alpha_start is None else alpha_start), 0
    for i in range(m):
        while j < known[i]:  # origins whose outcome arrived by t_i, each once, in time order
            if math.isfinite(scores[j]):
                a += gamma * (alpha - float(scores[j] > out[j]))
                bisect.insort(pool, float(scores[j]))
            j += 1
        k = math.ceil((1.0 - a) * (len(pool) + 1) - _RANK_FUZZ)
        out[i] = pool[min(max(k, 1), len(pool)) - 1]
        levels[i] = a
    return out, levels


def calibrated_quantiles(q: npt.ArrayLike, outer: npt.ArrayLike, inner: npt.ArrayLike) -> FloatArray:
    """Quantiles (m, 5) with [q05, q95] widened by e^{outer} and [q25, q75] by e^{inner} (log scale), made
    non-decreasing around the unchanged q50 and floored at 1e-12. ``outer``/``inner``: scalars or (m,)."""
    q = np.asarray(q, dtype=float)
    c_out = np.asarray(outer, dtype=float)
    c_in = np.asarray(inner, dtype=float)
    q50 = q[:, 2]
    q25 = np.minimum(q[:, 1] * np.exp(-c_in), q50)
    q75 = np.maximum(q[:, 3] * np.exp(c_in), q50)
    q05 = np.minimum(q[:, 0] * np.exp(-c_out), q25)
    q95 = np.maximum(q[:, 4] * np.exp(c_out), q75)
    return np.maximum(np.column_stack([q05, q25, q50, q75, q95]), VAR_FLOOR)


# ---------------------------------------------------------------- the calibrator


@dataclass(frozen=True)
class CalibrationGroup:
    """What the calibrator learned for one (model, horizon).

    Attributes
    ----------
    n
        Calibration rows.
    outer, inner
        Split corrections (log scale) of [q05, q95] at level 1 − α and of [q25, q75] at 50%.
    scores_outer, scores_inner
        The sorted calibration scores (kept for the adaptive method; empty for split). After
        :meth:`ConformalCalibrator.advance`, also the scores of the test origins known by then.
    alpha_outer, alpha_inner
        The ACI levels α_t the adaptive method starts from (None: α and 0.5, a calibrator never advanced).
    as_of
        ISO time of the last origin an advanced calibrator has seen (None: never advanced).
    """

    n: int
    outer: float
    inner: float
    scores_outer: tuple[float, ...] = ()
    scores_inner: tuple[float, ...] = ()
    alpha_outer: float | None = None
    alpha_inner: float | None = None
    as_of: str | None = None


def _check_params(params: Mapping[str, Any]) -> None:
    for name, (rule, allowed) in _PARAM_RULES.items():
        value = params[name]
        if isinstance(value, bool) or not rule(value):
            raise CalibrationError(f"ConformalCalibrator: {name} must be {allowed}; got {value!r}")


def _frame_columns(frame: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise CalibrationError(f"{what}: the frame lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise CalibrationError(f"{what}: the frame has no rows")
    q = frame[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)
    bad = ~np.isfinite(q)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise CalibrationError(f"{what}: non-finite quantile forecast in row {i}: {q[i]}; check the model's output")


def _groups(frame: pd.DataFrame) -> dict[tuple[str, int], npt.NDArray[np.int64]]:
    """Row positions of each (model, horizon), in the frame's order."""
    keys = pd.MultiIndex.from_arrays([frame["model"].astype(str), frame["horizon"].astype(np.int64)])
    codes, uniques = pd.factorize(keys)
    return {(str(m), int(h)): np.flatnonzero(codes == i) for i, (m, h) in enumerate(uniques)}


class ConformalCalibrator:
    """Conformal calibration of forecast quantiles, per (model, horizon) (module docstring).

    Parameters
    ----------
    alpha
        Target miscoverage of [q05, q95] (0.1: 90% coverage).
    method
        ``"split"`` (fixed correction from the calibration set) or ``"adaptive"`` (ACI on top of it).
    gamma
        ACI step size (adaptive only): larger follows drift faster with noisier intervals.

    Attributes (after ``fit``)
    --------------------------
    groups_
        ``{(model, horizon): CalibrationGroup}``.
    """

    def __init__(self, *, alpha: float = 0.1, method: str = "split", gamma: float = 0.005) -> None:
        self.alpha = alpha
        self.method = method
        self.gamma = gamma

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "method": self.method, "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"ConformalCalibrator(alpha={self.alpha!r}, method={self.method!r}, gamma={self.gamma!r})"

    # ---------------------------------------------------------------- fit

    def fit(self, calibration_predictions: pd.DataFrame) -> Self:
        """Learn the corrections from held-out origins: a forecast frame plus ``realized`` (all known)."""
        _check_params(self.get_params())
        frame = calibration_predictions
        _frame_columns(frame, ("horizon", "model", *QUANTILE_COLUMNS, "realized"), "ConformalCalibrator.fit")
        y = frame["realized"].to_numpy(dtype=float)
        if not np.isfinite(y).all():
            raise CalibrationError(
                f"ConformalCalibrator.fit: {int((~np.isfinite(y)).sum())} calibration row(s) have no finite realized "
                "value; drop the origins whose horizon ends after the calibration window"
            )
        q = frame[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)
        keep = self.method == "adaptive"
        self.groups_: dict[tuple[str, int], CalibrationGroup] = {}
        for (model, h), rows in _groups(frame).items():
            s_out = np.sort(conformity_scores(y[rows], q[rows, 0], q[rows, 4]))
            s_in = np.sort(conformity_scores(y[rows], q[rows, 1], q[rows, 3]))
            try:
                outer, inner = split_correction(s_out, self.alpha), split_correction(s_in, INNER_ALPHA)
            except CalibrationError as err:
                raise CalibrationError(f"model {model!r} h={h}: {err}") from None
            self.groups_[model, h] = CalibrationGroup(
                n=int(rows.size),
                outer=outer,
                inner=inner,
                scores_outer=tuple(s_out.tolist()) if keep else (),
                scores_inner=tuple(s_in.tolist()) if keep else (),
            )
        return self

    # ---------------------------------------------------------------- apply

    def apply(self, predictions: pd.DataFrame, *, freq: pd.Timedelta | str | None = None) -> pd.DataFrame:
        """The predictions with calibrated ``q05 .. q95`` (same rows, order and other columns).

        ``freq`` (the bar length) is required by the adaptive method, which also reads ``realized`` (NaN where not
        known yet) and ``timestamp``; the split method needs neither.
        """
        if not hasattr(self, "groups_"):
            raise CalibrationError("ConformalCalibrator is not fitted: call fit(calibration_predictions) first")
        _check_params(self.get_params())
        needed = ("horizon", "model", *QUANTILE_COLUMNS)
        if self.method == "adaptive":
            needed = ("timestamp", *needed, "realized")
        _frame_columns(predictions, needed, "ConformalCalibrator.apply")
        step = self._bar_length(freq) if self.method == "adaptive" else None
        groups = _groups(predictions)
        unknown = [key for key in groups if key not in self.groups_]
        if unknown:
            (model, h), known = unknown[0], sorted(self.groups_)
            raise CalibrationError(
                f"predictions for model {model!r} h={h} were never calibrated (the calibrator knows {known}); "
                "fit on calibration predictions of that model and horizon"
            )
        q = predictions[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)  # (m, 5)
        out = q.copy()
        for key, rows in groups.items():
            group = self.groups_[key]
            if step is None:
                out[rows] = calibrated_quantiles(q[rows], group.outer, group.inner)
            else:
                out[rows] = self._adaptive(predictions.iloc[rows], q[rows], key, group, step)
        result = predictions.copy()
        result[list(QUANTILE_COLUMNS)] = out
        return result

    def _bar_length(self, freq: pd.Timedelta | str | None) -> pd.Timedelta:
        if freq is None:
            raise CalibrationError(
                "the adaptive method needs freq, the bar length (e.g. apply(predictions, freq='1min')), to know when "
                "each origin's outcome is known (h bars later)"
            )
        step = pd.Timedelta(freq)
        if step <= pd.Timedelta(0):
            raise CalibrationError(f"freq must be a positive bar length; got {freq!r}")
        return step

    def _adaptive(
        self, frame: pd.DataFrame, q: FloatArray, key: tuple[str, int], group: CalibrationGroup, step: pd.Timedelta
    ) -> FloatArray:
        """Calibrated quantiles (m, 5) of one (model, horizon) by ACI, in the frame's row order."""
        if not group.scores_outer:
            raise CalibrationError(
                f"model {key[0]!r} h={key[1]}: no calibration scores stored (fitted with method='split'); refit with "
                "method='adaptive'"
            )
        ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
        order = np.argsort(ts.asi8, kind="stable")  # (m,) time order
        ts_sorted = ts[order]
        if ts_sorted.has_duplicates:
            raise CalibrationError(
                f"model {key[0]!r} h={key[1]}: duplicate timestamps; keep one forecast per (timestamp, model, horizon)"
            )
        qs = q[order]
        y = frame["realized"].to_numpy(dtype=float)[order]
        known = known_counts(ts_sorted, key[1], step)
        c_out, _ = adaptive_corrections(
            group.scores_outer,
            conformity_scores(y, qs[:, 0], qs[:, 4]),
            known,
            self.alpha,
            self.gamma,
            alpha_start=group.alpha_outer,
        )
        c_in, _ = adaptive_corrections(
            group.scores_inner,
            conformity_scores(y, qs[:, 1], qs[:, 3]),
            known,
            INNER_ALPHA,
            self.gamma,
            alpha_start=group.alpha_inner,
        )
        out = np.empty_like(q)
        out[order] = calibrated_quantiles(qs, c_out, c_in)
        return out

    def advance(self, history: pd.DataFrame, *, freq: pd.Timedelta | str) -> ConformalCalibrator:
        """The adaptive calibrator as it stands after walking ``history``: a new calibrator whose ACI state (α_t and
        the pooled scores) is the one used at the last origin of each (model, horizon), so a later :meth:`apply`
        continues from there instead of starting again at α.

        ``history`` is a forecast frame with raw quantiles, ``timestamp`` and ``realized`` (NaN where unknown),
        as :meth:`apply` takes it; at its last origin T only the outcomes known at T count (s + h·freq ≤ T), so the
        advanced calibrator applied at T gives exactly what ``apply(history)`` gave at T. The walk-forward
        registers calibrators advanced through the last test block. The split method has no state to advance:
        the calibrator is returned as it is.
        """
        if not hasattr(self, "groups_"):
            raise CalibrationError("ConformalCalibrator is not fitted: call fit(calibration_predictions) first")
        if self.method != "adaptive":
            return self
        _frame_columns(history, ("timestamp", "horizon", "model", *QUANTILE_COLUMNS, "realized"), "advance")
        step = self._bar_length(freq)
        q_all = history[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)
        groups = dict(self.groups_)
        for key, rows in _groups(history).items():
            if key not in groups:
                raise CalibrationError(f"advance: model {key[0]!r} h={key[1]} was never calibrated")
            group = groups[key]
            ts = pd.DatetimeIndex(pd.to_datetime(history["timestamp"].iloc[rows], utc=True))
            order = np.argsort(ts.asi8, kind="stable")
            ts_sorted, qs = ts[order], q_all[rows][order]
            y = history["realized"].to_numpy(dtype=float)[rows][order]
            known = known_counts(ts_sorted, key[1], step)
            state = {}
            for side, (lo, hi), alpha, start, pool in (
                ("outer", (0, 4), self.alpha, group.alpha_outer, group.scores_outer),
                ("inner", (1, 3), INNER_ALPHA, group.alpha_inner, group.scores_inner),
            ):
                scores = conformity_scores(y, qs[:, lo], qs[:, hi])
                c, levels = adaptive_corrections(pool, scores, known, alpha, self.gamma, alpha_start=start)
                seen = scores[: known[-1]]
                state[side] = (float(c[-1]), float(levels[-1]), tuple(sorted([*pool, *seen[np.isfinite(seen)]])))
            groups[key] = CalibrationGroup(
                n=group.n,
                outer=state["outer"][0],
                inner=state["inner"][0],
                scores_outer=state["outer"][2],
                scores_inner=state["inner"][2],
                alpha_outer=state["outer"][1],
                alpha_inner=state["inner"][1],
                as_of=ts_sorted[-1].isoformat(),
            )
        advanced = ConformalCalibrator(**self.get_params())
        advanced.groups_ = groups
        return advanced

    # ---------------------------------------------------------------- inspection and persistence

    def corrections(self) -> pd.DataFrame:
        """The split corrections: columns ``model, horizon, n, outer, inner`` (log scale; 0 = unchanged)."""
        if not hasattr(self, "groups_"):
            raise CalibrationError("ConformalCalibrator is not fitted: call fit(calibration_predictions) first")
        rows = [
            {"model": m, "horizon": h, "n": g.n, "outer": g.outer, "inner": g.inner}
            for (m, h), g in self.groups_.items()
        ]
        return pd.DataFrame(rows, columns=["model", "horizon", "n", "outer", "inner"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the fitted calibrator (:meth:`from_dict` reads it back)."""
        if not hasattr(self, "groups_"):
            raise CalibrationError("ConformalCalibrator is not fitted: there is nothing to save")
        groups = [
            {
                "model": m,
                "horizon": h,
                "n": g.n,
                "outer": g.outer,
                "inner": g.inner,
                "scores_outer": list(g.scores_outer),
                "scores_inner": list(g.scores_inner),
                "alpha_outer": g.alpha_outer,
                "alpha_inner": g.alpha_inner,
                "as_of": g.as_of,
            }
            for (m, h), g in self.groups_.items()
        ]
        return {"format": FORMAT, "params": self.get_params(), "groups": groups}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConformalCalibrator:
        """A fitted calibrator from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise CalibrationError(f"not a saved calibrator: format is {data.get('format')!r}, expected {FORMAT!r}")
        try:
            calibrator = cls(**data["params"])
            _check_params(calibrator.get_params())
            calibrator.groups_ = {
                (str(g["model"]), int(g["horizon"])): CalibrationGroup(
                    n=int(g["n"]),
                    outer=float(g["outer"]),
                    inner=float(g["inner"]),
                    scores_outer=tuple(float(s) for s in g["scores_outer"]),
                    scores_inner=tuple(float(s) for s in g["scores_inner"]),
                    alpha_outer=None if g.get("alpha_outer") is None else float(g["alpha_outer"]),
                    alpha_inner=None if g.get("alpha_inner") is None else float(g["alpha_inner"]),
                    as_of=g.get("as_of"),
                )
                for g in data["groups"]
            }
        except (KeyError, TypeError) as err:
            raise CalibrationError(f"a saved calibrator is missing or has a bad entry: {err!r}") from None
        return calibrator
