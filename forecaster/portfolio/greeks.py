"""The book's Greeks in quote-currency terms, per position and aggregated by underlying and expiry bucket.

Units (quote currency, so positions on different underlyings add up):

=========== =============================================================================================
``price``   value of one unit of the instrument (options: Black-76 premium; linear: the spot)
``value``   ``weight × price``
``delta``   cash delta: change of value for a 100% move of the underlying, ``w S ∂V/∂S``; divide by the
            spot for the hedge in units of the underlying (``delta_units``)
``gamma``   change of cash delta for a 1% move: ``w S² ∂²V/∂S² / 100``
``vega``    change of value for +1 vol point: ``w ∂V/∂σ / 100``
``theta``   change of value over one calendar day: ``w ∂V/∂t / 365``
``vanna``   change of cash delta for +1 vol point: ``w S ∂²V/∂S∂σ / 100``
``volga``   change of vega for +1 vol point: ``w ∂²V/∂σ² / 100²``
=========== =============================================================================================

Linear instruments (perp, spot, future at zero carry) have delta ``w S`` and no other Greek.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from forecaster.portfolio.book import Book
from forecaster.pricing.black import black76_greeks, black76_price

GREEK_COLUMNS = ("delta", "gamma", "vega", "theta", "vanna", "volga")
# Expiry buckets in days: (0, 1], (1, 7], (7, 30], (30, 90], beyond; perps and spot are "linear".
DEFAULT_BUCKET_DAYS = (1.0, 7.0, 30.0, 90.0)
LINEAR_BUCKET = "linear"

# Scale of each Greek from per-unit Black-76 terms to the quote-currency conventions above, as powers of the
# spot S and a constant: delta S, gamma S^2/100, vega /100, theta /365, vanna S/100, volga /100^2.
_SCALES = {"delta": (1, 1.0), "gamma": (2, 0.01), "vega": (0, 0.01), "theta": (0, 1 / 365), "vanna": (1, 0.01)}
_SCALES["volga"] = (0, 1e-4)


def position_greeks(book: Book, bucket_days: Sequence[float] = DEFAULT_BUCKET_DAYS) -> pd.DataFrame:
    """One row per position: id, instrument, underlying, bucket, spot, iv, price, value, delta_units and Greeks.

    Returns
    -------
    DataFrame
        Indexed by position id, rows in book order. Units in the module docstring. An option at or past its
        expiry (a book aged by :meth:`Book.aged`) is worth its intrinsic value and has no Greeks (cash-settled).
    """
    option = book.is_option
    # an option at or past expiry (a book aged past it) has settled in cash at intrinsic: no Greeks left
    live = option & (book.tau > 0)
    n = len(book)
    price = book.spot.copy()
    unit = {name: np.zeros(n) for name in GREEK_COLUMNS}
    unit["delta"] = np.where(option, 0.0, 1.0)  # linear instruments: dV/dS = 1
    if option.any():
        price[option] = black76_price(
            book.spot[option],
            book.strike[option],
            np.maximum(book.tau[option], 0.0),
            book.iv[option],
            book.is_call[option],
        )
    if live.any():
        args = (book.spot[live], book.strike[live], book.tau[live], book.iv[live], book.is_call[live])
        for name, value in black76_greeks(*args).items():
            unit[name][live] = value
    columns: dict[str, object] = {
        "instrument": book.instrument,
        "underlying": book.underlying,
        "bucket": expiry_buckets(book.tau, bucket_days),
        "spot": book.spot,
        "iv": book.iv,
        "price": price,
        "value": book.weight * price,
        "delta_units": book.weight * unit["delta"],
    }
    for name, (power, constant) in _SCALES.items():
        columns[name] = book.weight * unit[name] * book.spot**power * constant
    return pd.DataFrame(columns, index=pd.Index(book.ids, name="id"))


def aggregate_greeks(table: pd.DataFrame, by: Sequence[str] = ("underlying", "bucket")) -> pd.DataFrame:
    """Sum value, delta_units and the Greeks of :func:`position_greeks` by the given columns (buckets in order)."""
    sums = ["value", "delta_units", *GREEK_COLUMNS]
    return table.groupby(list(by), observed=True, sort=True)[sums].sum()


def total_greeks(table: pd.DataFrame) -> dict[str, float]:
    """The whole book's value and Greeks (quote currency)."""
    return {name: float(table[name].sum()) for name in ("value", *GREEK_COLUMNS)}


def expiry_buckets(tau: np.ndarray, bucket_days: Sequence[float] = DEFAULT_BUCKET_DAYS) -> pd.Categorical:
    """Label each time to expiry (years; NaN for perps and spot) with its bucket, e.g. ``1-7d``.

    Shape: (N,) in, (N,) categorical out, categories ordered from the shortest bucket to ``linear``.
    """
    edges = [float(d) for d in bucket_days]
    if not edges or not all(np.isfinite(edges)) or any(b <= a for a, b in pairwise(edges)) or edges[0] <= 0:
        raise ValueError(f"bucket_days must be finite, positive and increasing days; got {list(bucket_days)}")
    labels = [f"{_fmt(lo)}-{_fmt(hi)}d" for lo, hi in zip([0.0, *edges], edges, strict=False)] + [
        f"{_fmt(edges[-1])}d+"
    ]
    # rounded to ~0.1 ms: tau = 29 days / 365 days gives 29.000000000000004 days, which must stay in (7, 29]
    days = np.round(np.asarray(tau, dtype=float) * 365.0, 9)
    # (lo, hi]: an option with exactly 7 days left is in 1-7d
    index = np.searchsorted(np.asarray(edges), days, side="left")
    names = np.where(np.isnan(days), LINEAR_BUCKET, np.asarray(labels, dtype=object)[np.minimum(index, len(edges))])
    return pd.Categorical(names, categories=[*labels, LINEAR_BUCKET], ordered=True)


def _fmt(days: float) -> str:
    return f"{days:g}"
