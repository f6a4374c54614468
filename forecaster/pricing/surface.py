"""Implied-vol surfaces: SVI slices fitted to one option-chain snapshot, or a flat surface from an IV index.

Both kinds answer the same questions (:class:`ImpliedVolSurface`), so callers do not care which one they got:
total variance and IV at (log-moneyness, tenor) or (strike, tenor, forward), the ATM term structure, 25-delta
risk reversal and butterfly, and an arbitrage check.

Conventions (DESIGN section 2):

- ``k = ln(K / F)``: log-moneyness against the forward of that tenor; ATM means at the forward (k = 0).
- ``tau``: years of 365 calendar days (crypto trades 24/7); ``w = σ² τ`` total implied variance; IVs decimal.
- Forward per expiry: Deribit's ``underlying_price`` of an option is the price of the future (or synthetic
  forward) of that expiry, not the spot index, so it is used as the forward (median over the expiry's rows).
- 25-delta: Black-76 forward delta ``∂C/∂F = N(d1)`` (undiscounted, no premium adjustment) evaluated with the
  smile's own IV at that strike; the call with delta 0.25 and the put with delta −0.25.
  ``RR = σ(25Δ call) − σ(25Δ put)``, ``BF = (σ(25Δ call) + σ(25Δ put)) / 2 − σ(ATM)``. Under this convention a
  smile that is symmetric in k has RR > 0 (the call strike lies further from the forward than the put strike);
  RR = 0 when the smile is symmetric about ``k = w(k_25) / 2``, half the total variance at the 25-delta strikes.

Tenor interpolation (:class:`VolSurface`): total variance linear in τ at fixed k between fitted expiries, which
is free of calendar arbitrage because each slice lies at or above the previous one at every k of the grid (the fit
enforces it, longest expiry first). Before the first expiry ``w(k, τ) = w_1(k) τ / τ_1`` (the first smile's IVs
held); beyond the last ``w(k, τ) = w_N(k) τ / τ_N`` (the last smile's IVs held at each k). Both extrapolations
are calendar-free since w ≥ 0. A tenor between two butterfly-free slices is usually but not provably
butterfly-free; :meth:`ImpliedVolSurface.check_arbitrage` measures it at the midpoints.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import ndtri

from forecaster.pricing.svi import (
    MIN_STRIKES,
    SliceFit,
    SurfaceError,
    SviParams,
    arbitrage_grid,
    check_svi_params,
    density_g,
    fit_flat,
    fit_svi,
    refine_grid,
    svi_derivatives,
)

FloatArray = npt.NDArray[np.float64]
ArrayLike = FloatArray | float

DAYS_PER_YEAR = 365.0
QUOTES = ("mark", "mid")
WEIGHTINGS = ("spread", "vega", "equal")
FEW_STRIKES = ("drop", "flat", "raise")
D1_CALL_25 = float(ndtri(0.25))  # N(d1) = 0.25 for the 25-delta call
D1_PUT_25 = float(ndtri(0.75))  # N(d1) - 1 = -0.25 for the 25-delta put


@dataclass(frozen=True)
class ArbitrageReport:
    """Static-arbitrage diagnostics of a surface on a grid of log-moneyness.

    Butterfly: ``min_g[i]`` is the minimum over the grid of Gatheral's g at ``taus[i]`` (the fitted expiries),
    ``min_g_between[i]`` at the midpoint of ``taus[i]`` and ``taus[i + 1]``; g < 0 means a negative density.
    Calendar: ``min_dw_dtau[i]`` is the minimum over the grid of ``(w(k, τ_{i+1}) − w(k, τ_i)) / (τ_{i+1} − τ_i)``,
    which is ∂w/∂τ itself where w is linear in τ; < 0 means calendar arbitrage. Shapes: ``grid`` (G,), ``taus``,
    ``min_g``, ``min_g_k`` (n,), the rest (n − 1,).
    """

    grid: FloatArray
    taus: FloatArray
    min_g: FloatArray
    min_g_k: FloatArray
    min_g_between: FloatArray
    min_dw_dtau: FloatArray
    min_dw_dtau_k: FloatArray

    @property
    def butterfly_free(self) -> bool:
        return bool(np.all(self.min_g >= 0) and np.all(self.min_g_between >= 0))

    @property
    def calendar_free(self) -> bool:
        return bool(np.all(self.min_dw_dtau >= 0))

    @property
    def arbitrage_free(self) -> bool:
        return self.butterfly_free and self.calendar_free

    def summary(self) -> str:
        """One line per finding, for logs and reports."""
        lines = [f"grid of {len(self.grid)} k in [{self.grid[0]:.3g}, {self.grid[-1]:.3g}]"]
        for tau, g, k in zip(self.taus, self.min_g, self.min_g_k, strict=True):
            lines.append(f"tau {tau * DAYS_PER_YEAR:.3f} d: min g {g:.4g} at k {k:.3g}")
        for i, (g, dw, k) in enumerate(zip(self.min_g_between, self.min_dw_dtau, self.min_dw_dtau_k, strict=True)):
            span = f"{self.taus[i] * DAYS_PER_YEAR:.3f}-{self.taus[i + 1] * DAYS_PER_YEAR:.3f} d"
            lines.append(f"{span}: min g at midpoint {g:.4g}; min dw/dtau {dw:.4g} at k {k:.3g}")
        return "\n".join(lines)


@runtime_checkable
class ImpliedVolSurface(Protocol):
    """What every surface answers. k, tau, strike and forward broadcast; results have the broadcast shape."""

    def total_variance(self, k: ArrayLike, tau: ArrayLike) -> FloatArray: ...
    def iv(self, k: ArrayLike, tau: ArrayLike) -> FloatArray: ...
    def iv_strike(self, strike: ArrayLike, tau: ArrayLike, forward: ArrayLike) -> FloatArray: ...
    def atm_term_structure(self, taus: ArrayLike) -> FloatArray: ...
    def risk_reversal_25d(self, tau: ArrayLike) -> FloatArray: ...
    def butterfly_25d(self, tau: ArrayLike) -> FloatArray: ...
    def check_arbitrage(self, grid: FloatArray | None = None, taus: FloatArray | None = None) -> ArbitrageReport: ...


class _SmileMethods(ABC):
    """Everything a surface derives from ``smile_derivatives(k, tau) -> (w, ∂w/∂k, ∂²w/∂k²)``."""

    @abstractmethod
    def smile_derivatives(self, k: ArrayLike, tau: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(w, ∂w/∂k, ∂²w/∂k²)`` at (k, tau). Shape: broadcast of k and tau."""

    @abstractmethod
    def _default_check(self) -> tuple[FloatArray, FloatArray]:
        """The grid of k (G,) and tenors (n,) that :meth:`check_arbitrage` uses by default."""

    def total_variance(self, k: ArrayLike, tau: ArrayLike) -> FloatArray:
        """Total implied variance ``σ² τ`` at log-moneyness k and tenor tau (years, > 0). Shape: broadcast."""
        return self.smile_derivatives(k, _positive_tau(tau))[0]

    def iv(self, k: ArrayLike, tau: ArrayLike) -> FloatArray:
        """Implied vol (annualized decimal) at log-moneyness k and tenor tau (years, > 0). Shape: broadcast."""
        tau = _positive_tau(tau)
        return np.sqrt(self.total_variance(k, tau) / tau)

    def iv_strike(self, strike: ArrayLike, tau: ArrayLike, forward: ArrayLike) -> FloatArray:
        """Implied vol at a strike, for the tenor's forward (same units as strike, > 0). Shape: broadcast."""
        strike, forward = np.asarray(strike, dtype=float), np.asarray(forward, dtype=float)
        for name, values in (("strike", strike), ("forward", forward)):
            if not np.all((values > 0) & np.isfinite(values)):
                raise SurfaceError(f"{name} must be finite and > 0 (quote currency); got {values!r}.")
        return self.iv(np.log(strike / forward), tau)

    def atm_term_structure(self, taus: ArrayLike) -> FloatArray:
        """ATM (k = 0, at the forward) implied vol per tenor. Shape of ``taus``."""
        return self.iv(0.0, taus)

    def density_g(self, k: ArrayLike, tau: ArrayLike) -> FloatArray:
        """Gatheral's g at (k, tau): g < 0 means butterfly arbitrage there. Shape: broadcast."""
        return density_g(k, *self.smile_derivatives(k, _positive_tau(tau)))

    def delta_strikes_25d(self, tau: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Log-moneyness of the 25-delta call and the 25-delta put (module convention). Each shape of ``tau``."""
        tau = _positive_tau(tau)
        return self._solve_delta(tau, D1_CALL_25), self._solve_delta(tau, D1_PUT_25)

    def risk_reversal_25d(self, tau: ArrayLike) -> FloatArray:
        """σ(25Δ call) − σ(25Δ put). Shape of ``tau``."""
        k_call, k_put = self.delta_strikes_25d(tau)
        return self.iv(k_call, tau) - self.iv(k_put, tau)

    def butterfly_25d(self, tau: ArrayLike) -> FloatArray:
        """(σ(25Δ call) + σ(25Δ put)) / 2 − σ(ATM). Shape of ``tau``."""
        k_call, k_put = self.delta_strikes_25d(tau)
        return 0.5 * (self.iv(k_call, tau) + self.iv(k_put, tau)) - self.iv(0.0, tau)

    def check_arbitrage(self, grid: FloatArray | None = None, taus: FloatArray | None = None) -> ArbitrageReport:
        """Butterfly (min g per tenor and between tenors) and calendar (min ∂w/∂τ) findings on a grid of k.

        Defaults: the fitted expiries, on a grid five times finer than the one the fit enforced. Shapes: grid
        (G,), taus (n,) increasing.
        """
        default_grid, default_taus = self._default_check()
        grid = default_grid if grid is None else np.sort(np.asarray(grid, dtype=float))
        taus = default_taus if taus is None else np.sort(_positive_tau(taus).ravel())
        g = self.density_g(grid[None, :], taus[:, None])  # (n, G)
        mid = 0.5 * (taus[1:] + taus[:-1])
        g_mid = self.density_g(grid[None, :], mid[:, None])  # (n-1, G)
        w = self.total_variance(grid[None, :], taus[:, None])  # (n, G)
        dw_dtau = np.diff(w, axis=0) / np.diff(taus)[:, None]  # (n-1, G)
        return ArbitrageReport(
            grid=grid,
            taus=taus,
            min_g=g.min(axis=1),
            min_g_k=grid[np.argmin(g, axis=1)],
            min_g_between=g_mid.min(axis=1) if len(mid) else np.zeros(0),
            min_dw_dtau=dw_dtau.min(axis=1) if len(mid) else np.zeros(0),
            min_dw_dtau_k=grid[np.argmin(dw_dtau, axis=1)] if len(mid) else np.zeros(0),
        )

    def _solve_delta(self, tau: FloatArray, d1: float) -> FloatArray:
        """k where d1(k) = −k / sqrt(w(k)) + sqrt(w(k)) / 2 equals ``d1``: Newton on f(k) = k − w/2 + d1 sqrt(w)."""
        w0 = self.smile_derivatives(0.0, tau)[0]
        k = 0.5 * w0 - d1 * np.sqrt(w0)  # the root for a flat smile at the ATM level
        for _ in range(100):
            w, dw, _ = self.smile_derivatives(k, tau)
            root_w = np.sqrt(w)
            step = (k - 0.5 * w + d1 * root_w) / (1.0 - 0.5 * dw + 0.5 * d1 * dw / root_w)
            k = k - step
            if np.all(np.abs(step) <= 1e-13 * (1.0 + np.abs(k))):
                return k
        raise SurfaceError(
            f"the 25-delta strike search did not converge at tau {np.ravel(tau)[:5]} (years): the smile is not "
            "monotone in delta there. Fix: check the surface with check_arbitrage()."
        )


@dataclass(frozen=True, eq=False)
class VolSurface(_SmileMethods):
    """SVI slices at increasing tenors, interpolated in τ as the module docstring says.

    Shapes: ``taus`` (n,) strictly increasing years; each field of ``params`` (n,); ``grid`` (G,), the
    log-moneyness where the fit enforced no arbitrage (default: :func:`arbitrage_grid` of k in [−1, 1]);
    ``expiries`` and ``forwards`` (n,) when built from a chain; ``fits`` one :class:`SliceFit` per slice.
    """

    taus: FloatArray
    params: SviParams
    grid: FloatArray = field(default_factory=lambda: arbitrage_grid(np.array([-1.0, 1.0])))
    expiries: pd.DatetimeIndex | None = None
    forwards: FloatArray | None = None
    as_of: pd.Timestamp | None = None
    snapshot: pd.Timestamp | None = None
    fits: tuple[SliceFit, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        taus = np.atleast_1d(np.asarray(self.taus, dtype=float))
        if taus.ndim != 1 or not np.all(np.isfinite(taus) & (taus > 0)) or np.any(np.diff(taus) <= 0):
            raise SurfaceError(f"VolSurface taus must be finite, > 0 and strictly increasing (years); got {taus!r}.")
        try:
            params = SviParams(*(np.broadcast_to(np.asarray(p, dtype=float), taus.shape).copy() for p in self.params))
        except ValueError as exc:
            shapes = [np.shape(p) for p in self.params]
            raise SurfaceError(f"VolSurface params need one value per tau {taus.shape}; got shapes {shapes}.") from exc
        check_svi_params(params, "VolSurface params")
        object.__setattr__(self, "taus", taus)
        object.__setattr__(self, "params", params)

    def smile_derivatives(self, k: ArrayLike, tau: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(w, ∂w/∂k, ∂²w/∂k²)`` at (k, tau). Shape: broadcast of k and tau."""
        k, tau = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(tau, dtype=float))
        lo, hi, c_lo, c_hi = _tenor_weights(self.taus, tau)
        at_lo = svi_derivatives(k, SviParams(*(p[lo] for p in self.params)))
        at_hi = svi_derivatives(k, SviParams(*(p[hi] for p in self.params)))
        w, dw, d2w = (c_lo * x + c_hi * y for x, y in zip(at_lo, at_hi, strict=True))
        return w, dw, d2w

    def _default_check(self) -> tuple[FloatArray, FloatArray]:
        return refine_grid(self.grid, 5), self.taus


