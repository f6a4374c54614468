"""Raw SVI smiles (Gatheral 2004): total variance, its k-derivatives, the butterfly density g, and a per-expiry
least-squares fit that stays free of butterfly (and, given a ceiling, calendar) arbitrage on a grid.

Conventions: ``k = ln(K / F)`` is log-moneyness against the expiry's forward; ``w = σ_imp² τ`` is total implied
variance (τ in years, IVs annualized decimal).

Raw SVI: ``w(k) = a + b (ρ (k − m) + sqrt((k − m)² + σ²))``. The parameter constraints used here
(:func:`check_svi_params`; the fit enforces them as box bounds, see :func:`fit_svi`):

- ``b ≥ 0``, ``|ρ| < 1``, ``σ > 0``;
- ``a + b σ sqrt(1 − ρ²) ≥ 0``: the minimum of ``w`` is not negative;
- ``b (1 + |ρ|) ≤ 2``: Roger Lee's moment bound on the wing slopes ``b (1 ± ρ)`` of total variance. In
  implied-variance units this is ``b_var (1 + |ρ|) ≤ 2 / T``, tighter than the ``4 / T`` that Gatheral (2004)
  quotes; it is exactly the condition that ``g`` stays ≥ 0 as ``|k| → ∞`` (``g → 1/4 − β²/16`` for a wing of
  slope ``β``).

These are necessary, not sufficient. No butterfly arbitrage means a non-negative risk-neutral density, that is
``g(k) ≥ 0`` for every k (Gatheral & Jacquier 2014, Lemma 2.2):

    g(k) = (1 − k w′ / (2 w))² − (w′² / 4) (1 / w + 1 / 4) + w″ / 2.

The fit enforces ``g ≥ 0`` on a grid of k out to |k| = 100 (:func:`arbitrage_grid`), checks it on a grid 20 times
finer, and reports the minimum of g it reached (:class:`SliceFit`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from forecaster.errors import ForecasterError
from forecaster.pricing.black import black76_price

FloatArray = npt.NDArray[np.float64]

MIN_STRIKES = 5  # raw SVI has five parameters
LEE_SLOPE = 2.0  # Lee's bound on the wing slopes of total variance
TAIL_EDGE = 100.0  # the arbitrage grid reaches |k| = 100 (K/F = e^±100)
G_MARGIN = 1e-3  # the fit aims at g >= this on its grid, so g >= 0 also holds between grid points
_MIN_WING = 1e-8  # keeps |rho| < 1 strictly
_PENALTY_WEIGHTS = (1e1, 1e3, 1e5, 1e7)  # raised in turn until the grid is free of arbitrage
_FINE_CHECK_ROUNDS = 4  # rounds of "check 20x finer, add what is in arbitrage, fit again"
# g is also checked at m + σ u: a narrow vertex hides between grid points
_VERTEX_OFFSETS = np.concatenate([-np.geomspace(100.0, 0.1, 16), [0.0], np.geomspace(0.1, 100.0, 16)])


class SurfaceError(ForecasterError):
    """An implied-vol surface cannot be built or evaluated from the given input; the message says how to fix it."""


class SviParams(NamedTuple):
    """Raw SVI parameters; each a float or an array (arrays broadcast against each other and against k)."""

    a: FloatArray | float
    b: FloatArray | float
    rho: FloatArray | float
    m: FloatArray | float
    sigma: FloatArray | float


@dataclass(frozen=True)
class SliceFit:
    """One expiry's fitted smile and how well it fits.

    ``method`` is ``"svi"`` or ``"flat"`` (too few strikes for SVI: one IV for every strike). ``repaired`` is
    True when a no-arbitrage constraint binds at the solution (a g or ceiling penalty, a wing slope at Lee's or
    the ceiling's bound, or a minimum total variance of 0): the least-squares smile would otherwise have had
    butterfly or calendar arbitrage somewhere on the grid, and the residuals measure what keeping it out cost.
    ``min_g`` is the minimum of g on the fit's grid (20 times refined). ``quote_butterfly_violations`` counts
    strikes where the quotes' own call prices are not convex in strike: such data cannot be fitted exactly.
    """

    label: str
    tau: float
    params: SviParams
    method: str
    n_quotes: int
    n_strikes: int
    rmse_iv: float
    max_abs_iv_error: float
    min_g: float
    repaired: bool
    quote_butterfly_violations: int


def svi_total_variance(k: FloatArray | float, params: SviParams) -> FloatArray:
    """Raw SVI total variance ``w(k)``. Shape: broadcast of k and the parameters."""
    a, b, rho, m, sigma = (np.asarray(p, dtype=float) for p in params)
    y = np.asarray(k, dtype=float) - m
    return a + b * (rho * y + np.sqrt(y * y + sigma * sigma))


def svi_derivatives(k: FloatArray | float, params: SviParams) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(w, ∂w/∂k, ∂²w/∂k²)`` of raw SVI. Each shape: broadcast of k and the parameters."""
    a, b, rho, m, sigma = (np.asarray(p, dtype=float) for p in params)
    y = np.asarray(k, dtype=float) - m
    r = np.sqrt(y * y + sigma * sigma)
    return a + b * (rho * y + r), b * (rho + y / r), b * sigma * sigma / r**3


def density_g(k: FloatArray | float, w: FloatArray, dw: FloatArray, d2w: FloatArray) -> FloatArray:
    """Gatheral's g from total variance and its k-derivatives (any smile, not only SVI); ``-inf`` where w ≤ 0.

    The risk-neutral density is ``g(k) φ(d2) / sqrt(w)``, so the smile is free of butterfly arbitrage iff g ≥ 0.
    Shape: broadcast of the inputs.
    """
    k, w, dw, d2w = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (k, w, dw, d2w)))
    live = w > 0
    safe = np.where(live, w, 1.0)
    g = (1.0 - k * dw / (2.0 * safe)) ** 2 - 0.25 * dw * dw * (1.0 / safe + 0.25) + 0.5 * d2w
    return np.where(live, g, -np.inf)


