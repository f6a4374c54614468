"""GARCH(1,1) and GJR-GARCH(1,1,1) baselines, fitted with ``arch``, forecast in closed form.

With ε_t = r_t − μ (μ = 0 for ``mean="zero"``) and I_t = 1{ε_t < 0}, the one-step variance forecast made at t is

    s_t = σ²_{t+1|t} = ω + (α + γ I_t) ε_t² + β s_{t−1}           (γ = 0 for GARCH)

and, since E[ε² I] = σ²/2 for a symmetric innovation (normal or Student t alike), the k-step forecasts follow
``σ²_{t+k|t} = ω + φ σ²_{t+k−1|t}`` with persistence φ = α + γ/2 + β, i.e. ``v̄ + φ^{k−1}(s_t − v̄)`` with
v̄ = ω/(1 − φ). Their sum over the horizon is

    var_h(t) = Σ_{k=1..h} σ²_{t+k|t} + h μ² = S_h s_t + ω Σ_{j=0..h−2} (h − 1 − j) φ^j + h μ²,   S_h = Σ_{j<h} φ^j

(:func:`garch_aggregate`; written with sums of powers rather than through v̄, so an integrated fit, φ → 1, is
exact too). μ² enters because rv_h sums squared returns, not squared residuals.

Parameters are fitted on the training window's returns (divided by their standard deviation, as ``arch`` wants
returns of order 1, and mapped back). Forecasts then filter s_t through the whole series with these fixed
parameters (:func:`garch_filter`, a causal linear filter), so a forecast at t uses returns ≤ t only. Intraday
seasonality (the daily vol peak of the data) is ignored: this is a baseline.

Shapes: ``n`` bars, ``m`` origins.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from arch import arch_model
from scipy.signal import lfilter

from models.base import FloatArray, Forecaster, IntArray, ModelData, ModelError

KINDS = {"garch": 0, "gjr": 1}  # kind -> number of asymmetric (GJR) terms o
DISTS = {"t": "t", "normal": "normal"}  # ours -> arch's name
MEANS = {"zero": "Zero", "constant": "Constant"}


def garch_filter(
    resid: FloatArray, omega: float, alpha: float, gamma: float, beta: float, backcast: float
) -> FloatArray:
    """One-step variance forecasts ``s_t = σ²_{t+1|t}`` of a GJR-GARCH(1,1,1) (γ = 0: GARCH(1,1)). Shape (n,).

    Parameters
    ----------
    resid
        ε_t = r_t − μ, (n,), all finite.
    omega, alpha, gamma, beta
        The parameters, in the units of ``resid`` squared.
    backcast
        The value standing for ε² and σ² before the first residual, as in ``arch``: the first residual's variance
        is ``σ²_0 = ω + (α + γ/2 + β) · backcast``.

    Notes
    -----
    ``s_t = β s_{t−1} + u_t`` with ``u_t = ω + (α + γ 1{ε_t < 0}) ε_t²`` is a first-order linear filter of u
    (``scipy.signal.lfilter``) started from ``s_{−1} = σ²_0``. Unlike ``arch`` it never clips σ² to data-driven
    bounds.
    """
    sigma2_0 = omega + (alpha + 0.5 * gamma + beta) * backcast
    u = omega + (alpha + gamma * (resid < 0)) * resid * resid  # (n,)
    return lfilter([1.0], [1.0, -beta], u, zi=[beta * sigma2_0])[0]


def garch_aggregate(s: FloatArray, omega: float, phi: float, horizon: int) -> FloatArray:
    """Σ_{k=1..h} σ²_{t+k|t} from the one-step forecasts ``s`` (n,), ω and the persistence φ. Shape (n,).

    ``σ²_{t+k|t} = ω Σ_{j<k−1} φ^j + φ^{k−1} s_t``, summed over k = 1..h: ``S_h s + ω Σ_{j=0..h−2} (h−1−j) φ^j``.
    """
    powers = phi ** np.arange(horizon)  # (h,)
    weights = np.arange(horizon - 1, 0, -1, dtype=float)  # (h − 1,): h − 1 − j for j = 0..h − 2
    return powers.sum() * s + omega * float(weights @ powers[: horizon - 1])


class Garch(Forecaster):
    """GARCH(1,1) or GJR-GARCH(1,1,1) via ``arch``, h-step variance in closed form (module docstring).

    Parameters
    ----------
    kind
        ``"garch"`` (GARCH(1,1)) or ``"gjr"`` (GJR-GARCH(1,1,1), a leverage term γ on negative returns).
    dist
        Innovation distribution of the likelihood: ``"t"`` (standardized Student t) or ``"normal"``.
    mean
        ``"zero"`` (μ = 0, the usual choice for intraday returns) or ``"constant"`` (μ fitted).

    Fitted attributes: ``scale_`` (the training returns' standard deviation the fit divided by), ``params_``
    (``mu``, ``omega`` in return units², ``alpha``, ``gamma``, ``beta``, and ``nu`` for t), ``std_err_`` (their
    standard errors, same units), ``persistence_`` (φ = α + γ/2 + β), ``backcast_`` (the training variance of the
    residuals, the filter's start value), ``n_fit_returns_``, ``loglikelihood_`` (of the scaled returns).
    """

    family = "garch"

    def __init__(
        self,
        *,
        kind: str = "garch",
        dist: str = "t",
        mean: str = "zero",
        horizons: Sequence[int] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.kind = kind
        self.dist = dist
        self.mean = mean

    def input_features(self) -> list[str]:
        return []  # returns only

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        rules = (("kind", self.kind, KINDS), ("dist", self.dist, DISTS), ("mean", self.mean, MEANS))
        for param, value, allowed in rules:
            if value not in allowed:
                raise ModelError(f"{self.label}: {param} must be one of {', '.join(allowed)}; got {value!r}")
        r = _finite_span(data.log_return, int(rows[0]), int(rows[-1]), self.label)
        if r.size < 100:
            raise ModelError(
                f"{self.label}: {r.size} training returns; a GARCH fit needs at least 100. Fix: train on a longer "
                "window"
            )
        scale = float(np.std(r))
        if not scale > 0:
            raise ModelError(f"{self.label}: the training returns are all equal; a GARCH fit needs varying returns")
        model = arch_model(
            r / scale,
            mean=MEANS[self.mean],
            vol="GARCH",
            p=1,
            o=KINDS[self.kind],
            q=1,
            dist=DISTS[self.dist],
            rescale=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arch's convergence note is checked below, its other notes are noise
            res = model.fit(disp="off")
        if res.convergence_flag != 0:
            raise ModelError(
                f"{self.label}: the GARCH likelihood optimization did not converge ({res.optimization_result.message})."
                " Fix: train on a longer window, or try dist='normal'"
            )
        self.scale_ = scale
        self.params_ = _in_return_units(res.params.to_dict(), scale)
        self.std_err_ = _in_return_units(res.std_err.to_dict(), scale)
        p = self.params_
        self.persistence_ = p["alpha"] + 0.5 * p["gamma"] + p["beta"]
        self.backcast_ = float(np.mean((r - p["mu"]) ** 2))
        self.n_fit_returns_ = int(r.size)
        self.loglikelihood_ = float(res.loglikelihood)

    def one_step_variance(self, data: ModelData, last: int) -> FloatArray:
        """``s_t = σ²_{t+1|t}`` for every bar t ≤ ``last``, NaN before the first return. Shape (last + 1,)."""
        r = np.asarray(data.log_return[: last + 1], dtype=float)
        out = np.full(r.size, np.nan)
        seen = np.flatnonzero(np.isfinite(r))
        if seen.size == 0:
            return out
        first = int(seen[0])
        span = _finite_span(r, first, last, self.label)
        p = self.params_
        out[first:] = garch_filter(span - p["mu"], p["omega"], p["alpha"], p["gamma"], p["beta"], self.backcast_)
        return out

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        s = self.one_step_variance(data, int(rows[-1]))[rows]  # (m,)
        p = self.params_
        return {h: garch_aggregate(s, p["omega"], self.persistence_, h) + h * p["mu"] ** 2 for h in self.horizons_}


def _finite_span(log_return: FloatArray, first: int, last: int, label: str) -> FloatArray:
    """The returns of bars ``first`` … ``last`` without the leading missing ones; a gap inside is an error. (·,)"""
    r = np.asarray(log_return[first : last + 1], dtype=float)
    finite = np.isfinite(r)
    if not finite.any():
        raise ModelError(f"{label}: no finite return between bars {first} and {last}")
    r = r[int(np.argmax(finite)) :]
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        at = last - r.size + 1 + int(bad[0])
        raise ModelError(
            f"{label}: the log return of bar {at} is not finite ({r[bad[0]]}); a GARCH filter needs an unbroken "
            "series. Fix: repair or drop the bar in the market data"
        )
    return r


def _in_return_units(values: dict[str, float], scale: float) -> dict[str, float]:
    """arch's parameters (or standard errors) of the scaled returns r/scale, in return units; γ = 0 when absent."""
    out = {
        "mu": values.get("mu", 0.0) * scale,
        "omega": values["omega"] * scale**2,
        "alpha": values["alpha[1]"],
        "gamma": values.get("gamma[1]", 0.0),
        "beta": values["beta[1]"],
    }
    if "nu" in values:
        out["nu"] = values["nu"]
    return {k: float(v) for k, v in out.items()}
