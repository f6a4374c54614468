"""Units of market data: implied vol in percent or decimal (DESIGN section 2)."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from forecaster.errors import UsageError
from forecaster.market.io import Source, note
from forecaster.market.validation import Bounds

log = logging.getLogger(__name__)

IvUnits = Literal["pct", "dec", "auto"]
IV_UNITS: tuple[str, ...] = ("pct", "dec", "auto")
# auto: a median above 3 (300% as a decimal) can only be percent.
AUTO_PCT_ABOVE = 3.0
MAX_IV = 5.0  # decimal, annualized


def iv_scale(values: np.ndarray, iv_units: str, source: Source, column: str, notes: list[str]) -> float:
    """What to divide the file's implied vols by to get decimals: 100 for percent, 1 for decimal.

    ``auto`` looks at the median of the positive finite values: above 3 means percent. The choice is logged
    and kept in ``notes``.
    """
    if iv_units not in IV_UNITS:
        raise UsageError(f"iv_units must be one of {', '.join(IV_UNITS)}; got {iv_units!r}")
    if iv_units == "auto":
        usable = values[np.isfinite(values) & (values > 0)]  # (k,)
        median = float(np.median(usable)) if usable.size else float("nan")
        iv_units = "pct" if median > AUTO_PCT_ABOVE else "dec"
        note(
            notes,
            log,
            source,
            f"column '{column}': implied vol in {_WORDS[iv_units]} (auto: median {median:g})",
        )
    else:
        note(notes, log, source, f"column '{column}': implied vol in {_WORDS[iv_units]} (iv_units={iv_units})")
    return 100.0 if iv_units == "pct" else 1.0


def iv_bounds(scale: float) -> Bounds:
    """Allowed implied vols in the file's units: (0, 5] as a decimal, (0, 500] in percent."""
    interval = f"(0, {MAX_IV * scale:g}]"
    label = interval if scale == 1.0 else f"{interval} in percent, i.e. (0, {MAX_IV:g}] as a decimal"
    return Bounds(low=0.0, high=MAX_IV * scale, low_closed=False, label=label)


_WORDS = {"pct": "percent, converted to decimal", "dec": "decimal"}
