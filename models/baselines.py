"""Baseline forecasters of realized variance: persistence, RiskMetrics EWMA and HAR-RV (log or levels, with IV).

Every forecast is of ``rv_h(t) = Σ_{i=1..h} r_{t+i}²`` (decimal², over the h bars, never annualized) at an
origin t, from returns r_i with i ≤ t and feature row t only. With r the 1-bar log returns:

- :class:`Persistence`: ``var_h(t) = Σ_{i=t−h+1..t} r_i²``, the realized variance of the last h bars (a random
  walk in realized variance).
- :class:`Ewma`: RiskMetrics, ``σ²_t = λ σ²_{t−1} + (1 − λ) r_t²`` and ``var_h(t) = h · σ²_t`` (the EWMA is a
  random walk in variance, so every future bar has the same expected variance). λ is given, or fitted per
  horizon on the training rows by QLIKE (``lam="fit"``).
- :class:`Har`: HAR-RV of Corsi (2009) on the ``rv_W`` feature windows rescaled to the horizon, in logs (with
  Duan's smearing correction back to levels) or in levels, optionally with the implied variance of the horizon
  as an extra regressor (HAR-X, the IV as in Busch, Christensen & Nielsen 2011).

Shapes: ``n`` bars, ``m`` origins, ``k`` regressors.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.signal import lfilter

from features.windows import anchor_for, anchor_ids, window_sum
from models.base import VAR_FLOOR, FloatArray, Forecaster, IntArray, ModelData, ModelError, qlike_loss
from models.seasonal import DEFAULT_BANDWIDTH, SeasonalProfile

log = logging.getLogger(__name__)

_RV_COLUMN = re.compile(r"^rv_(\d+)$")
LAM_BOUNDS = (0.5, 0.9999)  # the search interval of a fitted EWMA λ


# ---------------------------------------------------------------- shared helpers


def bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The data's bar length: the median spacing of the index (robust to session gaps and a missing bar)."""
    if len(index) < 2:
        raise ModelError(f"the data has {len(index)} bar(s); a bar length needs at least 2")
    ns = index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8
    return pd.Timedelta(int(np.median(np.diff(ns))), unit="ns")


def trailing_sum(values: FloatArray, window: int, index: pd.DatetimeIndex) -> FloatArray:
    """Σ of the last ``window`` values at every row (causal: row t uses rows t − window + 1 … t only). Shape (n,).

    The same anchored window sum as the features (:func:`features.windows.window_sum`), so a recent history gives
    the batch value bit for bit; the first ``window − 1`` rows and windows holding a NaN are NaN.
    """
    blocks = anchor_ids(index, anchor_for(window, bar_length(index)))
    return window_sum(values, window, blocks)


def qlike(rv: FloatArray, var: FloatArray) -> float:
    """Mean QLIKE (:func:`models.base.qlike_loss`) over the pairs where both are finite. (m,) → ()."""
    ok = np.isfinite(rv) & np.isfinite(var)
    return float(np.mean(qlike_loss(rv[ok], var[ok])))


def rv_windows(features: pd.DataFrame) -> list[int]:
    """The windows W ≥ 1 of the ``rv_W`` columns of a feature table, increasing."""
    found = (_RV_COLUMN.match(str(c)) for c in features.columns)
    return sorted(w for m in found if m and (w := int(m.group(1))) >= 1)


def _squared_returns(data: ModelData, last: int) -> FloatArray:
    """r_i² for i ≤ ``last`` (NaN where the return is missing, e.g. the first bar). Shape (last + 1,)."""
    r = data.log_return[: last + 1]
    return r * r


# ---------------------------------------------------------------- persistence


class Persistence(Forecaster):
    """``var_h(t)`` = the realized variance of the last h bars, ``Σ_{i=t−h+1..t} r_i²``.

    No hyper-parameter besides the shared ones. An origin whose window reaches the first bar (no return) has no
    forecast: start the origins at bar h or later.
    """

    family = "persistence"

    def input_features(self) -> list[str]:
        return []  # returns only

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.n_train_ = int(rows.size)

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        last = int(rows[-1])
        r2 = _squared_returns(data, last)
        index = data.index[: last + 1]
        return {h: trailing_sum(r2, h, index)[rows] for h in self.horizons_}


# ---------------------------------------------------------------- EWMA