def svi_density_g(k: FloatArray | float, params: SviParams) -> FloatArray:
    """Gatheral's g of a raw SVI smile: butterfly arbitrage iff g < 0 somewhere. Shape: broadcast of k, params."""
    return density_g(k, *svi_derivatives(k, params))


def check_svi_params(params: SviParams, where: str = "SVI parameters") -> None:
    """Raise :class:`SurfaceError` if any parameter set breaks the constraints of the module docstring."""
    a, b, rho, m, sigma = np.broadcast_arrays(*(np.asarray(p, dtype=float) for p in params))
    checks = (
        (np.isfinite(np.stack([a, b, rho, m, sigma])).all(axis=0), "all of a, b, rho, m, sigma must be finite"),
        (b >= 0, "b must be >= 0"),
        (np.abs(rho) < 1, "|rho| must be < 1"),
        (sigma > 0, "sigma must be > 0"),
        (a + b * sigma * np.sqrt(np.clip(1 - rho * rho, 0, None)) >= 0, "a + b sigma sqrt(1 - rho²) must be >= 0"),
        (b * (1 + np.abs(rho)) <= LEE_SLOPE * (1 + 1e-12), "b (1 + |rho|) must be <= 2 (Lee's wing-slope bound)"),
    )
    for ok, rule in checks:
        if not np.all(ok):
            i = int(np.flatnonzero(~np.ravel(ok))[0])
            got = dict(zip(SviParams._fields, (float(np.ravel(v)[i]) for v in (a, b, rho, m, sigma)), strict=True))
            raise SurfaceError(f"{where}: {rule}; got {got} (entry {i}). Fix: pass parameters inside these bounds.")


def quote_butterfly_violations(k: FloatArray, iv: FloatArray, tau: float) -> int:
    """Strikes where the quotes' own undiscounted call prices (per unit forward) fail to be convex in strike.

    Quotes at the same strike are averaged first. k, iv: shape (n,). A count > 0 means the data themselves
    carry butterfly arbitrage, which no arbitrage-free smile can fit exactly.
    """
    strikes, inverse = np.unique(np.exp(np.asarray(k, dtype=float)), return_inverse=True)
    if len(strikes) < 3:
        return 0
    mean_iv = np.bincount(inverse, weights=np.asarray(iv, dtype=float)) / np.bincount(inverse)  # (S,)
    calls = black76_price(1.0, strikes, tau, mean_iv, True)  # (S,)
    slopes = np.diff(calls) / np.diff(strikes)  # (S-1,): must rise with strike, within [-1, 0]
    tol = 1e-12
    return int(np.sum(np.diff(slopes) < -tol) + np.sum(slopes < -1 - tol) + np.sum(slopes > tol))


