"""Smile summaries of option-chain snapshots, fast enough for a year of hourly snapshots (DESIGN sections 2 and 5).

The implied features need a handful of numbers per snapshot (ATM IV at fixed tenors, 25-delta risk reversal and
butterfly), at every snapshot of the chain: a year of hourly Deribit snapshots is ~8,800 of them. The arbitrage-free
SVI surface of :mod:`forecaster.pricing.surface` takes 0.6-2 s per snapshot (hours for a year), so the features use
a light smile instead, fitted to every expiry of every snapshot at once with numpy (a year in about a second):

- Per (snapshot, expiry): forward ``F`` = median ``underlying_price`` of its rows (Deribit's per-expiry forward,
  as in the surface), ``tau`` = (expiry − snapshot) in years of 365 days, expiries within ``MIN_TAU_HOURS`` of the
  snapshot (or past) left out, one quote per strike (the out-of-the-money option, the other side only where it
  lacks an IV), quote = ``mark_iv``, else the mid of ``bid_iv`` and ``ask_iv``.
- Smile: ``σ(x) = a + b x + c x²`` in ``x = ln(K/F) / √tau``, fitted by weighted least squares with Black-76 vega
  weights ``φ(d1)`` at the quote (the region that prices the ATM and 25-delta options counts most, the far wings
  little). A quadratic in this x is the simulator's smile (``atm (1 + skew z + curvature z²)``, z = x / atm), so
  it is recovered exactly there. Two strikes give a line, one strike a flat smile. Outside its quoted strikes the
  smile is held flat at the outermost quote's fitted value; IVs are floored at ``MIN_IV``.
- ATM IV = σ(0). 25-delta strikes: Black-76 forward delta ``N(d1) = 0.25`` (call) and ``0.75`` (put, delta −0.25)
  with ``d1 = −x/σ(x) + σ(x)√tau/2``, solved by bisection on ``x − σ(x)(σ(x)√tau/2 − d1)`` (no convergence
  question). ``RR = σ(25Δ call) − σ(25Δ put)``, ``BF = (σ(25Δ call) + σ(25Δ put))/2 − σ(ATM)``, the surface's
  conventions.
- Fixed tenor T: ATM total variance ``atm² tau`` linear in tau between the two expiries around T (so the ATM IV at
  T is ``√(w(T)/T)``), RR and BF linear in tau; before the first expiry and beyond the last the nearest expiry's
  values are held (its ATM IV, RR, BF).

Every number of a snapshot depends on that snapshot's rows only, in a fixed order, so a snapshot's values are the
same bit for bit whatever other snapshots are passed with it: truncating the chain or serving from a recent window
changes nothing (the causality tests check it). Shapes: G groups (snapshot, expiry), S snapshots, n rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import ndtri

from forecaster.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAYS_PER_YEAR = 365.0
MIN_TAU_HOURS = 1.0
MIN_IV = 1e-4
D1_CALL_25 = float(ndtri(0.25))  # N(d1) = 0.25
D1_PUT_25 = float(ndtri(0.75))  # N(d1) − 1 = −0.25
_BISECTION_STEPS = 100
_NEEDED = ("type", "strike_price", "expiration", "underlying_price")


@dataclass(frozen=True)
class Smiles:
    """One fitted smile per (snapshot, expiry), sorted by snapshot then tenor. Arrays of shape (G,) unless noted.

    ``snapshots`` (S,): the snapshot times that have at least one smile; ``start`` (S,) and ``count`` (S,): each
    snapshot's slice of the G arrays. ``coef`` (G, 3): a, b, c of σ(x) = a + b x + c x²; ``x_lo``/``x_hi``: the
    quoted range of x. ``atm``, ``rr25``, ``bf25``: per expiry.
    """

    snapshots: pd.DatetimeIndex
    start: IntArray
    count: IntArray
    tau: FloatArray
    coef: FloatArray
    x_lo: FloatArray
    x_hi: FloatArray
    atm: FloatArray
    rr25: FloatArray
    bf25: FloatArray

    def smile(self, x: FloatArray) -> FloatArray:
        """σ at x (shape (G,) or (G, m)), held flat outside each expiry's quoted range, floored at MIN_IV."""
        return _smile(self.coef, self.x_lo, self.x_hi, x)

    def atm_total_variance(self, tenor: float) -> FloatArray:
        """ATM total implied variance ``σ_ATM(T)² T`` of every snapshot at tenor T (years). Shape (S,)."""
        lo, hi, alpha, inside = self._bracket(tenor)
        w = self.atm * self.atm * self.tau
        inner = (1.0 - alpha) * w[lo] + alpha * w[hi]
        nearest = np.where(tenor < self.tau[lo], self.atm[lo], self.atm[hi])
        return np.where(inside, inner, nearest * nearest * tenor)

    def atm_iv(self, tenor: float) -> FloatArray:
        """ATM IV of every snapshot at tenor T (years). Shape (S,)."""
        return np.sqrt(self.atm_total_variance(tenor) / tenor)

    def at_tenor(self, values: FloatArray, tenor: float) -> FloatArray:
        """A per-expiry quantity (RR, BF) linear in tau at tenor T, the nearest expiry's value outside. (S,)."""
        lo, hi, alpha, _ = self._bracket(tenor)
        return (1.0 - alpha) * values[lo] + alpha * values[hi]

    def _bracket(self, tenor: float) -> tuple[IntArray, IntArray, FloatArray, npt.NDArray[np.bool_]]:
        """Per snapshot: the expiries just at/below and above T, the weight of the upper one, and whether T lies
        between two expiries. Counts are per snapshot (no arithmetic mixes snapshots)."""
        below = np.add.reduceat((self.tau <= tenor).astype(np.int64), self.start) if len(self.start) else self.start
        lo = self.start + np.clip(below - 1, 0, self.count - 1)
        hi = self.start + np.clip(below, 0, self.count - 1)
        inside = (below >= 1) & (below < self.count)
        gap = np.where(inside, self.tau[hi] - self.tau[lo], 1.0)
        alpha = np.where(inside, (tenor - self.tau[lo]) / gap, np.where(below >= self.count, 1.0, 0.0))
        alpha = np.where(hi == lo, 0.0, alpha)
        return lo, hi, alpha, inside