def ewma_variance(r2: FloatArray, lam: float) -> FloatArray:
    """RiskMetrics variance ``σ²_t = λ σ²_{t−1} + (1 − λ) r_t²``, normalized by the weight seen so far. Shape (n,).

    Parameters
    ----------
    r2
        Squared returns, (n,); NaN marks a missing return, which gets weight 0 (the decay still applies).
    lam
        Decay λ in (0, 1).

    Returns
    -------
    FloatArray
        ``σ²_t = Σ_{i≤t} λ^{t−i} r_i² / Σ_{i≤t} λ^{t−i}`` over the returns seen (i ≤ t): the recursion started
        from 0 at the first bar, divided by the weight ``1 − λ^k`` it has accumulated after k returns. This is
        the documented initial value: the first σ² is the first squared return, and afterwards every σ²_t is a
        proper weighted average of past squared returns with RiskMetrics weights (no look-ahead, no arbitrary
        seed value); far from the start (k ≫ 1/(1 − λ)) it is the plain recursion. NaN before the first return.
        Causal: σ²_t is the forecast at t of the next bar's variance.
    """
    seen = np.isfinite(r2)
    a = [1.0, -lam]
    b = [1.0 - lam]
    num = lfilter(b, a, np.where(seen, r2, 0.0))  # (n,)
    den = lfilter(b, a, seen.astype(float))  # (n,), 1 − λ^k after k returns
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


