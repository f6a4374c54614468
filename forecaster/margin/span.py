"""SPAN-style margin: CME's 16-scenario risk array with crypto-sized scan ranges.

The scenarios, in CME's order (defaults in :class:`~forecaster.margin.config.SpanConfig`):

1-14. price unchanged, +1/3, −1/3, +2/3, −2/3, +1, −1 of the price scan range (15%), each with vol up then
      vol down by the vol scan range (15 vol points, absolute), the shocked vol floored at 1 vol point;
15-16. extreme moves of +3 and −3 scan ranges (±45%), vol unchanged, whose loss counts at 35% (CME uses 3× and
       35% for most products: deep out-of-the-money shorts that the ±1 range misses still cost margin).

Scan risk = max(0, worst weighted loss). SPAN's short-option minimum is a floor, not an add-on: maintenance =
max(scan risk, 1% of spot per unit of underlying sold in options); initial = 110% of maintenance (CME's
initial-to-maintenance ratio for most accounts). Each underlying is margined on its own and the requirements
summed; SPAN's inter-commodity spread credits are not modelled.

Shapes: N options, M base states, G = 16 scenarios.
"""

from __future__ import annotations

import numpy as np

from forecaster.margin.config import SpanConfig
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

MODEL = "span"
# Fractions of the price scan range, in CME's order; each is taken with vol up, then vol down.
SCAN_FRACTIONS = (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0)


def span_grid(config: SpanConfig) -> ScenarioGrid:
    """The 16 SPAN scenarios: 7 price moves × (vol up, vol down), then the two weighted extreme moves."""
    fractions = np.array(SCAN_FRACTIONS)
    extremes = np.array([config.extreme_multiple, -config.extreme_multiple])
    move = np.concatenate([np.repeat(fractions, 2), extremes]) * config.price_scan_range  # (16,)
    direction = np.concatenate([np.tile([1, -1], fractions.size), [0, 0]]).astype(np.int64)
    weight = np.concatenate([np.ones(2 * fractions.size), np.full(2, config.extreme_weight)])
    labels = [f"{move_label(m)} {VOL_WORDS[d]}" for m, d in zip(move[:-2], direction[:-2], strict=True)]
    labels += [f"{move_label(m)} vol unchanged (extreme)" for m in move[-2:]]
    return ScenarioGrid(price_move=move, vol_direction=direction, loss_weight=weight, labels=tuple(labels))


def span_vol_shocks(direction: IntArray, config: SpanConfig) -> FloatArray:
    """Absolute vol shocks (G,): ``direction × vol_scan_range``, the same for every option."""
    return np.asarray(direction, dtype=float) * config.vol_scan_range


def span_shocked_vols(iv: FloatArray, dte_days: FloatArray, direction: IntArray, config: SpanConfig) -> FloatArray:
    """Shocked vols (M, G, N) from base vols (M, N): floored at ``min_vol`` but never above the base vol.

    ``dte_days`` is unused: SPAN's vol scan range does not depend on the expiry.
    """
    shocked = iv[:, None, :] + span_vol_shocks(direction, config)[None, :, None]
    return np.maximum(shocked, np.minimum(config.min_vol, iv)[:, None, :])


def span_requirement(
    scan_risk: FloatArray, short_notional: FloatArray, config: SpanConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Maintenance = max(scan risk, short-option minimum); initial = ratio × maintenance. Same shapes in and out."""
    minimum = config.short_option_minimum * short_notional
    maintenance = np.maximum(scan_risk, minimum)
    return config.initial_to_maintenance * maintenance, maintenance, minimum


def span_rules(config: SpanConfig | None = None) -> MarginRules:
    """SPAN as a :class:`~forecaster.margin.scenarios.MarginRules` (defaults when ``config`` is None)."""
    c = config or SpanConfig()
    return MarginRules(
        model=MODEL,
        grid=span_grid(c),
        shock_vols=lambda iv, dte, direction: span_shocked_vols(iv, dte, direction, c),
        requirement=lambda scan, notional: span_requirement(scan, notional, c),
        min_vol=c.min_vol,
    )


def span_margin(book: Book, config: SpanConfig | None = None, *, threads: int | None = None) -> MarginResult:
    """SPAN-style margin of ``book`` today.

    Parameters
    ----------
    book
        The positions; options at tau = 0 are valued at intrinsic (see :mod:`forecaster.margin.scenarios`).
    config
        Scan ranges and charges; default :class:`~forecaster.margin.config.SpanConfig`.
    threads
        Worker threads of the revaluation; default: the machine's cores.

    Returns
    -------
    MarginResult
        ``contingency`` holds the short-option minimum (a floor under the scan risk, reported even when it does
        not bind).
    """
    return book_margin(book, span_rules(config), threads=threads)