@dataclass(frozen=True, eq=False)
class FlatSurface(_SmileMethods):
    """One IV for every strike and tenor (from an IV index): zero skew and smile, so RR = BF = 0."""

    level: float
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.level) and 0 < self.level <= 5):
            raise SurfaceError(
                f"a flat surface's IV level must be an annualized decimal IV in (0, 5]; got {self.level!r}. "
                "Fix: convert percent (55.0) to decimal (0.55), as the IV index loader does with iv_units."
            )

    def smile_derivatives(self, k: ArrayLike, tau: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(σ² τ, 0, 0)``. Shape: broadcast of k and tau."""
        k, tau = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(tau, dtype=float))
        return self.level**2 * tau, np.zeros(k.shape), np.zeros(k.shape)

    def _default_check(self) -> tuple[FloatArray, FloatArray]:
        return refine_grid(arbitrage_grid(np.array([-1.0, 1.0])), 5), np.array([1.0, 7.0, 30.0, 365.0]) / DAYS_PER_YEAR


def flat_surface(iv_level: float, *, skew: Literal["none"] = "none") -> FlatSurface:
    """A surface from an IV index alone (for example a 30-day ATM index such as DVOL, decimal).

    The index is one number: it carries no skew or smile information, and no term structure. So every strike and
    every tenor gets the index level (``skew="none"``, the only assumption the index supports): RR = BF = 0 and
    the ATM term structure is flat. Same interface as :class:`VolSurface`.
    """
    if skew != "none":
        raise SurfaceError(f"flat_surface skew must be 'none' (an IV index carries no skew); got {skew!r}.")
    level = float(iv_level)
    return FlatSurface(level, notes=(f"flat surface at the IV index level {level:.4f}: no skew, smile or term",))


def surface_from_chain(
    chain_snapshot: pd.DataFrame,
    as_of: pd.Timestamp | str | None = None,
    *,
    quote: Literal["mark", "mid"] = "mark",
    weighting: Literal["spread", "vega", "equal"] = "spread",
    min_tau_hours: float = 1.0,
    few_strikes: Literal["drop", "flat", "raise"] = "drop",
) -> VolSurface:
    """Fit an arbitrage-free SVI surface to one option-chain snapshot.

    Per expiry: forward = median ``underlying_price`` of its rows (module docstring), ``k = ln(K / F)``, one
    quote per strike (the out-of-the-money option: put below the forward, call at or above; the other side only
    where the out-of-the-money one has no IV), then :func:`~forecaster.pricing.svi.fit_svi` from the longest
    expiry to the shortest, each capped by the next longer one (no calendar arbitrage), all on one common grid.

    Parameters
    ----------
    chain_snapshot
        Rows of :func:`~forecaster.market.options_chain.load_options_chain` (index: UTC snapshot ``timestamp``;
        columns ``type``, ``strike_price``, ``expiration``, ``underlying_price``, IVs decimal). Several snapshots
        are allowed when ``as_of`` picks one.
    as_of
        Valuation time (UTC). The snapshot used is the last one at or before it (never a later one), and tenors
        are counted from ``as_of``. Default: the frame's only snapshot (an error if it has several).
    quote
        ``mark`` (``mark_iv``) or ``mid`` (mean of ``bid_iv`` and ``ask_iv``; rows lacking either are dropped).
    weighting
        ``spread``: 1 / (ask_iv − bid_iv), and the slice's smallest such weight for a one-sided quote (equal
        weights if no row of the slice is two-sided); ``vega``: Black-76 vega at the quote, floored at 1% of the
        slice's largest; ``equal``.
    min_tau_hours
        Expiries closer than this to ``as_of`` are dropped (their IVs are dominated by price ticks), with a note.
    few_strikes
        An expiry with fewer than ``MIN_STRIKES`` strikes: ``drop`` (left out with a note; its tenor is then
        interpolated from its neighbours), ``flat`` (one IV for all its strikes,
        :func:`~forecaster.pricing.svi.fit_flat`; no calendar arbitrage then caps every shorter expiry at that
        level, flattening their wings, so prefer it only when no expiry has enough strikes) or ``raise``.

    Raises
    ------
    SurfaceError
        A missing column, no snapshot at or before ``as_of``, several snapshots and no ``as_of``, no expiry left
        to fit, or an unknown option value; each message says how to fix it.
    """
    _check_choice("quote", quote, QUOTES)
    _check_choice("weighting", weighting, WEIGHTINGS)
    _check_choice("few_strikes", few_strikes, FEW_STRIKES)
    rows, snapshot, valuation = _snapshot_rows(chain_snapshot, as_of, quote)
    notes: list[str] = []
    if valuation > snapshot:
        notes.append(f"snapshot {snapshot} is {valuation - snapshot} older than as_of {valuation}; its IVs are used")
    slices = _slices(rows, valuation, quote, weighting, min_tau_hours, notes)
    if not slices:
        raise SurfaceError(
            f"option chain at {snapshot}: no expiry with a usable IV more than {min_tau_hours} h after {valuation}. "
            "Fix: pass a snapshot with live quotes, or lower min_tau_hours."
        )
    grid = arbitrage_grid(np.concatenate([s.k for s in slices]))
    fits = _fit_backwards(slices, grid, few_strikes, notes)
    kept = [s for s in slices if s.label in fits]
    if not kept:
        counts = ", ".join(f"{s.label}: {len(np.unique(s.k))}" for s in slices)
        raise SurfaceError(
            f"option chain at {snapshot}: every expiry has fewer than {MIN_STRIKES} strikes ({counts}), so "
            "few_strikes='drop' left none. Fix: pass few_strikes='flat' (one IV per expiry)."
        )
    return VolSurface(
        taus=np.array([s.tau for s in kept]),
        params=SviParams(*(np.array(v) for v in zip(*(fits[s.label].params for s in kept), strict=True))),
        grid=grid,
        expiries=pd.DatetimeIndex([s.expiry for s in kept]),
        forwards=np.array([s.forward for s in kept]),
        as_of=valuation,
        snapshot=snapshot,
        fits=tuple(fits[s.label] for s in kept),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class _Slice:
    label: str
    expiry: pd.Timestamp
    tau: float
    forward: float
    k: FloatArray  # (n,)
    iv: FloatArray  # (n,)
    weights: FloatArray  # (n,)


def _positive_tau(tau: ArrayLike) -> FloatArray:
    tau = np.asarray(tau, dtype=float)
    if not np.all(np.isfinite(tau) & (tau > 0)):
        raise SurfaceError(
            f"tau must be finite and > 0 (years of 365 days); got {tau!r}. An expired option has no implied vol."
        )
    return tau


def _tenor_weights(taus: FloatArray, tau: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Slices and coefficients with ``w(k, tau) = c_lo w_lo(k) + c_hi w_hi(k)``. Each shape of ``tau``.

    Linear in τ between slices; ``w_1 τ / τ_1`` before the first and ``w_N τ / τ_N`` beyond the last.
    """
    n = len(taus)
    lo = np.clip(np.searchsorted(taus, tau, side="right") - 1, 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    inside = (tau >= taus[0]) & (tau < taus[-1])
    gap = np.where(inside, taus[hi] - taus[lo], 1.0)
    alpha = np.where(inside, (tau - taus[lo]) / gap, 0.0)
    scale = np.where(tau < taus[0], tau / taus[0], np.where(tau >= taus[-1], tau / taus[-1], 1.0))
    return lo, hi, scale * (1.0 - alpha), alpha


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SurfaceError(f"surface_from_chain {name} must be one of {list(allowed)}; got {value!r}.")


def _snapshot_rows(
    frame: pd.DataFrame, as_of: pd.Timestamp | str | None, quote: str
) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The rows of the snapshot to fit, its time, and the valuation time."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise SurfaceError(
            "option chain must be indexed by a tz-aware UTC snapshot 'timestamp' (a DatetimeIndex); got "
            f"{type(index).__name__}. Fix: load it with forecaster.market.options_chain.load_options_chain."
        )
    needed = ["type", "strike_price", "expiration", "underlying_price"]
    needed += ["mark_iv"] if quote == "mark" else ["bid_iv", "ask_iv"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SurfaceError(
            f"option chain lacks column(s) {missing} needed for quote={quote!r}; it has {list(frame.columns)}. "
            "Fix: load it with load_options_chain (Tardis options_chain columns)."
        )
    stamps = index.unique().sort_values()
    if as_of is None:
        if len(stamps) != 1:
            raise SurfaceError(
                f"option chain holds {len(stamps)} snapshots ({stamps[0]} .. {stamps[-1]}); a surface is fitted to "
                "one. Fix: pass as_of (the last snapshot at or before it is used), or select one snapshot."
            )
        return frame, stamps[0], stamps[0]
    valuation = pd.Timestamp(as_of)
    valuation = valuation.tz_localize("UTC") if valuation.tzinfo is None else valuation.tz_convert("UTC")
    earlier = stamps[stamps <= valuation]
    if not len(earlier):
        raise SurfaceError(
            f"option chain has no snapshot at or before as_of {valuation} (first: {stamps[0]}); a surface never "
            "uses later data. Fix: pass a later as_of, or a chain that starts earlier."
        )
    return frame.loc[frame.index == earlier[-1]], earlier[-1], valuation


def _slices(
    rows: pd.DataFrame, valuation: pd.Timestamp, quote: str, weighting: str, min_tau_hours: float, notes: list[str]
) -> list[_Slice]:
    """One :class:`_Slice` per live expiry, shortest first."""
    iv = rows["mark_iv"] if quote == "mark" else 0.5 * (rows["bid_iv"] + rows["ask_iv"])
    usable = np.isfinite(iv.to_numpy(dtype=float)) & (iv.to_numpy(dtype=float) > 0)
    if not usable.all():
        notes.append(f"{int((~usable).sum())} row(s) without a usable {quote} IV left out")
    data = rows.loc[usable].assign(iv=iv.to_numpy(dtype=float)[usable])
    years = (pd.DatetimeIndex(data["expiration"]) - valuation) / pd.Timedelta(days=DAYS_PER_YEAR)
    data = data.assign(tau=np.asarray(years, dtype=float))
    short = data["tau"] * DAYS_PER_YEAR * 24 < min_tau_hours
    if short.any():
        gone = sorted({str(e) for e in data.loc[short, "expiration"]})
        notes.append(f"expiries within {min_tau_hours} h of {valuation} (or past) dropped: {', '.join(gone)}")
    out = []
    for expiry, group in data.loc[~short].groupby("expiration", sort=True):
        out.append(_one_slice(pd.Timestamp(expiry), group, weighting, notes))
    return out


def _one_slice(expiry: pd.Timestamp, group: pd.DataFrame, weighting: str, notes: list[str]) -> _Slice:
    forward = float(group["underlying_price"].median())
    tau = float(group["tau"].iloc[0])
    strike = group["strike_price"].to_numpy(dtype=float)
    is_call = group["type"].astype(str).str.lower().str.startswith("c").to_numpy()
    otm = np.where(strike < forward, ~is_call, is_call)
    # out-of-the-money first, then keep one row per strike
    order = np.lexsort((~otm, strike))
    first = np.r_[True, np.diff(strike[order]) != 0]
    pick = order[first]
    label = f"expiry {expiry:%Y-%m-%dT%H:%MZ} (tau {tau * DAYS_PER_YEAR:.3f} d)"
    k = np.log(strike[pick] / forward)
    iv = group["iv"].to_numpy(dtype=float)[pick]
    weights = _weights(group.iloc[pick], k, iv, tau, weighting, label, notes)
    return _Slice(label, expiry, tau, forward, k, iv, weights)


def _weights(
    rows: pd.DataFrame, k: FloatArray, iv: FloatArray, tau: float, weighting: str, label: str, notes: list[str]
) -> FloatArray:
    """Relative weight of each quote. Shape (n,)."""
    if weighting == "equal":
        return np.ones_like(iv)
    if weighting == "vega":
        vega = np.exp(-0.5 * (-k / (iv * math.sqrt(tau)) + 0.5 * iv * math.sqrt(tau)) ** 2) * math.sqrt(tau)
        return np.maximum(vega, 0.01 * vega.max())  # per unit forward; the forward cancels on normalising
    spread = (rows["ask_iv"] - rows["bid_iv"]).to_numpy(dtype=float) if "bid_iv" in rows and "ask_iv" in rows else None
    two_sided = np.zeros(len(iv), dtype=bool) if spread is None else np.isfinite(spread) & (spread > 0)
    if not two_sided.any():
        notes.append(f"{label}: no two-sided bid/ask IV quote, equal weights used")
        return np.ones_like(iv)
    inverse = np.where(two_sided, 1.0 / np.where(two_sided, spread, 1.0), 0.0)
    return np.where(two_sided, inverse, inverse[two_sided].min())


def _fit_backwards(slices: list[_Slice], grid: FloatArray, few_strikes: str, notes: list[str]) -> dict[str, SliceFit]:
    """Fit the longest expiry first, then each shorter one capped by the last fitted longer one (calendar)."""
    fits: dict[str, SliceFit] = {}
    ceiling: SviParams | None = None
    for s in reversed(slices):
        args = {"weights": s.weights, "grid": grid, "ceiling": ceiling, "label": s.label}
        if len(np.unique(s.k)) >= MIN_STRIKES:
            fit = fit_svi(s.k, s.iv, s.tau, **args)
        elif few_strikes == "flat":
            fit = fit_flat(s.k, s.iv, s.tau, **args)
            notes.append(f"{s.label}: {fit.n_strikes} strike(s) < {MIN_STRIKES}, flat smile at the forward's IV")
        elif few_strikes == "drop":
            notes.append(f"{s.label}: {len(np.unique(s.k))} strike(s) < {MIN_STRIKES}, expiry dropped")
            continue
        else:
            fit = fit_svi(s.k, s.iv, s.tau, **args)  # raises, naming the expiry and the count
        if fit.repaired:
            notes.append(
                f"{s.label}: a no-arbitrage constraint binds on the grid (butterfly or calendar); max IV residual "
                f"{fit.max_abs_iv_error:.4f}, quote butterfly violations {fit.quote_butterfly_violations}"
            )
        fits[s.label] = fit
        ceiling = fit.params
    return fits