class Ewma(Forecaster):
    """RiskMetrics EWMA of squared returns: ``var_h(t) = h · σ²_t`` (:func:`ewma_variance`).

    Parameters
    ----------
    lam
        The decay λ in (0, 1) (RiskMetrics: 0.94 for daily data), or ``"fit"``: λ per horizon, minimizing the
        QLIKE of ``h · σ²_t`` against rv_h on the training rows over λ in :data:`LAM_BOUNDS` (bounded Brent).
        Fitted per horizon, since the best memory for an hour ahead is not the best for a day ahead.

    Fitted attributes: ``lam_`` ({h: λ}), ``train_qlike_`` ({h: QLIKE of the training rows at that λ}).
    """

    family = "ewma"

    def __init__(
        self,
        *,
        lam: float | str = 0.94,
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.lam = lam

    def input_features(self) -> list[str]:
        return []  # returns only

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        r2 = _squared_returns(data, int(rows[-1]))
        if isinstance(self.lam, str):
            if self.lam != "fit":
                raise ModelError(f"{self.label}: lam must be a number in (0, 1) or 'fit'; got {self.lam!r}")
            self.lam_ = {h: _fit_lam(r2, data.target(h)[rows], rows, h, self.label) for h in self.horizons_}
        else:
            lam = float(self.lam) if isinstance(self.lam, numbers.Real) and not isinstance(self.lam, bool) else -1.0
            if not 0.0 < lam < 1.0:
                raise ModelError(f"{self.label}: lam must be a number in (0, 1) or 'fit'; got {self.lam!r}")
            self.lam_ = dict.fromkeys(self.horizons_, lam)
        self.train_qlike_ = {
            h: qlike(data.target(h)[rows], h * ewma_variance(r2, self.lam_[h])[rows]) for h in self.horizons_
        }

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        r2 = _squared_returns(data, int(rows[-1]))
        cache: dict[float, FloatArray] = {}
        out = {}
        for h in self.horizons_:
            lam = self.lam_[h]
            if lam not in cache:
                cache[lam] = ewma_variance(r2, lam)
            out[h] = h * cache[lam][rows]
        return out


def _fit_lam(r2: FloatArray, rv: FloatArray, rows: IntArray, h: int, label: str) -> float:
    """The λ in :data:`LAM_BOUNDS` minimizing the training QLIKE of ``h · σ²_t(λ)`` against ``rv`` (m,)."""
    seen = np.flatnonzero(np.isfinite(r2))
    if not (seen.size and np.any(np.isfinite(rv) & (rows >= seen[0]))):
        raise ModelError(f"{label}: no training row has both a known rv_h{h} and a past return to fit lam on")

    def loss(lam: float) -> float:
        return qlike(rv, h * ewma_variance(r2, lam)[rows])

    res = minimize_scalar(loss, bounds=LAM_BOUNDS, method="bounded", options={"xatol": 1e-6})
    if not res.success:
        raise ModelError(f"{label}: fitting lam for h={h} failed ({res.message}). Fix: give lam a number")
    return float(res.x)


# ---------------------------------------------------------------- HAR

HAR_MEASURES = ("rv", "bv", "parkinson", "gk", "rs")  # variance estimators summed over W bars (features.realized)
BASE_MEASURES_RULE = (  # the base_measures parameter of the models that start from a log-HAR (lgbm, net)
    lambda v: v is None or (isinstance(v, list | tuple) and len(v) > 0 and all(m in HAR_MEASURES for m in v)),
    f"None (rv only) or a non-empty list from {list(HAR_MEASURES)}",
)


def har_design(
    data: ModelData,
    rows: IntArray,
    horizon: int,
    windows: Sequence[int],
    *,
    log: bool,
    exog_iv: bool,
    season: SeasonalProfile | None = None,
    measures: Sequence[str] = ("rv",),
) -> FloatArray:
    """HAR regressors at ``rows`` for one horizon h, without the intercept. Shape (m, k).

    One column per measure M and window W (measures outer, windows inner): ``M_W · h/W``, the last W bars'
    variance by that estimator rescaled to the horizon (``rv_W`` for the classic HAR); with a ``season`` profile,
    deseasonalized first: ``M_W / s_W^past · h/W`` (:meth:`models.seasonal.SeasonalProfile.past`, the mean
    seasonal multiplier of those W bars). Then, when ``exog_iv``, the implied variance of the horizon
    ``iv² · h · bar_years`` (a 30-day IV: not seasonal). With ``log``, their logs (a zero variance gives −inf).
    Missing inputs stay NaN.
    """
    columns = [data.column(f"{m}_{w}")[rows] * (horizon / w) for m in measures for w in windows]
    if season is not None:
        divisors = [season.past(data, rows, w) for w in windows]
        columns = [c / divisors[i % len(windows)] for i, c in enumerate(columns)]
    if exog_iv:
        if data.iv is None:
            raise ModelError(
                "HAR-X (exog_iv=True) needs an implied-vol series and the data has none. Fix: give the market an "
                "IV index or an option chain, or set exog_iv=False"
            )
        columns.append(np.asarray(data.iv, dtype=float)[rows] ** 2 * (horizon * data.bar_years))
    x = np.column_stack(columns)  # (m, k)
    if not log:
        return x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def fit_linear(x: FloatArray, y: FloatArray, ridge: float) -> tuple[float, FloatArray]:
    """Least squares of y (m,) on [1, x] (m, k), the slopes penalized by ``ridge`` on the standardized regressors.

    Minimizes ``‖y − ȳ − z w‖² + ridge ‖w‖²`` with z the regressors centered and divided by their (population)
    standard deviations, then maps back: slopes ``w / sd``, intercept ``ȳ − x̄ · slopes`` (the intercept is never
    penalized). ``ridge = 0`` is ordinary least squares. Returns (intercept, slopes (k,)).
    """
    mean_x, mean_y = x.mean(axis=0), y.mean()
    sd = x.std(axis=0)
    z = (x - mean_x) / sd  # (m, k)
    k = x.shape[1]
    if ridge > 0:
        z = np.vstack([z, np.sqrt(ridge) * np.eye(k)])  # (m + k, k): the penalty as k pseudo-observations
    target = np.r_[y - mean_y, np.zeros(z.shape[0] - y.size)]
    w, *_ = np.linalg.lstsq(z, target, rcond=None)
    slopes = w / sd
    return float(mean_y - mean_x @ slopes), slopes


class Har(Forecaster):
    """HAR-RV: rv_h regressed on the recent realized variances over several windows (and the IV, HAR-X).

    Parameters
    ----------
    log
        True: OLS of ``log rv_h`` on the log regressors (:func:`har_design`), forecast ``exp(fit) · smear`` with
        Duan's (1983) smearing estimator ``smear = mean(exp(e))`` over the training residuals e, which estimates
        ``E[exp(e)]`` without assuming normal errors (``exp(σ²/2)`` would), so the forecast estimates the mean
        of rv_h, not its median. False: OLS in levels; a forecast below the smallest positive training rv_h
        (``floor_[h]``, the calmest outcome seen: below it the linear fit extrapolates) is raised to it, and
        each predict logs how many forecasts were raised (``n_floored_train_[h]`` counts them on the training
        rows).
    exog_iv
        Add the implied variance of the horizon, ``iv² · h · bar_years``, as a regressor (HAR-X). Needs
        ``data.iv``.
    windows
        The ``rv_W`` windows to use; None: every ``rv_W`` column of the feature table.
    measures
        The realized-variance estimators used at every window, from :data:`HAR_MEASURES`: ``["rv"]`` (default) is
        Corsi's HAR; adding range-based ones (``"gk"`` Garman-Klass, ``"parkinson"``, ``"rs"`` Rogers-Satchell)
        or ``"bv"`` (bipower, jump-robust) gives the log-HAR more efficient measures of the recent variance (their
        ``M_W`` columns must exist: the realized feature group writes them for every window).
    ridge
        Ridge penalty on the standardized slopes (:func:`fit_linear`); 0 is OLS.
    seasonal
        Model the intraday seasonality (:mod:`models.seasonal`): fit a :class:`models.seasonal.SeasonalProfile` on
        the training span, regress the deseasonalized target ``rv_h / s_h(t)`` (``s_h(t)`` the mean seasonal
        multiplier of the next h bars, known at t: calendar only) on the deseasonalized regressors
        ``rv_W / s_W^past(t) · h/W`` (in logs with ``log``), and multiply the forecast back by ``s_h(t)``:
        ``var = exp(fit) · smear · s_h(t)``. The HAR then forecasts the underlying level, and the calendar the
        shape. For daily or longer bars the profile is flat and this is the plain HAR. False: the plain HAR.
    seasonal_bandwidth
        The profile's smoothing bandwidth in bars (:data:`models.seasonal.DEFAULT_BANDWIDTH`); used with
        ``seasonal`` only.

    Training rows where a regressor (inside its warm-up) or the target (a zero rv_h in logs) is not finite are
    left out of the fit; at predict, a non-finite regressor is an error. A zero regressor (an unchanged close
    gives rv_1 = 0) is floored at its smallest positive training value before the log.

    Fitted attributes: ``windows_``, ``columns_`` (regressor names), ``intercept_`` and ``coef_`` ({h: (k,)}),
    ``smear_`` ({h: float}, 1 in levels), ``floor_`` ({h: float}, 0 in logs), ``n_floored_train_``,
    ``n_fit_rows_`` ({h: rows used}), ``season_`` (the :class:`models.seasonal.SeasonalProfile`, None unless
    ``seasonal``), ``x_floor_`` ({h: (k,)}: each regressor's smallest positive training level, the floor
    under its log, so an unchanged close (rv = 0) still has a forecast).
    """

    family = "har"

    def __init__(
        self,
        *,
        log: bool = True,
        exog_iv: bool = False,
        windows: list[int] | None = None,
        measures: list[str] | None = None,
        ridge: float = 0.0,
        seasonal: bool = False,
        seasonal_bandwidth: float = DEFAULT_BANDWIDTH,
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.log = log
        self.exog_iv = exog_iv
        self.windows = windows
        self.measures = measures
        self.ridge = ridge
        self.seasonal = seasonal
        self.seasonal_bandwidth = seasonal_bandwidth

    def input_features(self) -> list[str]:
        return list(self.columns_)

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.windows_ = self._windows(data)
        self.measures_ = self._measures(data)
        if isinstance(self.ridge, bool) or not (isinstance(self.ridge, numbers.Real) and self.ridge >= 0):
            raise ModelError(f"{self.label}: ridge must be a number ≥ 0; got {self.ridge!r}")
        if not isinstance(self.seasonal, bool):
            raise ModelError(f"{self.label}: seasonal must be True or False; got {self.seasonal!r}")
        self.columns_ = [f"{m}_{w}" for m in self.measures_ for w in self.windows_] + (["iv"] if self.exog_iv else [])
        self.season_ = SeasonalProfile.fit(data, rows, self.seasonal_bandwidth) if self.seasonal else None
        self.intercept_, self.coef_, self.smear_, self.floor_ = {}, {}, {}, {}
        self.n_floored_train_, self.n_fit_rows_ = {}, {}
        self.x_floor_ = {}
        for h in self.horizons_:
            levels = self._levels(data, rows, h)  # (m, k)
            positive = np.where(np.isfinite(levels) & (levels > 0), levels, np.inf)
            # a zero variance (an unchanged close) has no log: floor each regressor at its smallest positive value
            self.x_floor_[h] = np.where(np.isfinite(positive.min(axis=0)), positive.min(axis=0), VAR_FLOOR)
            x = self._transform(levels, h)
            rv = data.target(h)[rows] / self.season_factor(data, rows, h)  # deseasonalized (÷ 1 without a season)
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log(rv) if self.log else rv
            ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
            k = x.shape[1]
            if ok.sum() < k + 2:
                raise ModelError(
                    f"{self.label}: {int(ok.sum())} training rows have finite regressors and rv_h{h}; the fit needs "
                    f"at least {k + 2}. Fix: train on a longer window, or start the origins after the warm-up"
                )
            constant = [c for c, s in zip(self.columns_, x[ok].std(axis=0), strict=True) if not s > 0]
            if constant:
                raise ModelError(f"{self.label}: regressor(s) {constant} are constant on the training rows (h={h})")
            intercept, slopes = fit_linear(x[ok], y[ok], float(self.ridge))
            fitted = intercept + x[ok] @ slopes
            self.intercept_[h], self.coef_[h], self.n_fit_rows_[h] = intercept, slopes, int(ok.sum())
            if self.log:
                self.smear_[h] = float(np.mean(np.exp(y[ok] - fitted)))
                self.floor_[h], self.n_floored_train_[h] = 0.0, 0
            else:
                positive = rv[ok][rv[ok] > 0]
                self.smear_[h] = 1.0
                self.floor_[h] = float(positive.min()) if positive.size else VAR_FLOOR
                self.n_floored_train_[h] = int(np.sum(fitted < self.floor_[h]))

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        out = {}
        for h in self.horizons_:
            x = self._transform(self._levels(data, rows, h), h)
            bad = ~np.isfinite(x)
            if bad.any():
                i, j = (int(v[0]) for v in np.nonzero(bad))
                raise ModelError(
                    f"{self.label}: regressor {self.columns_[j]} is not finite at origin {rows[i]} (h={h}): it is "
                    "inside the feature's warm-up or missing. Fix: start the origins after the warm-up"
                )
            fit = self.intercept_[h] + x @ self.coef_[h]  # (m,)
            if self.log:
                out[h] = np.exp(fit) * self.smear_[h]
            else:
                low = fit < self.floor_[h]
                if low.any():
                    what = "%s: %d of %d levels forecasts (h=%d) raised to the floor %.3g"
                    log.info(what, self.label, int(low.sum()), fit.size, h, self.floor_[h])
                out[h] = np.maximum(fit, self.floor_[h])
            out[h] = out[h] * self.season_factor(data, rows, h)
        return out

    def season_factor(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        """``s_h(t)`` at the origins: the fitted profile's mean multiplier of the next ``horizon`` bars; ones
        without ``seasonal``. (m,)."""
        if getattr(self, "season_", None) is None:
            return np.ones(np.asarray(rows).size)
        return self.season_.ahead(data, rows, horizon)

    def _design(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        """The regressors at ``rows`` as fitted: levels, or logs of levels floored at ``x_floor_``. (m, k)."""
        return self._transform(self._levels(data, rows, horizon), horizon)

    def _levels(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        season = getattr(self, "season_", None)
        measures = getattr(self, "measures_", ("rv",))  # models pickled before measures existed: the classic HAR
        return har_design(
            data, rows, horizon, self.windows_, log=False, exog_iv=self.exog_iv, season=season, measures=measures
        )

    def _transform(self, levels: FloatArray, horizon: int) -> FloatArray:
        """Logs of the regressors, each floored at its smallest positive training value (log-HAR); levels as they
        are (levels HAR). NaN stays NaN."""
        if not self.log:
            return levels
        return np.log(np.where(np.isnan(levels), np.nan, np.maximum(levels, self.x_floor_[horizon])))

    def _measures(self, data: ModelData) -> list[str]:
        measures = ["rv"] if self.measures is None else self.measures
        if (
            isinstance(measures, str)
            or not measures
            or any(m not in HAR_MEASURES for m in measures)
            or len(set(measures)) != len(measures)
        ):
            raise ModelError(
                f"{self.label}: measures must be a list of distinct names from {list(HAR_MEASURES)}; got {measures!r}"
            )
        missing = [f"{m}_{w}" for m in measures for w in self.windows_ if f"{m}_{w}" not in data.features.columns]
        if missing:
            raise ModelError(
                f"{self.label}: measure columns {missing[:5]} are not in the feature table. Fix: add the 'realized' "
                "group to the spec's features (it writes every measure at every window), or drop those measures"
            )
        return list(measures)

    def _windows(self, data: ModelData) -> list[int]:
        available = rv_windows(data.features)
        if self.windows is None:
            if not available:
                raise ModelError(
                    f"{self.label}: the feature table has no rv_W column. Fix: add the 'realized' group to the spec's "
                    "features section"
                )
            return available
        windows = [int(w) for w in self.windows]
        if not windows or any(w < 1 for w in windows) or len(set(windows)) != len(windows):
            raise ModelError(f"{self.label}: windows must be distinct bar counts ≥ 1; got {self.windows!r}")
        missing = [w for w in windows if w not in available]
        if missing:
            raise ModelError(
                f"{self.label}: windows {missing} have no rv_W feature column (the table has windows {available}). "
                "Fix: add them to the spec's features windows, or drop them from the model's windows"
            )
        return sorted(windows)
