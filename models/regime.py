"""A Gaussian-HMM regime baseline: filtered volatility regimes, their per-bar variance, propagated to the horizon.

**Observations.** On a sub-sampled grid of bars (every ``obs_step`` bars of calendar time: the bars whose end time,
counted in bars since the epoch, is a multiple of ``obs_step``, e.g. every whole hour for 1-minute bars and
``obs_step=60``), the pair ``x_g = (log(rv_a/a), log(rv_b/b))``: the per-bar realized variance over a short window a
and a long window b (by default the shortest and the longest ``rv_W`` feature windows, 60 and 1440 bars on the
test data). A :class:`hmmlearn.hmm.GaussianHMM` with full covariances is fitted on the training window's grid;
states are relabelled by increasing mean of the short log variance, so state 0 is the calmest whatever the
initialization.

**Filtering.** The probabilities of the state at an origin t use data ≤ t only: the forward algorithm
(:func:`forward_filter`, in log space), never hmmlearn's ``predict_proba`` (forward-backward, smoothed). A grid
bar whose observation is missing (warm-up) is a prediction step only. The filter starts at the data's first grid
bar from the chain's long-run distribution. The state at an origin t is the filtered state at the last grid bar
g ≤ t.

**Variance.** Each state s has a per-bar variance ``λ_s = E[r² | s]``, fitted on the training window: the
average of ``rv_step / step`` (the realized variance of the ``obs_step`` bars up to g, per bar) over the training
grid bars, weighted by the smoothed state probabilities (training only, where smoothing is legitimate), with
one pseudo-observation at the pooled mean so an unvisited state stays finite. Then, with A the transition
matrix of one grid step and p_t the filtered distribution at t,

    var_h(t) = Σ_{j=1..J} n_j · p_t A^j λ,    J = ⌈h/step⌉,  n_j = min(step, h − (j − 1)·step),

i.e. ``Σ_s P(s at each future bar | data ≤ t) · E[r² | s]`` summed over the h bars. Approximations: the regime is
constant within each grid step (bars (g + (j−1)·step, g + j·step] have the state of step j), the origin is moved
back to its grid bar g (at most ``obs_step − 1`` bars), and given the regime the variance is constant (no
within-regime clustering, no intraday seasonality).

**Regime classes** (native ``p_calm, p_normal, p_stressed``): ``P(class) = p_t @ M_h``, with ``M_h[s, c]`` the
share of training origins in class c of rv_h (by ``thresholds_[h]``) among those in state s, weighted by the
filtered p_t, with add-one (Laplace) smoothing so every row of M is a distribution and no class is impossible.

Shapes: ``n`` bars, ``G`` grid bars, ``S`` states, ``m`` origins.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from models.base import REGIMES, FloatArray, Forecaster, IntArray, ModelData, ModelError, check_rows
from models.baselines import bar_length, rv_windows, trailing_sum

MIN_OBS_PER_STATE = 10  # training grid observations per state below which the fit is refused
INIT_STAY = 0.95  # the initial probability of staying in a state for one grid step (regimes last many steps)


def grid_rows(index: pd.DatetimeIndex, step: int) -> IntArray:
    """Rows on the observation grid: bars whose end time, in bars since the epoch, is a multiple of ``step``.
    Calendar-anchored, so the grid does not move when the history starts later. Shape (G,)."""
    bar = bar_length(index).value
    ns = index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8
    return np.flatnonzero((ns // bar) % step == 0).astype(np.int64)


def gaussian_log_density(x: FloatArray, means: FloatArray, covars: FloatArray) -> FloatArray:
    """log N(x_g; μ_s, Σ_s) for every observation and state. Shape (G, S); NaN where x_g is not finite.

    Parameters
    ----------
    x
        Observations, (G, d).
    means
        (S, d).
    covars
        Full covariances, (S, d, d), positive definite.
    """
    g, d = x.shape
    out = np.empty((g, means.shape[0]))
    for s in range(means.shape[0]):
        chol = np.linalg.cholesky(covars[s])  # (d, d), Σ = L Lᵀ
        z = np.linalg.solve(chol, (x - means[s]).T)  # (d, G)
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        out[:, s] = -0.5 * (np.sum(z * z, axis=0) + log_det + d * np.log(2 * np.pi))
    return out


def forward_filter(log_b: FloatArray, startprob: FloatArray, transmat: FloatArray) -> FloatArray:
    """Filtered state probabilities ``P(s_g | x_1..x_g)`` by the forward algorithm in log space. Shape (G, S).

    Parameters
    ----------
    log_b
        Emission log-densities, (G, S); a row with a NaN is a missing observation (prediction step only).
    startprob
        Distribution of the first grid bar's state, (S,).
    transmat
        One-step transition matrix, (S, S), rows summing to 1.
    """
    with np.errstate(divide="ignore"):  # an impossible transition or start is −inf, which logsumexp handles
        log_a, prior = np.log(transmat), np.log(startprob)  # (S, S), (S,): prior = log P(s_g | x_<g)
    observed = np.isfinite(log_b).all(axis=1)
    out = np.empty(log_b.shape)
    for g in range(log_b.shape[0]):
        post = prior + log_b[g] if observed[g] else prior
        post = post - _logsumexp(post, axis=0)
        out[g] = post
        prior = _logsumexp(post[:, None] + log_a, axis=0)
    return np.exp(out)


def _logsumexp(a: FloatArray, axis: int) -> FloatArray:
    """log Σ exp(a) along ``axis``, −inf for an all −inf slice (scipy's is ~20 times slower on 3 states)."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def long_run_distribution(transmat: FloatArray) -> FloatArray:
    """The chain's long-run state distribution, uniform · A^4096 (the stationary one for a persistent, irreducible
    chain; a distribution in any case). Shape (S,)."""
    s = transmat.shape[0]
    p = np.full(s, 1.0 / s) @ np.linalg.matrix_power(transmat, 4096)
    return p / p.sum()


class HmmRegime(Forecaster):
    """Gaussian-HMM volatility regimes, filtered, with a per-state variance propagated over the horizon.

    Parameters
    ----------
    n_states
        Number of hidden states, ≥ 2.
    obs_step
        Bars between observations (the grid, :func:`grid_rows`), ≥ 1; also the HMM's time step.
    windows
        The short and long ``rv_W`` windows of the observation ``(log(rv_a/a), log(rv_b/b))``; None: the shortest
        and the longest ``rv_W`` feature windows.
    n_iter
        Maximum EM iterations of each hmmlearn fit.
    n_init
        EM fits from different k-means starts (random states ``seed``, ``seed + 1``, …); the one with the highest
        training log-likelihood is kept.

    Fitted attributes: ``windows_``, ``startprob_`` (S,), ``transmat_`` (S, S), ``means_`` (S, 2), ``covars_``
    (S, 2, 2), states sorted by ``means_[:, 0]``; ``prior_`` (S,), the distribution the filter starts from
    (:func:`long_run_distribution`: ``startprob_`` is EM's estimate for the first bar of the one training sequence,
    often a single state, not a prior for an arbitrary first bar); ``state_var_`` (S,), the per-bar variance λ_s;
    ``horizon_var_`` ({h: (S,)}, ``Σ_j n_j A^j λ``, so var_h = p_t · horizon_var_[h]); ``class_given_state_``
    ({h: (S, 3)}); ``n_obs_`` (training grid observations); ``converged_``; ``loglikelihood_`` (of the
    training observations, the best fit's).
    """

    family = "hmm"

    def __init__(
        self,
        *,
        n_states: int = 3,
        obs_step: int = 60,
        windows: list[int] | None = None,
        n_iter: int = 100,
        n_init: int = 3,
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.n_states = n_states
        self.obs_step = obs_step
        self.windows = windows
        self.n_iter = n_iter
        self.n_init = n_init

    # ---------------------------------------------------------------- fit

    def input_features(self) -> list[str]:
        return [f"rv_{w}" for w in self.windows_]

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self._check_params()
        self.windows_ = self._windows(data)
        last = int(rows[-1])
        grid = grid_rows(data.index[: last + 1], self.obs_step)
        grid = grid[grid >= rows[0]]
        x = self._observations(data, grid)  # (G, 2)
        keep = np.isfinite(x).all(axis=1)
        grid, x = grid[keep], x[keep]
        need = MIN_OBS_PER_STATE * self.n_states
        if grid.size < need:
            raise ModelError(
                f"{self.label}: {grid.size} training observations (one every {self.obs_step} bars after the warm-up); "
                f"{self.n_states} states need at least {need}. Fix: train on a longer window, lower obs_step or "
                "n_states"
            )
        hmm = self._best_hmm(x)
        order = np.argsort(hmm.means_[:, 0], kind="stable")  # calm first: labels do not depend on the init
        self.startprob_ = hmm.startprob_[order]
        self.transmat_ = hmm.transmat_[np.ix_(order, order)]
        self.means_ = hmm.means_[order]
        self.covars_ = hmm.covars_[order]
        self.prior_ = long_run_distribution(self.transmat_)
        self.converged_ = bool(hmm.monitor_.converged)
        self.n_obs_ = int(grid.size)
        smoothed = hmm.predict_proba(x)[:, order]  # (G, S): training only, so smoothing is fine here
        self.state_var_ = self._state_variance(data, grid, smoothed)
        self.horizon_var_ = {h: self._horizon_weights(h) @ self.state_var_ for h in self.horizons_}
        p = self.filtered_states(data, rows)  # (m, S)
        self.class_given_state_ = {}
        for h in self.horizons_:
            classes = self.thresholds_[h].classify(data.target(h)[rows])  # (m,), NaN where unknown
            onehot = np.stack([classes == c for c in range(len(REGIMES))], axis=1).astype(float)  # (m, 3)
            counts = p.T @ onehot + 1.0  # (S, 3), add-one smoothing
            self.class_given_state_[h] = counts / counts.sum(axis=1, keepdims=True)

    def _best_hmm(self, x: FloatArray) -> GaussianHMM:
        """The best of ``n_init`` EM fits on x (G, 2) by training log-likelihood, random states seed, seed + 1, ….

        Each starts from k-means means and a persistent transition matrix (:data:`INIT_STAY` on the diagonal): from
        hmmlearn's uniform one, EM often stops in a saddle where the states share one mean and swap every step.
        """
        s = self.n_states
        best, best_score = None, -np.inf
        for i in range(self.n_init):
            hmm = GaussianHMM(
                n_components=s, covariance_type="full", n_iter=self.n_iter, random_state=self.seed + i,
                init_params="smc",
            )  # fmt: skip
            leave = (1 - INIT_STAY) / (s - 1)
            hmm.transmat_ = np.full((s, s), leave) + np.eye(s) * (INIT_STAY - leave)  # (S, S), rows sum to 1
            with threadpool_limits(limits=1):  # a few hundred points: worker threads (k-means, BLAS) only cost
                hmm.fit(x)
            score = hmm.score(x)
            if score > best_score:
                best, best_score = hmm, score
        self.loglikelihood_ = float(best_score)
        return best

    def _state_variance(self, data: ModelData, grid: IntArray, weights: FloatArray) -> FloatArray:
        """λ_s: the weighted mean of the per-bar variance over each grid step, one pseudo-observation at the pooled
        mean. (S,)"""
        r = data.log_return[: int(grid[-1]) + 1]
        per_bar = trailing_sum(r * r, self.obs_step, data.index[: r.size])[grid] / self.obs_step  # (G,)
        ok = np.isfinite(per_bar)
        if not ok.any():
            raise ModelError(f"{self.label}: no training grid step has {self.obs_step} known returns")
        pooled = per_bar[ok].mean()
        w = weights[ok]  # (G', S)
        return (w.T @ per_bar[ok] + pooled) / (w.sum(axis=0) + 1.0)

    def _horizon_weights(self, h: int) -> FloatArray:
        """Σ_{j=1..J} n_j A^j: the expected number of the horizon's bars in each state, given each state now.
        Shape (S, S)."""
        steps = -(-h // self.obs_step)
        out = np.zeros_like(self.transmat_)
        power = np.eye(self.n_states)
        for j in range(1, steps + 1):
            power = power @ self.transmat_
            out += min(self.obs_step, h - (j - 1) * self.obs_step) * power
        return out

    # ---------------------------------------------------------------- predict

    def filtered_states(self, data: ModelData, rows: IntArray) -> FloatArray:
        """P(state at origin t | data ≤ t) for each origin: the forward filter at the last grid bar ≤ t, run from
        the data's first grid bar with the chain's long-run distribution ``prior_``. Shape (m, S)."""
        if not hasattr(self, "transmat_"):
            raise ModelError(f"{self.label} is not fitted: call fit(data, rows) first")
        rows = check_rows(data, rows, f"{self.label}.filtered_states")
        last = int(rows[-1])
        grid = grid_rows(data.index[: last + 1], self.obs_step)
        x = self._observations(data, grid)  # (G, 2)
        observed = np.isfinite(x).all(axis=1)
        at = np.searchsorted(grid, rows, side="right") - 1  # (m,), the grid bar of each origin
        seen = np.cumsum(observed)  # observations up to each grid bar
        early = (at < 0) | (seen[np.maximum(at, 0)] == 0)
        if early.any():
            t = int(rows[np.argmax(early)])
            raise ModelError(
                f"{self.label}: origin {t} has no HMM observation at or before it (grid every {self.obs_step} bars, "
                f"rv_{self.windows_[1]} warm-up). Fix: start the origins after the warm-up"
            )
        log_b = gaussian_log_density(x, self.means_, self.covars_)  # (G, S), NaN where not observed
        return forward_filter(log_b, self.prior_, self.transmat_)[at]

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        p = self.filtered_states(data, rows)
        return {h: p @ self.horizon_var_[h] for h in self.horizons_}

    def _predict_regimes(
        self, data: ModelData, rows: IntArray, var: Mapping[int, FloatArray]
    ) -> dict[int, FloatArray] | None:
        p = self.filtered_states(data, rows)
        return {h: p @ self.class_given_state_[h] for h in self.horizons_}

    # ---------------------------------------------------------------- helpers

    def _observations(self, data: ModelData, grid: IntArray) -> FloatArray:
        """(log(rv_a/a), log(rv_b/b)) at the grid bars; NaN inside a warm-up or for a zero variance. (G, 2)"""
        columns = [data.column(f"rv_{w}")[grid] / w for w in self.windows_]
        x = np.column_stack(columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(x)
        return np.where(np.isfinite(out), out, np.nan)

    def _check_params(self) -> None:
        rules = (
            ("n_states", self.n_states, 2),
            ("obs_step", self.obs_step, 1),
            ("n_iter", self.n_iter, 1),
            ("n_init", self.n_init, 1),
        )
        for param, value, low in rules:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ModelError(f"{self.label}: {param} must be an integer ≥ {low}; got {value!r}")

    def _windows(self, data: ModelData) -> list[int]:
        available = rv_windows(data.features)
        if self.windows is None:
            if len(available) < 2:
                raise ModelError(
                    f"{self.label}: the observation needs two rv_W feature windows and the table has {available}. "
                    "Fix: give the spec's features at least two windows"
                )
            return [available[0], available[-1]]
        windows = [int(w) for w in self.windows]
        if len(windows) != 2 or windows[0] >= windows[1]:
            raise ModelError(f"{self.label}: windows must be [short, long] with short < long; got {self.windows!r}")
        missing = [w for w in windows if w not in available]
        if missing:
            raise ModelError(
                f"{self.label}: windows {missing} have no rv_W feature column (the table has windows {available}). "
                "Fix: add them to the spec's features windows"
            )
        return windows
