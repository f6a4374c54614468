"""Realized-volatility features from bars: realized variance and its robust, signed and range-based cousins.

Every column is built from sums over the last ``W`` bars (a window of the spec's ``windows``), taken with
:func:`features.windows.window_sum`, of per-bar terms that use bar t and, for some, bar t − 1 only; variances
are decimal² over the window (never annualized). With r_t = ln(C_t / C_{t−1}), o_t = ln(O_t / C_{t−1}) (the
gap since the previous close) and c_t = ln(C_t / O_t) (open to close), the columns are, with sums over the
window's bars i = t − W + 1 … t (in brackets: the windows a column exists for; its warm-up):

- ``rv_W`` = Σ r_i² (W ≥ 1; W).
- ``ret_W`` = Σ r_i, the log return over the window (W ≥ 1; W).
- ``rsp_W`` = Σ r_i² 1{r_i > 0} and ``rsn_W`` = Σ r_i² 1{r_i < 0}, the semivariances; rsp + rsn = rv (W ≥ 1; W).
- ``bv_W`` = (π/2) Σ |r_i| |r_{i−1}|, bipower variation; r_{i−1} may precede the window (W ≥ 2; W + 1).
- ``jump_W`` = max(rv_W − bv_W, 0) (W ≥ 2; W + 1).
- ``rskew_W`` = √W Σ r_i³ / rv_W^{3/2} and ``rkurt_W`` = W Σ r_i⁴ / rv_W², Amaya et al. (2015) (W ≥ 2; W).
- ``parkinson_W`` = Σ (ln H_i/L_i)² / (4 ln 2) (W ≥ 1; W − 1).
- ``gk_W`` = Σ ½ (ln H_i/L_i)² − (2 ln 2 − 1) c_i², Garman-Klass (W ≥ 1; W − 1).
- ``rs_W`` = Σ ln(H_i/C_i) ln(H_i/O_i) + ln(L_i/C_i) ln(L_i/O_i), Rogers-Satchell (W ≥ 1; W − 1).
- ``yz_W`` = W (s²_o + k s²_c + (1 − k) rs_W / W), k = 0.34 / (1.34 + (W + 1)/(W − 1)), Yang-Zhang (W ≥ 2; W).

``s²_o`` and ``s²_c`` are the sample variances (divisor W − 1) of o and c over the window (Yang-Zhang 2000).
The warm-up is the number of leading NaN rows: a term that exists from bar f on (f = 1 for r and o, 2 for the
bipower product, 0 for the range terms) gives a full window from row f + W − 1 on; after it no column is NaN.

The range estimators (Parkinson, Garman-Klass, Rogers-Satchell) see the open-to-close part of a bar only: on
markets with gaps between sessions they miss the overnight variance that ``rv`` and ``yz`` include. Skewness
and kurtosis of a flat window (every return 0) are 0/0; they are set to 0 (kurtosis 0 is outside the [1, W] a
moving window can give, so a model can tell the two apart).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.windows import window_sums

FloatArray = npt.NDArray[np.float64]

# feature -> (smallest window it is defined for, first bar its per-bar term exists on); the order is the columns'
FEATURES: dict[str, tuple[int, int]] = {
    "rv": (1, 1),
    "ret": (1, 1),
    "rsp": (1, 1),
    "rsn": (1, 1),
    "bv": (2, 2),
    "jump": (2, 2),
    "rskew": (2, 1),
    "rkurt": (2, 1),
    "parkinson": (1, 0),
    "gk": (1, 0),
    "rs": (1, 0),
    "yz": (2, 1),
}

_LN2 = np.log(2.0)


def bipower_term(r: FloatArray) -> FloatArray:
    """(π/2) |r_t| |r_{t−1}|: the per-bar term of bipower variation.

    NaN on the first two bars (``r`` is NaN on the first). Shape (n,).
    """
    out = np.full(r.size, np.nan)
    out[1:] = (np.pi / 2) * np.abs(r[1:]) * np.abs(r[:-1])
    return out


def parkinson_term(high: FloatArray, low: FloatArray) -> FloatArray:
    """(ln H/L)² / (4 ln 2): Parkinson's per-bar variance. Shape (n,)."""
    return np.log(high / low) ** 2 / (4 * _LN2)