def fit_svi(
    k: FloatArray,
    iv: FloatArray,
    tau: float,
    *,
    weights: FloatArray | None = None,
    grid: FloatArray | None = None,
    ceiling: SviParams | None = None,
    butterfly_free: bool = True,
    label: str = "slice",
) -> SliceFit:
    """Fit raw SVI to one expiry's implied vols by weighted least squares on IV.

    Minimises ``Σ weights_i (sqrt(w(k_i) / τ) − iv_i)²`` with ``scipy.optimize.least_squares`` (trust-region,
    bounded). The search runs in the box-bounded coordinates ``(min w, b (1 − ρ), b (1 + ρ), m, σ)`` (the
    minimum of w and the two wing slopes), so ``min w ≥ 0`` and Lee's slope bound are plain bounds. Starts are
    deterministic: a grid of ``(m, σ)`` whose remaining parameters come from the quasi-explicit linear least
    squares of Zeliade (2009); the three best are refined and the lowest cost wins.

    No arbitrage is enforced on ``grid`` (plus points around the SVI vertex): a penalty on ``g < G_MARGIN``
    (butterfly) and on ``w > ceiling`` (calendar) whose weight rises until those points are clean; then a check
    20 times finer adds any point it finds in arbitrage and fits again. Where the quotes allow an arbitrage-free
    smile the penalty is idle and the fit is the plain least-squares one; where they do not, the smile stays
    arbitrage-free and ``SliceFit.repaired`` is set.

    Parameters
    ----------
    k, iv
        Log-moneyness ``ln(K / F)`` and implied vol (decimal) of each quote. Shape (n,); repeated strikes (a call
        and a put) are allowed; at least ``MIN_STRIKES`` distinct strikes are needed.
    tau
        Time to expiry in years, > 0.
    weights
        Relative weight of each quote, shape (n,), > 0 (for example 1 / bid-ask IV spread, or Black vega);
        default equal. Normalised to mean 1.
    grid
        Log-moneyness where no arbitrage is enforced, shape (G,), sorted; default :func:`arbitrage_grid`.
    ceiling
        The next longer expiry's smile: this slice's total variance must stay at or below it (no calendar
        arbitrage); None for no calendar constraint.
    butterfly_free
        Enforce g ≥ 0 (default). False gives the plain least-squares fit (for diagnostics).
    label
        Names the expiry in error messages and in the result.

    Raises
    ------
    SurfaceError
        Fewer than ``MIN_STRIKES`` distinct strikes (the message names ``label`` and the count; use
        :func:`fit_flat` instead), or inputs of the wrong shape or range.
    """
    k, iv, wts = _checked_quotes(k, iv, tau, weights, label)
    n_strikes = len(np.unique(k))
    if n_strikes < MIN_STRIKES:
        raise SurfaceError(
            f"{label}: {n_strikes} distinct strike(s), an SVI fit needs at least {MIN_STRIKES}. "
            "Fix: fit this expiry with fit_flat (one IV for every strike), or drop it."
        )
    grid = arbitrage_grid(k) if grid is None else np.sort(np.asarray(grid, dtype=float))
    problem = _Problem(k, iv, np.sqrt(wts), tau, grid, ceiling, butterfly_free)
    x, binds = _solve(problem)
    return _summarize(problem, _to_raw(x), "svi", binds, label, n_strikes)


def fit_flat(
    k: FloatArray,
    iv: FloatArray,
    tau: float,
    *,
    weights: FloatArray | None = None,
    grid: FloatArray | None = None,
    ceiling: SviParams | None = None,
    label: str = "slice",
) -> SliceFit:
    """The fallback for an expiry with too few strikes for SVI: one IV for every strike (b = 0, no smile).

    The level is the quotes' (weighted) IV interpolated linearly in k to the forward (k = 0; the nearest quote
    when all lie on one side), capped at the minimum of ``ceiling`` (calendar). Shapes as in :func:`fit_svi`; any
    number of strikes ≥ 1.
    """
    k, iv, wts = _checked_quotes(k, iv, tau, weights, label)
    strikes, inverse = np.unique(k, return_inverse=True)
    mean_iv = np.bincount(inverse, weights=iv * wts) / np.bincount(inverse, weights=wts)  # (S,)
    level_w = float(np.interp(0.0, strikes, mean_iv)) ** 2 * tau
    cap = np.inf if ceiling is None else svi_min_total_variance(ceiling)
    grid = arbitrage_grid(k) if grid is None else np.sort(np.asarray(grid, dtype=float))
    problem = _Problem(k, iv, np.sqrt(wts), tau, grid, ceiling, True)
    params = SviParams(min(level_w, cap), 0.0, 0.0, 0.0, 1.0)
    return _summarize(problem, params, "flat", level_w > cap, label, len(strikes))