def usable_rows(chain: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows with an IV to fit and an expiry at least MIN_TAU_HOURS after the snapshot. Shape (n,)."""
    iv = quote_iv(chain)
    hours = (pd.DatetimeIndex(chain["expiration"]) - chain.index) / pd.Timedelta(hours=1)
    return np.isfinite(iv) & (iv > 0) & (np.asarray(hours, dtype=float) >= MIN_TAU_HOURS)


def quote_iv(chain: pd.DataFrame) -> FloatArray:
    """``mark_iv``, else the mid of ``bid_iv`` and ``ask_iv`` (decimal). Shape (n,)."""
    nan = np.full(len(chain), np.nan)
    mark = chain["mark_iv"].to_numpy(dtype=float) if "mark_iv" in chain else nan
    if "bid_iv" in chain and "ask_iv" in chain:
        mid = 0.5 * (chain["bid_iv"].to_numpy(dtype=float) + chain["ask_iv"].to_numpy(dtype=float))
        mark = np.where(np.isfinite(mark), mark, mid)
    return mark


def first_usable_snapshot(chain: pd.DataFrame) -> pd.Timestamp | None:
    """The earliest snapshot with a usable row (None when there is none): where the chain features start."""
    check_chain(chain)
    usable = usable_rows(chain)
    return chain.index[usable].min() if usable.any() else None


def check_chain(chain: pd.DataFrame) -> None:
    """Raise a :class:`UsageError` naming what is wrong with a chain frame (index, columns)."""
    if not isinstance(chain.index, pd.DatetimeIndex) or chain.index.tz is None:
        raise UsageError(
            "the option chain must be indexed by its tz-aware snapshot 'timestamp'; got "
            f"{type(chain.index).__name__}. Fix: load it with forecaster.market.load_options_chain"
        )
    missing = [c for c in _NEEDED if c not in chain.columns]
    if "mark_iv" not in chain.columns and not {"bid_iv", "ask_iv"} <= set(chain.columns):
        missing.append("mark_iv (or bid_iv and ask_iv)")
    if missing:
        raise UsageError(
            f"the option chain lacks column(s) {missing}; it has {list(chain.columns)}. "
            "Fix: give a Tardis options_chain file (load_options_chain)"
        )


def fit_smiles(chain: pd.DataFrame) -> Smiles:
    """The smile of every (snapshot, expiry) of ``chain`` with a usable quote (module docstring)."""
    check_chain(chain)
    keep = usable_rows(chain)
    rows = chain.loc[keep, list(_NEEDED)]
    iv = quote_iv(chain)[keep]
    snap = rows.index.as_unit("ns").asi8
    expiry = pd.DatetimeIndex(rows["expiration"]).tz_convert("UTC").as_unit("ns").asi8
    strike = rows["strike_price"].to_numpy(dtype=float)
    is_call = rows["type"].astype(str).str.lower().str.startswith("c").to_numpy()
    # groups (snapshot, expiry) in time order; the forward is the median underlying price of the group
    order = np.lexsort((expiry, snap))
    snap, expiry, strike, is_call, iv = snap[order], expiry[order], strike[order], is_call[order], iv[order]
    underlying = rows["underlying_price"].to_numpy(dtype=float)[order]
    new_group = np.r_[True, (snap[1:] != snap[:-1]) | (expiry[1:] != expiry[:-1])] if len(snap) else np.zeros(0, bool)
    group = np.cumsum(new_group) - 1
    first = np.flatnonzero(new_group)
    forward = _group_median(underlying, group, first)
    otm = np.where(strike < forward[group], ~is_call, is_call)
    # one quote per strike: the out-of-the-money one first (rows keep their order within a group otherwise)
    pick = np.lexsort((~otm, strike, group))
    dup = np.r_[False, (group[pick][1:] == group[pick][:-1]) & (strike[pick][1:] == strike[pick][:-1])]
    pick = pick[~dup]
    g, k_strike, q_iv = group[pick], strike[pick], iv[pick]
    tau = (expiry[first] - snap[first]) / (DAYS_PER_YEAR * 86_400e9)  # (G,)
    x = np.log(k_strike / forward[g]) / np.sqrt(tau[g])
    coef = _fit_quadratic(x, q_iv, g, tau, len(first))
    x_lo = np.full(len(first), np.inf)
    x_hi = np.full(len(first), -np.inf)
    np.minimum.at(x_lo, g, x)
    np.maximum.at(x_hi, g, x)
    atm = _smile(coef, x_lo, x_hi, np.zeros(len(first)))
    call = _smile(coef, x_lo, x_hi, _delta_strike(coef, x_lo, x_hi, tau, D1_CALL_25))
    put = _smile(coef, x_lo, x_hi, _delta_strike(coef, x_lo, x_hi, tau, D1_PUT_25))
    stamps = snap[first]
    snapshot_start = np.flatnonzero(np.r_[True, stamps[1:] != stamps[:-1]]) if len(stamps) else np.zeros(0, int)
    counts = np.diff(np.r_[snapshot_start, len(stamps)])
    return Smiles(
        snapshots=pd.DatetimeIndex(stamps[snapshot_start], tz="UTC"),
        start=snapshot_start.astype(np.int64),
        count=counts.astype(np.int64),
        tau=tau,
        coef=coef,
        x_lo=x_lo,
        x_hi=x_hi,
        atm=atm,
        rr25=call - put,
        bf25=0.5 * (call + put) - atm,
    )


def _group_median(values: FloatArray, group: IntArray, first: IntArray) -> FloatArray:
    """Median of ``values`` within each group (rows of a group are contiguous). Shape (G,)."""
    order = np.lexsort((values, group))
    ranked = values[order]
    size = np.diff(np.r_[first, len(values)])
    lo = first + (size - 1) // 2
    hi = first + size // 2
    return 0.5 * (ranked[lo] + ranked[hi])


def _fit_quadratic(x: FloatArray, iv: FloatArray, g: IntArray, tau: FloatArray, n_groups: int) -> FloatArray:
    """Weighted least squares of iv on (1, x, x²) per group, vega weights φ(d1). Shape (G, 3).

    Groups with two distinct strikes get a line (c = 0), with one a constant (b = c = 0)."""
    d1 = -x / iv + 0.5 * iv * np.sqrt(tau[g])
    w = np.exp(-0.5 * d1 * d1)
    powers = [np.bincount(g, weights=w * x**p, minlength=n_groups) for p in range(5)]
    rhs = np.stack([np.bincount(g, weights=w * iv * x**p, minlength=n_groups) for p in range(3)], axis=1)
    normal = np.empty((n_groups, 3, 3))
    for i in range(3):
        for j in range(3):
            normal[:, i, j] = powers[i + j]
    strikes = np.bincount(g, minlength=n_groups)
    for term in (1, 2):  # drop the terms the strikes cannot determine
        drop = strikes <= term
        normal[drop, term, :] = 0.0
        normal[drop, :, term] = 0.0
        normal[drop, term, term] = 1.0
        rhs[drop, term] = 0.0
    return np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]


def _smile(coef: FloatArray, x_lo: FloatArray, x_hi: FloatArray, x: FloatArray) -> FloatArray:
    if x.ndim == 2:
        coef, x_lo, x_hi = coef[:, None, :], x_lo[:, None], x_hi[:, None]
    z = np.clip(x, x_lo, x_hi)
    return np.maximum(coef[..., 0] + z * (coef[..., 1] + z * coef[..., 2]), MIN_IV)


def _delta_strike(coef: FloatArray, x_lo: FloatArray, x_hi: FloatArray, tau: FloatArray, d1: float) -> FloatArray:
    """x where ``−x/σ(x) + σ(x)√tau/2 = d1``: the root of ``f(x) = x − σ(σ√tau/2 − d1)``, by bisection. (G,)."""
    root_tau = np.sqrt(tau)
    top = np.maximum(_smile(coef, x_lo, x_hi, x_lo), _smile(coef, x_lo, x_hi, x_hi))
    # σ is bounded on the line (flat beyond the quotes), so f < 0 at lo and f > 0 at hi
    reach = np.abs(x_lo) + np.abs(x_hi) + (top * (0.5 * top * root_tau + abs(d1)) + 1.0)
    lo, hi = -reach, reach.copy()
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        sigma = _smile(coef, x_lo, x_hi, mid)
        positive = mid - sigma * (0.5 * sigma * root_tau - d1) > 0
        hi = np.where(positive, mid, hi)
        lo = np.where(positive, lo, mid)
    return 0.5 * (lo + hi)
