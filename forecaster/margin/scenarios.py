"""The engine both margin models share: a book's losses over a scenario grid, from one or many base states.

A margin model is a :class:`MarginRules`: a scenario grid (price move, vol-shock direction and loss weight per
scenario), how the vol shock acts on each option, and how the worst loss becomes a requirement. This module
revalues the book under every (base state, scenario) pair with one flattened
:func:`~forecaster.pricing.revalue.revalue` call per underlying and chunk.

Conventions:

- A scenario moves the underlying's spot ``S → S (1 + move)``; options are priced with Black-76 on forward = spot
  (zero carry, as in :mod:`forecaster.portfolio.book`) at their own tau; linear positions (perp, spot, future)
  change by ``weight × S × move``, so a hedge offsets the options' losses.
- Loss = value in the base state − value in the scenario; a scenario's weighted loss is ``loss_weight × loss``.
- Options at tau = 0 (expired within a horizon) are valued at intrinsic and carry no vol shock and no
  short-option charge.
- Underlyings are margined separately and the requirements summed: a BTC move and an ETH move are never netted
  against each other (the exchanges' portfolio margin works per currency).

Shapes: N positions, M base states, G scenarios, U underlyings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.portfolio.book import Book
from forecaster.pricing.revalue import revalue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAYS_PER_YEAR = 365.0  # tau is in years of 365 calendar days (Book convention)
VOL_WORDS = {1: "vol up", 0: "vol unchanged", -1: "vol down"}
# Base states × scenarios × options evaluated per revalue call: keeps the (S, N) vol array near 16 MB.
CHUNK_ELEMENTS = 1 << 21

# (iv (M, N), dte_days (N,), direction (G,)) -> shocked vols (M, G, N)
VolShock = Callable[[FloatArray, FloatArray, IntArray], FloatArray]
# (scan_risk (M, U), short_notional (M, U)) -> (initial, maintenance, short-option charge), each (M, U)
Requirement = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray, FloatArray]]


@dataclass(frozen=True)
class ScenarioGrid:
    """G scenarios. Every array has shape (G,).

    ``price_move`` is a simple return of the underlying, ``vol_direction`` is +1 (vol up), 0 (unchanged) or
    −1 (vol down), ``loss_weight`` the share of the scenario's loss that counts, ``labels`` name each scenario.
    """

    price_move: FloatArray
    vol_direction: IntArray
    loss_weight: FloatArray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class MarginRules:
    """A margin model: its grid, how it shocks vols, and how the worst weighted loss becomes a requirement.

    ``min_vol`` is the model's vol floor, also applied to base-state vols given as a shift of the book's.
    """

    model: str
    grid: ScenarioGrid
    shock_vols: VolShock
    requirement: Requirement
    min_vol: float


@dataclass(frozen=True)
class MarginResult:
    """A book's margin requirement, in quote currency.

    Attributes
    ----------
    model
        ``risk_matrix`` or ``span``.
    initial, maintenance
        The requirements, summed over underlyings.
    scan_risk
        Σ over underlyings of max(0, worst weighted scenario loss).
    contingency
        Σ over underlyings of the short-option charge: added to the scan risk by the risk matrix; a floor under
        it (the short-option minimum) in SPAN, reported whether it binds or not.
    worst_scenario
        Label of the worst scenario of the underlying with the largest scan risk; ``"none"`` when no scenario
        loses money.
    by_underlying
        One row per underlying: ``scan_risk``, ``contingency``, ``initial``, ``maintenance``, ``worst_scenario``.
    losses
        Weighted scenario losses: one row per scenario (index: label), one column per underlying.
    """

    model: str
    initial: float
    maintenance: float
    scan_risk: float
    contingency: float
    worst_scenario: str
    by_underlying: pd.DataFrame
    losses: pd.DataFrame


def move_label(move: float) -> str:
    """``-0.16`` -> ``"-16%"``, ``0.0`` -> ``"+0%"``, ``1/30`` -> ``"+3.33%"``."""
    return f"{move * 100:+.3g}%"


def weighted_losses(
    book: Book,
    rules: MarginRules,
    log_return: FloatArray,
    iv: FloatArray,
    tau: FloatArray,
    *,
    threads: int | None = None,
) -> FloatArray:
    """Weighted scenario losses of each underlying's positions from each base state.

    Parameters
    ----------
    book
        The positions (weights, strikes, call flags, today's spots).
    rules
        The margin model.
    log_return
        Shape (M,): each base state's log move of every spot from the book's.
    iv
        Shape (M, N): each base state's implied vol of every position (read for options with tau > 0 only).
    tau
        Shape (N,): time to expiry in years at the base states (>= 0 for options; 0: valued at intrinsic).

    Returns
    -------
    ndarray
        Shape (M, U, G), underlyings in the order of ``book.underlyings``.
    """
    grid = rules.grid
    growth = np.exp(log_return)  # (M,)
    out = np.zeros((log_return.size, len(book.underlyings), len(grid)))
    for u, name in enumerate(book.underlyings):
        mine = book.underlying == name
        live = mine & book.is_option & (tau > 0)
        expired = mine & book.is_option & ~(tau > 0)
        linear = mine & ~book.is_option
        loss = _live_option_losses(book, rules, log_return, iv, tau, live, threads)
        loss += _expired_option_losses(book, grid, growth, expired)
        # Linear positions lose -w S move; S of the base state is today's spot times its growth.
        loss -= np.outer(growth * (book.weight[linear] @ book.spot[linear]), grid.price_move)
        out[:, u, :] = loss * grid.loss_weight
    return out


def _live_option_losses(
    book: Book,
    rules: MarginRules,
    log_return: FloatArray,
    iv: FloatArray,
    tau: FloatArray,
    live: npt.NDArray[np.bool_],
    threads: int | None,
) -> FloatArray:
    """Shape (M, G): base value − scenario value of the options with tau > 0, through one revalue call."""
    n_states, n_scen = log_return.size, len(rules.grid)
    if not live.any():
        return np.zeros((n_states, n_scen))
    args = (book.spot[live], book.strike[live], tau[live])
    flags = (book.is_call[live], book.weight[live])
    sigma = np.ascontiguousarray(iv[:, live])  # (M, n)
    base = revalue(log_return, *args, sigma, *flags, threads=threads)["value"]  # (M,)
    scenario_return = (log_return[:, None] + np.log1p(rules.grid.price_move)[None, :]).reshape(-1)  # (M G,)
    shocked = rules.shock_vols(sigma, tau[live] * DAYS_PER_YEAR, rules.grid.vol_direction)  # (M, G, n)
    value = revalue(scenario_return, *args, shocked.reshape(n_states * n_scen, -1), *flags, threads=threads)
    return base[:, None] - value["value"].reshape(n_states, n_scen)


def _expired_option_losses(
    book: Book, grid: ScenarioGrid, growth: FloatArray, expired: npt.NDArray[np.bool_]
) -> FloatArray:
    """Shape (M, G): intrinsic value in the base state − intrinsic value in the scenario, options at tau = 0."""
    if not expired.any():
        return np.zeros((growth.size, len(grid)))
    spot = growth[:, None] * book.spot[expired]  # (M, n)
    sign = np.where(book.is_call[expired], 1.0, -1.0)  # calls pay F - K, puts K - F
    strike, weight = book.strike[expired], book.weight[expired]
    base = np.maximum(sign * (spot - strike), 0.0) @ weight  # (M,)
    moved = spot[:, None, :] * (1.0 + grid.price_move)[None, :, None]  # (M, G, n)
    return base[:, None] - np.maximum(sign * (moved - strike), 0.0) @ weight


def short_notional(book: Book, growth: FloatArray, tau: FloatArray) -> FloatArray:
    """Shape (M, U): spot × units of underlying sold in live options (tau > 0), per base state and underlying."""
    short_live = book.is_option & (tau > 0) & (book.weight < 0)
    per_underlying = np.array(
        [-(book.weight * book.spot)[short_live & (book.underlying == name)].sum() for name in book.underlyings]
    )  # (U,)
    return np.outer(growth, per_underlying)


def margin_from_losses(
    rules: MarginRules, losses: FloatArray, notional: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Scan risk, initial, maintenance and short-option charge, each (M, U), from losses (M, U, G)."""
    scan = np.maximum(losses.max(axis=2, initial=0.0), 0.0)
    initial, maintenance, charge = rules.requirement(scan, notional)
    return scan, initial, maintenance, charge


def book_margin(book: Book, rules: MarginRules, *, threads: int | None = None) -> MarginResult:
    """The margin of ``book`` in today's state under ``rules``, with its per-underlying and per-scenario tables."""
    tau = _checked_tau(book, book.tau)
    iv = _checked_iv(book, book.iv[None, :], tau)
    zero = np.zeros(1)
    losses = weighted_losses(book, rules, zero, iv, tau, threads=threads)  # (1, U, G)
    scan, initial, maintenance, charge = margin_from_losses(rules, losses, short_notional(book, np.ones(1), tau))
    worst = [
        rules.grid.labels[int(np.argmax(row))] if s > 0 else "none" for row, s in zip(losses[0], scan[0], strict=True)
    ]
    names = pd.Index(book.underlyings, name="underlying")
    table = pd.DataFrame(
        {
            "scan_risk": scan[0],
            "contingency": charge[0],
            "initial": initial[0],
            "maintenance": maintenance[0],
            "worst_scenario": worst,
        },
        index=names,
    )
    scenario_losses = pd.DataFrame(losses[0].T, index=pd.Index(rules.grid.labels, name="scenario"), columns=names)
    dominant = int(np.argmax(scan[0])) if scan.size else 0
    return MarginResult(
        model=rules.model,
        initial=float(initial.sum(axis=1)[0]),
        maintenance=float(maintenance.sum(axis=1)[0]),
        scan_risk=float(scan.sum()),
        contingency=float(charge.sum()),
        worst_scenario=worst[dominant] if worst else "none",
        by_underlying=table,
        losses=scenario_losses,
    )


def initial_margin_for_states(
    book: Book,
    rules: MarginRules,
    log_return: npt.ArrayLike,
    *,
    iv: npt.ArrayLike | None = None,
    tau: npt.ArrayLike | None = None,
    threads: int | None = None,
) -> FloatArray:
    """Initial margin (M,) of ``book`` from each of M base states, under ``rules``.

    See :func:`forecaster.margin.initial_margin_under_states` for the parameters. States are processed in
    chunks so that one revalue call holds at most about ``CHUNK_ELEMENTS`` option evaluations.
    """
    r = np.asarray(log_return, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)):
        what = f"shape {r.shape}" if r.ndim != 1 else f"{int((~np.isfinite(r)).sum())} non-finite values"
        raise ValueError(f"log_return must be a finite array of shape (M,), one per state; got {what}")
    tau_now = _checked_tau(book, book.tau if tau is None else np.asarray(tau, dtype=float))
    vols = _checked_iv(book, _state_vols(book, r.size, iv, rules), tau_now)
    n_options = int(book.is_option.sum())  # live ones go through revalue, expired ones through intrinsic (M, G, n)
    rows = max(1, CHUNK_ELEMENTS // max(len(rules.grid) * n_options, 1))
    out = np.empty(r.size)
    for lo in range(0, r.size, rows):
        hi = min(lo + rows, r.size)
        losses = weighted_losses(book, rules, r[lo:hi], vols[lo:hi], tau_now, threads=threads)
        notional = short_notional(book, np.exp(r[lo:hi]), tau_now)
        out[lo:hi] = margin_from_losses(rules, losses, notional)[1].sum(axis=1)
    return out


def _state_vols(book: Book, n_states: int, iv: npt.ArrayLike | None, rules: MarginRules) -> FloatArray:
    """Shape (M, N): the implied vols of each base state from None, a shift (M,) or the vols (M, N)."""
    n = len(book)
    if iv is None:
        return np.broadcast_to(book.iv, (n_states, n))
    vols = np.asarray(iv, dtype=float)
    if vols.shape == (n_states,):
        if not np.all(np.isfinite(vols)):
            raise ValueError(f"iv as a shift of the book's vols must be finite; got {vols[~np.isfinite(vols)][0]}")
        # A large negative shift must not make a vol negative: floor at min_vol (never above the book's vol).
        return np.maximum(book.iv[None, :] + vols[:, None], np.minimum(rules.min_vol, book.iv))
    if vols.shape != (n_states, n):
        raise ValueError(
            f"iv must have shape ({n_states},) (a shift of every vol per state) or ({n_states}, {n}) (the vol of "
            f"every position per state), got {vols.shape}"
        )
    return vols


def _checked_tau(book: Book, tau: FloatArray) -> FloatArray:
    if tau.shape != (len(book),):
        raise ValueError(f"tau must have shape ({len(book)},) (one per position), got {tau.shape}")
    bad = book.is_option & ~(tau >= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"position {book.ids[i]}: option tau must be a number of years >= 0 (0: expired, valued at intrinsic), "
            f"got {tau[i]}"
        )
    return tau


def _checked_iv(book: Book, iv: FloatArray, tau: FloatArray) -> FloatArray:
    bad = (book.is_option & (tau > 0))[None, :] & ~((iv > 0) & np.isfinite(iv))  # (M, N)
    if bad.any():
        state, i = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"position {book.ids[i]}: implied vol must be finite and > 0, got {iv[state, i]} in state {state}; "
            "check the vol source or the iv passed"
        )
    return iv