def svi_min_total_variance(params: SviParams) -> FloatArray:
    """The minimum over k of raw SVI total variance, ``a + b σ sqrt(1 − ρ²)``. Shape: broadcast of params."""
    a, b, rho, _, sigma = (np.asarray(p, dtype=float) for p in params)
    return a + b * sigma * np.sqrt(1.0 - rho * rho)


def arbitrage_grid(k: FloatArray, points: int = 201, tail_points: int = 100) -> FloatArray:
    """The log-moneyness grid where no arbitrage is enforced and checked. Shape (points + 2 tail_points,), sorted.

    A uniform core over the quotes' range widened by half its span on each side (at least [−0.5, 0.5]), and
    geometric tails out to |k| = ``TAIL_EDGE``: wing slopes near Lee's bound of 2 keep g < 0 far beyond the quotes
    (g ≈ 1/4 − β²/16 − β/(4k) for a wing of slope β), which only a far grid sees.
    """
    lo, hi = float(np.min(k)), float(np.max(k))
    span = max(hi - lo, 1e-3)
    lo, hi = min(lo - 0.5 * span, -0.5), max(hi + 0.5 * span, 0.5)
    steps = np.geomspace((hi - lo) / (points - 1), TAIL_EDGE, tail_points)  # (T,)
    return np.concatenate([lo - steps[::-1], np.linspace(lo, hi, points), hi + steps])


def refine_grid(grid: FloatArray, factor: int = 20) -> FloatArray:
    """``factor`` evenly spaced points in every interval of a sorted grid, ends kept. Shape ((G − 1) factor + 1,)."""
    grid = np.asarray(grid, dtype=float)
    frac = np.arange(factor) / factor  # (F,)
    inner = grid[:-1, None] + np.diff(grid)[:, None] * frac[None, :]  # (G-1, F)
    return np.append(inner.ravel(), grid[-1])


# ---------------------------------------------------------------------------------------------------------------
# the fit's internals


@dataclass(frozen=True)
class _Problem:
    k: FloatArray  # (n,)
    iv: FloatArray  # (n,)
    sqrt_w: FloatArray  # (n,) square roots of the normalised weights
    tau: float
    grid: FloatArray  # (G,) sorted: where no arbitrage is enforced
    ceiling: SviParams | None
    butterfly_free: bool

    def data_residuals(self, params: SviParams) -> FloatArray:
        """Weighted IV errors. Shape (n,)."""
        w = svi_total_variance(self.k, params)
        return self.sqrt_w * (np.sqrt(np.maximum(w, 0.0) / self.tau) - self.iv)

    def points(self, params: SviParams) -> FloatArray:
        """The grid plus points around the vertex. Shape (G + U,)."""
        return np.concatenate([self.grid, _near_vertex(params)])

    def violations(self, params: SviParams) -> FloatArray:
        """Shortfall from the margins (≥ 0; 0 where met) at :meth:`points`. Shape (0,), (G + U,) or (2 (G + U),)."""
        at = self.points(params)
        parts = []
        if self.butterfly_free:
            parts.append(np.maximum(G_MARGIN - np.maximum(svi_density_g(at, params), -1e6), 0.0))
        if self.ceiling is not None:
            cap = svi_total_variance(at, self.ceiling)
            # in IV-like units: dσ = dw / (2 σ τ), with σ τ ≈ sqrt(w τ)
            scale = 2.0 * np.sqrt(np.maximum(cap, 1e-12) * self.tau)
            excess = svi_total_variance(at, params) - cap + (1e-10 + 1e-7 * cap)
            parts.append(np.maximum(excess, 0.0) / scale)
        return np.concatenate(parts) if parts else np.zeros(0)

    def arbitrage_at(self, params: SviParams, at: FloatArray) -> FloatArray:
        """True where ``at`` shows butterfly (g < 0) or calendar (w above the ceiling) arbitrage. Shape of ``at``."""
        bad = np.zeros(at.shape, dtype=bool)
        if self.butterfly_free:
            bad |= svi_density_g(at, params) < 0
        if self.ceiling is not None:
            bad |= svi_total_variance(at, params) > svi_total_variance(at, self.ceiling)
        return bad

    def is_clean(self, params: SviParams) -> bool:
        """No arbitrage at :meth:`points` (the margins are not required)."""
        return not bool(np.any(self.arbitrage_at(params, self.points(params))))

    def missed(self, params: SviParams) -> FloatArray:
        """Points in arbitrage on a grid 20 times finer than :meth:`points` (at most 20). Shape (≤ 20,)."""
        fine = refine_grid(np.sort(self.points(params)))
        bad = fine[self.arbitrage_at(params, fine)]
        return bad[np.linspace(0, len(bad) - 1, min(len(bad), 20)).astype(int)] if len(bad) else bad

    def with_points(self, extra: FloatArray) -> _Problem:
        return dataclasses.replace(self, grid=np.sort(np.concatenate([self.grid, extra])))