def garman_klass_term(open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """½ (ln H/L)² − (2 ln 2 − 1)(ln C/O)²: Garman-Klass's per-bar variance (≥ 0 since |ln C/O| ≤ ln H/L).
    Shape (n,)."""
    return 0.5 * np.log(high / low) ** 2 - (2 * _LN2 - 1) * np.log(close / open_) ** 2


def rogers_satchell_term(open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """ln(H/C) ln(H/O) + ln(L/C) ln(L/O): Rogers-Satchell's per-bar variance, unbiased under any drift.
    Shape (n,)."""
    return np.log(high / close) * np.log(high / open_) + np.log(low / close) * np.log(low / open_)


def overnight_return(open_: FloatArray, close: FloatArray) -> FloatArray:
    """ln(O_t / C_{t−1}): the gap from the previous close to this bar's open. NaN on the first bar. Shape (n,)."""
    out = np.full(close.size, np.nan)
    out[1:] = np.log(open_[1:] / close[:-1])
    return out


def per_bar_terms(bars: pd.DataFrame, r: FloatArray) -> dict[str, FloatArray]:
    """Every per-bar term a window sums, from OHLC bars and their close-to-close log returns ``r`` (n,).

    NaN where a term needs a bar before the first; each array has shape (n,).
    """
    o, h, low, c = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    r2 = r**2
    gap = overnight_return(o, c)
    body = np.log(c / o)
    return {
        "r": r,
        "r2": r2,
        "r2_pos": np.where(r < 0, 0.0, r2),  # written so a NaN return stays NaN (NaN < 0 is False)
        "r2_neg": np.where(r > 0, 0.0, r2),
        "r3": r**3,
        "r4": r2**2,
        "bp": bipower_term(r),
        "parkinson": parkinson_term(h, low),
        "gk": garman_klass_term(o, h, low, c),
        "rs": rogers_satchell_term(o, h, low, c),
        "o": gap,
        "o2": gap**2,
        "c": body,
        "c2": body**2,
    }


def sample_variance(total: FloatArray, total_sq: FloatArray, window: int) -> FloatArray:
    """Sample variance (divisor W − 1) from window sums of x and x², both shape (n,); W ≥ 2. Shape (n,)."""
    # the one-pass formula can round a zero variance to a tiny negative number
    return np.maximum(total_sq - total**2 / window, 0.0) / (window - 1)


def yang_zhang_k(window: int) -> float:
    """Yang-Zhang's weight of the open-to-close variance for ``window`` ≥ 2 bars (minimum-variance choice)."""
    return 0.34 / (1.34 + (window + 1) / (window - 1))


def yang_zhang(sums: Mapping[str, FloatArray], window: int) -> FloatArray:
    """Yang-Zhang variance over the window from window sums of o, o², c, c² and the Rogers-Satchell term.

    Returns the per-bar estimate times ``window`` (a variance over the window). Shape (n,).
    """
    k = yang_zhang_k(window)
    per_bar = (
        sample_variance(sums["o"], sums["o2"], window)
        + k * sample_variance(sums["c"], sums["c2"], window)
        + (1 - k) * sums["rs"] / window
    )
    return window * per_bar


def realized_skew(sum_r3: FloatArray, rv: FloatArray, window: int) -> FloatArray:
    """√W Σ r³ / rv^{3/2}; 0 where rv = 0. Shapes (n,)."""
    flat = rv == 0
    safe = np.where(flat, 1.0, rv)
    skew = np.sqrt(window) * sum_r3 / safe**1.5
    bound = np.sqrt(window)  # |Σ r³| ≤ rv^{3/2}: clip what rounding of the window sums pushes past it
    return np.where(flat, 0.0, np.clip(skew, -bound, bound))


def realized_kurt(sum_r4: FloatArray, rv: FloatArray, window: int) -> FloatArray:
    """W Σ r⁴ / rv²; 0 where rv = 0. Shapes (n,)."""
    flat = rv == 0
    safe = np.where(flat, 1.0, rv)
    kurt = window * sum_r4 / safe**2
    return np.where(flat, 0.0, np.clip(kurt, 1.0, window))  # rv²/W ≤ Σ r⁴ ≤ rv²: clip rounding only


def window_features(sums: Mapping[str, FloatArray], window: int) -> dict[str, FloatArray]:
    """Every feature of one window from the window sums of :func:`per_bar_terms` (same keys). Shapes (n,).

    Holds the features with ``FEATURES[name][0] <= window`` only, named without the ``_W`` suffix.
    """
    rv = sums["r2"]
    out = {"rv": rv, "ret": sums["r"], "rsp": sums["r2_pos"], "rsn": sums["r2_neg"]}
    if window >= 2:
        bv = sums["bp"]
        out |= {
            "bv": bv,
            "jump": np.maximum(rv - bv, 0.0),
            "rskew": realized_skew(sums["r3"], rv, window),
            "rkurt": realized_kurt(sums["r4"], rv, window),
        }
    out |= {"parkinson": sums["parkinson"], "gk": sums["gk"], "rs": sums["rs"]}
    if window >= 2:
        out["yz"] = yang_zhang(sums, window)
    return out


class RealizedGroup:
    """Realized, bipower, semi-, range-based variances and realized moments over each window (bars only)."""

    name = "realized"
    needs: tuple[str, ...] = ("bars",)

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        return {
            f"{feature}_{w}": first + w - 1
            for feature, (smallest, first) in FEATURES.items()
            for w in windows
            if w >= smallest
        }

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        terms = per_bar_terms(ctx.data.bars, ctx.log_return)
        columns: dict[str, FloatArray] = {}
        for w in windows:
            blocks = ctx.blocks(w)
            stacked = window_sums(np.stack(list(terms.values())), w, blocks)  # one pass for every term
            sums = dict(zip(terms, stacked, strict=True))
            columns |= {f"{name}_{w}": values for name, values in window_features(sums, w).items()}
        names = self.columns(windows, params, ctx.data)
        return pd.DataFrame({name: columns[name] for name in names}, index=ctx.data.index)


GROUP = RealizedGroup()
