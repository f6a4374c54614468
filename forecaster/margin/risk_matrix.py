"""Risk-matrix portfolio margin as crypto exchanges compute it (Deribit-style).

The book is revalued under a grid of price moves × implied-vol shocks (defaults in
:class:`~forecaster.margin.config.RiskMatrixConfig`):

- 9 price moves −16%, −12%, …, +16%, each with vol up, unchanged and down: 27 scenarios. The vol shock is
  relative and larger near expiry: ``σ (1 + 0.5 (30/DTE)^0.3)`` up, ``σ (1 − 0.25 (30/DTE)^0.3)`` down, with DTE
  (days to expiry of each option) floored at 1 day and the shocked vol floored at 1 vol point;
- 4 extended moves −66%, −33%, +50%, +100% with vol up, whose loss counts at ``16% / |move|``.

Initial margin = max(0, worst weighted loss) + 1% of spot per unit of underlying sold in options (the
contingency for short options, which the grid under-prices when they are far out of the money); maintenance =
80% of initial. Each underlying is margined on its own and the requirements summed.

Shapes: N options, M base states, G scenarios.
"""

from __future__ import annotations

import numpy as np

from forecaster.margin.config import RiskMatrixConfig
from forecaster.margin.scenarios import (
    VOL_WORDS,
    FloatArray,
    IntArray,
    MarginResult,
    MarginRules,
    ScenarioGrid,
    book_margin,
    move_label,
)
from forecaster.portfolio.book import Book

MODEL = "risk_matrix"


def risk_matrix_grid(config: RiskMatrixConfig) -> ScenarioGrid:
    """The risk-matrix scenarios: each price move with vol up, unchanged, down; then the weighted extended moves.

    Returns
    -------
    ScenarioGrid
        G = 3 × len(price_moves) + len(extended_moves) scenarios (31 by default).
    """
    moves = np.asarray(config.price_moves, dtype=float)
    extended = np.asarray(config.extended_moves, dtype=float)
    directions = np.array([1, 0, -1])
    move = np.concatenate([np.repeat(moves, 3), extended])  # (G,)
    direction = np.concatenate([np.tile(directions, moves.size), np.ones(extended.size, dtype=int)])
    weight = np.concatenate([np.ones(3 * moves.size), config.extended_weight_move / np.abs(extended)])
    tags = [""] * (3 * moves.size) + [" (extended)"] * extended.size
    labels = [f"{move_label(m)} {VOL_WORDS[d]}{t}" for m, d, t in zip(move, direction, tags, strict=True)]
    return ScenarioGrid(
        price_move=move, vol_direction=direction.astype(np.int64), loss_weight=weight, labels=tuple(labels)
    )


def risk_matrix_vol_shocks(direction: IntArray, dte_days: FloatArray, config: RiskMatrixConfig) -> FloatArray:
    """Relative vol shocks: ``+vol_up · s`` (direction +1), 0, ``−vol_down · s`` (−1), ``s = (ref / DTE)^p``.

    Parameters
    ----------
    direction
        Shape (G,): +1, 0 or −1.
    dte_days
        Shape (N,): days to expiry of each option, floored at ``config.min_dte_days``.

    Returns
    -------
    ndarray
        Shape (G, N): the shocked vol is ``σ (1 + shock)`` before the floor.
    """
    dte = np.maximum(np.asarray(dte_days, dtype=float), config.min_dte_days)
    scale = (config.vol_reference_days / dte) ** config.vol_dte_power  # (N,)
    d = np.asarray(direction)[:, None]
    size = np.where(d > 0, config.vol_up, np.where(d < 0, -config.vol_down, 0.0))  # (G, 1)
    return size * scale[None, :]


def risk_matrix_shocked_vols(
    iv: FloatArray, dte_days: FloatArray, direction: IntArray, config: RiskMatrixConfig
) -> FloatArray:
    """Shocked vols (M, G, N) from base vols (M, N): floored at ``min_vol`` but never above the base vol."""
    shocked = iv[:, None, :] * (1.0 + risk_matrix_vol_shocks(direction, dte_days, config))[None, :, :]
    return np.maximum(shocked, np.minimum(config.min_vol, iv)[:, None, :])


def risk_matrix_requirement(
    scan_risk: FloatArray, short_notional: FloatArray, config: RiskMatrixConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Initial = scan risk + contingency; maintenance = ratio × initial. Inputs and outputs: same shape."""
    contingency = config.short_option_contingency * short_notional
    initial = scan_risk + contingency
    return initial, config.maintenance_ratio * initial, contingency


def risk_matrix_rules(config: RiskMatrixConfig | None = None) -> MarginRules:
    """The risk matrix as a :class:`~forecaster.margin.scenarios.MarginRules` (defaults when ``config`` is None)."""
    c = config or RiskMatrixConfig()
    return MarginRules(
        model=MODEL,
        grid=risk_matrix_grid(c),
        shock_vols=lambda iv, dte, direction: risk_matrix_shocked_vols(iv, dte, direction, c),
        requirement=lambda scan, notional: risk_matrix_requirement(scan, notional, c),
        min_vol=c.min_vol,
    )


def risk_matrix_margin(
    book: Book, config: RiskMatrixConfig | None = None, *, threads: int | None = None
) -> MarginResult:
    """Risk-matrix portfolio margin of ``book`` today.

    Parameters
    ----------
    book
        The positions; options at tau = 0 are valued at intrinsic (see :mod:`forecaster.margin.scenarios`).
    config
        The grid and charges; default :class:`~forecaster.margin.config.RiskMatrixConfig`.
    threads
        Worker threads of the revaluation; default: the machine's cores.

    Returns
    -------
    MarginResult
        Initial and maintenance margin, contingency, worst scenario and the per-underlying and per-scenario tables.
    """
    return book_margin(book, risk_matrix_rules(config), threads=threads)