def _near_vertex(params: SviParams) -> FloatArray:
    """Points from 0.1 σ to 100 σ either side of the SVI vertex m, where g changes fastest. Shape (U,)."""
    return float(params.m) + float(params.sigma) * _VERTEX_OFFSETS


def _checked_quotes(
    k: FloatArray, iv: FloatArray, tau: float, weights: FloatArray | None, label: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    k, iv = np.asarray(k, dtype=float), np.asarray(iv, dtype=float)
    wts = np.ones_like(iv) if weights is None else np.asarray(weights, dtype=float)
    if k.ndim != 1 or k.shape != iv.shape or wts.shape != k.shape or len(k) == 0:
        raise SurfaceError(
            f"{label}: k, iv and weights must be 1-D arrays of one length (≥ 1); got shapes "
            f"{k.shape}, {iv.shape}, {wts.shape}."
        )
    if not (math.isfinite(tau) and tau > 0):
        raise SurfaceError(f"{label}: tau must be a finite number of years > 0; got {tau!r}.")
    for name, values, rule in (("k", k, np.isfinite(k)), ("iv", iv, (iv > 0) & np.isfinite(iv))):
        if not np.all(rule):
            bad = int(np.flatnonzero(~rule)[0])
            raise SurfaceError(f"{label}: {name}[{bad}] = {float(values[bad])!r}; it must be finite (iv > 0, decimal).")
    if not np.all((wts > 0) & np.isfinite(wts)):
        bad = int(np.flatnonzero(~((wts > 0) & np.isfinite(wts)))[0])
        raise SurfaceError(f"{label}: weights[{bad}] = {float(wts[bad])!r}; weights must be finite and > 0.")
    return k, iv, wts / wts.mean()


def _to_raw(x: FloatArray) -> SviParams:
    """(min w, left slope, right slope, m, σ) -> raw SVI (a, b, ρ, m, σ); works on shape (5,) or (5, ...)."""
    w_min, left, right, m, sigma = x
    b = 0.5 * (left + right)
    rho = (right - left) / (right + left)
    return SviParams(w_min - sigma * np.sqrt(left * right), b, rho, m, sigma)


def _from_raw(params: SviParams) -> FloatArray:
    a, b, rho, m, sigma = (float(p) for p in params)
    return np.array([a + b * sigma * math.sqrt(1.0 - rho * rho), b * (1.0 - rho), b * (1.0 + rho), m, sigma])


def _bounds(problem: _Problem) -> tuple[FloatArray, FloatArray]:
    lo_k, hi_k = float(problem.k.min()), float(problem.k.max())
    span = max(hi_k - lo_k, 1e-3)
    w_max = float(np.max(problem.iv) ** 2 * problem.tau)
    lower = np.array([0.0, _MIN_WING, _MIN_WING, lo_k - span, 1e-4 * span])
    wings = np.full(2, LEE_SLOPE)
    if problem.ceiling is not None:
        # far out w ≈ slope |k|: no calendar arbitrage there needs wings no steeper than the ceiling's
        wings = np.clip(_from_raw(problem.ceiling)[1:3], 2 * _MIN_WING, LEE_SLOPE)
    upper = np.array([4.0 * w_max + 1e-12, *wings, hi_k + span, 10.0 * span + 1.0])
    return lower, upper


def _seeds(problem: _Problem, lower: FloatArray, upper: FloatArray, keep: int = 3) -> list[FloatArray]:
    """Deterministic starts: for each (m, σ) on a grid, a, b, ρ by weighted linear least squares on total
    variance (Zeliade's reduction w = a + d y + c sqrt(y² + 1), y = (k − m) / σ); the ``keep`` cheapest."""
    lo_k, hi_k = float(problem.k.min()), float(problem.k.max())
    span = max(hi_k - lo_k, 1e-3)
    w_obs = problem.iv**2 * problem.tau
    scored = []
    for m in np.linspace(lo_k, hi_k, 5):
        for sigma in span * np.array([0.05, 0.2, 0.5, 1.5]):
            y = (problem.k - m) / sigma
            design = np.stack([np.ones_like(y), y, np.sqrt(y * y + 1.0)], axis=1) * problem.sqrt_w[:, None]
            (a, d, c), *_ = np.linalg.lstsq(design, w_obs * problem.sqrt_w, rcond=None)
            b = max(c / sigma, 1e-6)
            rho = float(np.clip(d / max(c, 1e-12), -0.95, 0.95))
            x = np.clip(_from_raw(SviParams(a, b, rho, m, sigma)), lower, upper)
            scored.append((_cost(problem, x), len(scored), x))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [x for _, _, x in scored[:keep]]


def _cost(problem: _Problem, x: FloatArray) -> float:
    return float(np.sum(problem.data_residuals(_to_raw(x)) ** 2))


def _refine(problem: _Problem, x0: FloatArray, lower: FloatArray, upper: FloatArray, weight: float) -> FloatArray:
    def residuals(x: FloatArray) -> FloatArray:
        params = _to_raw(x)
        return np.concatenate([problem.data_residuals(params), weight * problem.violations(params)])

    fit = least_squares(
        residuals, np.clip(x0, lower, upper), bounds=(lower, upper), method="trf", x_scale="jac",
        ftol=1e-10, xtol=1e-10, gtol=1e-10, max_nfev=200,
    )  # fmt: skip
    return fit.x


def _solve(problem: _Problem) -> tuple[FloatArray, bool]:
    """Best coordinates, and whether a no-arbitrage constraint binds there: a penalty, a wing slope at its bound
    (Lee's, or the ceiling's), or a minimum total variance of 0."""
    lower, upper = _bounds(problem)
    candidates = [_refine(problem, x0, lower, upper, _PENALTY_WEIGHTS[0]) for x0 in _seeds(problem, lower, upper)]
    x = min(candidates, key=lambda c: (not problem.is_clean(_to_raw(c)), _cost(problem, c)))
    level = 0
    for _ in range(_FINE_CHECK_ROUNDS):
        while not problem.is_clean(_to_raw(x)) and level + 1 < len(_PENALTY_WEIGHTS):
            level += 1
            x = _refine(problem, x, lower, upper, _PENALTY_WEIGHTS[level])
        extra = problem.missed(_to_raw(x))
        if not len(extra):
            break
        problem = problem.with_points(extra)
        x = _refine(problem, x, lower, upper, _PENALTY_WEIGHTS[level])
    at_bound = x[0] <= lower[0] or np.any(x[1:3] >= upper[1:3] * (1 - 1e-9))
    return x, bool(at_bound or np.any(problem.violations(_to_raw(x)) > 0))


def _summarize(
    problem: _Problem, params: SviParams, method: str, repaired: bool, label: str, n_strikes: int
) -> SliceFit:
    errors = np.sqrt(np.maximum(svi_total_variance(problem.k, params), 0.0) / problem.tau) - problem.iv
    params = SviParams(*(float(p) for p in params))
    return SliceFit(
        label=label,
        tau=problem.tau,
        params=params,
        method=method,
        n_quotes=len(problem.k),
        n_strikes=n_strikes,
        rmse_iv=float(np.sqrt(np.mean(errors**2))),
        max_abs_iv_error=float(np.max(np.abs(errors))),
        min_g=float(np.min(svi_density_g(refine_grid(np.sort(problem.points(params))), params))),
        repaired=bool(repaired),
        quote_butterfly_violations=quote_butterfly_violations(problem.k, problem.iv, problem.tau),
    )
